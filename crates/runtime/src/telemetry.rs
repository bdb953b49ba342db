//! Logs and traces: `tracing` with JSON or plain logs, and OTLP trace export driven by the
//! standard `OTEL_*` environment variables.
//!
//! Trace export is on when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `..._TRACES_ENDPOINT`) is set or
//! `OTEL_TRACES_EXPORTER=otlp`, and off when `OTEL_SDK_DISABLED=true` or
//! `OTEL_TRACES_EXPORTER=none`. `OTEL_EXPORTER_OTLP_PROTOCOL` picks `grpc` (default) or
//! `http/protobuf`; `OTEL_SERVICE_NAME` overrides the service name. The W3C trace-context
//! propagator is installed globally so `traceparent` headers link spans across services.

use std::collections::BTreeMap;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig as _, WithTonicConfig as _};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use serde::Deserialize;
use tracing::Subscriber;
use tracing_subscriber::{EnvFilter, Layer as _, layer::SubscriberExt as _, registry::LookupSpan};

use bcfy_config::{ConfigIssue, Validate};

/// Log output settings (`log.format`, `log.filter`).
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct LogConfig {
    /// `plain` for people, `json` for log collectors (one object per line).
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `info,bcfy_bus=debug`; `RUST_LOG` wins when set.
    pub filter: String,
}

/// How log lines are written.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line, with span fields (such as `call_id`).
    Json,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Plain,
            filter: "info".to_owned(),
        }
    }
}

impl Validate for LogConfig {
    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>) {
        if let Err(error) = EnvFilter::try_new(&self.filter) {
            issues.push(ConfigIssue::new(
                prefix,
                "filter",
                format!("not a log filter: {error}"),
            ));
        }
    }
}

/// Which wire protocol the OTLP exporter speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/gRPC (default port 4317).
    Grpc,
    /// OTLP/HTTP with protobuf bodies (default port 4318).
    HttpProtobuf,
}

/// OTLP trace export settings, read from the standard `OTEL_*` variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OtlpSettings {
    /// Where spans go; `None` means export is off.
    pub endpoint: Option<String>,
    /// The wire protocol.
    pub protocol: OtlpProtocol,
    /// `OTEL_SERVICE_NAME`, when set.
    pub service_name: Option<String>,
}

impl OtlpSettings {
    /// Settings from the process environment.
    pub fn from_process_env() -> Self {
        Self::from_env(&std::env::vars().collect())
    }

    /// Settings from an environment map (tests pass their own).
    pub fn from_env(env: &BTreeMap<String, String>) -> Self {
        let get = |key: &str| env.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
        let protocol = match get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .or_else(|| get("OTEL_EXPORTER_OTLP_PROTOCOL"))
        {
            Some(p) if p.starts_with("http") => OtlpProtocol::HttpProtobuf,
            _ => OtlpProtocol::Grpc,
        };
        let disabled = get("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"))
            || get("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("none"));
        let default_endpoint = match protocol {
            OtlpProtocol::Grpc => "http://localhost:4317",
            OtlpProtocol::HttpProtobuf => "http://localhost:4318",
        };
        let endpoint = if disabled {
            None
        } else if let Some(traces) = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            Some(traces.to_owned())
        } else if let Some(base) = get("OTEL_EXPORTER_OTLP_ENDPOINT") {
            Some(signal_endpoint(base, protocol))
        } else if get("OTEL_TRACES_EXPORTER").is_some_and(|v| v.eq_ignore_ascii_case("otlp")) {
            Some(signal_endpoint(default_endpoint, protocol))
        } else {
            None
        };
        Self {
            endpoint,
            protocol,
            service_name: get("OTEL_SERVICE_NAME").map(str::to_owned),
        }
    }
}

