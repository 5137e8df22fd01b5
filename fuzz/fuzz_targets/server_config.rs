//! Fuzz target `server_config`: the properties are in `uwsgi_tests::harness::server::check_config`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| uwsgi_tests::harness::server::check_config(data));
