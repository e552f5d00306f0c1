//! A Salesforce response body, decoded as each answer the Salesforce client reads.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tether::fuzzing::salesforce_json(data));
