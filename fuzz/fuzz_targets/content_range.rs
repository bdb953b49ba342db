//! The CDN's `Content-Range` header.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    bcfy_broadcastify::fuzzing::content_range(&String::from_utf8_lossy(data));
});
