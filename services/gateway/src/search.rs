//! Transcript search: an embedded tantivy index of every transcribed call, built from the
//! `TRANSCRIPTIONS` stream (the system of record) by [`indexer`] and read by `GET /v1/calls`.
//!
//! One document per call: its id, system, talkgroup, start time, units, transcript text, and
//! the stream sequence it came from. A newer transcript of a call replaces the older one. With
//! `search.index_dir` the index lives on disk and a restarted gateway goes on from the last
//! sequence it committed; without it, the index is in memory and built from the stream at
//! every start.
//!
//! # Layout
//!
//! - [`analyzer`]: words to terms, number words as digits;
//! - [`query`]: a request's text and filters as a tantivy query;
//! - [`indexer`]: the stream into the index.

pub mod analyzer;
pub mod indexer;
pub mod query;

use std::collections::BTreeMap;
use std::path::Path;

use bcfy_bus::subject::Shard;
use tantivy::collector::{Collector, Count, SegmentCollector, TopDocs};
use tantivy::columnar::Column;
use tantivy::query::Query;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing,
    TextOptions, Value as _,
};
use tantivy::{
    DocAddress, DocId, Index, IndexReader, Order, ReloadPolicy, Score, SegmentReader,
    TantivyDocument,
};

/// The index's fields.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// The call id (one term: what a newer transcript replaces).
    pub call_id: Field,
    /// The system.
    pub sid: Field,
    /// The talkgroup.
    pub tg: Field,
    /// The talkgroup's name as the call gives it (`display`, else `descr`).
    pub talkgroup: Field,
    /// The call's start, Unix seconds.
    pub time: Field,
    /// `time` and the stream sequence in one number: newest first, and a cursor.
    pub order: Field,
    /// The units heard (numbers and names, lower case).
    pub unit: Field,
    /// The transcript.
    pub text: Field,
    /// 1 when the transcript has words.
    pub has_text: Field,
    /// The `TRANSCRIPTIONS` sequence of the transcript.
    pub seq: Field,
}

/// Why the index cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("the search index: {0}")]
pub struct SearchError(#[from] tantivy::TantivyError);

impl From<tantivy::directory::error::OpenDirectoryError> for SearchError {
    fn from(error: tantivy::directory::error::OpenDirectoryError) -> Self {
        Self(error.into())
    }
}

/// The index, shared by the indexer and the routes.
#[derive(Clone)]
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex").finish_non_exhaustive()
    }
}

fn schema() -> (Schema, Fields) {
    let mut builder = Schema::builder();
    let text_options = TextOptions::default()
        .set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(analyzer::NAME)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        )
        .set_stored();
    let fields = Fields {
        call_id: builder.add_text_field("call_id", STRING | STORED),
        sid: builder.add_i64_field("sid", INDEXED | FAST | STORED),
        tg: builder.add_i64_field("tg", INDEXED | FAST | STORED),
        talkgroup: builder.add_text_field("talkgroup", STORED),
        time: builder.add_i64_field("time", INDEXED | FAST | STORED),
        order: builder.add_i64_field("order", INDEXED | FAST),
        unit: builder.add_text_field("unit", STRING | STORED),
        text: builder.add_text_field("text", text_options),
        has_text: builder.add_u64_field("has_text", INDEXED),
        seq: builder.add_u64_field("seq", STORED),
    };
    (builder.build(), fields)
}

/// Bits of `order` below the time: the stream sequence modulo 2^20 (unique within a second).
const ORDER_SEQ_BITS: u32 = 20;

/// The `order` value of a call starting at `time` (Unix seconds) with stream sequence `seq`.
pub fn order_of(time: i64, seq: u64) -> i64 {
    (time << ORDER_SEQ_BITS) | i64::try_from(seq & ((1 << ORDER_SEQ_BITS) - 1)).unwrap_or(0)
}

/// One search answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The call.
    pub call_id: String,
    /// Where it was heard.
    pub shard: Shard,
    /// The talkgroup's name, when the call gave one.
    pub talkgroup: Option<String>,
    /// Its start, Unix seconds.
    pub time: i64,
    /// Units heard.
    pub units: Vec<String>,
    /// The transcript.
    pub text: String,
    /// The `TRANSCRIPTIONS` sequence.
    pub seq: u64,
    /// Its `order`, for the next page's cursor.
    pub order: i64,
    /// Its relevance, when ranked by it.
    pub score: Option<f32>,
}

/// How results are ranked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Newest call first.
    Time,
    /// Best match first.
    Relevance,
}

/// A page of answers and the counts over all of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The answers.
    pub hits: Vec<Hit>,
    /// How many calls match in all.
    pub total: usize,
    /// Matching calls per talkgroup.
    pub talkgroups: BTreeMap<Shard, u64>,
}

