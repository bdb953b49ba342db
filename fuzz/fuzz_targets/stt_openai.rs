//! An OpenAI-compatible transcription answer.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bcfy_transcriber::fuzzing::openai_answer(data);
});
