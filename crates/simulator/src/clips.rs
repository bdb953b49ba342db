//! The spoken clips served as call audio, embedded at build time with their reference texts.
//!
//! Made offline by `audio/generate.sh` (flite voices, radio band-limited, 8 kHz mono) and
//! committed: AAC-LC `.m4a` at 16 kb/s with `moov` before `mdat`, and 16 kb/s `.mp3`.

/// One clip: its name, what it says, its length, and both encodings.
#[derive(Debug, Clone, Copy)]
pub struct Clip {
    /// `clip01` ...
    pub name: &'static str,
    /// What the clip says (the reference for word error rates).
    pub text: &'static str,
    /// Length in seconds.
    pub duration_seconds: f64,
    /// AAC-LC in MP4 (`.m4a`).
    pub m4a: &'static [u8],
    /// MP3.
    pub mp3: &'static [u8],
}

macro_rules! embedded {
    ($($name:literal),* $(,)?) => {
        &[$((
            $name,
            include_bytes!(concat!("../audio/", $name, ".m4a")).as_slice(),
            include_bytes!(concat!("../audio/", $name, ".mp3")).as_slice(),
        )),*]
    };
}

/// (name, m4a, mp3) of every clip.
const AUDIO: &[(&str, &[u8], &[u8])] = embedded!(
    "clip01", "clip02", "clip03", "clip04", "clip05", "clip06", "clip07", "clip08", "clip09",
    "clip10", "clip11", "clip12",
);
/// `name<TAB>voice<TAB>text` per line (`#` comments).
const TEXTS: &str = include_str!("../audio/clips.tsv");
/// `name<TAB>seconds` per line.
const DURATIONS: &str = include_str!("../audio/durations.tsv");

/// Every clip, in name order.
pub fn all() -> Vec<Clip> {
    AUDIO
        .iter()
        .map(|(name, m4a, mp3)| {
            let field = |table: &'static str, column: usize| {
                table
                    .lines()
                    .filter(|line| !line.starts_with('#'))
                    .map(|line| line.split('\t').collect::<Vec<_>>())
                    .find(|fields| fields.first() == Some(name))
                    .and_then(|fields| fields.get(column).copied())
                    .unwrap_or_else(|| panic!("{name} is missing from the clip tables"))
            };
            Clip {
                name,
                text: field(TEXTS, 2),
                duration_seconds: field(DURATIONS, 1).parse().expect("durations are numbers"),
                m4a,
                mp3,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_clip_has_text_duration_and_audio() {
        let clips = super::all();
        assert_eq!(clips.len(), 12);
        for clip in &clips {
            assert!(
                !clip.text.is_empty() && clip.duration_seconds > 1.0,
                "{}",
                clip.name
            );
            assert_eq!(&clip.m4a[4..8], b"ftyp", "{}", clip.name);
            assert!(clip.mp3.len() > 1000, "{}", clip.name);
        }
        assert!(clips.iter().filter(|c| c.duration_seconds > 30.0).count() >= 3);
    }
}
