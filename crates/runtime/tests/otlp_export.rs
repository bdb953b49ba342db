//! Spans reach a real (in-process) OTLP/gRPC collector, with the service name as resource.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bcfy_runtime::telemetry::{self, LogConfig, OtlpSettings};
use bcfy_test_support::eventually;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tonic::codec::CompressionEncoding;

/// Records every export request it receives.
#[derive(Clone, Default)]
struct Collector {
    requests: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.requests.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl Collector {
    /// (service.name, span name) of every span received so far.
    fn spans(&self) -> Vec<(String, String)> {
        let requests = self.requests.lock().unwrap();
        let mut spans = Vec::new();
        for resource_spans in requests.iter().flat_map(|r| &r.resource_spans) {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref())
                .map(|v| format!("{:?}", v.value))
                .unwrap_or_default();
            for span in resource_spans.scope_spans.iter().flat_map(|s| &s.spans) {
                spans.push((service.clone(), span.name.clone()));
            }
        }
        spans
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_grpc_collector() -> anyhow::Result<()> {
    let collector = Collector::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let service =
        TraceServiceServer::new(collector.clone()).accept_compressed(CompressionEncoding::Gzip);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener)),
    );

    let env = [("OTEL_EXPORTER_OTLP_ENDPOINT".to_owned(), endpoint)].into();
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
    assert_eq!(spans[0].1, "poll_shard");
    assert!(
        spans[0].0.contains("otlp-test-service"),
        "resource: {}",
        spans[0].0
    );
    Ok(())
}
