//! `GET /v1/calls`'s query string as a tantivy query.
//!
//! `q` is words and `"quoted phrases"`, all of which must match, read by the same analyzer as
//! the transcripts (so `engine twelve` finds "Engine 12"). A trailing `*` makes the last word a
//! prefix: `medic 4*` finds "Medic 41", `"engine 1"*` the phrase "engine 12". Filters: `sid`,
//! `tg` (integers, repeated or comma-separated), `unit` (a unit's number or name, a trailing `*`
//! for a prefix), `from` and `to` (the call's start, RFC 3339 or Unix seconds), `has_text`.
//! The caller's key scope is always added.

use std::ops::Bound;

use tantivy::Term;
use tantivy::query::{
    AllQuery, BooleanQuery, Occur, PhrasePrefixQuery, PhraseQuery, Query, RangeQuery, TermQuery,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::tokenizer::TokenStream as _;

use super::{Fields, SearchIndex, Sort, analyzer};
use crate::auth::{KEY_PARAMETER, Principal};
use crate::error::ApiError;
use crate::filter::{integers, parse_time};

/// Longest `q`.
const MAX_QUERY_CHARS: usize = 200;
/// Default and largest page.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 100;

/// Where the next page starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageCursor {
    /// Calls older than this `order` (time sort).
    Before(i64),
    /// After this many (relevance sort).
    Offset(usize),
}

impl PageCursor {
    /// The cursor as the `cursor` parameter writes it.
    pub fn encode(self) -> String {
        match self {
            PageCursor::Before(order) => format!("t{order}"),
            PageCursor::Offset(offset) => format!("r{offset}"),
        }
    }

    fn decode(text: &str) -> Option<Self> {
        match text.split_at_checked(1)? {
            ("t", order) => order.parse().ok().map(PageCursor::Before),
            ("r", offset) => offset.parse().ok().map(PageCursor::Offset),
            _ => None,
        }
    }
}

/// A parsed `GET /v1/calls` request.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SearchRequest {
    /// Words and phrases.
    pub q: Option<String>,
    /// Systems; any when empty.
    pub sids: Vec<i64>,
    /// Talkgroups; any when empty.
    pub tgs: Vec<i64>,
    /// Units (lower case; a trailing `*` is a prefix).
    pub units: Vec<String>,
    /// Calls starting at or after (Unix seconds).
    pub from: Option<i64>,
    /// Calls starting before (Unix seconds).
    pub to: Option<i64>,
    /// Only calls with (or without) words.
    pub has_text: Option<bool>,
    /// Ranking; relevance by default with `q`, else time.
    pub sort: Option<Sort>,
    /// Page size.
    pub limit: usize,
    /// Where the page starts.
    pub cursor: Option<PageCursor>,
}

fn invalid(message: String) -> ApiError {
    ApiError::bad_request("invalid_query", message)
}

