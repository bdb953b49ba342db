//! W3C trace context (`traceparent`, `tracestate`) carried in NATS headers, so one call's
//! spans link up across all four services.

use async_nats::HeaderMap;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|value| value.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        // NOTE: `HeaderName::as_str` is private in async-nats; the bytes are ASCII by protocol.
        self.0
            .iter()
            .filter_map(|(name, _)| std::str::from_utf8(name.as_ref()).ok())
            .collect()
    }
}

/// Writes the current span's trace context into `headers`. Without an active OpenTelemetry
/// span, nothing is written.
pub fn inject_current(headers: &mut HeaderMap) {
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut HeaderInjector(headers));
}

/// The trace context a message carries (empty when it carries none).
pub fn extract(headers: Option<&HeaderMap>) -> Context {
    match headers {
        Some(headers) => TraceContextPropagator::new().extract(&HeaderExtractor(headers)),
        None => Context::new(),
    }
}

/// Makes `span` a child of the trace context `headers` carry, so the handler's work joins the
/// publisher's trace.
pub fn follow(span: &tracing::Span, headers: Option<&HeaderMap>) {
    // NOTE: fails only when the span is disabled by the filter; then there is nothing to link.
    span.set_parent(extract(headers)).ok();
}

/// Links `span` (a new root, created with `parent: None`) to the current span and returns it.
/// The poller starts one trace per call this way: every downstream stage joins the call's own
/// trace through `traceparent`, and the link still leads back to the poll that found the call.
pub fn linked_to_current(span: tracing::Span) -> tracing::Span {
    use opentelemetry::trace::TraceContextExt as _;
    let current = tracing::Span::current().context();
    let poll = current.span().span_context().clone();
    if poll.is_valid() {
        span.add_link(poll);
    }
    span
}

/// Makes `span` a child of a W3C trace context read from another transport (gRPC metadata,
/// HTTP headers): the `traceparent` and `tracestate` values, when present.
pub fn follow_w3c(span: &tracing::Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    let fields: std::collections::HashMap<String, String> =
        [("traceparent", traceparent), ("tracestate", tracestate)]
            .into_iter()
            .filter_map(|(key, value)| Some((key.to_owned(), value?.to_owned())))
            .collect();
    // NOTE: fails only when the span is disabled by the filter; then there is nothing to link.
    span.set_parent(TraceContextPropagator::new().extract(&fields))
        .ok();
}
