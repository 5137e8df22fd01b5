//! Fuzz target `packet_roundtrip`: the properties are in `uwsgi_tests::harness::packet::check_roundtrip`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| uwsgi_tests::harness::packet::check_roundtrip(data));
