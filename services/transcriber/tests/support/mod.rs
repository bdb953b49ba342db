//! What the transcriber's tests share: the provider against the fake STT server
//! (`bcfy_test_support::stt`), and the service under test ([`harness`]).

#![allow(dead_code, reason = "each test file uses part of it")]

pub(crate) mod harness;

use bcfy_test_support::FakeStt;
use bcfy_transcriber::{OpenAiProvider, TranscriptionConfig};

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
