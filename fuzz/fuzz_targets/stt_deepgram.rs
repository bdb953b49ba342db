//! A Deepgram answer.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bcfy_transcriber::fuzzing::deepgram_answer(data);
});