/// The traces endpoint for a base endpoint: HTTP appends `/v1/traces`, gRPC uses it as is.
fn signal_endpoint(base: &str, protocol: OtlpProtocol) -> String {
    match protocol {
        OtlpProtocol::Grpc => base.to_owned(),
        OtlpProtocol::HttpProtobuf => format!("{}/v1/traces", base.trim_end_matches('/')),
    }
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built (bad endpoint).
    #[error("cannot build the OTLP span exporter")]
    Exporter(#[source] opentelemetry_otlp::ExporterBuildError),
    /// A global subscriber was already installed.
    #[error("a tracing subscriber is already installed")]
    AlreadyInstalled(#[source] tracing::subscriber::SetGlobalDefaultError),
}

/// Keeps the trace pipeline alive; flushes and shuts it down on drop (blocking briefly, so
/// drop it after the async work is done).
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Exports every finished span now (blocking).
    pub fn flush(&self) {
        if let Some(Err(error)) = self.provider.as_ref().map(SdkTracerProvider::force_flush) {
            tracing::warn!(error = %error, "Flushing spans failed.");
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // NOTE: errors here have nowhere useful to go; the process is exiting.
            provider.shutdown().ok();
        }
    }
}

/// Installs the global subscriber (logs + optional OTLP traces) and the W3C propagator.
///
/// Call inside the Tokio runtime (the gRPC exporter spawns its worker there).
///
/// # Errors
///
/// When the exporter cannot be built or a subscriber is already installed.
pub fn init(
    service: &str,
    log: &LogConfig,
    otlp: &OtlpSettings,
) -> Result<TelemetryGuard, TelemetryError> {
    let (subscriber, guard) = build(service, log, otlp)?;
    tracing::subscriber::set_global_default(subscriber)
        .map_err(TelemetryError::AlreadyInstalled)?;
    Ok(guard)
}

/// Builds the subscriber without installing it (tests scope it with `with_default`).
///
/// # Errors
///
/// When the exporter cannot be built.
pub fn build(
    service: &str,
    log: &LogConfig,
    otlp: &OtlpSettings,
) -> Result<(impl Subscriber + Send + Sync + 'static, TelemetryGuard), TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let filter = EnvFilter::try_from_default_env().or_else(|_| EnvFilter::try_new(&log.filter));
    let filter = filter.unwrap_or_else(|_| EnvFilter::new("info"));
    // NOTE: spans always get OpenTelemetry trace ids, exported or not, so every published
    // event carries `traceparent` and downstream services continue the same trace.
    let provider = tracer_provider(service, otlp)?;
    let otel_layer =
        tracing_opentelemetry::layer().with_tracer(provider.tracer(service.to_owned()));
    let provider = Some(provider);
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer(log.format))
        .with(otel_layer);
    Ok((subscriber, TelemetryGuard { provider }))
}

fn fmt_layer<S>(format: LogFormat) -> Box<dyn tracing_subscriber::Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    match format {
        LogFormat::Plain => tracing_subscriber::fmt::layer().boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    }
}

/// A tracer provider that exports to the configured endpoint, or only assigns ids when export
/// is off.
fn tracer_provider(
    service: &str,
    otlp: &OtlpSettings,
) -> Result<SdkTracerProvider, TelemetryError> {
    let service_name = otlp
        .service_name
        .clone()
        .unwrap_or_else(|| service.to_owned());
    let resource = Resource::builder().with_service_name(service_name).build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let Some(endpoint) = otlp.endpoint.as_deref() else {
        return Ok(builder.build());
    };
    let exporter = match otlp.protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_compression(opentelemetry_otlp::Compression::Gzip)
            .build(),
        OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(endpoint)
            .build(),
    }
    .map_err(TelemetryError::Exporter)?;
    Ok(builder.with_batch_exporter(exporter).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(vars: &[(&str, &str)]) -> OtlpSettings {
        OtlpSettings::from_env(
            &vars
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn export_is_off_without_otel_variables() {
        assert_eq!(settings(&[]).endpoint, None);
    }

    #[test]
    fn standard_variables_choose_endpoint_and_protocol() {
        let grpc = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")]);
        assert_eq!(grpc.endpoint.as_deref(), Some("http://collector:4317"));
        assert_eq!(grpc.protocol, OtlpProtocol::Grpc);

        let http = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_SERVICE_NAME", "poller-a"),
        ]);
        assert_eq!(
            http.endpoint.as_deref(),
            Some("http://collector:4318/v1/traces")
        );
        assert_eq!(http.service_name.as_deref(), Some("poller-a"));

        let traces_only = settings(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:1/x")]);
        assert_eq!(traces_only.endpoint.as_deref(), Some("http://t:1/x"));

        let default = settings(&[("OTEL_TRACES_EXPORTER", "otlp")]);
        assert_eq!(default.endpoint.as_deref(), Some("http://localhost:4317"));
    }

    #[test]
    fn sdk_disabled_wins() {
        let off = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_SDK_DISABLED", "true"),
        ]);
        assert_eq!(off.endpoint, None);
    }

    #[test]
    fn a_bad_log_filter_is_a_config_issue() {
        let mut issues = Vec::new();
        LogConfig {
            filter: "info,[".into(),
            ..LogConfig::default()
        }
        .validate("log", &mut issues);
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].setting, "log.filter");
    }
}
