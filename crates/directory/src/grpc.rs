//! `broadcastify.v1.DirectoryService` over gRPC. Errors map to standard codes; UNAVAILABLE
//! carries the delay to wait in the `retry-after-ms` metadata, as the archive service does.

use std::sync::Arc;

use bcfy_bus::consume::error_chain;
use bcfy_proto::directory_service_server::DirectoryService;
use bcfy_proto::{
    GetCountyRequest, GetCountyResponse, GetFeedRequest, GetFeedResponse, ListCountiesRequest,
    ListCountiesResponse, ListStatesRequest, ListStatesResponse,
};
use tonic::{Request, Response, Status};

use crate::directory::{Directory, DirectoryError};
use crate::metrics::Metrics;

/// The gRPC status for a [`DirectoryError`].
pub fn status(error: &DirectoryError) -> Status {
    let message = error_chain(error);
    match error {
        DirectoryError::InvalidArgument(_) => Status::invalid_argument(message),
        DirectoryError::NotFound(_) => Status::not_found(message),
        DirectoryError::PermissionDenied(_) => Status::permission_denied(message),
        DirectoryError::Unavailable { retry_after, .. } => {
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

/// The gRPC face of a [`Directory`].
#[derive(Debug)]
pub struct GrpcDirectory {
    directory: Arc<Directory>,
    metrics: Metrics,
}

impl GrpcDirectory {
    /// Serves `directory`.
    pub fn new(directory: Arc<Directory>, metrics: Metrics) -> Self {
        Self { directory, metrics }
    }

    fn answer<T>(&self, answer: Result<T, DirectoryError>) -> Result<Response<T>, Status> {
        let answer = answer.map_err(|error| status(&error));
        let code = answer
            .as_ref()
            .map_or_else(Status::code, |_| tonic::Code::Ok);
        self.metrics
            .answers
            .with_label_values(&["grpc", &format!("{code:?}")])
            .inc();
        answer.map(Response::new)
    }
}

#[tonic::async_trait]
impl DirectoryService for GrpcDirectory {
    async fn list_states(
        &self,
        _request: Request<ListStatesRequest>,
    ) -> Result<Response<ListStatesResponse>, Status> {
        self.answer(self.directory.states().await)
    }

    async fn list_counties(
        &self,
        request: Request<ListCountiesRequest>,
    ) -> Result<Response<ListCountiesResponse>, Status> {
        self.answer(self.directory.counties(request.get_ref().state_id).await)
    }

    async fn get_county(
        &self,
        request: Request<GetCountyRequest>,
    ) -> Result<Response<GetCountyResponse>, Status> {
        self.answer(self.directory.county(request.get_ref().county_id).await)
    }

    async fn get_feed(
        &self,
        request: Request<GetFeedRequest>,
    ) -> Result<Response<GetFeedResponse>, Status> {
        self.answer(self.directory.feed(request.get_ref().feed_id).await)
    }
}
