//! Fuzz target `msgpack`: the properties are in `uwsgi_tests::harness::msgpack::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| uwsgi_tests::harness::msgpack::check(data));
