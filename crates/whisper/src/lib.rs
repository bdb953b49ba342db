//! The built-in speech-to-text engine (spec §3.5, provider `whisper`): whisper.cpp through
//! `whisper-rs`, with call audio decoded in Rust, and a converter from CTranslate2 Whisper
//! models (the only weights installable offline here) to whisper.cpp's ggml format.
//!
//! # Layout
//!
//! - [`decode`]: call audio (AAC/MP4, MP3) → 16 kHz mono samples;
//! - [`engine`]: the loaded model and its pool of decoding states;
//! - [`convert`](mod@convert): CTranslate2 directory → ggml file, and [`resolve_model`]'s conversion cache;
//! - [`quantize`]: the weight types a conversion can write (f16, q8_0, q5_0, q5_1);
//! - `ct2`, `ggml`, `mel`, `vocab`: the two file formats and what the conversion computes.

pub mod convert;
mod ct2;
pub mod decode;
pub mod engine;
mod ggml;
mod mel;
pub mod quantize;
mod vocab;

pub use convert::{ConvertError, convert, is_ct2_dir, resolve_model};
pub use decode::{DecodeError, decode_16k};
pub use engine::{AudioContext, Engine, EngineError, EngineSettings, Recognition, Segment};
pub use quantize::Weights;