impl SearchRequest {
    /// Parses the query string.
    ///
    /// # Errors
    ///
    /// 400 `invalid_query` naming the bad or unknown parameter.
    pub fn parse(query: Option<&str>) -> Result<Self, ApiError> {
        let mut request = SearchRequest {
            limit: DEFAULT_LIMIT,
            ..SearchRequest::default()
        };
        for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match name.as_ref() {
                "q" => {
                    let q = value.trim();
                    if q.chars().count() > MAX_QUERY_CHARS {
                        return Err(invalid(format!(
                            "`q` must be at most {MAX_QUERY_CHARS} characters"
                        )));
                    }
                    request.q = (!q.is_empty()).then(|| q.to_owned());
                }
                "sid" => integers("sid", &value, &mut request.sids)?,
                "tg" => integers("tg", &value, &mut request.tgs)?,
                "unit" => request.units.extend(
                    value
                        .split(',')
                        .map(|u| u.trim().to_lowercase())
                        .filter(|u| !u.is_empty() && u != "*"),
                ),
                "from" => request.from = Some(parse_time("from", &value)?.unix_timestamp()),
                "to" => request.to = Some(parse_time("to", &value)?.unix_timestamp()),
                "has_text" => {
                    request.has_text = Some(match value.as_ref() {
                        "true" => true,
                        "false" => false,
                        other => {
                            return Err(invalid(format!(
                                "`has_text` must be true or false, got `{other}`"
                            )));
                        }
                    });
                }
                "sort" => {
                    request.sort = Some(match value.as_ref() {
                        "time" => Sort::Time,
                        "relevance" => Sort::Relevance,
                        other => {
                            return Err(invalid(format!(
                                "`sort` must be time or relevance, got `{other}`"
                            )));
                        }
                    });
                }
                "limit" => {
                    request.limit = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=MAX_LIMIT).contains(n))
                        .ok_or_else(|| {
                            invalid(format!("`limit` must be 1 to {MAX_LIMIT}, got `{value}`"))
                        })?;
                }
                "cursor" => {
                    request.cursor = Some(PageCursor::decode(&value).ok_or_else(|| {
                        invalid(format!("`cursor` `{value}` is not one this API gave"))
                    })?);
                }
                KEY_PARAMETER => {}
                other => return Err(invalid(format!("unknown parameter `{other}`"))),
            }
        }
        if let (Some(from), Some(to)) = (request.from, request.to)
            && to <= from
        {
            return Err(invalid("`to` must be later than `from`".to_owned()));
        }
        let sort = request.effective_sort();
        match (sort, request.cursor) {
            (Sort::Time, Some(PageCursor::Offset(_)))
            | (Sort::Relevance, Some(PageCursor::Before(_))) => {
                return Err(invalid("`cursor` belongs to another sort order".to_owned()));
            }
            _ => {}
        }
        Ok(request)
    }

    /// The ranking used: as asked, else relevance with `q` and time without.
    pub fn effective_sort(&self) -> Sort {
        self.sort.unwrap_or(if self.q.is_some() {
            Sort::Relevance
        } else {
            Sort::Time
        })
    }
}

/// One part of `q`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    terms: Vec<String>,
    prefix: bool,
}

/// `q` split into words and phrases, each analyzed into terms.
fn parts(q: &str) -> Vec<Part> {
    let mut raw: Vec<(String, bool)> = Vec::new();
    let mut rest = q;
    while let Some(start) = rest.find(|c: char| !c.is_whitespace()) {
        rest = &rest[start..];
        let (text, prefix, after) = if let Some(quoted) = rest.strip_prefix('"') {
            let (inside, after) = match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            };
            match after.strip_prefix('*') {
                Some(after) => (inside, true, after),
                None => (inside, false, after),
            }
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            let (word, after) = rest.split_at(end);
            match word.strip_suffix('*') {
                Some(word) => (word, true, after),
                None => (word, false, after),
            }
        };
        raw.push((text.to_owned(), prefix));
        rest = after;
    }
    let mut analyzer = analyzer::analyzer();
    raw.into_iter()
        .filter_map(|(text, prefix)| {
            let mut stream = analyzer.token_stream(&text);
            let mut terms = Vec::new();
            while stream.advance() {
                terms.push(stream.token().text.clone());
            }
            (!terms.is_empty()).then_some(Part { terms, prefix })
        })
        .collect()
}

