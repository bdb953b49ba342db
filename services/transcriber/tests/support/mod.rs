//! What the transcriber's tests share: the provider against the fake STT server
//! (`bcfy_test_support::stt`), and the service under test ([`harness`]).

#![allow(dead_code, reason = "each test file uses part of it")]

pub(crate) mod harness;

use bcfy_test_support::FakeStt;
use bcfy_transcriber::{OpenAiProvider, Transcript, TranscriptionConfig, TranscriptionError};

/// The OpenAI-compatible provider pointed at `stt`, with `configure` applied.
pub(crate) fn provider(
    stt: &FakeStt,
    configure: impl FnOnce(&mut TranscriptionConfig),
) -> OpenAiProvider {
    let mut config = TranscriptionConfig {
        endpoint_url: Some(stt.url().parse().unwrap()),
        ..TranscriptionConfig::default()
    };
    configure(&mut config);
    OpenAiProvider::new(&config).unwrap()
}

/// Each segment's start, end and text.
pub(crate) fn timed(transcript: &Transcript) -> Vec<(f64, f64, &str)> {
    transcript
        .segments
        .iter()
        .map(|s| (s.start, s.end, s.text.as_str()))
        .collect()
}

/// Checks that `error` is what a server that cannot be reached gives: a transient transport
/// error.
pub(crate) fn assert_unreachable(error: &TranscriptionError) {
    assert!(
        matches!(error, TranscriptionError::Transport { .. }),
        "{error}"
    );
    assert!(error.is_transient());
}
