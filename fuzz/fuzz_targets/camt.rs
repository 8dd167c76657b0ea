#![no_main]
// See pforte::fuzzing::camt for what the input is.
libfuzzer_sys::fuzz_target!(|data: &[u8]| pforte::fuzzing::camt(data));
