//! Fuzz target `marshal`: the properties are in `uwsgi_tests::harness::marshal::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| uwsgi_tests::harness::marshal::check(data));
