#![no_main]
// See pforte::fuzzing::client_assertion for what the input is.
libfuzzer_sys::fuzz_target!(|data: &[u8]| pforte::fuzzing::client_assertion(data));
