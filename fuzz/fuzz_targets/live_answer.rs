//! A live calls answer, whole and cut in two: no panic, and both readings agree.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let cut = usize::from(u16::from_le_bytes([data[0], data[1]]));
    bcfy_broadcastify::fuzzing::live_answer(&data[2..], cut);
});
