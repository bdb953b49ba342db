//! A live answer read as it arrives: the `calls` array split into elements while the body
//! comes in, calls the caller already has recognised by their identity and dropped before they
//! are parsed, the rest parsed into calls (or kept as rejected elements), and the envelope's
//! cursor fields checked at the end.

use std::borrow::Cow;
use std::fmt;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::LiveCalls;
use crate::calls::{ParsedCalls, epoch_field, parse_call, parsing_error};
use crate::client::Answer;
use crate::error::{Endpoint, Error, ParseError, Result};
use crate::split::CallsSplitter;

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    calls: Option<Vec<&'a RawValue>>,
    #[serde(rename = "lastPos")]
    last_pos: Option<serde_json::Value>,
    #[serde(rename = "serverTime")]
    server_time: Option<serde_json::Value>,
}

/// What identifies a call (`bcfy_bus::CallId` is built from it), read from a call object
/// without parsing the rest, so calls the caller already has cost little.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallIdentity<'a> {
    /// `systemId`, when an integer.
    pub system_id: Option<i64>,
    /// `filename`, when a string.
    pub filename: Option<Cow<'a, str>>,
    /// `hash`, when a string.
    pub hash: Option<Cow<'a, str>>,
}

/// The identity fields as JSON allows them; a value of another type fails the read, and the
/// call is then parsed whole like any new call.
#[derive(Deserialize)]
struct IdentityFields<'a> {
    #[serde(rename = "systemId")]
    system_id: Option<serde_json::Value>,
    #[serde(borrow)]
    filename: Option<Cow<'a, str>>,
    #[serde(borrow)]
    hash: Option<Cow<'a, str>>,
}

/// Bytes of the body's start kept for an error's snippet.
const SNIPPET_HEAD: usize = 4096;
/// Reads a live answer as it arrives: calls the caller already has are counted and dropped at
/// once, so memory follows the new calls, not the answer.
struct LiveReader {
    splitter: CallsSplitter,
    head: Vec<u8>,
    calls: ParsedCalls,
    known: usize,
}

impl LiveReader {
    fn new() -> Self {
        Self {
            splitter: CallsSplitter::new(),
            head: Vec::new(),
            calls: ParsedCalls::default(),
            known: 0,
        }
    }

    /// New calls and rejected elements read so far and not yet taken.
    fn pending(&self) -> usize {
        self.calls.calls.len() + self.calls.rejected.len()
    }

