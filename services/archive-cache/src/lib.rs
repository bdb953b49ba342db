//! The archive cache (spec §3.2 `ArchiveClient.fetch`, §7 caching) as a shared service: archived
//! 30-minute blocks of a talkgroup's calls over gRPC and as a NATS service, from a NATS KV cache
//! that every replica shares, so consumers need no Broadcastify login and the upstream sees one
//! request per block, within the account's session and budget shared with the poller.
//!
//! With `directory.enabled` it also serves the Broadcastify directory ([`bcfy_directory`]):
//! the same shape of work — rare, cacheable upstream lookups for the whole fleet, within the same
//! request budget, over the same gRPC server and NATS connection — so it lives here rather than
//! in a seventh deployment.
//!
//! # Layout
//!
//! - [`config`]: the settings;
//! - [`request`]: every request checked at the API edge, the same for gRPC and NATS;
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
pub mod request;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bcfy_bus::topology::{KV_ARCHIVE_CACHE, KV_DIRECTORY};
use bcfy_directory::grpc::GrpcDirectory;
use bcfy_proto::archive_service_server::ArchiveServiceServer;
use bcfy_proto::directory_service_server::DirectoryServiceServer;
use bcfy_runtime::service::{Context, StartError};
use bcfy_upstream::{Fleet, FleetError};
use futures::StreamExt as _;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};

pub use archive::{Archive, ArchiveError};
pub use cache::{BlockCache, BlockKey, KvBlockCache};
pub use config::ArchiveCacheConfig;

/// Why the archive cache could not run.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveCacheError {
    /// NATS, a bucket or the metrics could not be set up.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The Broadcastify client or the fleet's shared state could not be set up.
    #[error(transparent)]
    Fleet(#[from] FleetError),
    /// The cache bucket could not be set up.
    #[error(transparent)]
    Cache(#[from] cache::CacheError),
    /// A TLS file of the gRPC server could not be read.
    #[error("cannot read TLS file {path}")]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC port could not be bound.
    #[error("cannot bind the gRPC port {addr}")]
    GrpcBind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The gRPC server could not be set up (TLS settings, reflection) or failed while serving.
    #[error("gRPC server failed")]
    Grpc(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The NATS service could not start.
    #[error(transparent)]
    NatsApi(#[from] nats_api::NatsApiError),
    /// The directory's NATS service could not start or stop.
    #[error(transparent)]
    DirectoryApi(#[from] bcfy_directory::nats_api::NatsApiError),
    /// The directory's HTTP client could not be built.
    #[error("cannot build the directory's HTTP client")]
    DirectoryClient(#[source] reqwest::Error),
}

/// The gRPC server's TLS settings, read from their files.
fn tls(config: &config::TlsConfig) -> Result<ServerTlsConfig, ArchiveCacheError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| ArchiveCacheError::TlsFile {
            path: path.to_owned(),
            source,
        })
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

/// Runs the archive cache until shutdown.
///
/// # Errors
///
/// When a port, NATS, a bucket, the client or the metrics cannot be set up.
pub async fn run(config: ArchiveCacheConfig, context: Context) -> Result<(), ArchiveCacheError> {
    let shutdown = context.shutdown();
    let metrics = context.register(metrics::Metrics::register)?;
    let Some(bus) = context.connect(&config.nats, &config.topology).await? else {
        return Ok(());
    };
    cache::evict_oldest_when_full(&bus.js, KV_ARCHIVE_CACHE).await?;
    let instance = bcfy_upstream::instance_id(config.instance_id.as_deref(), context.name());
    let fleet = Fleet::join(
        &bus.js,
        &config.broadcastify,
        instance,
        config.rate_limit_per_minute,
    )
    .await?;
    let archive = Arc::new(Archive::new(
        KvBlockCache::new(bus.bucket(KV_ARCHIVE_CACHE).await?),
        fleet.client,
        fleet.gate.clone(),
        config.cache.clone(),
        config.budget_wait_max,
        fleet.instance.clone(),
        metrics.clone(),
    ));

    let directory = if config.directory.enabled {
        let missing = config.directory.upstream.missing_secrets();
        if !missing.is_empty() {
            tracing::warn!(
                ?missing,
                "The directory lacks credentials; lookups that need them are refused until they are set."
            );
        }
        let metrics = context.register(bcfy_directory::metrics::Metrics::register)?;
        let upstream = bcfy_directory::Upstream::new(config.directory.upstream.clone())
            .map_err(ArchiveCacheError::DirectoryClient)?;
        let directory = Arc::new(bcfy_directory::Directory::new(
            bus.bucket(KV_DIRECTORY).await?,
            upstream,
            fleet.gate.clone(),
            config.directory.cache(config.budget_wait_max),
            fleet.instance.clone(),
            metrics.clone(),
        ));
        let api = bcfy_directory::nats_api::start(&bus.client).await?;
        Some((directory, api, metrics))
    } else {
        None
    };

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<ArchiveServiceServer<grpc::GrpcArchive<KvBlockCache>>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(bcfy_proto::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| ArchiveCacheError::Grpc(e.into()))?;
    let mut server = Server::builder();
    if let Some(settings) = &config.grpc.tls {
        server = server
            .tls_config(tls(settings)?)
            .map_err(|e| ArchiveCacheError::Grpc(e.into()))?;
    }
    // The NATS API is registered before the gRPC port opens: once either answers, both do.
    let nats_api = if config.nats_service.enabled {
        Some(nats_api::start(&bus.client, &config.nats_service, config.max_range_blocks).await?)
    } else {
        None
    };
    let addr = config.grpc.listen_addr;
    let bind_error = |source| ArchiveCacheError::GrpcBind { addr, source };
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(bind_error)?;
    tracing::info!(grpc = %listener.local_addr().map_err(bind_error)?, instance = %fleet.instance, "Archive cache started.");
    let grpc = server
        .add_service(health_service)
        .add_service(reflection)
        .add_service(ArchiveServiceServer::new(grpc::GrpcArchive::new(
            Arc::clone(&archive),
            config.max_range_blocks,
            metrics.clone(),
        )))
        .add_optional_service(directory.as_ref().map(|(directory, _, metrics)| {
            DirectoryServiceServer::new(GrpcDirectory::new(Arc::clone(directory), metrics.clone()))
        }))
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
    let directory_api = async {
        match directory {
            Some((directory, api, metrics)) => {
                api.serve(directory, metrics, shutdown.clone()).await
            }
            None => Ok(()),
        }
    };
    context.set_ready();
    let (grpc, nats_api, directory_api) = tokio::join!(grpc, nats_api, directory_api);
    grpc.map_err(|e| ArchiveCacheError::Grpc(e.into()))?;
    nats_api?;
    directory_api?;
    tracing::info!("Archive cache stopped.");
    Ok(())
}
