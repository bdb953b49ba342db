//! Every kind of dead letter a stage writes (`DeadLetter.error_kind`), with what it means and
//! what an operator does about it. `bcfy-deadletters` checks its `--kind` filters against this
//! list, and `deploy/README.md` explains each entry; the stages' own tests check that every
//! kind they can write is here.

use crate::Stage;

/// One kind of dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kind {
    /// The `error_kind` value.
    pub name: &'static str,
    /// The stages that write it.
    pub stages: &'static [Stage],
    /// What happened, in a line.
    pub meaning: &'static str,
    /// Whether sending it through again can succeed once the cause is fixed.
    pub redrivable: bool,
}

const CONSUMERS: &[Stage] = &[Stage::AudioFetcher, Stage::Transcriber, Stage::Alerter];
const FETCHER: &[Stage] = &[Stage::AudioFetcher];
const TRANSCRIBER: &[Stage] = &[Stage::Transcriber];

/// Every kind, by stage.
pub const KINDS: &[Kind] = &[
    Kind {
        name: "poison",
        stages: CONSUMERS,
        meaning: "the message is not what the stage reads (wrong type, bad subject or call id)",
        redrivable: false,
    },
    Kind {
        name: "bad_upstream_record",
        stages: &[Stage::Poller],
        meaning: "Broadcastify listed a record that is not a usable call; it never entered a stream",
        redrivable: false,
    },
    Kind {
        name: "audio_no_url",
        stages: FETCHER,
        meaning: "the call names no audio file (no systemId or filename)",
        redrivable: false,
    },
    Kind {
        name: "audio_empty",
        stages: FETCHER,
        meaning: "the CDN served an empty file",
        redrivable: true,
    },
    Kind {
        name: "cdn_not_found",
        stages: FETCHER,
        meaning: "the CDN still answered 404 after the call's grace (audio.not_found_max_age)",
        redrivable: true,
    },
    Kind {
        name: "cdn_refused",
        stages: FETCHER,
        meaning: "the CDN answered 401 or 403 for this call while it served others",
        redrivable: true,
    },
    Kind {
        name: "http_status",
        stages: FETCHER,
        meaning: "the CDN answered another status that retrying does not change (e.g. 410)",
        redrivable: true,
    },
    Kind {
        name: "audio_too_large",
        stages: FETCHER,
        meaning: "the file is larger than broadcastify.max_audio_bytes",
        redrivable: true,
    },
    Kind {
        name: "audio_bad_range",
        stages: FETCHER,
        meaning: "the CDN answered a resumed download with the wrong Content-Range",
        redrivable: true,
    },
    Kind {
        name: "reassembly",
        stages: TRANSCRIBER,
        meaning: "the call's audio chunks are missing from CALLS_AUDIO or do not add up",
        redrivable: true,
    },
    Kind {
        name: "stt_rejected",
        stages: TRANSCRIBER,
        meaning: "the STT provider refused this call's audio (a 4xx other than 401, 402, 403, 408, 429)",
        redrivable: true,
    },
    Kind {
        name: "stt_bad_response",
        stages: TRANSCRIBER,
        meaning: "the STT provider's answer could not be read as a transcription",
        redrivable: true,
    },
    Kind {
        name: "stt_empty_text",
        stages: TRANSCRIBER,
        meaning: "the STT provider heard no words (only with speech gating off; with it on, such a call is published with empty text and `no_speech`)",
        redrivable: true,
    },
    Kind {
        name: "stt_undecodable",
        stages: TRANSCRIBER,
        meaning: "the call's audio cannot be decoded (for speech gating, or by the built-in engine)",
        redrivable: false,
    },
    Kind {
        name: "stt_engine",
        stages: TRANSCRIBER,
        meaning: "the built-in engine failed on this call",
        redrivable: true,
    },
    Kind {
        name: "destination_rejected",
        stages: &[Stage::Alerter],
        meaning: "an alert destination answered a 4xx other than 408 or 429 (the answer is in the reason); redriven, it goes to that destination only",
        redrivable: true,
    },
];

/// The kind called `name`.
pub fn find(name: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|kind| kind.name == name)
}

/// The stages that write dead letters.
pub fn stages() -> Vec<Stage> {
    Stage::ALL
        .into_iter()
        .filter(|stage| KINDS.iter().any(|kind| kind.stages.contains(stage)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_every_writing_stage_is_listed() {
        let mut names: Vec<_> = KINDS.iter().map(|kind| kind.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KINDS.len());
        assert_eq!(
            stages(),
            [
                Stage::Poller,
                Stage::AudioFetcher,
                Stage::Transcriber,
                Stage::Alerter
            ],
            "the archive cache consumes nothing"
        );
        assert_eq!(find("stt_rejected").map(|k| k.stages), Some(TRANSCRIBER));
        assert_eq!(find("nope"), None);
    }
}
