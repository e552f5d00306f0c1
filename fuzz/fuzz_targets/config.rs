//! A configuration file, loaded and validated as `tether validate` does.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| tether::fuzzing::config(data));
