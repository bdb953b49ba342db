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
//! checks the `Content-Range`; a server that ignores `Range` is re-read from the start. A
//! download is either whole in memory ([`Client::download_audio`]) or handed out in ordered pieces
//! ([`Client::audio_download`]) whose last piece alone says the file is complete, with its size
//! and SHA-256: a file that could not be completed never gets that last piece.

use std::collections::VecDeque;

use bcfy_proto::Call;
use bytes::{Buf as _, Bytes, BytesMut};
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

/// A piece of a file handed out by [`AudioDownload::next_piece`], in order.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioPiece {
    /// 0 for the first piece, then 1, 2, …
    pub sequence: u32,
    /// Where the piece starts in the file.
    pub offset: u64,
    /// The bytes (a zero-length last piece when the file is empty or an exact multiple).
    pub bytes: Bytes,
    /// The whole file's size, when the CDN said it (always set on the last piece).
    pub expected_size: Option<u64>,
    /// The CDN's `Content-Type`, when it sent one.
    pub content_type: Option<String>,
    /// Set on the last piece only, once the whole file arrived.
    pub end: Option<AudioEnd>,
}

/// What is known once a whole file arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioEnd {
    /// Bytes in the file.
    pub size: u64,
    /// Lowercase hex SHA-256 of the file.
    pub sha256: String,
    /// How many times the body was resumed after a cut.
    pub resumes: u32,
}

