#![no_main]
// See pforte::fuzzing::form for what the input is.
libfuzzer_sys::fuzz_target!(|data: &[u8]| pforte::fuzzing::form(data));
