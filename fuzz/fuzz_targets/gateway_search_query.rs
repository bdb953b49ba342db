//! The gateway's `/v1/calls` search query string, and the highlight of a text by its `q`.

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (query, transcript) = text
        .split_once('\n')
        .unwrap_or((text.as_ref(), "Engine 12 respond"));
    if let Ok(request) = bcfy_gateway::search::query::SearchRequest::parse(Some(query)) {
        std::hint::black_box(request);
    }
    std::hint::black_box(bcfy_gateway::search::query::highlight(
        transcript,
        Some(query),
    ));
});
