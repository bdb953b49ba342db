//! `TRANSCRIPTIONS` into the search index. A task reads the stream in order from after the last
//! committed sequence (kept as the commit's payload, so a restart goes on from there) and hands
//! each transcript to a thread that owns the index writer: a newer transcript of a call deletes
//! the older one before it is added. The thread commits once a second (or every
//! `COMMIT_EVERY` documents) and makes the commit visible to searches.

use std::sync::mpsc;
use std::time::Duration;

use async_nats::jetstream;
use bcfy_bus::Backoff;
use bcfy_bus::subject::ParsedSubject;
use bcfy_bus::topology::STREAM_TRANSCRIPTIONS;
use bcfy_proto::TranscriptionResult;
use futures::StreamExt as _;
use prost::Message as _;
use tantivy::{IndexWriter, TantivyDocument, Term};
use tokio_util::sync::CancellationToken;

use super::{SearchError, SearchIndex, order_of};
use crate::metrics::Metrics;

/// Documents between commits at most.
const COMMIT_EVERY: usize = 10_000;
/// Longest time a transcript waits to become searchable.
const COMMIT_AFTER: Duration = Duration::from_secs(1);
/// The writer's memory budget.
const WRITER_BYTES: usize = 64 << 20;

/// One transcript to index.
struct Indexed {
    call_id: String,
    document: TantivyDocument,
    seq: u64,
}

/// The sequence the index has committed up to (0 for a new index).
///
/// # Errors
///
/// When the index's metadata cannot be read.
pub fn committed(index: &SearchIndex) -> Result<u64, SearchError> {
    let metas = index.index().load_metas()?;
    Ok(metas
        .payload
        .as_deref()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0))
}

