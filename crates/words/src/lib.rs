//! Transcript text as words, the one way the project reads it: alert rules match keywords on
//! it, search indexes it, and the tests score transcripts with it. Whisper writes numbers as
//! digits ("Engine 12") while people write and say them ("Engine twelve"), so number words are
//! read as digits, and a run of them as the number it says ("twenty-one" → 21, "four hundred
//! five" → 405), while digits read out one by one stay separate ("one two" → 1 2, "ten four" →
//! 10 4), as a dispatcher means them.

/// One word (or one spelled-out number) of a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    /// Its normal form: lower case; a number as digits.
    pub norm: String,
    /// Byte offset where it starts in the text.
    pub start: usize,
    /// Byte offset where it ends (exclusive).
    pub end: usize,
}

/// The words of `text` (runs of letters and digits), numbers joined and normalised.
pub fn words(text: &str) -> Vec<Word> {
    let mut out: Vec<Word> = Vec::new();
    let mut number: Option<(Number, usize, usize)> = None;
    for (start, end) in spans(text) {
        let lower = text[start..end].to_lowercase();
        let Some(part) = NumberWord::parse(&lower) else {
            flush(&mut out, number.take());
            out.push(Word {
                norm: lower,
                start,
                end,
            });
            continue;
        };
        number = match number.take() {
            Some((said, first, _)) if let Some(joined) = said.then(part) => {
                Some((joined, first, end))
            }
            before => {
                flush(&mut out, before);
                Some((Number::start(part), start, end))
            }
        };
    }
    flush(&mut out, number);
    out
}

/// The normal forms of `phrase`'s words (how a keyword is compared with a transcript).
pub fn normalise(phrase: &str) -> Vec<String> {
    words(phrase).into_iter().map(|word| word.norm).collect()
}

/// Byte spans of the alphanumeric runs of `text`.
fn spans(text: &str) -> impl Iterator<Item = (usize, usize)> + '_ {
    let mut chars = text.char_indices().peekable();
    std::iter::from_fn(move || {
        let (start, _) = chars.find(|(_, c)| c.is_alphanumeric())?;
        let mut end = text.len();
        while let Some(&(at, c)) = chars.peek() {
            if !c.is_alphanumeric() {
                end = at;
                break;
            }
            chars.next();
        }
        Some((start, end))
    })
}

fn flush(out: &mut Vec<Word>, number: Option<(Number, usize, usize)>) {
    if let Some((said, start, end)) = number {
        out.push(Word {
            norm: said.value.to_string(),
            start,
            end,
        });
    }
}

/// A spelled-out number word, and how it combines with the words before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberWord {
    /// zero … nine
    Unit(u64),
    /// ten … nineteen
    Teen(u64),
    /// twenty … ninety
    Tens(u64),
    /// hundred
    Hundred,
}

impl NumberWord {
    /// The number word `word` (lower case), if it is one.
    pub fn parse(word: &str) -> Option<Self> {
        const UNITS: [&str; 10] = [
            "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
        ];
        const TEENS: [&str; 10] = [
            "ten",
            "eleven",
            "twelve",
            "thirteen",
            "fourteen",
            "fifteen",
            "sixteen",
            "seventeen",
            "eighteen",
            "nineteen",
        ];
        const TENS: [&str; 8] = [
            "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety",
        ];
        let at = |table: &[&str]| table.iter().position(|w| *w == word).map(|i| i as u64);
        at(&UNITS)
            .map(NumberWord::Unit)
            .or_else(|| at(&TEENS).map(|i| NumberWord::Teen(10 + i)))
            .or_else(|| at(&TENS).map(|i| NumberWord::Tens(20 + 10 * i)))
            .or_else(|| (word == "hundred").then_some(NumberWord::Hundred))
    }

    /// What it stands for alone.
    pub fn value(self) -> u64 {
        match self {
            NumberWord::Unit(n) | NumberWord::Teen(n) | NumberWord::Tens(n) => n,
            NumberWord::Hundred => 100,
        }
    }
}

/// A number being read word by word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Number {
    /// What the words so far say.
    pub value: u64,
    last: NumberWord,
}

impl Number {
    /// A number that starts with `word`.
    pub fn start(word: NumberWord) -> Self {
        Self {
            value: word.value(),
            last: word,
        }
    }

    /// The number with `next` said after it, when they make one number ("twenty" "two" → 22,
    /// "four" "hundred" → 400, "four hundred" "twenty" → 420); `None` when `next` starts a new
    /// one ("ten" "four", "one" "two").
    pub fn then(self, next: NumberWord) -> Option<Self> {
        let value = match (self.last, next) {
            (NumberWord::Tens(_), NumberWord::Unit(n)) if n > 0 => self.value + n,
            (
                NumberWord::Hundred,
                NumberWord::Unit(n) | NumberWord::Teen(n) | NumberWord::Tens(n),
            ) if n > 0 => self.value + n,
            (NumberWord::Unit(n) | NumberWord::Teen(n), NumberWord::Hundred) if n > 0 => {
                self.value * 100
            }
            _ => return None,
        };
        Some(Self { value, last: next })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lower_case_and_keep_their_spans() {
        let text = "Engine 12, respond!";
        let found = words(text);
        assert_eq!(normalise(text), ["engine", "12", "respond"]);
        assert_eq!(&text[found[2].start..found[2].end], "respond");
    }

    #[test]
    fn spelled_out_numbers_become_digits_as_they_are_said() {
        assert_eq!(normalise("Engine twelve"), ["engine", "12"]);
        assert_eq!(normalise("station twenty-one"), ["station", "21"]);
        assert_eq!(normalise("one hundred five"), ["105"]);
        assert_eq!(normalise("four hundred twenty"), ["420"]);
        assert_eq!(normalise("twelve hundred"), ["1200"]);
        assert_eq!(
            normalise("medic one two"),
            ["medic", "1", "2"],
            "digits read out"
        );
        assert_eq!(normalise("ten four"), ["10", "4"]);
        assert_eq!(normalise("twenty twenty"), ["20", "20"]);
        assert_eq!(normalise("twenty zero"), ["20", "0"]);
        let text = "Medic Twenty One en route";
        let found = words(text);
        assert_eq!(&text[found[1].start..found[1].end], "Twenty One");
        assert_eq!(found[2].norm, "en");
    }

    #[test]
    fn accented_and_empty_text() {
        assert!(words("").is_empty());
        assert!(words(" ,.- ").is_empty());
        assert_eq!(normalise("Café Ünit"), ["café", "ünit"]);
    }
}
