//! `bcfy-deadletters`: what the pipeline gave up on, read back and sent through again. Every
//! stage dead-letters what it cannot process on `deadletter.{stage}.{sid}.{tg}.{call_id}` (in
//! `DEAD_LETTERS`, 30 days by default) with the reason, the attempts and the original message;
//! after the cause is fixed, `redrive` publishes the originals again so the stage that gave up
//! sees them once more.
//!
//! # Layout
//!
//! - [`filter`]: stage, kind, talkgroup and time filters, checked before anything is read;
//! - [`letters`]: dead letters read back from the stream, and the marks redrives leave;
//! - [`redrive`]: sending them through again, resumably and rate-limited;
//! - [`render`]: tables, JSON and the decoded original message.
//!
//! Exit codes (for scripts): 0 done; 64 bad arguments; 65 a dead letter that cannot be decoded
//! or redriven; 66 no such dead letter; 69 NATS or the stream unreachable; 75 a redrive stopped
//! part-way (run it again: it goes on where it stopped).

pub mod filter;
pub mod letters;
pub mod redrive;
pub mod render;

use bcfy_cli::Exit;

/// Why a command did not do all it was asked.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A flag or value is wrong.
    #[error("{0}")]
    Usage(String),
    /// Some dead letters cannot be decoded or sent through again.
    #[error("{0}")]
    Data(String),
    /// There is no dead letter with this id.
    #[error("no dead letter {0} (it was purged, expired, or never was)")]
    NotFound(u64),
    /// NATS or the dead-letter stream cannot be reached.
    #[error("{0}")]
    Unavailable(String),
    /// A redrive stopped part-way; what was sent is marked.
    #[error("{0}; run the same redrive again to go on")]
    Interrupted(String),
}

impl bcfy_cli::Failure for CliError {
    fn exit(&self) -> Exit {
        match self {
            CliError::Usage(_) => Exit::Usage,
            CliError::Data(_) => Exit::Data,
            CliError::NotFound(_) => Exit::NotFound,
            CliError::Unavailable(_) => Exit::Unavailable,
            CliError::Interrupted(_) => Exit::Interrupted,
        }
    }
}
