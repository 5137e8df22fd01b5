//! Fuzz target `packet`: the properties are in `uwsgi_tests::harness::packet::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| uwsgi_tests::harness::packet::check(data));
