//! Idempotent creation of the topology at startup: creates what is missing, never deletes or
//! rewrites anything, and reports where an existing resource differs from its declaration
//! (config drift) so an operator can decide; changing a live stream's limits is their call.

use std::fmt;

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::{self, consumer::PullConsumer, kv, stream};

use crate::topology::{ConsumerSpec, Topology};

/// One setting where a live resource differs from its declaration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    /// E.g. `stream CALLS_LIVE` or `bucket poller-cursors`.
    pub resource: String,
    /// The setting, e.g. `max_bytes`.
    pub setting: &'static str,
    /// What the code declares.
    pub declared: String,
    /// What the server has.
    pub actual: String,
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: declared {}, server has {}",
            self.resource, self.setting, self.declared, self.actual
        )
    }
}

/// Why the topology could not be ensured.
#[derive(Debug, thiserror::Error)]
pub enum EnsureError {
    /// A stream could not be looked up or created.
    #[error("cannot ensure stream {name}")]
    Stream {
        /// The stream.
        name: String,
        /// Why.
        #[source]
        source: async_nats::Error,
    },
    /// A KV bucket could not be looked up or created.
    #[error("cannot ensure KV bucket {name}")]
    Bucket {
        /// The bucket.
        name: String,
        /// Why.
        #[source]
        source: async_nats::Error,
    },
    /// A consumer could not be looked up or created.
    #[error("cannot ensure consumer {name} on {stream}")]
    Consumer {
        /// The stream.
        stream: &'static str,
        /// The durable name.
        name: String,
        /// Why.
        #[source]
        source: async_nats::Error,
    },
}

/// Collects drift by comparing the `Debug` form of declared and actual values.
struct DriftCollector<'a> {
    resource: String,
    drift: &'a mut Vec<Drift>,
}

impl DriftCollector<'_> {
    fn compare<T: PartialEq + fmt::Debug>(
        &mut self,
        setting: &'static str,
        declared: &T,
        actual: &T,
    ) {
        if declared != actual {
            self.drift.push(Drift {
                resource: self.resource.clone(),
                setting,
                declared: format!("{declared:?}"),
                actual: format!("{actual:?}"),
            });
        }
    }
}

/// Makes sure every stream and KV bucket of `topology` exists; returns the drift found.
///
/// # Errors
///
/// When NATS refuses or cannot be reached; nothing is deleted in any case.
pub async fn ensure_topology(
    js: &jetstream::Context,
    topology: &Topology,
) -> Result<Vec<Drift>, EnsureError> {
    let mut drift = Vec::new();
    for declared in topology.streams() {
        let name = declared.name.clone();
        let failed = |source| EnsureError::Stream {
            name: name.clone(),
            source,
        };
        let mut stream = js
            .get_or_create_stream(declared.clone())
            .await
            .map_err(|e| failed(e.into()))?;
        let actual = stream
            .info()
            .await
            .map_err(|e| failed(e.into()))?
            .config
            .clone();
        compare_stream(
            &mut DriftCollector {
                resource: format!("stream {name}"),
                drift: &mut drift,
            },
            &declared,
            &actual,
        );
    }
    for declared in topology.buckets() {
        ensure_bucket(js, declared, &mut drift).await?;
    }
    log_drift(&drift);
    Ok(drift)
}

fn compare_stream(c: &mut DriftCollector<'_>, declared: &stream::Config, actual: &stream::Config) {
    c.compare("subjects", &declared.subjects, &actual.subjects);
    c.compare("retention", &declared.retention, &actual.retention);
    c.compare("discard", &declared.discard, &actual.discard);
    c.compare("storage", &declared.storage, &actual.storage);
    c.compare("num_replicas", &declared.num_replicas, &actual.num_replicas);
    c.compare("max_age", &declared.max_age, &actual.max_age);
    c.compare("max_bytes", &declared.max_bytes, &actual.max_bytes);
    c.compare(
        "duplicate_window",
        &declared.duplicate_window,
        &actual.duplicate_window,
    );
    if declared.max_message_size > 0 {
        c.compare(
            "max_message_size",
            &declared.max_message_size,
            &actual.max_message_size,
        );
    }
}

