//! A call's audio back in one piece. The audio fetcher publishes a file as ordered chunks on
//! one subject (`calls.audio.raw.{sid}.{tg}.{call_id}`) and marks only the last one final, with
//! the total size and SHA-256. A consumer that receives the final chunk reads the earlier ones
//! back from the stream, so reassembly needs no per-call state in any replica: whichever replica
//! gets the final chunk rebuilds the file, and a crash loses nothing.

use async_nats::jetstream;
use bcfy_proto::AudioPayloadEvent;
use bytes::{Bytes, BytesMut};
use prost::Message as _;
use sha2::{Digest as _, Sha256};

use crate::topology::STREAM_CALLS_AUDIO;

/// Why a call's audio could not be rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum ReassemblyError {
    /// The stream could not be read (try again).
    #[error("reading the chunks of {call_id} failed")]
    Nats {
        /// The call.
        call_id: String,
        /// What failed.
        #[source]
        source: async_nats::Error,
    },
    /// A chunk before the final one is not in the stream (e.g. removed by its limits).
    #[error("chunk {sequence} of {call_id} is missing")]
    Missing {
        /// The call.
        call_id: String,
        /// The first missing chunk.
        sequence: u32,
    },
    /// The chunks do not add up to the size the final chunk gives.
    #[error("the chunks of {call_id} hold {actual} bytes, the final chunk says {expected}")]
    SizeMismatch {
        /// The call.
        call_id: String,
        /// Bytes in the chunks.
        actual: u64,
        /// Bytes the final chunk gives.
        expected: u64,
    },
    /// The chunks' SHA-256 is not the one the final chunk gives.
    #[error("the chunks of {call_id} have SHA-256 {actual}, the final chunk says {expected}")]
    DigestMismatch {
        /// The call.
        call_id: String,
        /// The chunks' digest (hex).
        actual: String,
        /// The final chunk's digest (hex).
        expected: String,
    },
}

impl ReassemblyError {
    /// The machine-readable class, for dead letters and metrics.
    pub fn kind(&self) -> &'static str {
        "reassembly"
    }

    /// True when trying again later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, ReassemblyError::Nats { .. })
    }
}

/// Rebuilds the file that `last` (a final chunk received on `subject`) ends, and checks its
/// size and SHA-256. A single-chunk call needs no read.
///
/// # Errors
///
/// See [`ReassemblyError`].
pub async fn reassemble(
    js: &jetstream::Context,
    subject: &str,
    last: &AudioPayloadEvent,
) -> Result<Bytes, ReassemblyError> {
    let mut chunks: Vec<Option<Bytes>> = vec![None; last.sequence as usize + 1];
    chunks[last.sequence as usize] = Some(last.payload.clone());
    if last.sequence > 0 {
        read_earlier_chunks(js, subject, last, &mut chunks).await?;
    }
    let mut file = BytesMut::with_capacity(usize::try_from(last.total_size).unwrap_or(0));
    for (sequence, chunk) in chunks.into_iter().enumerate() {
        let chunk = chunk.ok_or_else(|| ReassemblyError::Missing {
            call_id: last.call_id.clone(),
            sequence: u32::try_from(sequence).unwrap_or(u32::MAX),
        })?;
        file.extend_from_slice(&chunk);
    }
    if file.len() as u64 != last.total_size {
        return Err(ReassemblyError::SizeMismatch {
            call_id: last.call_id.clone(),
            actual: file.len() as u64,
            expected: last.total_size,
        });
    }
    let digest: String = Sha256::digest(&file)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    if !last.sha256.is_empty() && digest != last.sha256 {
        return Err(ReassemblyError::DigestMismatch {
            call_id: last.call_id.clone(),
            actual: digest,
            expected: last.sha256.clone(),
        });
    }
    Ok(file.freeze())
}

/// Fills `chunks` from every message the stream holds on `subject`.
async fn read_earlier_chunks(
    js: &jetstream::Context,
    subject: &str,
    last: &AudioPayloadEvent,
    chunks: &mut [Option<Bytes>],
) -> Result<(), ReassemblyError> {
    let messages = crate::stored::messages_on(js, STREAM_CALLS_AUDIO, subject)
        .await
        .map_err(|source| ReassemblyError::Nats {
            call_id: last.call_id.clone(),
            source,
        })?;
    for message in messages {
        let Ok(event) = AudioPayloadEvent::decode(message.payload.as_ref()) else {
            continue;
        };
        let slot = chunks.get_mut(event.sequence as usize);
        if let Some(slot @ None) = slot
            && event.call_id == last.call_id
        {
            *slot = Some(event.payload);
        }
    }
    Ok(())
}
