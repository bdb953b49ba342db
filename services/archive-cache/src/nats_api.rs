//! The NATS API: the archive as a NATS micro service (`$SRV.PING|INFO|STATS` discovery, so
//! `nats micro ls` finds it), for clients that speak only NATS. Endpoint `{prefix}.get` takes a
//! `GetArchivedCallsRequest` and answers a `GetArchivedCallsResponse` (protobuf, the same bytes
//! gRPC sends); errors carry the gRPC code number and message in the service error headers.

use std::sync::Arc;

use async_nats::service::{self, ServiceExt as _};
use bcfy_proto::{GetArchivedCallsRequest, GetArchivedCallsResponse};
use bytes::Bytes;
use futures::StreamExt as _;
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use crate::archive::{Archive, ArchiveError, block_key};
use crate::cache::BlockCache;
use crate::config::NatsServiceConfig;
use crate::grpc::status;
use crate::metrics::Metrics;

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the NATS service: {0}")]
pub struct NatsApiError(String);

async fn answer<C: BlockCache>(
    archive: &Archive<C>,
    payload: &[u8],
) -> Result<Bytes, ArchiveError> {
    let request = GetArchivedCallsRequest::decode(payload).map_err(|e| {
        ArchiveError::InvalidArgument(format!("not a GetArchivedCallsRequest: {e}"))
    })?;
    let key = block_key(request.sid, request.talkgroup, request.time)?;
    let result = archive.get(key).await?;
    Ok(Bytes::from(
        GetArchivedCallsResponse {
            result: Some(result),
        }
        .encode_to_vec(),
    ))
}

/// The registered service and its endpoint.
pub struct NatsApi {
    service: service::Service,
    get: service::endpoint::Endpoint,
}

impl std::fmt::Debug for NatsApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsApi").finish_non_exhaustive()
    }
}

/// Registers the service and its endpoint (requests queue from then on).
///
/// # Errors
///
/// When the service or its endpoint cannot be registered.
pub async fn start(
    client: &async_nats::Client,
    config: &NatsServiceConfig,
) -> Result<NatsApi, NatsApiError> {
    let service = client
        .service_builder()
        .description("Archived 30-minute blocks of Broadcastify calls, cached")
        .start(&config.name, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|e| NatsApiError(e.to_string()))?;
    let get = service
        .endpoint(format!("{}.get", config.subject_prefix))
        .await
        .map_err(|e| NatsApiError(e.to_string()))?;
    Ok(NatsApi { service, get })
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
        loop {
            let request = tokio::select! {
                () = shutdown.cancelled() => break,
                request = self.get.next() => match request {
                    Some(request) => request,
                    None => break,
                },
            };
            let archive = Arc::clone(&archive);
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let reply = answer(&archive, &request.message.payload).await;
                let code = match &reply {
                    Ok(_) => tonic::Code::Ok,
                    Err(error) => status(error).code(),
                };
                metrics
                    .answers
                    .with_label_values(&["nats", &format!("{code:?}")])
                    .inc();
                let reply = reply.map_err(|error| service::error::Error {
                    status: error.to_string(),
                    code: code as usize,
                });
                if let Err(error) = request.respond(reply).await {
                    tracing::warn!(error = %error, "Cannot answer a NATS request.");
                }
            });
        }
        self.service
            .stop()
            .await
            .map_err(|e| NatsApiError(e.to_string()))
    }
}
