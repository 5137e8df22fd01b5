//! Fuzz target `datagram`: the properties are in `uwsgi_tests::harness::packet::check_datagram`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| uwsgi_tests::harness::packet::check_datagram(data));
