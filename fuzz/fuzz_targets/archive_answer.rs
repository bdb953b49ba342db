//! An archive answer.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bcfy_broadcastify::fuzzing::archive_answer(data);
});
