//! A `Range` header against an audio file's length (the first 8 bytes).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let len = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
    let header = String::from_utf8_lossy(&data[8..]);
    if let Ok(range) = bcfy_gateway::audio::parse_range(&header, len) {
        std::hint::black_box(range);
    }
});
