//! An EWS, Autodiscover or token answer, read as the Exchange client reads each.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tether::fuzzing::ews_response(data));
