//! Fuzz target `reply`: the properties are in `uwsgi_tests::harness::reply::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| uwsgi_tests::harness::reply::check(data));
