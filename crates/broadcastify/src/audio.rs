//! Call audio on the CDN (protocol §5): URL building and a download that resumes after a cut.
//!
//! URLs: `{cdn}/{hash}/{systemId}/{filename}.{enc}`, or `{cdn}/{systemId}/{filename}.{enc}` for
//! old calls without a hash; `enc` falls back to `m4a` as the site's player does; calls flagged
//! `transcribe: 1` are on the alternate host. The CDN needs no cookie.
//!
//! NOTE(protocol): the spec (§3.4) assumes `audio/mp4`; the CDN's real `Content-Type` was never
//! captured (likely `audio/aac` for `.m4a`), so the client records whatever the CDN sends.
//!
//! A download records the server's `Content-Type`, the size and the SHA-256. When the body is cut
//! (connection reset, fewer bytes than `Content-Length`), it asks for the rest with `Range` and
//! checks the `Content-Range`; a server that ignores `Range` is re-read from the start. Partial
//! audio is never returned: either the whole file or an error.

use bcfy_proto::Call;
use bytes::{Bytes, BytesMut};
use futures::StreamExt as _;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_RANGE, CONTENT_TYPE, RANGE, REFERER};
use sha2::{Digest as _, Sha256};
use url::Url;

use crate::client::Client;
use crate::error::{AudioDownloadError, Endpoint, Error, Result};

/// A downloaded audio file.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioFile {
    /// The whole file.
    pub bytes: Bytes,
    /// The CDN's `Content-Type`, when it sent one.
    pub content_type: Option<String>,
    /// Lowercase hex SHA-256 of `bytes`.
    pub sha256: String,
    /// How many times the body was resumed after a cut.
    pub resumes: u32,
}

/// The audio URL of `call` on `cdn` (the primary or alternate host).
///
/// # Errors
///
/// [`AudioDownloadError::NoUrl`] when the call lacks `systemId` or `filename`.
pub fn audio_url(call: &Call, cdn: &Url) -> Result<Url, AudioDownloadError> {
    let system_id = call.system_id.ok_or(AudioDownloadError::NoUrl {
        missing: "systemId",
    })?;
    let filename =
        call.filename
            .as_deref()
            .filter(|f| !f.is_empty())
            .ok_or(AudioDownloadError::NoUrl {
                missing: "filename",
            })?;
    let enc = call
        .enc
        .as_deref()
        .filter(|e| !e.is_empty())
        .unwrap_or("m4a");
    let mut url = cdn.clone();
    {
        let mut segments = url
            .path_segments_mut()
            .map_err(|()| AudioDownloadError::NoUrl {
                missing: "a CDN base",
            })?;
        segments.pop_if_empty();
        if let Some(hash) = call.hash.as_deref().filter(|h| !h.is_empty()) {
            segments.push(hash);
        }
        segments.push(&system_id.to_string());
        segments.push(&format!("{filename}.{enc}"));
    }
    Ok(url)
}

/// Parses `Content-Range: bytes START-END/TOTAL` into (START, TOTAL).
fn content_range(value: &str) -> Option<(u64, u64)> {
    let range = value.trim().strip_prefix("bytes ")?;
    let (span, total) = range.split_once('/')?;
    let (start, _end) = span.split_once('-')?;
    Some((start.parse().ok()?, total.parse().ok()?))
}

impl Client {
    /// The URL of a call's audio, on the alternate host when the call is flagged `transcribe`.
    ///
    /// # Errors
    ///
    /// [`AudioDownloadError::NoUrl`] when the call lacks `systemId` or `filename`.
    pub fn audio_url(&self, call: &Call) -> Result<Url, AudioDownloadError> {
        let config = self.config();
        let cdn = if call.transcribe == Some(1) {
            &config.alternate_cdn_url
        } else {
            &config.cdn_url
        };
        audio_url(call, cdn)
    }

