//! Fuzz target `server_connection`: the properties are in `uwsgi_tests::harness::server::check_connection`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| uwsgi_tests::harness::server::check_connection(data));
