//! The multipart parser: byte 0 picks the boundary, byte 1 the chunk size,
//! the rest is the body (see `aymara_mock::fuzzing::multipart`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| aymara_mock::fuzzing::multipart(data));
