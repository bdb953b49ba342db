//! The NATS API: the archive as a NATS micro service (`$SRV.PING|INFO|STATS` discovery, so
//! `nats micro ls` finds it), for clients that speak only NATS, protobuf in and out:
//!
//! - `{prefix}.get`: a `GetArchivedCallsRequest`, answered with a `GetArchivedCallsResponse`
//!   (the same bytes gRPC sends);
//! - `{prefix}.range`: a `StreamArchivedCallsRequest`, answered with one `ArchiveRange` holding
//!   every block (request/reply has one answer; gRPC streams them instead).
//!
//! Errors carry the gRPC code number and the message in the service error headers.

use std::sync::Arc;

use async_nats::service::{self, ServiceExt as _};
use bcfy_bus::trace_context;
use bcfy_proto::{
    ArchiveRange, GetArchivedCallsRequest, GetArchivedCallsResponse, StreamArchivedCallsRequest,
};
use bcfy_runtime::service::micro::respond;
use bytes::Bytes;
use futures::StreamExt as _;
use prost::Message as _;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::archive::{Archive, ArchiveError};
use crate::cache::BlockCache;
use crate::config::NatsServiceConfig;
use crate::grpc::status;
use crate::metrics::Metrics;
use crate::request::{self, block_key, block_range};

/// Why the NATS service could not start or stop.
#[derive(Debug, thiserror::Error)]
pub enum NatsApiError {
    /// NATS refused the service's registration.
    #[error("cannot register the NATS service `{name}`")]
    Register {
        /// The service name.
        name: String,
        /// Why.
        #[source]
        source: async_nats::Error,
    },
    /// NATS refused an endpoint's subscription.
    #[error("cannot add the NATS endpoint `{subject}`")]
    Endpoint {
        /// The endpoint's subject.
        subject: String,
        /// Why.
        #[source]
        source: async_nats::Error,
    },
    /// The service could not leave cleanly.
    #[error("cannot stop the NATS service")]
    Stop(#[source] async_nats::Error),
}

/// The two queries.
#[derive(Debug, Clone, Copy)]
enum Query {
    Get,
    Range { max_blocks: u32 },
}

async fn get<C: BlockCache>(archive: &Archive<C>, payload: &[u8]) -> Result<Bytes, ArchiveError> {
    let request: GetArchivedCallsRequest = request::decode(payload)?;
    let key = block_key(request.sid, request.talkgroup, request.time)?;
    let result = archive.get(key).await?;
    Ok(Bytes::from(
        GetArchivedCallsResponse {
            result: Some(result),
        }
        .encode_to_vec(),
    ))
}

async fn range<C: BlockCache>(
    archive: &Archive<C>,
    payload: &[u8],
    max_blocks: u32,
) -> Result<Bytes, ArchiveError> {
    let request: StreamArchivedCallsRequest = request::decode(payload)?;
    let keys = block_range(
        request.sid,
        request.talkgroup,
        request.start,
        request.end,
        max_blocks,
    )?;
    let mut results = Vec::with_capacity(keys.len());
    for key in keys {
        results.push(archive.get(key).await?);
    }
    Ok(Bytes::from(ArchiveRange { results }.encode_to_vec()))
}

/// The registered service and its endpoints.
pub struct NatsApi {
    service: service::Service,
    get: service::endpoint::Endpoint,
    range: service::endpoint::Endpoint,
    max_range_blocks: u32,
}

impl std::fmt::Debug for NatsApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsApi").finish_non_exhaustive()
    }
}

/// Registers the service and its endpoints (requests queue from then on).
///
/// # Errors
///
/// When the service or an endpoint cannot be registered.
pub async fn start(
    client: &async_nats::Client,
    config: &NatsServiceConfig,
    max_range_blocks: u32,
) -> Result<NatsApi, NatsApiError> {
    let service = client
        .service_builder()
        .description("Archived 30-minute blocks of Broadcastify calls, cached")
        .start(&config.name, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|source| NatsApiError::Register {
            name: config.name.clone(),
            source,
        })?;
    let endpoint = |name: &str| {
        let subject = format!("{}.{name}", config.subject_prefix);
        let endpoint = service.endpoint(subject.clone());
        async move {
            endpoint
                .await
                .map_err(|source| NatsApiError::Endpoint { subject, source })
        }
    };
    let get = endpoint("get").await?;
    let range = endpoint("range").await?;
    Ok(NatsApi {
        service,
        get,
        range,
        max_range_blocks,
    })
}

impl NatsApi {
    /// Answers requests until `shutdown`, each in its own task; then leaves the service.
    ///
    /// # Errors
    ///
    /// When the service cannot be stopped cleanly.
    pub async fn serve<C: BlockCache>(
        mut self,
        archive: Arc<Archive<C>>,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> Result<(), NatsApiError> {
        let range_query = Query::Range {
            max_blocks: self.max_range_blocks,
        };
        loop {
            let (request, query) = tokio::select! {
                () = shutdown.cancelled() => break,
                request = self.get.next() => (request, Query::Get),
                request = self.range.next() => (request, range_query),
            };
            let Some(request) = request else { break };
            let archive = Arc::clone(&archive);
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let payload = &request.message.payload;
                let name = match query {
                    Query::Get => "archive_get",
                    Query::Range { .. } => "archive_range",
                };
                let span = tracing::info_span!("archive_request", otel.name = name, api = "nats");
                trace_context::follow(&span, request.message.headers.as_ref());
                let reply = match query {
                    Query::Get => get(&archive, payload).instrument(span).await,
                    Query::Range { max_blocks } => {
                        range(&archive, payload, max_blocks).instrument(span).await
                    }
                };
                respond(
                    request,
                    reply.map_err(|error| status(&error)),
                    &metrics.answers,
                )
                .await;
            });
        }
        self.service.stop().await.map_err(NatsApiError::Stop)
    }
}
