//! Whisper's token texts as raw bytes, from a Hugging Face `tokenizer.json`. Whisper uses GPT-2's
//! byte-level BPE, whose vocabulary spells each byte as a printable character (`Ġ` for a space);
//! whisper.cpp wants the bytes themselves, in token-id order.

use std::collections::HashMap;

use serde::Deserialize;

use crate::convert::ConvertError;

#[derive(Deserialize)]
struct TokenizerFile {
    model: TokenizerModel,
}

#[derive(Deserialize)]
struct TokenizerModel {
    vocab: HashMap<String, u32>,
}

/// GPT-2's byte ↔ character table: printable Latin-1 bytes stand for themselves, the other 68
/// bytes take the characters from U+0100 on, in byte order.
fn byte_of_char() -> HashMap<char, u8> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut next = 0x100u32;
    (0..=255u8)
        .map(|b| {
            let c = if printable(b) {
                char::from(b)
            } else {
                let c = char::from_u32(next).unwrap_or(char::REPLACEMENT_CHARACTER);
                next += 1;
                c
            };
            (c, b)
        })
        .collect()
}

/// The vocabulary's tokens as bytes, indexed by id (ids must run from 0 without gaps).
pub(crate) fn token_bytes(tokenizer_json: &[u8]) -> Result<Vec<Vec<u8>>, ConvertError> {
    let file: TokenizerFile = serde_json::from_slice(tokenizer_json)
        .map_err(|e| ConvertError::Format(format!("tokenizer.json: {e}")))?;
    let table = byte_of_char();
    let mut tokens = vec![None; file.model.vocab.len()];
    for (text, id) in file.model.vocab {
        let slot = tokens
            .get_mut(id as usize)
            .ok_or_else(|| ConvertError::Format(format!("token id {id} leaves a gap")))?;
        // Special tokens such as `<|endoftext|>` are plain ASCII and decode to themselves.
        let bytes = text
            .chars()
            .map(|c| table.get(&c).copied())
            .collect::<Option<Vec<u8>>>()
            .ok_or_else(|| ConvertError::Format(format!("token {text:?} is not byte-level")))?;
        *slot = Some(bytes);
    }
    tokens
        .into_iter()
        .enumerate()
        .map(|(id, t)| t.ok_or_else(|| ConvertError::Format(format!("token id {id} is missing"))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_characters_become_bytes() {
        let json = r#"{"model": {"type": "BPE", "vocab": {"!": 0, "Ġthe": 1, "Ċ": 2, "Ã©": 3, "<|endoftext|>": 4}}}"#;
        let tokens = token_bytes(json.as_bytes()).expect("decodes");
        assert_eq!(tokens[0], b"!");
        assert_eq!(tokens[1], b" the");
        assert_eq!(tokens[2], b"\n");
        assert_eq!(String::from_utf8(tokens[3].clone()).expect("utf-8"), "é");
        assert_eq!(tokens[4], b"<|endoftext|>");
    }

    #[test]
    fn the_table_covers_every_byte_once() {
        let table = byte_of_char();
        assert_eq!(table.len(), 256);
        let mut bytes: Vec<u8> = table.values().copied().collect();
        bytes.sort_unstable();
        bytes.dedup();
        assert_eq!(bytes.len(), 256);
    }

    #[test]
    fn gaps_and_foreign_characters_are_errors() {
        let gap = r#"{"model": {"vocab": {"a": 0, "b": 2}}}"#;
        assert!(matches!(
            token_bytes(gap.as_bytes()),
            Err(ConvertError::Format(_))
        ));
        let foreign = r#"{"model": {"vocab": {"a": 0, "€": 1}}}"#;
        assert!(matches!(
            token_bytes(foreign.as_bytes()),
            Err(ConvertError::Format(_))
        ));
    }
}
