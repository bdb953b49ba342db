//! Per-call audio bytes: the clip plus the call's key, so every call's file is unique and its
//! SHA-256 identifies it, while staying a valid file for any decoder.
//!
//! - `.m4a`: a top-level `free` box holding the key is appended after `mdat` (decoders skip
//!   `free` boxes; nothing before it moves, so sample offsets stay right).
//! - `.mp3`: an ID3v2.3 tag with a `TXXX` frame holding the key is put in front (decoders skip
//!   ID3 tags).

/// The `TXXX` description (and the `free` box prefix) naming the key.
pub const KEY_LABEL: &str = "bcfy-sim-call";

/// The m4a clip with the key appended in a `free` box, padded with zeros inside that box up to
/// `at_least` bytes in all (for load tests that need files of a given size).
pub fn tagged_m4a(clip: &[u8], key: &str, at_least: usize) -> Vec<u8> {
    let payload = format!("{KEY_LABEL}={key}");
    let unpadded = clip.len() + 8 + payload.len();
    let padding = at_least.saturating_sub(unpadded);
    let size = u32::try_from(8 + payload.len() + padding).expect("files stay below 4 GiB");
    let mut file = Vec::with_capacity(unpadded + padding);
    file.extend_from_slice(clip);
    file.extend_from_slice(&size.to_be_bytes());
    file.extend_from_slice(b"free");
    file.extend_from_slice(payload.as_bytes());
    file.resize(unpadded + padding, 0);
    file
}

/// The mp3 clip behind an ID3v2.3 tag whose `TXXX` frame holds the key.
pub fn tagged_mp3(clip: &[u8], key: &str) -> Vec<u8> {
    // TXXX: text encoding 0 (ISO-8859-1), description, NUL, value.
    let mut frame_body = vec![0u8];
    frame_body.extend_from_slice(KEY_LABEL.as_bytes());
    frame_body.push(0);
    frame_body.extend_from_slice(key.as_bytes());
    let frame_size = u32::try_from(frame_body.len()).expect("keys are short");
    let tag_size = frame_size + 10;
    let mut file = Vec::with_capacity(clip.len() + tag_size as usize + 10);
    file.extend_from_slice(b"ID3\x03\x00\x00");
    // The tag size is "synchsafe": 7 bits per byte.
    file.extend_from_slice(&[
        ((tag_size >> 21) & 0x7f) as u8,
        ((tag_size >> 14) & 0x7f) as u8,
        ((tag_size >> 7) & 0x7f) as u8,
        (tag_size & 0x7f) as u8,
    ]);
    file.extend_from_slice(b"TXXX");
    file.extend_from_slice(&frame_size.to_be_bytes());
    file.extend_from_slice(&[0, 0]);
    file.extend_from_slice(&frame_body);
    file.extend_from_slice(clip);
    file
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clips;

    /// Top-level MP4 boxes as (type, size); panics when the sizes do not add up.
    fn boxes(file: &[u8]) -> Vec<(String, usize)> {
        let mut at = 0;
        let mut found = Vec::new();
        while at < file.len() {
            let size = u32::from_be_bytes(file[at..at + 4].try_into().unwrap()) as usize;
            found.push((
                String::from_utf8_lossy(&file[at + 4..at + 8]).into_owned(),
                size,
            ));
            at += size;
        }
        assert_eq!(at, file.len(), "box sizes must cover the file exactly");
        found
    }

    #[test]
    fn m4a_keeps_its_structure_and_gains_a_keyed_free_box() {
        let clip = clips::all()[0].m4a;
        let file = tagged_m4a(clip, "1502-1767225600-2345-k3v9q0ma", 0);
        let types: Vec<String> = boxes(&file).into_iter().map(|(t, _)| t).collect();
        assert_eq!(types, ["ftyp", "moov", "free", "mdat", "free"]);
        assert!(file.ends_with(b"bcfy-sim-call=1502-1767225600-2345-k3v9q0ma"));
        assert_ne!(file, tagged_m4a(clip, "other", 0));
        let padded = tagged_m4a(clip, "key", 500_000);
        assert_eq!(padded.len(), 500_000);
        assert_eq!(
            boxes(&padded).last().unwrap(),
            &("free".to_owned(), 500_000 - clip.len())
        );
    }

    #[test]
    fn mp3_gets_an_id3_tag_in_front() {
        let clip = clips::all()[0].mp3;
        let file = tagged_mp3(clip, "key-1");
        assert_eq!(&file[..3], b"ID3");
        let size = file[6..10]
            .iter()
            .fold(0usize, |acc, b| (acc << 7) | *b as usize);
        assert_eq!(
            &file[10 + size..],
            clip,
            "the tag size covers exactly the tag"
        );
    }
}
