//! Entry point for the fuzz target (`fuzz/`, `just fuzz`), built only with the `fuzzing`
//! feature: a rule as stored in the `alert-rules` bucket, compiled, then evaluated on a
//! transcript. A match's byte offsets must lie on the transcript's character boundaries.

use std::sync::Arc;

use bcfy_words::words;

use crate::rule::{Rule, Subject};
use crate::rules::RuleSet;

/// `data` is the rule's YAML or JSON, then a NUL byte, then the transcript's text.
pub fn rule_and_transcript(data: &[u8]) {
    let (rule, text) = match data.iter().position(|b| *b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b""[..]),
    };
    let Ok(spec) = crate::catalog::parse("fuzz", rule) else {
        return;
    };
    let Ok(rule) = Rule::compile(spec) else {
        return;
    };
    let text = String::from_utf8_lossy(text);
    let words = words(&text);
    let subject = Subject {
        text: &text,
        words: &words,
        sid: 7001,
        tg: 2345,
        units: &[],
        emergency: false,
        tones: &[],
    };
    for fired in RuleSet::new(vec![Arc::new(rule)]).evaluate(&subject) {
        for found in fired.matches {
            let (start, end) = (found.start as usize, found.end as usize);
            if start != end {
                assert!(
                    text.get(start..end).is_some(),
                    "a match at {start}..{end} is not on the text's boundaries"
                );
            }
        }
    }
}
