//! A `Retry-After` header value.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bcfy_broadcastify::fuzzing::retry_after(&String::from_utf8_lossy(data));
});
