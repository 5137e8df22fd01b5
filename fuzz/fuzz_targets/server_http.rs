//! Fuzz target `server_http`: the properties are in `uwsgi_tests::harness::server::check_http`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| uwsgi_tests::harness::server::check_http(data));