    /// Downloads a whole audio file, resuming after cuts (see the module docs).
    ///
    /// # Errors
    ///
    /// [`AudioDownloadError::NotFound`] for a 404 (often: not written yet), `Truncated` when
    /// resuming failed, `TooLarge`, `BadRange`, or status and transport errors.
    pub async fn download_audio(&self, url: &Url) -> Result<AudioFile> {
        let limit = self.config().max_audio_bytes.bytes();
        let mut body = BytesMut::new();
        let mut expected: Option<u64>;
        let mut content_type = None;
        let mut resumes = 0;
        loop {
            let offset = body.len() as u64;
            let mut request = self
                .http()
                .get(url.clone())
                .header(REFERER, self.site_url("/calls/"));
            if offset > 0 {
                request = request.header(RANGE, format!("bytes={offset}-"));
            }
            let answer = self.send(Endpoint::Audio, request).await?;
            let response = &answer.response;
            match response.status() {
                StatusCode::OK => {
                    body.clear();
                    expected = response.content_length();
                }
                StatusCode::PARTIAL_CONTENT => {
                    let range = response
                        .headers()
                        .get(CONTENT_RANGE)
                        .and_then(|v| v.to_str().ok());
                    match range.and_then(content_range) {
                        Some((start, total)) if start == offset => expected = Some(total),
                        _ => {
                            return Err(AudioDownloadError::BadRange {
                                asked: offset,
                                content_range: range.unwrap_or_default().to_owned(),
                            }
                            .into());
                        }
                    }
                }
                StatusCode::NOT_FOUND => {
                    return Err(AudioDownloadError::NotFound {
                        url: url.to_string(),
                    }
                    .into());
                }
                _ => return Err(answer.into_status_error(Endpoint::Audio).await),
            }
            if let Some(value) = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
            {
                content_type = Some(value.to_owned());
            }
            if expected.is_some_and(|total| total > limit) {
                return Err(AudioDownloadError::TooLarge {
                    url: url.to_string(),
                    limit,
                }
                .into());
            }
            let mut stream = answer.response.bytes_stream();
            let mut cut = false;
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(chunk) => {
                        body.extend_from_slice(&chunk);
                        if body.len() as u64 > limit {
                            return Err(AudioDownloadError::TooLarge {
                                url: url.to_string(),
                                limit,
                            }
                            .into());
                        }
                    }
                    Err(error) => {
                        tracing::debug!(error = %error, received = body.len(), "Audio body cut.");
                        cut = true;
                        break;
                    }
                }
            }
            let short = expected.is_some_and(|total| (body.len() as u64) < total);
            if !cut && !short {
                break;
            }
            if resumes >= self.config().audio_resume_attempts {
                return Err(Error::from(AudioDownloadError::Truncated {
                    url: url.to_string(),
                    received: body.len() as u64,
                    expected: expected.unwrap_or(0),
                }));
            }
            resumes += 1;
        }
        let bytes = body.freeze();
        let sha256 = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(AudioFile {
            bytes,
            content_type,
            sha256,
            resumes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(hash: Option<&str>, enc: Option<&str>) -> Call {
        Call {
            system_id: Some(1502),
            filename: Some("1767225600-2345".into()),
            hash: hash.map(Into::into),
            enc: enc.map(Into::into),
            ..Call::default()
        }
    }

    #[test]
    fn every_documented_url_form() {
        let cdn = Url::parse("https://calls.broadcastify.com").unwrap();
        let url = |c: &Call| audio_url(c, &cdn).unwrap().to_string();
        assert_eq!(
            url(&call(Some("k3v9q0ma"), Some("m4a"))),
            "https://calls.broadcastify.com/k3v9q0ma/1502/1767225600-2345.m4a"
        );
        assert_eq!(
            url(&call(None, Some("mp3"))),
            "https://calls.broadcastify.com/1502/1767225600-2345.mp3"
        );
        assert_eq!(
            url(&call(Some(""), None)),
            "https://calls.broadcastify.com/1502/1767225600-2345.m4a"
        );
        let alt = Url::parse("http://127.0.0.1:9000/cdn/").unwrap();
        assert_eq!(
            audio_url(&call(Some("h"), None), &alt).unwrap().as_str(),
            "http://127.0.0.1:9000/cdn/h/1502/1767225600-2345.m4a"
        );
        let hostile = Call {
            filename: Some("../../etc/passwd".into()),
            ..call(Some("a/b"), None)
        };
        assert_eq!(
            url(&hostile),
            "https://calls.broadcastify.com/a%2Fb/1502/..%2F..%2Fetc%2Fpasswd.m4a"
        );
    }

    #[test]
    fn calls_without_node_or_filename_have_no_url() {
        let cdn = Url::parse("https://calls.broadcastify.com").unwrap();
        let no_node = Call {
            system_id: None,
            ..call(None, None)
        };
        assert!(matches!(
            audio_url(&no_node, &cdn),
            Err(AudioDownloadError::NoUrl {
                missing: "systemId"
            })
        ));
        let no_file = Call {
            filename: None,
            ..call(None, None)
        };
        assert!(matches!(
            audio_url(&no_file, &cdn),
            Err(AudioDownloadError::NoUrl {
                missing: "filename"
            })
        ));
    }

    #[test]
    fn content_range_parses() {
        assert_eq!(content_range("bytes 100-199/200"), Some((100, 200)));
        assert_eq!(content_range("bytes */200"), None);
    }
}