/// `text`, HTML-escaped, with every word that matches a word of `q` in `<b>…</b>` (a prefix
/// word: every word it starts): the whole transcript, not a fragment of it.
pub fn highlight(text: &str, q: Option<&str>) -> String {
    let parts = q.map(parts).unwrap_or_default();
    let mut exact = Vec::new();
    let mut prefixes = Vec::new();
    for part in &parts {
        let (last, rest) = part.terms.split_last().expect("a part has terms");
        exact.extend(rest.iter().map(String::as_str));
        if part.prefix {
            prefixes.push(last.as_str());
        } else {
            exact.push(last.as_str());
        }
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut shown = 0;
    let mut analyzer = analyzer::analyzer();
    let mut stream = analyzer.token_stream(text);
    while stream.advance() {
        let token = stream.token();
        let term = token.text.as_str();
        if exact.contains(&term) || prefixes.iter().any(|p| term.starts_with(p)) {
            escape_into(&text[shown..token.offset_from], &mut out);
            out.push_str("<b>");
            escape_into(&text[token.offset_from..token.offset_to], &mut out);
            out.push_str("</b>");
            shown = token.offset_to;
        }
    }
    escape_into(&text[shown..], &mut out);
    out
}

fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// All terms from `prefix` on, up to the next prefix.
fn prefix_range(field: Field, prefix: &str) -> Box<dyn Query> {
    let mut upper = prefix.to_owned();
    upper.push(char::MAX);
    Box::new(RangeQuery::new(
        Bound::Included(Term::from_field_text(field, prefix)),
        Bound::Excluded(Term::from_field_text(field, &upper)),
    ))
}

fn term(field: Field, text: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_text(field, text),
        IndexRecordOption::WithFreqsAndPositions,
    ))
}

fn part_query(field: Field, part: &Part) -> Box<dyn Query> {
    let terms: Vec<Term> = part
        .terms
        .iter()
        .map(|t| Term::from_field_text(field, t))
        .collect();
    match (terms.len(), part.prefix) {
        (1, false) => term(field, &part.terms[0]),
        (1, true) => prefix_range(field, &part.terms[0]),
        (_, false) => Box::new(PhraseQuery::new(terms)),
        (_, true) => Box::new(PhrasePrefixQuery::new(terms)),
    }
}

fn any_of(clauses: Vec<Box<dyn Query>>) -> Box<dyn Query> {
    Box::new(BooleanQuery::new(
        clauses.into_iter().map(|q| (Occur::Should, q)).collect(),
    ))
}

fn i64_term(field: Field, value: i64) -> Box<dyn Query> {
    Box::new(TermQuery::new(
        Term::from_field_i64(field, value),
        IndexRecordOption::Basic,
    ))
}

fn i64_range(field: Field, lower: Bound<i64>, upper: Bound<i64>) -> Box<dyn Query> {
    let term = |v| Term::from_field_i64(field, v);
    Box::new(RangeQuery::new(lower.map(term), upper.map(term)))
}

/// The text part of `q` alone (what highlights are made from); `None` without words.
pub fn text_query(fields: Fields, q: Option<&str>) -> Option<Box<dyn Query>> {
    let parts = parts(q?);
    if parts.is_empty() {
        return None;
    }
    Some(Box::new(BooleanQuery::new(
        parts
            .iter()
            .map(|part| (Occur::Must, part_query(fields.text, part)))
            .collect(),
    )))
}

/// The calls of a time-sorted page after the first: `query`'s older than the cursor.
pub fn older_than(
    fields: Fields,
    query: &dyn Query,
    cursor: Option<PageCursor>,
) -> Option<Box<dyn Query>> {
    let Some(PageCursor::Before(order)) = cursor else {
        return None;
    };
    Some(Box::new(BooleanQuery::new(vec![
        (Occur::Must, query.box_clone()),
        (
            Occur::Must,
            i64_range(fields.order, Bound::Unbounded, Bound::Excluded(order)),
        ),
    ])))
}

