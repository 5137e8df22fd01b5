//! Fuzz target `header`: the properties are in `uwsgi_tests::harness::header::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| uwsgi_tests::harness::header::check(data));
