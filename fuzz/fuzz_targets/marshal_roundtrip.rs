//! Fuzz target `marshal_roundtrip`: the properties are in `uwsgi_tests::harness::marshal::check_roundtrip`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| uwsgi_tests::harness::marshal::check_roundtrip(data));
