//! A call's audio over HTTP: the exact bytes the fetcher stored (reassembled from their chunks
//! and checked against their SHA-256), with byte ranges, a strong `ETag` (the SHA-256) and
//! immutable caching, since a call's audio never changes. Recently served files stay in a
//! bounded in-memory cache.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bcfy_bus::subject::Shard;
use bytes::Bytes;
use time::OffsetDateTime;

use crate::error::ApiError;

/// A call's audio file.
#[derive(Debug)]
pub struct AudioFile {
    /// Its talkgroup (for scope checks).
    pub shard: Shard,
    /// The bytes.
    pub bytes: Bytes,
    /// The CDN's `Content-Type`.
    pub content_type: String,
    /// SHA-256 of the bytes (hex).
    pub sha256: String,
    /// When the stream lets the file go (its last chunk's age reaches the stream's
    /// `max_age`); from then on it is answered as gone, from the cache too.
    pub expires_at: OffsetDateTime,
}

/// Recently served files, up to a total size; the oldest go first.
#[derive(Debug)]
pub struct AudioCache {
    capacity: usize,
    inner: Mutex<CacheInner>,
}

#[derive(Debug, Default)]
struct CacheInner {
    files: HashMap<String, Arc<AudioFile>>,
    order: VecDeque<String>,
    bytes: usize,
}

impl AudioCache {
    /// A cache of at most `capacity` bytes (0: none).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached file of `call_id`, unless the stream has let it go by `now`.
    pub fn get(&self, call_id: &str, now: OffsetDateTime) -> Option<Arc<AudioFile>> {
        self.lock()
            .files
            .get(call_id)
            .filter(|file| file.expires_at > now)
            .cloned()
    }

    /// Keeps `file` (unless it alone is larger than the cache), evicting the oldest.
    pub fn insert(&self, call_id: &str, file: Arc<AudioFile>) {
        let size = file.bytes.len();
        if size > self.capacity {
            return;
        }
        let mut inner = self.lock();
        if inner.files.contains_key(call_id) {
            return;
        }
        while inner.bytes + size > self.capacity {
            let Some(oldest) = inner.order.pop_front() else {
                break;
            };
            if let Some(evicted) = inner.files.remove(&oldest) {
                inner.bytes -= evicted.bytes.len();
            }
        }
        inner.bytes += size;
        inner.order.push_back(call_id.to_owned());
        inner.files.insert(call_id.to_owned(), file);
    }
}

/// A satisfiable byte range, inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub first: u64,
    /// Last byte.
    pub last: u64,
}

/// Why a `Range` header cannot be served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeError {
    /// Not `bytes=first-last`, `bytes=first-` or `bytes=-suffix` (400).
    Malformed(String),
    /// Starts beyond the end, or several ranges (416).
    Unsatisfiable(String),
}

/// The range `header` asks of a file of `len` bytes.
///
/// # Errors
///
/// [`RangeError`]; several ranges are unsatisfiable (one range per request is served).
pub fn parse_range(header: &str, len: u64) -> Result<ByteRange, RangeError> {
    let malformed = || RangeError::Malformed(format!("`{header}` is not `bytes=FIRST-LAST`"));
    let spec = header.trim().strip_prefix("bytes=").ok_or_else(malformed)?;
    if spec.contains(',') {
        return Err(RangeError::Unsatisfiable(
            "only one range per request is served".to_owned(),
        ));
    }
    let (first, last) = spec.split_once('-').ok_or_else(malformed)?;
    let number = |s: &str| s.trim().parse::<u64>().map_err(|_| malformed());
    let beyond = || RangeError::Unsatisfiable(format!("the file has {len} bytes"));
    let range = match (first.trim().is_empty(), last.trim().is_empty()) {
        (true, true) => return Err(malformed()),
        (true, false) => {
            let suffix = number(last)?;
            if suffix == 0 || len == 0 {
                return Err(beyond());
            }
            ByteRange {
                first: len.saturating_sub(suffix),
                last: len - 1,
            }
        }
        (false, open) => {
            let first = number(first)?;
            let last = if open { u64::MAX } else { number(last)? };
            if last < first {
                return Err(malformed());
            }
            if first >= len {
                return Err(beyond());
            }
            ByteRange {
                first,
                last: last.min(len - 1),
            }
        }
    };
    Ok(range)
}

