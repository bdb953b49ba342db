//! The gRPC API (`broadcastify.v1.ArchiveService`): one block, or a range streamed block after
//! block. Errors map to standard codes; UNAVAILABLE carries the delay to wait in the
//! `retry-after-ms` metadata.

use std::pin::Pin;
use std::sync::Arc;

use bcfy_broadcastify::error::Error as ClientError;
use bcfy_bus::consume::error_chain;
use bcfy_bus::trace_context;
use bcfy_proto::archive_service_server::ArchiveService;
use bcfy_proto::{
    GetArchivedCallsRequest, GetArchivedCallsResponse, StreamArchivedCallsRequest,
    StreamArchivedCallsResponse,
};
use futures::Stream;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use crate::archive::{Archive, ArchiveError};
use crate::cache::BlockCache;
use crate::metrics::Metrics;
use crate::request::{block_key, block_range};

/// The gRPC face of an [`Archive`].
#[derive(Debug)]
pub struct GrpcArchive<C> {
    archive: Arc<Archive<C>>,
    max_range_blocks: u32,
    metrics: Metrics,
}

impl<C> GrpcArchive<C> {
    /// Serves `archive`, with ranges of at most `max_range_blocks` blocks.
    pub fn new(archive: Arc<Archive<C>>, max_range_blocks: u32, metrics: Metrics) -> Self {
        Self {
            archive,
            max_range_blocks,
            metrics,
        }
    }
}

/// The gRPC status for an [`ArchiveError`].
pub fn status(error: &ArchiveError) -> Status {
    let message = error_chain(error);
    match error {
        ArchiveError::InvalidArgument(_) => Status::invalid_argument(message),
        ArchiveError::PermissionDenied(cause) => {
            if matches!(**cause, ClientError::SessionRejected { .. }) {
                Status::permission_denied(format!(
                    "{message} (refused again with a fresh session: an account without archive access?)"
                ))
            } else {
                Status::permission_denied(message)
            }
        }
        ArchiveError::UpstreamUnreadable(_) => {
            Status::internal(format!("upstream_unreadable: {message}"))
        }
        ArchiveError::Unavailable { retry_after, .. } => {
            let mut status = Status::unavailable(message);
            if let Some(wait) = retry_after
                && let Ok(value) = wait.as_millis().to_string().parse()
            {
                status.metadata_mut().insert("retry-after-ms", value);
            }
            status
        }
    }
}

impl<C> GrpcArchive<C> {
    fn answered(&self, outcome: &Result<(), &ArchiveError>) {
        let code = match outcome {
            Ok(()) => tonic::Code::Ok,
            Err(error) => status(error).code(),
        };
        self.metrics
            .answers
            .with_label_values(&["grpc", &format!("{code:?}")])
            .inc();
    }
}

/// A span for one request that continues the caller's trace when its metadata carries
/// `traceparent`, so an archive lookup made on behalf of a call joins that call's trace.
fn request_span<T>(name: &'static str, request: &Request<T>, sid: i64) -> tracing::Span {
    let span = tracing::info_span!("archive_request", otel.name = name, api = "grpc", sid);
    let text = |key| {
        request
            .metadata()
            .get(key)
            .and_then(|value| value.to_str().ok())
    };
    trace_context::follow_w3c(&span, text("traceparent"), text("tracestate"));
    span
}

type BlockStream =
    Pin<Box<dyn Stream<Item = Result<StreamArchivedCallsResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl<C: BlockCache> ArchiveService for GrpcArchive<C> {
    async fn get_archived_calls(
        &self,
        request: Request<GetArchivedCallsRequest>,
    ) -> Result<Response<GetArchivedCallsResponse>, Status> {
        let span = request_span("archive_get", &request, request.get_ref().sid);
        let request = request.into_inner();
        let answer = match block_key(request.sid, request.talkgroup, request.time) {
            Ok(key) => self.archive.get(key).instrument(span).await,
            Err(invalid) => Err(invalid.into()),
        };
        self.answered(&answer.as_ref().map(drop));
        answer
            .map(|result| {
                Response::new(GetArchivedCallsResponse {
                    result: Some(result),
                })
            })
            .map_err(|error| status(&error))
    }

    type StreamArchivedCallsStream = BlockStream;

    async fn stream_archived_calls(
        &self,
        request: Request<StreamArchivedCallsRequest>,
    ) -> Result<Response<Self::StreamArchivedCallsStream>, Status> {
        let span = request_span("archive_range", &request, request.get_ref().sid);
        let request = request.into_inner();
        let keys = block_range(
            request.sid,
            request.talkgroup,
            request.start,
            request.end,
            self.max_range_blocks,
        )
        .map_err(ArchiveError::from)
        .inspect_err(|error| self.answered(&Err(error)))
        .map_err(|error| status(&error))?;
        self.answered(&Ok(()));
        let archive = Arc::clone(&self.archive);
        // One block at a time, in order; the stream ends at the first error.
        let blocks = futures::stream::unfold(
            (archive, keys.into_iter(), false),
            move |(archive, mut keys, failed)| {
                let span = span.clone();
                async move {
                    if failed {
                        return None;
                    }
                    let key = keys.next()?;
                    let item = archive
                        .get(key)
                        .instrument(span)
                        .await
                        .map(|result| StreamArchivedCallsResponse {
                            result: Some(result),
                        })
                        .map_err(|error| status(&error));
                    let failed = item.is_err();
                    Some((item, (archive, keys, failed)))
                }
            },
        );
        Ok(Response::new(Box::pin(blocks)))
    }
}
