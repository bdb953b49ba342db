//! Spans reach a real (in-process) OTLP/gRPC collector, with the service name as resource.

use std::time::Duration;

use bcfy_runtime::telemetry::{self, LogConfig, OtlpSettings};
use bcfy_test_support::eventually;
use bcfy_test_support::otlp::Collector;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_grpc_collector() -> anyhow::Result<()> {
    let collector = Collector::start().await;
    let env = [(
        "OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(),
        collector.endpoint().to_owned(),
    )]
    .into();
    let (subscriber, guard) = telemetry::build(
        "otlp-test-service",
        &LogConfig::default(),
        &OtlpSettings::from_env(&env),
    )?;
    tracing::subscriber::with_default(subscriber, || {
        let span = tracing::info_span!("poll_shard", shard = "fire-dispatch");
        span.in_scope(|| tracing::info!("Inside the span."));
    });
    tokio::task::spawn_blocking(move || guard.flush()).await?;

    let spans = eventually(
        Duration::from_secs(10),
        "the span at the collector",
        || async {
            let spans = collector.spans();
            (!spans.is_empty()).then_some(spans)
        },
    )
    .await;
    assert_eq!(spans.len(), 1, "{spans:?}");
    assert_eq!(spans[0].name, "poll_shard");
    assert_eq!(spans[0].service, "otlp-test-service");
    assert_eq!(spans[0].attributes["shard"], "fire-dispatch");
    assert!(spans[0].parent_span_id.is_empty(), "a root span");
    Ok(())
}