/// Starts indexing: the writer thread and the task that reads the stream, until `shutdown`.
///
/// # Errors
///
/// When the writer cannot be opened or the stream's state cannot be read.
pub async fn start(
    index: SearchIndex,
    js: jetstream::Context,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> Result<(), SearchError> {
    let mut writer: IndexWriter = index.index().writer_with_num_threads(1, WRITER_BYTES)?;
    let mut from = committed(&index)? + 1;
    let stored_last = match js.get_stream(STREAM_TRANSCRIPTIONS).await {
        Ok(mut stream) => stream.info().await.map(|i| i.state.last_sequence).ok(),
        Err(_) => None,
    };
    if stored_last.is_some_and(|last| last + 1 < from) {
        // The stream was replaced: what the index holds is not in it any more.
        tracing::warn!(
            committed = from - 1,
            "The transcripts stream is behind the index; rebuilding the index."
        );
        writer.delete_all_documents()?;
        writer.commit()?;
        from = 1;
    }
    metrics
        .search_indexed_sequence
        .set(i64::try_from(from - 1).unwrap_or(i64::MAX));
    let (sender, receiver) = mpsc::sync_channel::<Indexed>(COMMIT_EVERY);
    let writer_index = index.clone();
    let writer_metrics = metrics.clone();
    std::thread::Builder::new()
        .name("search-writer".to_owned())
        .spawn(move || write(writer_index, writer, receiver, writer_metrics))
        .map_err(|e| SearchError(tantivy::TantivyError::SystemError(e.to_string())))?;
    tokio::spawn(follow(index, js, from, sender, shutdown));
    Ok(())
}

/// Reads the stream from `from` until shutdown, resuming after failures.
async fn follow(
    index: SearchIndex,
    js: jetstream::Context,
    mut from: u64,
    sender: mpsc::SyncSender<Indexed>,
    shutdown: CancellationToken,
) {
    let backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
    let mut attempt = 0;
    while !shutdown.is_cancelled() {
        match read(&index, &js, &mut from, &sender, &shutdown).await {
            Ok(()) => attempt = 0,
            Err(error) => {
                tracing::warn!(error = %error, "Reading transcripts to index failed; resuming.");
                attempt += 1;
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => {}
            () = tokio::time::sleep(backoff.delay(attempt)) => {}
        }
    }
}

async fn read(
    index: &SearchIndex,
    js: &jetstream::Context,
    from: &mut u64,
    sender: &mpsc::SyncSender<Indexed>,
    shutdown: &CancellationToken,
) -> Result<(), async_nats::Error> {
    let messages = bcfy_bus::stored::from_sequence(js, STREAM_TRANSCRIPTIONS, *from).await?;
    let mut messages = std::pin::pin!(messages.take_until(shutdown.cancelled()));
    while let Some(message) = messages.next().await {
        let message = message?;
        let info = message.info()?;
        let seq = info.stream_sequence;
        let published = info.published.unix_timestamp();
        *from = seq + 1;
        let Some(indexed) = document(index, &message.subject, &message.payload, seq, published)
        else {
            tracing::warn!(seq, subject = %message.subject, "Not indexed: not a transcript.");
            continue;
        };
        let sender = sender.clone();
        // The writer thread may be busy committing; wait for room without blocking the runtime.
        let sent = tokio::task::spawn_blocking(move || sender.send(indexed)).await;
        if !matches!(sent, Ok(Ok(()))) {
            return Ok(());
        }
    }
    Ok(())
}

/// The index document of a stored transcript; `None` when it is not one.
fn document(
    index: &SearchIndex,
    subject: &str,
    payload: &[u8],
    seq: u64,
    published: i64,
) -> Option<Indexed> {
    let Ok(ParsedSubject::Transcription(shard, call_id)) = subject.parse() else {
        return None;
    };
    let result = TranscriptionResult::decode(payload).ok()?;
    let f = index.fields();
    let call = result.call.unwrap_or_default();
    let time = call
        .ts
        .or(call.meta_starttime)
        .or(result.completed_at.map(|t| t.seconds))
        .unwrap_or(published);
    let mut document = TantivyDocument::new();
    document.add_text(f.call_id, call_id.as_str());
    document.add_i64(f.sid, shard.sid);
    document.add_i64(f.tg, shard.tg);
    if let Some(name) = call
        .display
        .as_deref()
        .or(call.descr.as_deref())
        .filter(|n| !n.trim().is_empty())
    {
        document.add_text(f.talkgroup, name.trim());
    }
    document.add_i64(f.time, time);
    document.add_i64(f.order, order_of(time, seq));
    if let Some(unit) = call.call_src.filter(|u| *u > 0) {
        document.add_text(f.unit, unit.to_string());
    }
    if let Some(name) = call.call_src_descr.filter(|d| !d.trim().is_empty()) {
        document.add_text(f.unit, name.trim().to_lowercase());
    }
    document.add_u64(f.has_text, u64::from(!result.text.trim().is_empty()));
    document.add_text(f.text, &result.text);
    document.add_u64(f.seq, seq);
    Some(Indexed {
        call_id: call_id.to_string(),
        document,
        seq,
    })
}

/// The writer thread: adds what arrives, commits with the last sequence as payload.
fn write(
    index: SearchIndex,
    mut writer: IndexWriter,
    receiver: mpsc::Receiver<Indexed>,
    metrics: Metrics,
) {
    let call_id = index.fields().call_id;
    let mut pending = 0usize;
    let mut last = None;
    loop {
        let next = if pending == 0 {
            receiver
                .recv()
                .map_err(|_| mpsc::RecvTimeoutError::Disconnected)
        } else {
            receiver.recv_timeout(COMMIT_AFTER)
        };
        match next {
            Ok(indexed) => {
                writer.delete_term(Term::from_field_text(call_id, &indexed.call_id));
                if let Err(error) = writer.add_document(indexed.document) {
                    tracing::error!(error = %error, "The search index refused a document.");
                    continue;
                }
                pending += 1;
                last = Some(indexed.seq);
                if pending < COMMIT_EVERY {
                    continue;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                commit(&index, &mut writer, last, &metrics);
                return;
            }
        }
        commit(&index, &mut writer, last, &metrics);
        pending = 0;
    }
}

fn commit(index: &SearchIndex, writer: &mut IndexWriter, last: Option<u64>, metrics: &Metrics) {
    let Some(last) = last else {
        return;
    };
    let mut prepared = match writer.prepare_commit() {
        Ok(prepared) => prepared,
        Err(error) => {
            tracing::error!(error = %error, "Committing the search index failed.");
            return;
        }
    };
    prepared.set_payload(&last.to_string());
    if let Err(error) = prepared.commit() {
        tracing::error!(error = %error, "Committing the search index failed.");
        return;
    }
    if let Err(error) = index.reload() {
        tracing::warn!(error = %error, "Reloading the search index failed.");
    }
    metrics
        .search_indexed_sequence
        .set(i64::try_from(last).unwrap_or(i64::MAX));
}
