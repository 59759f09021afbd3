//! The fixture / admin-rule loader (see `aymara_mock::fuzzing::fixture`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aymara_mock::fuzzing::fixture(data));
