#![no_main]
// See pforte::fuzzing::settlement_csv for what the input is.
libfuzzer_sys::fuzz_target!(|data: &[u8]| pforte::fuzzing::settlement_csv(data));
