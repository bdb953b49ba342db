//! Entry points for the fuzz targets (`fuzz/`, `just fuzz`), built only with the `fuzzing`
//! feature: each parser of what the upstream sends, from raw bytes, with what a fuzzer can check
//! beyond "it does not panic".

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

/// A fixed clock, so a run is repeatable.
fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

/// A live answer, whole and cut in two at `cut` (as it may arrive): both readings agree.
pub fn live_answer(body: &[u8], cut: usize) {
    crate::live::reader::agree_whole_and_in_pieces(body, cut);
}

/// An archive answer for a block.
pub fn archive_answer(body: &[u8]) {
    drop(crate::archive::parse_archive(
        1_800_000_000,
        Bytes::copy_from_slice(body),
    ));
}

/// A login answer: the first line the status, each further line a `name: value` header (lines
/// that are not valid headers are left out).
pub fn login_answer(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.lines();
    let status = lines
        .next()
        .and_then(|l| l.trim().parse::<u16>().ok())
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(StatusCode::OK);
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) {
            headers.append(name, value);
        }
    }
    drop(crate::auth::read_login_answer(status, &headers, now()));
}

/// A `Retry-After` value (seconds or an HTTP date).
pub fn retry_after(value: &str) {
    std::hint::black_box(crate::retry_after::parse(value, now()));
}

/// The CDN's `Content-Range` header.
pub fn content_range(value: &str) {
    std::hint::black_box(crate::audio::content_range(value));
}