/// The whole query: `q`, the filters and the caller's scope.
pub fn build(
    index: &SearchIndex,
    request: &SearchRequest,
    principal: &Principal,
) -> Box<dyn Query> {
    let f = index.fields();
    let mut must: Vec<Box<dyn Query>> = Vec::new();
    if let Some(text) = text_query(f, request.q.as_deref()) {
        must.push(text);
    }
    if !request.sids.is_empty() {
        must.push(any_of(
            request.sids.iter().map(|&s| i64_term(f.sid, s)).collect(),
        ));
    }
    if !request.tgs.is_empty() {
        must.push(any_of(
            request.tgs.iter().map(|&t| i64_term(f.tg, t)).collect(),
        ));
    }
    if !request.units.is_empty() {
        must.push(any_of(
            request
                .units
                .iter()
                .map(|unit| match unit.strip_suffix('*') {
                    Some(prefix) => prefix_range(f.unit, prefix),
                    None => Box::new(TermQuery::new(
                        Term::from_field_text(f.unit, unit),
                        IndexRecordOption::Basic,
                    )) as Box<dyn Query>,
                })
                .collect(),
        ));
    }
    if request.from.is_some() || request.to.is_some() {
        let lower = request.from.map_or(Bound::Unbounded, Bound::Included);
        let upper = request.to.map_or(Bound::Unbounded, Bound::Excluded);
        must.push(i64_range(f.time, lower, upper));
    }
    if let Some(has_text) = request.has_text {
        must.push(Box::new(TermQuery::new(
            Term::from_field_u64(f.has_text, u64::from(has_text)),
            IndexRecordOption::Basic,
        )));
    }
    let scope = &principal.grant.scope;
    if !scope.is_empty() {
        must.push(any_of(
            scope
                .iter()
                .map(|entry| match entry.tg {
                    Some(tg) => Box::new(BooleanQuery::new(vec![
                        (Occur::Must, i64_term(f.sid, entry.sid)),
                        (Occur::Must, i64_term(f.tg, tg)),
                    ])) as Box<dyn Query>,
                    None => i64_term(f.sid, entry.sid),
                })
                .collect(),
        ));
    }
    if must.is_empty() {
        return Box::new(AllQuery);
    }
    Box::new(BooleanQuery::new(
        must.into_iter().map(|q| (Occur::Must, q)).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_phrases_and_prefixes_are_parts() {
        let part = |terms: &[&str], prefix| Part {
            terms: terms.iter().map(|t| (*t).to_owned()).collect(),
            prefix,
        };
        assert_eq!(
            parts(r#"Elm "engine twelve" medic 4*"#),
            [
                part(&["elm"], false),
                part(&["engine", "12"], false),
                part(&["medic"], false),
                part(&["4"], true),
            ]
        );
        assert_eq!(parts(r#""engine 1"*"#), [part(&["engine", "1"], true)]);
        assert_eq!(
            parts(r#"  "unclosed quote"#),
            [part(&["unclosed", "quote"], false)]
        );
        assert!(parts(" ... ").is_empty());
    }

    #[test]
    fn the_whole_transcript_is_shown_with_every_matching_word_marked() {
        assert_eq!(
            highlight(
                "Engine twelve to Elm & 5th <now>.",
                Some("\"engine 12\" el*")
            ),
            "<b>Engine</b> <b>twelve</b> to <b>Elm</b> &amp; 5th &lt;now&gt;."
        );
        assert_eq!(highlight("a <b>", None), "a &lt;b&gt;");
    }

    #[test]
    fn bad_parameters_are_refused_by_name() {
        for (query, says) in [
            ("limit=0", "`limit`"),
            ("limit=1000", "`limit`"),
            ("sort=best", "`sort`"),
            ("has_text=yes", "`has_text`"),
            ("from=yesterday", "`from`"),
            ("from=200&to=100", "`to`"),
            ("cursor=x1", "`cursor`"),
            ("cursor=r10", "another sort"),
            ("q=a&cursor=t10", "another sort"),
            ("sid=x", "`sid`"),
            ("page=2", "unknown parameter `page`"),
        ] {
            let error = SearchRequest::parse(Some(query)).expect_err(query);
            assert!(error.message.contains(says), "{query}: {}", error.message);
        }
        let ok = SearchRequest::parse(Some("q=elm&sid=7001&tg=1,2&unit=E12*&limit=5")).unwrap();
        assert_eq!(ok.effective_sort(), Sort::Relevance);
        assert_eq!(
            (ok.tgs, ok.units, ok.limit),
            (vec![1, 2], vec!["e12*".to_owned()], 5)
        );
    }
}
