#![no_main]
// See pforte::fuzzing::payment_request for what the input is.
libfuzzer_sys::fuzz_target!(|data: &[u8]| pforte::fuzzing::payment_request(data));
