//! Parsing the `calls` arrays of live and archive answers into [`Call`]s.

use bcfy_proto::Call;
use serde_json::value::RawValue;

use crate::error::{Endpoint, Error, ParseError, sanitize_snippet};

/// One call as the upstream sent it: typed, plus its exact JSON text.
#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamCall {
    /// The call, every known field typed and unknown keys kept.
    pub call: Call,
    /// The call's JSON object exactly as received.
    pub raw: String,
}

/// The calls of an answer, and the elements that were not call objects (kept as sanitized
/// snippets so a caller can report them instead of silently dropping them).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedCalls {
    /// The calls, in the upstream's order.
    pub calls: Vec<UpstreamCall>,
    /// Elements of `calls` that were not JSON objects.
    pub rejected: Vec<String>,
}

/// Splits a `calls` array into calls and rejected elements.
pub(crate) fn parse_calls(elements: Vec<&RawValue>) -> ParsedCalls {
    let mut parsed = ParsedCalls::default();
    for element in elements {
        parse_call(element, &mut parsed);
    }
    parsed
}

/// Adds one element of a `calls` array: a call, or a rejected element.
pub(crate) fn parse_call(element: &RawValue, parsed: &mut ParsedCalls) {
    let text = element.get();
    match serde_json::from_str(text).map(|value| Call::from_json(&value)) {
        Ok(Ok(call)) => parsed.calls.push(UpstreamCall {
            call,
            raw: text.to_owned(),
        }),
        _ => parsed.rejected.push(sanitize_snippet(text.as_bytes())),
    }
}

/// A `ResponseParsing` error for `body`.
pub(crate) fn parsing_error(endpoint: Endpoint, reason: ParseError, body: &[u8]) -> Error {
    Error::ResponseParsing {
        endpoint,
        reason,
        snippet: sanitize_snippet(body),
    }
}

/// An epoch-seconds field that may come as a number or a numeric string; `None` otherwise.
pub(crate) fn epoch_field(value: Option<&serde_json::Value>) -> Option<f64> {
    match value? {
        serde_json::Value::Number(n) => n.as_f64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .filter(|v: &f64| v.is_finite())
}