fn header_value(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// The response to a `GET` of `file` with the request's `headers`: 200, 206, 304 or 416/400.
pub fn respond(file: &AudioFile, headers: &HeaderMap) -> Response {
    let etag = format!("\"{}\"", file.sha256);
    let len = file.bytes.len() as u64;
    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    let matches = |value: &str| {
        value
            .split(',')
            .any(|t| t.trim() == etag || t.trim() == "*")
    };
    let mut response = if if_none_match.is_some_and(matches) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        // A Range applies only while the client's copy (If-Range) is still this file.
        let range = headers
            .get(header::RANGE)
            .filter(|_| {
                headers
                    .get(header::IF_RANGE)
                    .is_none_or(|v| v.to_str().is_ok_and(|v| v.trim() == etag))
            })
            .map(|v| v.to_str().unwrap_or("invalid"));
        match range.map(|r| parse_range(r, len)) {
            None => (StatusCode::OK, Body::from(file.bytes.clone())).into_response(),
            Some(Ok(ByteRange { first, last })) => {
                let part = file.bytes.slice(first as usize..=last as usize);
                let mut response = (StatusCode::PARTIAL_CONTENT, Body::from(part)).into_response();
                response.headers_mut().insert(
                    header::CONTENT_RANGE,
                    header_value(&format!("bytes {first}-{last}/{len}")),
                );
                response
            }
            Some(Err(RangeError::Malformed(message))) => {
                return ApiError::bad_request("invalid_range", message).into_response();
            }
            Some(Err(RangeError::Unsatisfiable(message))) => {
                let mut response = ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "range_not_satisfiable",
                    message,
                )
                .into_response();
                response.headers_mut().insert(
                    header::CONTENT_RANGE,
                    header_value(&format!("bytes */{len}")),
                );
                return response;
            }
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, header_value(&etag));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    headers.insert(header::CONTENT_TYPE, header_value(&file.content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_read_as_rfc_9110_says() {
        let r = |first, last| Ok(ByteRange { first, last });
        assert_eq!(parse_range("bytes=0-9", 100), r(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), r(90, 99));
        assert_eq!(parse_range("bytes=90-500", 100), r(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), r(90, 99));
        assert_eq!(parse_range("bytes=-500", 100), r(0, 99));
        for malformed in [
            "bytes=",
            "bytes=-",
            "items=0-1",
            "bytes=a-b",
            "bytes=5-1",
            "0-1",
        ] {
            assert!(
                matches!(parse_range(malformed, 100), Err(RangeError::Malformed(_))),
                "{malformed}"
            );
        }
        for unsatisfiable in ["bytes=100-", "bytes=0-1,5-6", "bytes=-0"] {
            assert!(
                matches!(
                    parse_range(unsatisfiable, 100),
                    Err(RangeError::Unsatisfiable(_))
                ),
                "{unsatisfiable}"
            );
        }
    }

    #[test]
    fn the_cache_keeps_the_newest_files_within_its_size() {
        let file = |n: usize| {
            Arc::new(AudioFile {
                shard: Shard { sid: 1, tg: 2 },
                bytes: Bytes::from(vec![0; n]),
                content_type: "audio/mp4".to_owned(),
                sha256: String::new(),
                expires_at: OffsetDateTime::UNIX_EPOCH + time::Duration::days(1),
            })
        };
        let cache = AudioCache::new(10);
        cache.insert("a", file(4));
        cache.insert("b", file(4));
        cache.insert("c", file(4));
        let now = OffsetDateTime::UNIX_EPOCH;
        assert!(cache.get("a", now).is_none(), "the oldest went first");
        assert!(cache.get("b", now).is_some() && cache.get("c", now).is_some());
        cache.insert("big", file(11));
        assert!(cache.get("big", now).is_none(), "larger than the cache");
        let later = now + time::Duration::days(2);
        assert!(
            cache.get("b", later).is_none(),
            "not once the stream let it go"
        );
    }
}
