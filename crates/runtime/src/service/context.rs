//! What the runtime hands every service, already set up: the shutdown token, readiness, the
//! metrics registry, and on request a JetStream connection with the topology ensured and the
//! workers of durable consumers. A service's own code starts at its domain.

use std::time::Duration;

use async_nats::jetstream::{self, kv};
use bcfy_bus::Publisher;
use bcfy_bus::connect::NatsConfig;
use bcfy_bus::ensure::{EnsureError, ensure_consumer, ensure_topology_retrying};
use bcfy_bus::topology::{ConsumerSpec, Topology, TopologyConfig};
use tokio_util::sync::CancellationToken;

use super::signals::Signals;
use super::worker::Worker;
use crate::admin::{Readiness, ReadinessLatch};

/// Pause between attempts to set up the topology while NATS is not ready.
const SETUP_RETRY: Duration = Duration::from_secs(2);
/// The readiness latch every service releases once it can work.
const STARTED: &str = "nats";

/// Why a service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The NATS settings could not be used.
    #[error(transparent)]
    Connect(#[from] bcfy_bus::connect::ConnectError),
    /// A durable consumer could not be set up.
    #[error(transparent)]
    Consumer(#[from] EnsureError),
    /// The pull subscription could not be opened.
    #[error("cannot pull from consumer `{consumer}`")]
    Pull {
        /// The durable consumer.
        consumer: String,
        /// Why.
        #[source]
        source: jetstream::consumer::StreamError,
    },
    /// A KV bucket could not be opened.
    #[error("cannot open KV bucket `{bucket}`")]
    Bucket {
        /// The bucket.
        bucket: &'static str,
        /// Why.
        #[source]
        source: jetstream::context::KeyValueError,
    },
    /// The service's metrics could not be registered.
    #[error("cannot register metrics")]
    Metrics(#[source] prometheus::Error),
}

/// One service instance's shared parts; cheap to clone.
#[derive(Debug, Clone)]
pub struct Context {
    name: &'static str,
    shutdown: CancellationToken,
    readiness: Readiness,
    registry: prometheus::Registry,
    started: ReadinessLatch,
    signals: Signals,
}

impl Context {
    /// A context for service `name` with fresh readiness and metrics; not ready until
    /// [`Self::set_ready`].
    pub fn new(name: &'static str, shutdown: CancellationToken) -> Self {
        let readiness = Readiness::new();
        let started = readiness.latch(STARTED);
        let registry = prometheus::Registry::new();
        let signals = Signals::new(&registry).expect("a fresh registry has no metrics yet");
        Self {
            name,
            shutdown,
            readiness,
            registry,
            started,
            signals,
        }
    }

    /// The service's name (the NATS connection is named after it).
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Cancelled when the service must stop taking work and drain.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// The readiness latches behind `/readyz`; a service may add its own.
    pub fn readiness(&self) -> &Readiness {
        &self.readiness
    }

    /// The registry behind `/metrics`.
    pub fn registry(&self) -> &prometheus::Registry {
        &self.registry
    }

    /// The health figures this replica reports on `status.{service}` once connected.
    pub fn signals(&self) -> &Signals {
        &self.signals
    }

    /// Registers the service's metrics.
    ///
    /// # Errors
    ///
    /// [`StartError::Metrics`] when a metric clashes with one already registered.
    pub fn register<M>(
        &self,
        register: impl FnOnce(&prometheus::Registry) -> Result<M, prometheus::Error>,
    ) -> Result<M, StartError> {
        register(&self.registry).map_err(StartError::Metrics)
    }

    /// Releases the service's start latch: `/readyz` answers 200 once no other latch holds it.
    pub fn set_ready(&self) {
        self.started.set_ready();
    }

    /// Connects to NATS and ensures the topology, retrying while NATS is not ready. `None` when
    /// shutdown came first.
    ///
    /// # Errors
    ///
    /// [`StartError::Connect`] when the NATS settings cannot be used (a missing credentials
    /// file); NATS being down is waited out, not an error.
    pub async fn connect(
        &self,
        nats: &NatsConfig,
        topology: &TopologyConfig,
    ) -> Result<Option<Bus>, StartError> {
        let client = bcfy_bus::connect::connect(nats, self.name).await?;
        self.signals
            .spawn_reports(client.clone(), self.name, self.shutdown.clone());
        let js = jetstream::new(client.clone());
        let topology = Topology::new(topology.clone());
        if !ensure_topology_retrying(&js, &topology, SETUP_RETRY, &self.shutdown).await {
            return Ok(None);
        }
        Ok(Some(Bus {
            client,
            publisher: Publisher::new(js.clone()),
            js,
            topology,
        }))
    }
}

/// A NATS connection with the topology in place.
#[derive(Debug, Clone)]
pub struct Bus {
    /// The core NATS client (request/reply, micro services).
    pub client: async_nats::Client,
    /// JetStream on that client.
    pub js: jetstream::Context,
    /// The topology that was ensured.
    pub topology: Topology,
    /// Publishes events with dedup ids, content types and trace context.
    pub publisher: Publisher,
}

impl Bus {
    /// Opens KV bucket `bucket` (the topology created it).
    ///
    /// # Errors
    ///
    /// [`StartError::Bucket`] when NATS refuses.
    pub async fn bucket(&self, bucket: &'static str) -> Result<kv::Store, StartError> {
        self.js
            .get_key_value(bucket)
            .await
            .map_err(|source| StartError::Bucket { bucket, source })
    }

    /// Ensures durable consumer `spec` and opens its worker, pulling `concurrency` messages at
    /// a time.
    ///
    /// # Errors
    ///
    /// [`StartError::Consumer`] or [`StartError::Pull`] when NATS refuses.
    pub async fn worker(
        &self,
        spec: &ConsumerSpec,
        concurrency: usize,
    ) -> Result<Worker, StartError> {
        let concurrency = concurrency.max(1);
        let (consumer, _) = ensure_consumer(&self.js, spec).await?;
        let messages = consumer
            .stream()
            .max_messages_per_batch(concurrency)
            .messages()
            .await
            .map_err(|source| StartError::Pull {
                consumer: spec.durable_name.clone(),
                source,
            })?;
        Ok(Worker::new(messages, concurrency))
    }
}
