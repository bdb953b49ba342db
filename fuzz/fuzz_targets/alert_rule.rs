//! An alert rule as stored in the `alert-rules` bucket, compiled and evaluated on a transcript.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bcfy_alerter::fuzzing::rule_and_transcript(data);
});