impl SearchIndex {
    /// Opens (or creates) the index in `dir`, or in memory without one.
    ///
    /// # Errors
    ///
    /// When the directory cannot be opened or holds an index of another schema.
    pub fn open(dir: Option<&Path>) -> Result<Self, SearchError> {
        let (schema, fields) = schema();
        let index = match dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    SearchError(tantivy::TantivyError::SystemError(format!(
                        "cannot create {}: {e}",
                        dir.display()
                    )))
                })?;
                let directory = tantivy::directory::MmapDirectory::open(dir)?;
                Index::open_or_create(directory, schema)?
            }
            None => Index::create_in_ram(schema),
        };
        index
            .tokenizers()
            .register(analyzer::NAME, analyzer::analyzer());
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(Self {
            index,
            reader,
            fields,
        })
    }

    /// The fields.
    pub fn fields(&self) -> Fields {
        self.fields
    }

    pub(crate) fn index(&self) -> &Index {
        &self.index
    }

    /// Makes the last commit visible to searches.
    ///
    /// # Errors
    ///
    /// When the index cannot be reloaded.
    pub fn reload(&self) -> Result<(), SearchError> {
        Ok(self.reader.reload()?)
    }

    /// How many calls the index holds (as last reloaded).
    pub fn len(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The calls `query` matches: how many, how many per talkgroup, and a page of `limit` of
    /// them — from `page` (the calls after a time cursor) when given, after `offset` ones when
    /// ranked by relevance.
    ///
    /// # Errors
    ///
    /// When the index cannot be read.
    pub fn search(
        &self,
        query: &dyn Query,
        page: Option<&dyn Query>,
        sort: Sort,
        limit: usize,
        offset: usize,
    ) -> Result<Page, SearchError> {
        let searcher = self.reader.searcher();
        let (total, talkgroups) = searcher.search(query, &(Count, TalkgroupCounts))?;
        let query = page.unwrap_or(query);
        let found: Vec<(Option<f32>, DocAddress)> = match sort {
            Sort::Time => searcher
                .search(
                    query,
                    &TopDocs::with_limit(limit.max(1))
                        .order_by_fast_field::<i64>("order", Order::Desc),
                )?
                .into_iter()
                .map(|(_, address)| (None, address))
                .collect(),
            Sort::Relevance => searcher
                .search(
                    query,
                    &TopDocs::with_limit(limit.max(1))
                        .and_offset(offset)
                        .order_by_score(),
                )?
                .into_iter()
                .map(|(score, address)| (Some(score), address))
                .collect(),
        };
        let mut hits = Vec::with_capacity(found.len());
        for (score, address) in found.into_iter().take(limit) {
            let document: TantivyDocument = searcher.doc(address)?;
            let text = text_of(&document, self.fields.text);
            let int = |field| {
                document
                    .get_first(field)
                    .and_then(|v| v.as_i64())
                    .unwrap_or_default()
            };
            let seq = document
                .get_first(self.fields.seq)
                .and_then(|v| v.as_u64())
                .unwrap_or_default();
            let time = int(self.fields.time);
            hits.push(Hit {
                call_id: text_of(&document, self.fields.call_id),
                shard: Shard {
                    sid: int(self.fields.sid),
                    tg: int(self.fields.tg),
                },
                talkgroup: Some(text_of(&document, self.fields.talkgroup))
                    .filter(|n| !n.is_empty()),
                time,
                units: document
                    .get_all(self.fields.unit)
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                text,
                seq,
                order: order_of(time, seq),
                score,
            });
        }
        Ok(Page {
            hits,
            total,
            talkgroups,
        })
    }
}

fn text_of(document: &TantivyDocument, field: Field) -> String {
    document
        .get_first(field)
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Counts the matching calls per talkgroup, from the `sid` and `tg` columns.
struct TalkgroupCounts;

struct SegmentCounts {
    sid: Column<i64>,
    tg: Column<i64>,
    counts: BTreeMap<Shard, u64>,
}

impl Collector for TalkgroupCounts {
    type Fruit = BTreeMap<Shard, u64>;
    type Child = SegmentCounts;

    fn for_segment(&self, _segment: u32, reader: &SegmentReader) -> tantivy::Result<Self::Child> {
        Ok(SegmentCounts {
            sid: reader.fast_fields().i64("sid")?,
            tg: reader.fast_fields().i64("tg")?,
            counts: BTreeMap::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Self::Fruit>) -> tantivy::Result<Self::Fruit> {
        let mut merged = BTreeMap::new();
        for fruit in fruits {
            for (shard, count) in fruit {
                *merged.entry(shard).or_default() += count;
            }
        }
        Ok(merged)
    }
}

impl SegmentCollector for SegmentCounts {
    type Fruit = BTreeMap<Shard, u64>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if let (Some(sid), Some(tg)) = (self.sid.first(doc), self.tg.first(doc)) {
            *self.counts.entry(Shard { sid, tg }).or_default() += 1;
        }
    }

    fn harvest(self) -> Self::Fruit {
        self.counts
    }
}
