//! Fuzz target `cli_decode`: the properties are in `uwsgi_tests::harness::cli::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| uwsgi_tests::harness::cli::check(data));
