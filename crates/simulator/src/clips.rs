//! The clips served as call audio, embedded at build time: spoken ones with their reference
//! texts, and non-speech ones (two-tone pages, a long tone, DTMF, hiss, static, a key-up) with
//! what they hold.
//!
//! Made offline by `audio/generate.sh` (flite voices) and `audio/generate-nonspeech.sh` (sox
//! synth), radio band-limited, 8 kHz mono, and committed: AAC-LC `.m4a` at 16 kb/s with `moov`
//! before `mdat`, and 16 kb/s `.mp3`.

/// One clip: its name, what it says, its length, and both encodings.
#[derive(Debug, Clone, Copy)]
pub struct Clip {
    /// `clip01` ...
    pub name: &'static str,
    /// What the clip says (the reference for word error rates); empty for non-speech.
    pub text: &'static str,
    /// What a non-speech clip holds: `two_tone {A Hz} {B Hz}`, `single {Hz}`, `dtmf {digits}`,
    /// `hiss`, `static`, `key-up`; `speech` for a spoken clip.
    pub holds: &'static str,
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
/// (name, m4a, mp3) of every non-speech clip.
const NON_SPEECH_AUDIO: &[(&str, &[u8], &[u8])] = embedded!(
    "page01", "page02", "page03", "tone01", "dtmf01", "hiss01", "static01", "keyup01",
);
/// `name<TAB>voice<TAB>text` per line (`#` comments).
const TEXTS: &str = include_str!("../audio/clips.tsv");
/// `name<TAB>seconds` per line.
const DURATIONS: &str = include_str!("../audio/durations.tsv");
/// `name<TAB>holds<TAB>pieces` per line (`#` comments).
const NON_SPEECH: &str = include_str!("../audio/nonspeech.tsv");
/// `name<TAB>seconds` per line.
const NON_SPEECH_DURATIONS: &str = include_str!("../audio/nonspeech-durations.tsv");

/// Column `column` of `name`'s row in `table`.
fn field(table: &'static str, name: &str, column: usize) -> &'static str {
    table
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(|line| line.split('\t').collect::<Vec<_>>())
        .find(|fields| fields.first() == Some(&name))
        .and_then(|fields| fields.get(column).copied())
        .unwrap_or_else(|| panic!("{name} is missing from the clip tables"))
}

/// Every spoken clip, in name order.
pub fn all() -> Vec<Clip> {
    AUDIO
        .iter()
        .map(|(name, m4a, mp3)| Clip {
            name,
            text: field(TEXTS, name, 2),
            holds: "speech",
            duration_seconds: field(DURATIONS, name, 1)
                .parse()
                .expect("durations are numbers"),
            m4a,
            mp3,
        })
        .collect()
}

/// Every non-speech clip: pages, a tone, DTMF, hiss, static, a key-up.
pub fn non_speech() -> Vec<Clip> {
    NON_SPEECH_AUDIO
        .iter()
        .map(|(name, m4a, mp3)| Clip {
            name,
            text: "",
            holds: field(NON_SPEECH, name, 1),
            duration_seconds: field(NON_SPEECH_DURATIONS, name, 1)
                .parse()
                .expect("durations are numbers"),
            m4a,
            mp3,
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
        let non_speech = super::non_speech();
        assert_eq!(non_speech.len(), 8);
        for clip in &non_speech {
            assert!(
                clip.text.is_empty() && clip.holds != "speech",
                "{}",
                clip.name
            );
            assert!(clip.duration_seconds > 1.0, "{}", clip.name);
            assert_eq!(&clip.m4a[4..8], b"ftyp", "{}", clip.name);
        }
        assert!(clips.iter().filter(|c| c.duration_seconds > 30.0).count() >= 3);
    }
}
