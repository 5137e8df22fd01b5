//! Fuzz target `cache_dump`: the properties are in `uwsgi_tests::harness::cache_dump::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| uwsgi_tests::harness::cache_dump::check(data));
