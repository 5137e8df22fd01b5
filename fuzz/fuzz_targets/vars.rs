//! Fuzz target `vars`: the properties are in `uwsgi_tests::harness::vars::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| uwsgi_tests::harness::vars::check(data));
