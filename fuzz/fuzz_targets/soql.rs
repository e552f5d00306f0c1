//! A SOQL statement, parsed and run by the Salesforce emulator.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tether::fuzzing::soql(data));
