//! Fuzz target `snmp`: the properties are in `uwsgi_tests::harness::snmp::check`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| uwsgi_tests::harness::snmp::check(data));
