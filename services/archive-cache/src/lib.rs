//! The archive cache (spec §3.2 `ArchiveClient.fetch`, §7 caching) as a shared service: archived
//! 30-minute blocks of a talkgroup's calls over gRPC and as a NATS service, from a NATS KV cache
//! that every replica shares, so consumers need no Broadcastify login and the upstream sees one
//! request per block, within the account's session and budget shared with the poller.
//!
//! # Layout
//!
//! - [`config`]: the settings;
//! - [`archive`]: freshness, single-flight across replicas, the upstream fetch, [`ArchiveError`];
//! - [`cache`]: the [`BlockCache`] trait and its KV implementation;
//! - [`grpc`]: `broadcastify.v1.ArchiveService`, with health and reflection;
//! - [`nats_api`]: the NATS micro service;
//! - [`metrics`]: Prometheus metrics.

pub mod archive;
pub mod cache;
pub mod config;
pub mod grpc;
pub mod metrics;
pub mod nats_api;

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use bcfy_broadcastify::{Client, LocalSession, SessionSource};
use bcfy_bus::ensure::ensure_topology_retrying;
use bcfy_bus::topology::{KV_ARCHIVE_CACHE, KV_UPSTREAM_BUDGET, KV_UPSTREAM_SESSION, Topology};
use bcfy_proto::archive_service_server::ArchiveServiceServer;
use bcfy_runtime::admin::{Readiness, serve_with_admin};
use bcfy_upstream::{KvSession, UpstreamGate};
use futures::StreamExt as _;
use secrecy::ExposeSecret as _;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

pub use archive::{Archive, ArchiveError};
pub use cache::{BlockCache, BlockKey, KvBlockCache};
pub use config::ArchiveCacheConfig;

/// Pause between attempts to set up NATS.
const RETRY: Duration = Duration::from_secs(2);

/// Why the archive cache could not run.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveCacheError {
    /// The admin port could not be bound.
    #[error("cannot bind the admin port")]
    Admin(#[source] std::io::Error),
    /// NATS settings could not be used.
    #[error(transparent)]
    Connect(#[from] bcfy_bus::connect::ConnectError),
    /// A KV bucket could not be opened.
    #[error("cannot open the KV bucket `{bucket}`")]
    Bucket {
        /// The bucket.
        bucket: &'static str,
        /// The cause.
        #[source]
        source: async_nats::jetstream::context::KeyValueError,
    },
    /// The cache bucket could not be set up.
    #[error(transparent)]
    Cache(#[from] cache::CacheError),
    /// The Broadcastify client could not be built.
    #[error(transparent)]
    Client(#[from] bcfy_broadcastify::client::BuildError),
    /// The gRPC port could not be bound, or its TLS files read.
    #[error("cannot set up the gRPC server: {0}")]
    Grpc(String),
    /// The NATS service could not start.
    #[error(transparent)]
    NatsApi(#[from] nats_api::NatsApiError),
    /// Metrics could not be registered.
    #[error("cannot register metrics")]
    Metrics(#[source] prometheus::Error),
}

/// Runs the archive cache with its admin port until `shutdown`.
///
/// # Errors
///
/// When a port, NATS, a bucket, the client or the metrics cannot be set up.
pub async fn run(
    config: ArchiveCacheConfig,
    shutdown: CancellationToken,
) -> Result<(), ArchiveCacheError> {
    let addr = config.admin.listen_addr;
    serve_with_admin(addr, shutdown.clone(), |readiness, registry| {
        serve(config, shutdown, readiness, registry)
    })
    .await
    .map_err(ArchiveCacheError::Admin)?
}

fn default_instance_id() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "archive-cache".to_owned());
    format!("{host}-{}", std::process::id())
}

fn grpc_error(error: impl std::fmt::Display) -> ArchiveCacheError {
    ArchiveCacheError::Grpc(error.to_string())
}

fn tls(config: &config::TlsConfig) -> Result<ServerTlsConfig, ArchiveCacheError> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| grpc_error(format!("{}: {e}", path.display())))
    };
    let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(
        read(&config.cert_path)?,
        read(&config.key_path)?,
    ));
    if let Some(ca) = &config.client_ca_path {
        tls = tls.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(tls)
}

