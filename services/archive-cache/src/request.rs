//! The API edge: every request checked before the archive sees it, the same way for gRPC and
//! the NATS API. A bad request is an [`InvalidRequest`] saying which field is wrong (gRPC
//! INVALID_ARGUMENT, NATS error code 3), never a fetch.

use bcfy_broadcastify::archive::{BLOCK_SECONDS, block_start};

use crate::cache::BlockKey;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRequest {
    /// The body is not the request message the endpoint takes.
    #[error("not a {expected}: {reason}")]
    Undecodable {
        /// The message type the endpoint takes.
        expected: &'static str,
        /// What the decoder said.
        reason: String,
    },
    /// `sid` is zero or negative.
    #[error("sid {0} must be positive")]
    Sid(i64),
    /// `talkgroup` is zero or negative.
    #[error("talkgroup {0} must be positive")]
    Talkgroup(i64),
    /// A time before the epoch.
    #[error("time {0} is before 1970")]
    BeforeEpoch(i64),
    /// `end` before `start`.
    #[error("end {end} is before start {start}")]
    Reversed {
        /// The range's start.
        start: i64,
        /// The range's end.
        end: i64,
    },
    /// More blocks than one request may ask for.
    #[error("{count} blocks asked, at most {max} per request")]
    TooManyBlocks {
        /// Blocks asked.
        count: i64,
        /// The limit (`max_range_blocks`).
        max: u32,
    },
}

/// Decodes a NATS request body as `T`.
///
/// # Errors
///
/// [`InvalidRequest::Undecodable`] naming `T`.
pub fn decode<T: prost::Message + prost::Name + Default>(
    payload: &[u8],
) -> Result<T, InvalidRequest> {
    T::decode(payload).map_err(|error| InvalidRequest::Undecodable {
        expected: T::NAME,
        reason: error.to_string(),
    })
}

/// The block holding `time` for talkgroup `tg` of system `sid`: ids positive, time not before
/// the epoch.
///
/// # Errors
///
/// The first field that is wrong.
pub fn block_key(sid: i64, tg: i64, time: i64) -> Result<BlockKey, InvalidRequest> {
    if sid <= 0 {
        return Err(InvalidRequest::Sid(sid));
    }
    if tg <= 0 {
        return Err(InvalidRequest::Talkgroup(tg));
    }
    if time < 0 {
        return Err(InvalidRequest::BeforeEpoch(time));
    }
    Ok(BlockKey {
        sid,
        tg,
        start: block_start(time),
    })
}

/// The blocks from the one containing `start` to the one containing `end`.
///
/// # Errors
///
/// As [`block_key`], and when the range is reversed or longer than `max_blocks`.
pub fn block_range(
    sid: i64,
    tg: i64,
    start: i64,
    end: i64,
    max_blocks: u32,
) -> Result<Vec<BlockKey>, InvalidRequest> {
    let first = block_key(sid, tg, start)?;
    let last = block_key(sid, tg, end)?;
    if last.start < first.start {
        return Err(InvalidRequest::Reversed { start, end });
    }
    let count = (last.start - first.start) / BLOCK_SECONDS + 1;
    if count > i64::from(max_blocks) {
        return Err(InvalidRequest::TooManyBlocks {
            count,
            max: max_blocks,
        });
    }
    Ok((0..count)
        .map(|i| BlockKey {
            start: first.start + i * BLOCK_SECONDS,
            ..first
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use bcfy_proto::GetArchivedCallsRequest;

    use super::*;

    #[test]
    fn a_key_is_floored_to_its_block_and_each_bad_field_is_named() {
        let key = block_key(7001, 2345, 1_767_225_600 + 1_000).expect("valid");
        assert_eq!(key.start, 1_767_225_600);
        assert_eq!(block_key(0, 1, 1), Err(InvalidRequest::Sid(0)));
        assert_eq!(block_key(1, -5, 1), Err(InvalidRequest::Talkgroup(-5)));
        assert_eq!(block_key(1, 1, -1), Err(InvalidRequest::BeforeEpoch(-1)));
    }

    #[test]
    fn ranges_cover_every_block_and_have_limits() {
        let blocks = block_range(1, 2, 1_800, 1_800 * 3 + 5, 10).expect("valid");
        assert_eq!(
            blocks.iter().map(|k| k.start).collect::<Vec<_>>(),
            [1_800, 3_600, 5_400]
        );
        assert_eq!(
            block_range(1, 2, 5_400, 1_800, 10),
            Err(InvalidRequest::Reversed {
                start: 5_400,
                end: 1_800
            })
        );
        assert_eq!(
            block_range(1, 2, 0, 1_800 * 10, 10),
            Err(InvalidRequest::TooManyBlocks { count: 11, max: 10 })
        );
        assert_eq!(block_range(1, 2, 0, 1_800 * 9, 10).map(|b| b.len()), Ok(10));
    }

    #[test]
    fn a_body_of_another_type_is_named_as_undecodable() {
        let error = decode::<GetArchivedCallsRequest>(&[0xff, 0xff, 0xff]).unwrap_err();
        assert!(
            matches!(
                error,
                InvalidRequest::Undecodable {
                    expected: "GetArchivedCallsRequest",
                    ..
                }
            ),
            "{error}"
        );
    }
}
