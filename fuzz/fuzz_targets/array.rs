//! Fuzz target `array`: the properties are in `uwsgi_tests::harness::array::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| uwsgi_tests::harness::array::check(data));
