//! Entry points for the fuzz targets (`fuzz/`, `just fuzz`), built only with the `fuzzing`
//! feature: each provider's answer body, read as the provider reads it.

use std::sync::OnceLock;

use crate::config::TranscriptionConfig;
use crate::{AssemblyAiProvider, DeepgramProvider, OpenAiProvider};

fn config() -> TranscriptionConfig {
    TranscriptionConfig {
        endpoint_url: Some(
            "http://127.0.0.1:9/v1/audio/transcriptions"
                .parse()
                .expect("a URL"),
        ),
        api_key: Some("fuzz".to_owned().into()),
        ..TranscriptionConfig::default()
    }
}

/// An OpenAI-compatible `verbose_json` or `json` answer.
pub fn openai_answer(body: &[u8]) {
    static PROVIDER: OnceLock<OpenAiProvider> = OnceLock::new();
    let provider = PROVIDER.get_or_init(|| OpenAiProvider::new(&config()).expect("a provider"));
    drop(provider.read_answer(body));
}

/// A Deepgram pre-recorded answer.
pub fn deepgram_answer(body: &[u8]) {
    static PROVIDER: OnceLock<DeepgramProvider> = OnceLock::new();
    let provider = PROVIDER.get_or_init(|| DeepgramProvider::new(&config()).expect("a provider"));
    drop(provider.read_answer(body));
}

/// An AssemblyAI transcript (as created and as polled).
pub fn assemblyai_answer(body: &[u8]) {
    static PROVIDER: OnceLock<AssemblyAiProvider> = OnceLock::new();
    let provider = PROVIDER.get_or_init(|| AssemblyAiProvider::new(&config()).expect("a provider"));
    drop(provider.read_answer(body));
}
