//! How transcript text becomes search terms: split on anything that is not a letter or a digit,
//! lower-cased, and number words written as digits — "Engine twelve" and "engine 12" both give
//! `engine`, `12`. Only single words are rewritten (zero to nineteen, and the tens twenty to
//! ninety): "twenty one" stays two terms, `20` and `1`, because a transcript that spells a
//! number out does so word by word. The same analyzer reads queries, so a query matches either
//! spelling.

use bcfy_words::NumberWord;
use tantivy::tokenizer::{
    LowerCaser, SimpleTokenizer, TextAnalyzer, Token, TokenFilter, TokenStream, Tokenizer,
};

/// The analyzer's registered name.
pub const NAME: &str = "call_text";

/// The transcript analyzer.
pub fn analyzer() -> TextAnalyzer {
    TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(LowerCaser)
        .filter(NumberWords)
        .build()
}

/// The digits a lower-case number word stands for; "hundred" alone is left as a word.
fn digits(word: &str) -> Option<String> {
    NumberWord::parse(word)
        .filter(|number| *number != NumberWord::Hundred)
        .map(|number| number.value().to_string())
}

/// Rewrites number words as digits (after lower-casing).
#[derive(Debug, Clone, Copy)]
pub struct NumberWords;

impl TokenFilter for NumberWords {
    type Tokenizer<T: Tokenizer> = NumberWordsFilter<T>;

    fn transform<T: Tokenizer>(self, tokenizer: T) -> Self::Tokenizer<T> {
        NumberWordsFilter(tokenizer)
    }
}

/// [`NumberWords`] around a tokenizer.
#[derive(Debug, Clone)]
pub struct NumberWordsFilter<T>(T);

impl<T: Tokenizer> Tokenizer for NumberWordsFilter<T> {
    type TokenStream<'a> = NumberWordsStream<T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        NumberWordsStream(self.0.token_stream(text))
    }
}

/// The tokens of [`NumberWordsFilter`].
#[derive(Debug)]
pub struct NumberWordsStream<T>(T);

impl<T: TokenStream> TokenStream for NumberWordsStream<T> {
    fn advance(&mut self) -> bool {
        if !self.0.advance() {
            return false;
        }
        if let Some(number) = digits(&self.0.token().text) {
            self.0.token_mut().text = number;
        }
        true
    }

    fn token(&self) -> &Token {
        self.0.token()
    }

    fn token_mut(&mut self) -> &mut Token {
        self.0.token_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(text: &str) -> Vec<String> {
        let mut analyzer = analyzer();
        let mut stream = analyzer.token_stream(text);
        let mut terms = Vec::new();
        while stream.advance() {
            terms.push(stream.token().text.clone());
        }
        terms
    }

    #[test]
    fn number_words_and_digits_give_the_same_terms() {
        assert_eq!(
            terms("Engine twelve, respond!"),
            ["engine", "12", "respond"]
        );
        assert_eq!(terms("engine 12 respond"), ["engine", "12", "respond"]);
        assert_eq!(terms("Medic Forty-One"), ["medic", "40", "1"]);
        assert_eq!(terms("someone"), ["someone"], "whole words only");
    }
}
