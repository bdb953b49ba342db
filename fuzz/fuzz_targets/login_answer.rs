//! A login answer: status, cookies, redirects.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bcfy_broadcastify::fuzzing::login_answer(data);
});
