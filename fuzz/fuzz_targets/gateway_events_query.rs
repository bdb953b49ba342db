//! The gateway's `/v1/events` query string and `Last-Event-ID`, split at the first newline.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (query, last_event_id) = match text.split_once('\n') {
        Some((q, id)) => (q, Some(id)),
        None => (text.as_ref(), None),
    };
    drop(bcfy_gateway::filter::EventsQuery::parse(
        Some(query),
        last_event_id,
    ));
});
