//! Splitting a live answer's `calls` array into its elements while the body arrives.
//!
//! A poll that reaches back two minutes on a busy shard answers with every call of those two
//! minutes (about 260 MB of JSON at 1,000 calls/s), almost all of them already published. Holding
//! the whole body, then every call parsed, is what made the poller's memory grow with the
//! look-back. [`CallsSplitter`] takes the body chunk by chunk, hands each element of the top-level
//! `calls` array to the caller as soon as it is complete, and keeps only the rest of the envelope
//! (`{"calls":[],"serverTime":…,"lastPos":…}`), which is parsed at the end as before.
//!
//! It only finds element boundaries; JSON syntax is still judged by `serde_json`: every element is
//! parsed by the caller, and the envelope with its emptied array is parsed at the end, so a
//! truncated or malformed body fails as it did when the body was parsed whole. Separators between
//! elements are checked here (one comma, no trailing comma), since they are removed from the
//! envelope.

use std::mem;

use crate::error::ParseError;

/// Where the splitter is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// In the envelope, outside the `calls` array.
    Envelope,
    /// In the array, before an element; `after_comma` forbids a closing `]`.
    BeforeElement { after_comma: bool },
    /// In an element.
    Element,
    /// In the array, after an element: a comma or the closing `]`.
    AfterElement,
}

/// Feeds on body chunks; see the module documentation.
#[derive(Debug)]
pub(crate) struct CallsSplitter {
    phase: Phase,
    /// The envelope without the elements of `calls`.
    envelope: Vec<u8>,
    /// The element being read.
    element: Vec<u8>,
    /// Nesting depth in the envelope.
    depth: usize,
    /// Nesting depth in the element (0 for a string element).
    element_depth: usize,
    /// The element is a number, `true`, `false` or `null` (or not JSON).
    scalar: bool,
    in_string: bool,
    escaped: bool,
    /// The last string completed at the envelope's top level (a key, or a value).
    last_top_string: Vec<u8>,
    /// A top-level string is being read into `last_top_string`.
    reading_top_string: bool,
    /// Just after `"calls":` at the top level: a `[` here opens the array.
    calls_value_next: bool,
    /// Whether the `calls` array was seen.
    found_calls: bool,
}

impl CallsSplitter {
    pub(crate) fn new() -> Self {
        Self {
            phase: Phase::Envelope,
            envelope: Vec::new(),
            element: Vec::new(),
            depth: 0,
            element_depth: 0,
            scalar: false,
            in_string: false,
            escaped: false,
            last_top_string: Vec::new(),
            reading_top_string: false,
            calls_value_next: false,
            found_calls: false,
        }
    }

    /// Reads `chunk`, calling `on_element` with each element of `calls` completed in it.
    pub(crate) fn feed<E: From<ParseError>>(
        &mut self,
        chunk: &[u8],
        on_element: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        for &byte in chunk {
            match self.phase {
                Phase::Envelope => self.envelope_byte(byte),
                Phase::BeforeElement { after_comma } => match byte {
                    b' ' | b'\t' | b'\n' | b'\r' => {}
                    b']' if after_comma => {
                        return Err(ParseError::TrailingComma.into());
                    }
                    b']' => self.close_array(),
                    b',' => return Err(ParseError::MissingElement.into()),
                    _ => {
                        self.phase = Phase::Element;
                        self.element_byte(byte, on_element)?;
                    }
                },
                Phase::Element => self.element_byte(byte, on_element)?,
                Phase::AfterElement => match byte {
                    b' ' | b'\t' | b'\n' | b'\r' => {}
                    b',' => self.phase = Phase::BeforeElement { after_comma: true },
                    b']' => self.close_array(),
                    _ => return Err(ParseError::MissingComma.into()),
                },
            }
        }
        Ok(())
    }

    /// Once the body is complete: the envelope with `calls` emptied, and whether a top-level
    /// `calls` array was split out (when not, as with an escaped key, the envelope still holds
    /// whatever `calls` there is, for the caller's parse).
    pub(crate) fn finish(self) -> Result<(Vec<u8>, bool), ParseError> {
        match self.phase {
            Phase::Envelope => Ok((self.envelope, self.found_calls)),
            _ => Err(ParseError::UnterminatedCalls),
        }
    }

    fn close_array(&mut self) {
        self.envelope.push(b']');
        self.phase = Phase::Envelope;
        self.depth -= 1;
    }