/// Parses `Content-Range: bytes START-END/TOTAL` into (START, TOTAL).
pub(crate) fn content_range(value: &str) -> Option<(u64, u64)> {
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

    /// Downloads a whole audio file into memory, resuming after cuts (see the module docs).
    ///
    /// # Errors
    ///
    /// As [`AudioDownload::next_piece`].
    pub async fn download_audio(&self, url: &Url) -> Result<AudioFile> {
        let mut download = self.audio_download(url, usize::MAX);
        let mut body = BytesMut::new();
        loop {
            let Some(piece) = download.next_piece().await? else {
                unreachable!("a download ends with its last piece")
            };
            body.extend_from_slice(&piece.bytes);
            if let Some(end) = piece.end {
                return Ok(AudioFile {
                    bytes: body.freeze(),
                    content_type: piece.content_type,
                    sha256: end.sha256,
                    resumes: end.resumes,
                });
            }
        }
    }

    /// A download of `url` that hands the file out in order, in pieces of `piece_bytes` (see
    /// [`AudioDownload`]); nothing is requested until the first [`AudioDownload::next_piece`].
    pub fn audio_download(&self, url: &Url, piece_bytes: usize) -> AudioDownload<'_> {
        AudioDownload {
            client: self,
            url: url.clone(),
            piece_bytes: piece_bytes.max(1),
            limit: self.config().max_audio_bytes.bytes(),
            response: None,
            ready: VecDeque::new(),
            pending: BytesMut::new(),
            received: 0,
            skip: 0,
            handed_out: 0,
            sequence: 0,
            hasher: Sha256::new(),
            expected: None,
            content_type: None,
            resumes: 0,
            finished: false,
        }
    }

    /// Asks for the file from byte `from` on; returns the answer and how many bytes at its
    /// start were already received (a server that ignored `Range` sends them again).
    async fn audio_response(&self, url: &Url, from: u64) -> Result<(AudioResponse, u64)> {
        let mut request = self
            .http()
            .get(url.clone())
            .header(REFERER, self.site_url("/calls/"));
        if from > 0 {
            request = request.header(RANGE, format!("bytes={from}-"));
        }
        let answer = self.send(Endpoint::Audio, request).await?;
        let response = &answer.response;
        let (expected, skip) = match response.status() {
            StatusCode::OK => (response.content_length(), from),
            StatusCode::PARTIAL_CONTENT => {
                let range = response
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok());
                match range.and_then(content_range) {
                    Some((start, total)) if start == from => (Some(total), 0),
                    _ => {
                        return Err(AudioDownloadError::BadRange {
                            asked: from,
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
        };
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        Ok((
            AudioResponse {
                expected,
                content_type,
                body: answer.response,
            },
            skip,
        ))
    }
}

/// The first allocation for a piece when the file's size is unknown (it grows as needed).
const FIRST_ALLOCATION: u64 = 64 * 1024;

/// One answer of the CDN, before its body is read.
struct AudioResponse {
    /// The whole file's size, when the answer says it.
    expected: Option<u64>,
    content_type: Option<String>,
    body: reqwest::Response,
}

/// A download in progress that hands the file out in ordered pieces, so memory stays near two
/// pieces whatever the file size. A cut body resumes with `Range` (a server that ignores it is
/// re-read and the bytes already handed out are skipped); only the last piece carries the
/// [`AudioEnd`], once the whole file arrived, so an incomplete file never looks complete.
#[derive(Debug)]
pub struct AudioDownload<'c> {
    client: &'c Client,
    url: Url,
    piece_bytes: usize,
    limit: u64,
    /// The body being read, if any.
    response: Option<reqwest::Response>,
    /// Full pieces known not to be the last (more bytes followed them).
    ready: VecDeque<Bytes>,
    /// The piece being filled; at most `piece_bytes`, allocated once at its final size.
    pending: BytesMut,
    /// Bytes of the file received so far.
    received: u64,
    /// Bytes at the start of the current body that were received before.
    skip: u64,
    handed_out: u64,
    sequence: u32,
    hasher: Sha256,
    expected: Option<u64>,
    content_type: Option<String>,
    resumes: u32,
    finished: bool,
}

impl AudioDownload<'_> {
    /// The next piece in order: `piece_bytes` long, except the last, which carries the
    /// [`AudioEnd`]. `None` after the last.
    ///
    /// # Errors
    ///
    /// [`AudioDownloadError::NotFound`] for a 404 (often: not written yet), `Truncated` when
    /// resuming failed, `TooLarge`, `BadRange`, or status and transport errors.
    pub async fn next_piece(&mut self) -> Result<Option<AudioPiece>> {
        loop {
            if let Some(bytes) = self.ready.pop_front() {
                return Ok(Some(self.hand_out(bytes, None)));
            }
            if self.finished {
                return Ok(None);
            }
            if self.response.is_none() {
                self.open().await?;
            }
            let read = match self.response.as_mut() {
                Some(response) => response.chunk().await,
                None => Ok(None),
            };
            let cut = match read {
                Ok(Some(chunk)) => {
                    self.receive(chunk)?;
                    continue;
                }
                Ok(None) => false,
                Err(error) => {
                    tracing::debug!(error = %error, received = self.received, "Audio body cut.");
                    true
                }
            };
            self.response = None;
            let received = self.received;
            if !cut && self.expected.is_none_or(|total| received >= total) {
                self.finished = true;
                let end = AudioEnd {
                    size: received,
                    sha256: std::mem::take(&mut self.hasher)
                        .finalize()
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect(),
                    resumes: self.resumes,
                };
                self.expected = Some(received);
                let rest = std::mem::take(&mut self.pending).freeze();
                return Ok(Some(self.hand_out(rest, Some(end))));
            }
            if self.resumes >= self.client.config().audio_resume_attempts {
                return Err(AudioDownloadError::Truncated {
                    url: self.url.to_string(),
                    received,
                    expected: self.expected.unwrap_or(0),
                }
                .into());
            }
            self.resumes += 1;
        }
    }

    /// Requests the file from where it stopped.
    async fn open(&mut self) -> Result<()> {
        let (response, skip) = self.client.audio_response(&self.url, self.received).await?;
        self.expected = response.expected;
        if response.content_type.is_some() {
            self.content_type = response.content_type;
        }
        if self.expected.is_some_and(|total| total > self.limit) {
            return Err(self.too_large());
        }
        self.skip = skip;
        self.response = Some(response.body);
        Ok(())
    }

    fn receive(&mut self, mut chunk: Bytes) -> Result<()> {
        let skipped = chunk
            .len()
            .min(usize::try_from(self.skip).unwrap_or(usize::MAX));
        chunk.advance(skipped);
        self.skip -= skipped as u64;
        self.received += chunk.len() as u64;
        if self.received > self.limit {
            return Err(self.too_large());
        }
        self.hasher.update(&chunk);
        let mut at = self.received - chunk.len() as u64;
        while !chunk.is_empty() {
            if self.pending.len() == self.piece_bytes {
                let full = std::mem::take(&mut self.pending).freeze();
                self.ready.push_back(full);
            }
            if self.pending.capacity() == 0 {
                // One allocation per piece, of the size it will have.
                let left = self
                    .expected
                    .map_or(FIRST_ALLOCATION, |total| total.saturating_sub(at).max(1));
                let size = usize::try_from(left).unwrap_or(usize::MAX);
                self.pending.reserve(size.min(self.piece_bytes));
            }
            let room = self.piece_bytes - self.pending.len();
            let taken = chunk.split_to(room.min(chunk.len()));
            at += taken.len() as u64;
            self.pending.extend_from_slice(&taken);
        }
        Ok(())
    }

    fn hand_out(&mut self, bytes: Bytes, end: Option<AudioEnd>) -> AudioPiece {
        let piece = AudioPiece {
            sequence: self.sequence,
            offset: self.handed_out,
            bytes,
            expected_size: self.expected,
            content_type: self.content_type.clone(),
            end,
        };
        self.handed_out += piece.bytes.len() as u64;
        self.sequence += 1;
        piece
    }

    fn too_large(&self) -> Error {
        AudioDownloadError::TooLarge {
            url: self.url.to_string(),
            limit: self.limit,
        }
        .into()
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
