//! Fuzz target `stream`: the properties are in `uwsgi_tests::harness::stream::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| uwsgi_tests::harness::stream::check(data));
