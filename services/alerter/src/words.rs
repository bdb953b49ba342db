//! A transcript as the rules see it: whole words, lower-cased, with spelled-out numbers turned
//! into digits ("Engine twenty-one" reads as `engine 21`, like "engine 21"), each word keeping
//! its byte span in the original text so an alert can point at what matched.

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

/// The words of `text`, numbers joined and normalised.
pub fn words(text: &str) -> Vec<Word> {
    let mut out: Vec<Word> = Vec::new();
    let mut number: Option<(u64, usize, usize)> = None;
    for (start, end) in spans(text) {
        let lower = text[start..end].to_lowercase();
        match (number_word(&lower), number) {
            (Some(part), Some((value, first, _))) if let Some(joined) = join(value, part) => {
                number = Some((joined, first, end));
            }
            (Some(part), _) => {
                flush(&mut out, number.take());
                number = Some((part.value(), start, end));
            }
            (None, _) => {
                flush(&mut out, number.take());
                out.push(Word {
                    norm: lower,
                    start,
                    end,
                });
            }
        }
    }
    flush(&mut out, number);
    out
}

/// The normal forms of `phrase`'s words (how a keyword is compared).
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

fn flush(out: &mut Vec<Word>, number: Option<(u64, usize, usize)>) {
    if let Some((value, start, end)) = number {
        out.push(Word {
            norm: value.to_string(),
            start,
            end,
        });
    }
}

/// A spelled-out number word.
#[derive(Debug, Clone, Copy)]
enum Part {
    /// zero … nineteen
    Unit(u64),
    /// twenty … ninety
    Tens(u64),
    /// hundred
    Hundred,
}

impl Part {
    fn value(self) -> u64 {
        match self {
            Part::Unit(n) | Part::Tens(n) => n,
            Part::Hundred => 100,
        }
    }
}

fn number_word(word: &str) -> Option<Part> {
    const UNITS: [&str; 20] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
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
    if let Some(n) = UNITS.iter().position(|unit| *unit == word) {
        return Some(Part::Unit(n as u64));
    }
    if let Some(n) = TENS.iter().position(|tens| *tens == word) {
        return Some(Part::Tens(20 + 10 * n as u64));
    }
    (word == "hundred").then_some(Part::Hundred)
}

/// `value` followed by `part`, when they make one number ("twenty" "one" → 21, "two"
/// "hundred" → 200, "one hundred" "five" → 105); `None` when `part` starts a new one ("one
/// two" is two numbers, as a dispatcher reading digits means).
fn join(value: u64, part: Part) -> Option<u64> {
    let round_hundreds = value >= 100 && value.is_multiple_of(100);
    match part {
        Part::Unit(n) if n > 0 && round_hundreds => Some(value + n),
        Part::Unit(n)
            if n > 0
                && n < 10
                && value >= 20
                && value.is_multiple_of(10)
                && !value.is_multiple_of(100) =>
        {
            Some(value + n)
        }
        Part::Tens(n) if round_hundreds => Some(value + n),
        Part::Hundred if (1..10).contains(&value) => Some(value * 100),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norms(text: &str) -> Vec<String> {
        normalise(text)
    }

    #[test]
    fn words_are_lower_case_and_keep_their_spans() {
        let text = "Engine 12, respond!";
        let found = words(text);
        assert_eq!(norms(text), ["engine", "12", "respond"]);
        assert_eq!(&text[found[2].start..found[2].end], "respond");
    }

    #[test]
    fn spelled_out_numbers_become_digits() {
        assert_eq!(norms("Engine twelve"), ["engine", "12"]);
        assert_eq!(norms("station twenty-one"), ["station", "21"]);
        assert_eq!(norms("one hundred five"), ["105"]);
        assert_eq!(norms("two hundred forty"), ["240"]);
        assert_eq!(
            norms("medic one two"),
            ["medic", "1", "2"],
            "digits read out"
        );
        assert_eq!(norms("twenty twenty"), ["20", "20"]);
        let text = "Medic Twenty One en route";
        let found = words(text);
        assert_eq!(&text[found[1].start..found[1].end], "Twenty One");
    }

    #[test]
    fn accented_and_empty_text() {
        assert!(words("").is_empty());
        assert!(words(" ,.- ").is_empty());
        assert_eq!(norms("Café Ünit"), ["café", "ünit"]);
    }
}