    fn feed(&mut self, chunk: &[u8], is_known: &impl Fn(&CallIdentity<'_>) -> bool) -> Result<()> {
        if self.head.len() < SNIPPET_HEAD {
            let room = SNIPPET_HEAD - self.head.len();
            self.head.extend_from_slice(&chunk[..room.min(chunk.len())]);
        }
        let Self {
            splitter,
            head,
            calls,
            known,
        } = self;
        splitter
            .feed(chunk, &mut |element: &[u8]| {
                read_element(element, is_known, calls, known)
            })
            .map_err(|reason| malformed(head, reason))
    }

    fn finish(mut self, is_known: &impl Fn(&CallIdentity<'_>) -> bool) -> Result<LiveCalls> {
        let (envelope, split_out) = self
            .splitter
            .finish()
            .map_err(|reason| malformed(&self.head, reason))?;
        let parsed: Envelope<'_> = serde_json::from_slice(&envelope)
            .map_err(|error| malformed(&self.head, ParseError::Json(error)))?;
        let Some(inline) = parsed.calls else {
            return Err(malformed(&self.head, ParseError::NoCalls));
        };
        if !split_out {
            // `calls` spelled with escapes: serde found it where the splitter did not.
            for element in inline {
                read_element(
                    element.get().as_bytes(),
                    is_known,
                    &mut self.calls,
                    &mut self.known,
                )
                .map_err(|reason| malformed(&self.head, reason))?;
            }
        }
        Ok(LiveCalls {
            parsed: self.calls,
            known: self.known,
            last_pos: epoch_field(parsed.last_pos.as_ref()).filter(|pos| *pos != 0.0),
            server_time: epoch_field(parsed.server_time.as_ref()),
        })
    }
}

/// A live answer being read, from [`crate::Client::live_answer`]: its new calls come out in batches
/// while the body arrives, so a caller can publish them before the rest is read.
pub struct LiveAnswer {
    answer: Answer,
    reader: LiveReader,
    ended: bool,
}

impl fmt::Debug for LiveAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveAnswer")
            .field("known", &self.reader.known)
            .field("pending", &self.reader.pending())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl LiveAnswer {
    /// Reads `answer` (its status already checked).
    pub(super) fn new(answer: Answer) -> Self {
        Self {
            answer,
            reader: LiveReader::new(),
            ended: false,
        }
    }

    /// Reads on until `batch` new calls (or rejected elements) are complete or the body ends,
    /// leaving out the calls `is_known` recognises; `None` once everything was handed out.
    ///
    /// # Errors
    ///
    /// Transport and parsing errors; calls handed out before one were from a body that then
    /// failed, so the caller must not treat the answer as complete.
    pub async fn next_calls(
        &mut self,
        batch: usize,
        is_known: impl Fn(&CallIdentity<'_>) -> bool,
    ) -> Result<Option<ParsedCalls>> {
        loop {
            let pending = self.reader.pending();
            if pending > 0 && (pending >= batch || self.ended) {
                return Ok(Some(std::mem::take(&mut self.reader.calls)));
            }
            if self.ended {
                return Ok(None);
            }
            match self.answer.chunk(Endpoint::LiveCalls).await? {
                Some(chunk) => self.reader.feed(&chunk, &is_known)?,
                None => self.ended = true,
            }
        }
    }

    /// Reads the rest of the body and checks it: the cursor fields, the count of calls left
    /// out, and the new calls not yet handed out by [`next_calls`](Self::next_calls).
    ///
    /// # Errors
    ///
    /// Transport and parsing errors.
    pub async fn finish(
        mut self,
        is_known: impl Fn(&CallIdentity<'_>) -> bool,
    ) -> Result<LiveCalls> {
        while let Some(chunk) = self.answer.chunk(Endpoint::LiveCalls).await? {
            self.reader.feed(&chunk, &is_known)?;
        }
        self.reader.finish(&is_known)
    }
}

/// One element of `calls`: dropped when known, else parsed (a call, or a rejected element).
/// An element that is not JSON fails the whole answer, as a parse of the whole body did.
fn read_element(
    element: &[u8],
    is_known: &impl Fn(&CallIdentity<'_>) -> bool,
    calls: &mut ParsedCalls,
    known: &mut usize,
) -> std::result::Result<(), ParseError> {
    let element: &RawValue = serde_json::from_slice(element).map_err(ParseError::Json)?;
    // Any field of another type: the whole parse below tells what the element is.
    if element.get().starts_with('{')
        && let Ok(fields) = serde_json::from_str::<IdentityFields<'_>>(element.get())
    {
        let identity = CallIdentity {
            system_id: fields
                .system_id
                .as_ref()
                .and_then(serde_json::Value::as_i64),
            filename: fields.filename,
            hash: fields.hash,
        };
        if is_known(&identity) {
            *known += 1;
            return Ok(());
        }
    }
    parse_call(element, calls);
    Ok(())
}

fn malformed(head: &[u8], reason: ParseError) -> Error {
    parsing_error(Endpoint::LiveCalls, reason, head)
}

/// Parses a whole live-calls body (as [`crate::Client::live_calls`] does piece by piece).
#[cfg(any(test, feature = "fuzzing"))]
fn parse_live(body: &[u8]) -> Result<LiveCalls> {
    let never = |_: &CallIdentity<'_>| false;
    let mut reader = LiveReader::new();
    reader.feed(body, &never)?;
    reader.finish(&never)
}

/// Reads `body` whole and cut in two at `cut`; panics when the two readings differ (calls,
/// rejected elements, cursor, or success).
#[cfg(feature = "fuzzing")]
pub(crate) fn agree_whole_and_in_pieces(body: &[u8], cut: usize) {
    let never = |_: &CallIdentity<'_>| false;
    let cut = cut.min(body.len());
    let mut reader = LiveReader::new();
    let pieces = reader
        .feed(&body[..cut], &never)
        .and_then(|()| reader.feed(&body[cut..], &never))
        .and_then(|()| reader.finish(&never));
    let summary = |read: &Result<LiveCalls>| {
        read.as_ref().ok().map(|c| {
            let raw: Vec<&str> = c.parsed.calls.iter().map(|u| u.raw.as_str()).collect();
            (
                raw.join("\n"),
                c.parsed.rejected.clone(),
                c.last_pos.map(f64::to_bits),
                c.server_time.map(f64::to_bits),
            )
        })
    };
    assert_eq!(summary(&parse_live(body)), summary(&pieces), "cut at {cut}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn an_empty_answer_keeps_the_cursor() {
        let empty = parse_live(br#"{"calls":[],"serverTime":1767225619,"lastPos":0}"#).unwrap();
        assert_eq!(empty.last_pos, None);
        assert_eq!(empty.next_position(Some(100.0)), Some(100.0));
        assert_eq!(empty.next_position(None), None);
    }

    #[test]
    fn the_cursor_moves_past_last_pos_and_never_back() {
        let answer = parse_live(br#"{"calls":[{"ts":50}],"lastPos":"50"}"#).unwrap();
        assert_eq!(answer.next_position(None), Some(51.0));
        assert_eq!(answer.next_position(Some(80.0)), Some(80.0));
    }

    #[test]
    fn non_object_calls_are_reported_not_dropped() {
        let answer = parse_live(br#"{"calls":[{"id":"1-2"}, 7, "x"],"lastPos":1}"#).unwrap();
        assert_eq!(answer.parsed.calls.len(), 1);
        assert_eq!(answer.parsed.calls[0].raw, r#"{"id":"1-2"}"#);
        assert_eq!(answer.parsed.rejected, ["7", "\"x\""]);
    }

    #[test]
    fn malformed_answers_are_parsing_errors() {
        for body in [
            &b"{\"calls\": [ {\"id\": "[..],
            b"<html>oops</html>",
            b"{\"lastPos\":0}",
            b"{\"calls\":{}}",
            b"[]",
        ] {
            let error = parse_live(body).unwrap_err();
            assert!(
                matches!(
                    error,
                    Error::ResponseParsing {
                        endpoint: Endpoint::LiveCalls,
                        ..
                    }
                ),
                "{error}"
            );
        }
    }

    mod never_panics {
        use proptest::prelude::*;
        use serde_json::{Value, json};

        use super::*;
        use crate::error::Error;

        /// The answer as parsed before it was read piece by piece: the whole body at once.
        fn whole_body(body: &[u8]) -> Option<LiveCalls> {
            let envelope: Envelope<'_> = serde_json::from_slice(body).ok()?;
            Some(LiveCalls {
                parsed: crate::calls::parse_calls(envelope.calls?),
                known: 0,
                last_pos: epoch_field(envelope.last_pos.as_ref()).filter(|pos| *pos != 0.0),
                server_time: epoch_field(envelope.server_time.as_ref()),
            })
        }

        /// Any JSON value, biased towards the keys and shapes of real calls.
        fn json_value() -> impl Strategy<Value = Value> {
            let key = prop_oneof![
                Just("sid".to_owned()),
                Just("ts".to_owned()),
                Just("metadata".to_owned()),
                Just("freqList".to_owned()),
                Just("srcList".to_owned()),
                Just("call-ttl".to_owned()),
                Just("hash".to_owned()),
                ".{0,8}",
            ];
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                any::<f64>()
                    .prop_filter("finite", |f| f.is_finite())
                    .prop_map(Value::from),
                ".{0,12}".prop_map(Value::from),
            ];
            leaf.prop_recursive(4, 64, 8, move |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::btree_map(key.clone(), inner, 0..8)
                        .prop_map(|m| Value::Object(m.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #[test]
            fn hostile_calls_never_panic_and_keep_their_json(calls in prop::collection::vec(json_value(), 0..6), last_pos in json_value()) {
                let body = json!({"calls": calls, "lastPos": last_pos}).to_string();
                let parsed = parse_live(body.as_bytes()).unwrap();
                prop_assert_eq!(parsed.parsed.calls.len() + parsed.parsed.rejected.len(), calls.len());
                for upstream in &parsed.parsed.calls {
                    let original: Value = serde_json::from_str(&upstream.raw).unwrap();
                    let written = upstream.call.to_json().unwrap();
                    prop_assert!(bcfy_proto::json::equivalent(&original, &written), "{} vs {}", original, written);
                }
            }

            #[test]
            fn reading_as_it_arrives_matches_parsing_the_whole_body(
                calls in prop::collection::vec(json_value(), 0..6),
                extra in json_value(),
                cut in any::<prop::sample::Index>(),
                damage in any::<bool>(),
                chunk in 1usize..40,
            ) {
                let mut body = json!({"serverTime": 7, "calls": calls, "other": extra, "lastPos": 3})
                    .to_string()
                    .into_bytes();
                if damage {
                    body.remove(cut.index(body.len()));
                }
                let expected = whole_body(&body);
                let never = |_: &CallIdentity<'_>| false;
                let mut reader = LiveReader::new();
                let streamed = body
                    .chunks(chunk)
                    .try_for_each(|piece| reader.feed(piece, &never))
                    .and_then(|()| reader.finish(&never));
                match (streamed, expected) {
                    (Ok(streamed), Some(expected)) => {
                        prop_assert_eq!(streamed.parsed, expected.parsed);
                        prop_assert_eq!(streamed.last_pos, expected.last_pos);
                        prop_assert_eq!(streamed.server_time, expected.server_time);
                    }
                    (Err(error), None) => {
                        prop_assert!(matches!(error, Error::ResponseParsing { .. }), "{}", error);
                    }
                    (streamed, expected) => prop_assert!(
                        false,
                        "streamed {:?}, whole {:?}: {}",
                        streamed.map(|_| ()),
                        expected.map(|_| ()),
                        String::from_utf8_lossy(&body)
                    ),
                }
            }

            #[test]
            fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
                if let Err(error) = parse_live(&body) {
                    prop_assert!(matches!(error, Error::ResponseParsing { .. }), "{}", error);
                }
            }
        }
    }
}