async fn ensure_bucket(
    js: &jetstream::Context,
    declared: kv::Config,
    drift: &mut Vec<Drift>,
) -> Result<(), EnsureError> {
    let name = declared.bucket.clone();
    let failed = |source| EnsureError::Bucket {
        name: name.clone(),
        source,
    };
    let stream_name = format!("KV_{name}");
    match js.get_stream(&stream_name).await {
        Ok(mut stream) => {
            let actual = stream
                .info()
                .await
                .map_err(|e| failed(e.into()))?
                .config
                .clone();
            let c = &mut DriftCollector {
                resource: format!("bucket {name}"),
                drift,
            };
            c.compare(
                "history",
                &declared.history,
                &actual.max_messages_per_subject,
            );
            c.compare("max_age", &declared.max_age, &actual.max_age);
            c.compare(
                "num_replicas",
                &declared.num_replicas.max(1),
                &actual.num_replicas,
            );
            c.compare(
                "limit_markers",
                &declared.limit_markers,
                &actual.subject_delete_marker_ttl,
            );
            if declared.max_bytes > 0 {
                c.compare("max_bytes", &declared.max_bytes, &actual.max_bytes);
            }
            Ok(())
        }
        Err(error) if is_not_found(&error) => {
            js.create_key_value(declared)
                .await
                .map_err(|e| failed(e.into()))?;
            tracing::info!(bucket = %name, "Created KV bucket.");
            Ok(())
        }
        Err(error) => Err(failed(error.into())),
    }
}

fn is_not_found(error: &jetstream::context::GetStreamError) -> bool {
    matches!(
        error.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(e) if e.error_code() == ErrorCode::STREAM_NOT_FOUND
    )
}

/// [`ensure_topology`] until it succeeds (NATS may start after the service), pausing `every`
/// between attempts; false when `shutdown` came first.
pub async fn ensure_topology_retrying(
    js: &jetstream::Context,
    topology: &Topology,
    every: std::time::Duration,
    shutdown: &tokio_util::sync::CancellationToken,
) -> bool {
    loop {
        match ensure_topology(js, topology).await {
            Ok(_) => return true,
            Err(error) => tracing::warn!(error = %error, "NATS not ready; retrying."),
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.cancelled() => return false,
        }
    }
}

/// Makes sure a durable consumer exists and returns it, with any drift (also logged).
///
/// # Errors
///
/// When NATS refuses or cannot be reached.
pub async fn ensure_consumer(
    js: &jetstream::Context,
    spec: &ConsumerSpec,
) -> Result<(PullConsumer, Vec<Drift>), EnsureError> {
    let failed = |source| EnsureError::Consumer {
        stream: spec.stream,
        name: spec.durable_name.clone(),
        source,
    };
    let stream = js
        .get_stream(spec.stream)
        .await
        .map_err(|e| failed(e.into()))?;
    let declared = spec.to_config();
    let mut consumer = stream
        .get_or_create_consumer(&spec.durable_name, declared.clone())
        .await
        .map_err(|e| failed(e.into()))?;
    let actual = consumer
        .info()
        .await
        .map_err(|e| failed(e.into()))?
        .config
        .clone();
    let mut drift = Vec::new();
    let c = &mut DriftCollector {
        resource: format!("consumer {}/{}", spec.stream, spec.durable_name),
        drift: &mut drift,
    };
    c.compare(
        "filter_subject",
        &declared.filter_subject,
        &actual.filter_subject,
    );
    c.compare("ack_policy", &declared.ack_policy, &actual.ack_policy);
    c.compare("ack_wait", &declared.ack_wait, &actual.ack_wait);
    c.compare("max_deliver", &declared.max_deliver, &actual.max_deliver);
    c.compare(
        "max_ack_pending",
        &declared.max_ack_pending,
        &actual.max_ack_pending,
    );
    log_drift(&drift);
    Ok((consumer, drift))
}

fn log_drift(drift: &[Drift]) {
    for item in drift {
        tracing::warn!(drift = %item, "Declared JetStream config differs from the server; not changing it.");
    }
}
