//! An AssemblyAI transcript.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bcfy_transcriber::fuzzing::assemblyai_answer(data);
});