/// Runs the archive cache with the caller's readiness and metrics registry (tests inspect
/// them).
///
/// # Errors
///
/// As [`run`].
pub async fn serve(
    config: ArchiveCacheConfig,
    shutdown: CancellationToken,
    readiness: Readiness,
    registry: prometheus::Registry,
) -> Result<(), ArchiveCacheError> {
    let ready = readiness.latch("nats");
    let metrics = metrics::Metrics::register(&registry).map_err(ArchiveCacheError::Metrics)?;
    let nats = bcfy_bus::connect::connect(&config.nats, "archive-cache").await?;
    let js = jetstream::new(nats.clone());
    let topology = Topology::new(config.topology.clone());
    if !ensure_topology_retrying(&js, &topology, RETRY, &shutdown).await {
        return Ok(());
    }
    cache::evict_oldest_when_full(&js, KV_ARCHIVE_CACHE).await?;
    let bucket = |bucket: &'static str| {
        let js = js.clone();
        async move {
            js.get_key_value(bucket)
                .await
                .map_err(|source| ArchiveCacheError::Bucket { bucket, source })
        }
    };
    let instance = config
        .instance_id
        .clone()
        .unwrap_or_else(default_instance_id);
    let session: Arc<dyn SessionSource> =
        match (&config.broadcastify.username, &config.broadcastify.password) {
            (Some(username), Some(password)) => Arc::new(KvSession::new(
                bucket(KV_UPSTREAM_SESSION).await?,
                username,
                password.expose_secret(),
                instance.clone(),
            )),
            _ => Arc::new(LocalSession::default()),
        };
    let client = Client::with_session_source(config.broadcastify.clone(), session)?;
    let gate = UpstreamGate::new(
        bucket(KV_UPSTREAM_BUDGET).await?,
        config.rate_limit_per_minute,
    );
    let archive = Arc::new(Archive::new(
        KvBlockCache::new(bucket(KV_ARCHIVE_CACHE).await?),
        client,
        gate,
        config.cache.clone(),
        config.budget_wait_max,
        instance.clone(),
        metrics.clone(),
    ));

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<ArchiveServiceServer<grpc::GrpcArchive<KvBlockCache>>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(bcfy_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(grpc_error)?;
    let mut server = Server::builder();
    if let Some(settings) = &config.grpc.tls {
        server = server.tls_config(tls(settings)?).map_err(grpc_error)?;
    }
    // The NATS API is registered before the gRPC port opens: once either answers, both do.
    let nats_api = if config.nats_service.enabled {
        Some(nats_api::start(&nats, &config.nats_service, config.max_range_blocks).await?)
    } else {
        None
    };
    let listener = tokio::net::TcpListener::bind(config.grpc.listen_addr)
        .await
        .map_err(|e| grpc_error(format!("{}: {e}", config.grpc.listen_addr)))?;
    tracing::info!(grpc = %listener.local_addr().map_err(grpc_error)?, instance = %instance, "Archive cache started.");
    let grpc = server
        .add_service(health_service)
        .add_service(reflection)
        .add_service(ArchiveServiceServer::new(grpc::GrpcArchive::new(
            Arc::clone(&archive),
            config.max_range_blocks,
            metrics.clone(),
        )))
        .serve_with_incoming_shutdown(
            // Small answers must not wait for Nagle's algorithm (a 40 ms stall per ACK delay).
            tokio_stream::wrappers::TcpListenerStream::new(listener).map(|stream| {
                let stream = stream?;
                stream.set_nodelay(true)?;
                Ok::<_, std::io::Error>(stream)
            }),
            shutdown.clone().cancelled_owned(),
        );
    let nats_api = async {
        match nats_api {
            Some(api) => api.serve(archive, metrics, shutdown.clone()).await,
            None => Ok(()),
        }
    };
    ready.set_ready();
    let (grpc, nats_api) = tokio::join!(grpc, nats_api);
    grpc.map_err(grpc_error)?;
    nats_api?;
    tracing::info!("Archive cache stopped.");
    Ok(())
}
