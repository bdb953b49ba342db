//! The transcriber: final-only transcripts of each call's whole audio (spec §3.5,
//! `TranscriptionPipeline`).
//!
//! # Layout
//!
//! - [`config`]: the spec's `TranscriptionConfig` keys with their defaults, plus the request
//!   timeout, per-talkgroup prompts and the settings that tell OpenAI-compatible servers apart;
//! - [`openai`]: the provider for any OpenAI-compatible `/v1/audio/transcriptions` endpoint;
//! - [`error`]: [`TranscriptionError`], transient or permanent.

pub mod config;
pub mod error;
pub mod openai;

pub use config::TranscriptionConfig;
pub use error::TranscriptionError;
pub use openai::{OpenAiProvider, Transcript};
