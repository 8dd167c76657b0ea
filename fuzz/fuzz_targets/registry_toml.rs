#![no_main]
// See pforte::fuzzing::registry_toml for what the input is.
libfuzzer_sys::fuzz_target!(|data: &[u8]| pforte::fuzzing::registry_toml(data));