    /// Copies an envelope byte, noticing `"calls": [` at the top level.
    fn envelope_byte(&mut self, byte: u8) {
        self.envelope.push(byte);
        if self.in_string {
            if self.reading_top_string {
                self.last_top_string.push(byte);
            }
            match (self.escaped, byte) {
                (true, _) => self.escaped = false,
                (false, b'\\') => self.escaped = true,
                (false, b'"') => {
                    self.in_string = false;
                    if self.reading_top_string {
                        self.reading_top_string = false;
                        self.last_top_string.pop();
                    }
                }
                _ => {}
            }
            return;
        }
        let calls_value_next = mem::take(&mut self.calls_value_next);
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' => self.calls_value_next = calls_value_next,
            b'"' => {
                self.in_string = true;
                if self.depth == 1 {
                    self.reading_top_string = true;
                    self.last_top_string.clear();
                }
            }
            b':' if self.depth == 1 => {
                self.calls_value_next = self.last_top_string == b"calls";
            }
            b'[' if calls_value_next && !self.found_calls => {
                self.found_calls = true;
                self.depth += 1;
                self.phase = Phase::BeforeElement { after_comma: false };
            }
            b'{' | b'[' => self.depth += 1,
            b'}' | b']' => self.depth = self.depth.saturating_sub(1),
            _ => {}
        }
    }

    /// Adds an element byte; hands the element over when it is complete.
    fn element_byte<E: From<ParseError>>(
        &mut self,
        byte: u8,
        on_element: &mut impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        if self.element.is_empty() {
            self.element.push(byte);
            self.scalar = false;
            match byte {
                b'{' | b'[' => self.element_depth = 1,
                b'"' => {
                    self.in_string = true;
                    self.element_depth = 0;
                }
                _ => self.scalar = true,
            }
            return Ok(());
        }
        if self.scalar {
            // A number, `true`, `null` ... ends at a separator, which belongs to the array.
            if matches!(byte, b',' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                self.emit(on_element)?;
                return self.feed(&[byte], on_element);
            }
            self.element.push(byte);
            return Ok(());
        }
        self.element.push(byte);
        if self.in_string {
            match (self.escaped, byte) {
                (true, _) => self.escaped = false,
                (false, b'\\') => self.escaped = true,
                (false, b'"') => {
                    self.in_string = false;
                    if self.element_depth == 0 {
                        return self.emit(on_element);
                    }
                }
                _ => {}
            }
            return Ok(());
        }
        match byte {
            b'"' => self.in_string = true,
            b'{' | b'[' => self.element_depth += 1,
            // Not closed yet, so the depth is at least 1 here; a mismatched bracket is left to
            // the caller's parse of the element.
            b'}' | b']' => {
                self.element_depth -= 1;
                if self.element_depth == 0 {
                    return self.emit(on_element);
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn emit<E>(&mut self, on_element: &mut impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        self.phase = Phase::AfterElement;
        let result = on_element(&self.element);
        self.element.clear();
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The elements and the emptied envelope, feeding `body` `chunk` bytes at a time.
    fn split(body: &str, chunk: usize) -> Result<(Vec<String>, String), ParseError> {
        let mut splitter = CallsSplitter::new();
        let mut elements = Vec::new();
        for piece in body.as_bytes().chunks(chunk) {
            splitter.feed(piece, &mut |e: &[u8]| {
                elements.push(String::from_utf8(e.to_vec()).unwrap());
                Ok::<(), ParseError>(())
            })?;
        }
        let (envelope, found) = splitter.finish()?;
        assert!(found);
        Ok((elements, String::from_utf8(envelope).unwrap()))
    }

    #[test]
    fn elements_of_every_kind_are_split_out_whatever_the_chunking() {
        let body = r#" { "serverTime" : 5, "x": {"calls": [1]}, "calls" : [ {"a":"],\"}"} , [1,[2]], "s,]" ,-1.5e3,true,null,{} ] , "lastPos":"calls" } "#;
        for chunk in 1..=body.len() {
            let (elements, envelope) = split(body, chunk).unwrap();
            assert_eq!(
                elements,
                [
                    r#"{"a":"],\"}"}"#,
                    "[1,[2]]",
                    r#""s,]""#,
                    "-1.5e3",
                    "true",
                    "null",
                    "{}"
                ]
            );
            assert_eq!(
                envelope,
                r#" { "serverTime" : 5, "x": {"calls": [1]}, "calls" : [] , "lastPos":"calls" } "#
            );
        }
    }

    #[test]
    fn bad_separators_are_refused() {
        let refused = |body| split(body, 3).map(|_| ()).unwrap_err();
        assert!(matches!(
            refused(r#"{"calls":[1,]}"#),
            ParseError::TrailingComma
        ));
        assert!(matches!(
            refused(r#"{"calls":[,1]}"#),
            ParseError::MissingElement
        ));
        assert!(matches!(
            refused(r#"{"calls":[{} {}]}"#),
            ParseError::MissingComma
        ));
        assert!(matches!(
            refused(r#"{"calls":[1,,2]}"#),
            ParseError::MissingElement
        ));
        assert!(matches!(
            refused(r#"{"calls":[{"a":1}"#),
            ParseError::UnterminatedCalls
        ));
    }
}
