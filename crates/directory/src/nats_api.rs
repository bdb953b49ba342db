//! The directory as a NATS micro service (`nats micro ls` finds it as `directory`), protobuf in
//! and out, the same messages as gRPC:
//!
//! - `directory.states`: `ListStatesRequest` → `ListStatesResponse`;
//! - `directory.counties`: `ListCountiesRequest` → `ListCountiesResponse`;
//! - `directory.county`: `GetCountyRequest` → `GetCountyResponse`;
//! - `directory.feed`: `GetFeedRequest` → `GetFeedResponse`.
//!
//! Errors carry the gRPC code number and the message in the service error headers. [`Client`]
//! asks it; the gateway, the poller and `bcfy-directory` use that.

use std::sync::Arc;
use std::time::Duration;

use async_nats::service::{self, ServiceExt as _};
use bcfy_proto::{
    GetCountyRequest, GetCountyResponse, GetFeedRequest, GetFeedResponse, ListCountiesRequest,
    ListCountiesResponse, ListStatesRequest, ListStatesResponse,
};
use bcfy_runtime::service::micro::respond;
use bytes::Bytes;
use futures::StreamExt as _;
use prost::Message as _;
use tokio_util::sync::CancellationToken;

use crate::directory::{Directory, DirectoryError};
use crate::grpc::status;
use crate::metrics::Metrics;

/// The service's name.
pub const SERVICE_NAME: &str = "directory";
/// The endpoints' subject prefix.
pub const SUBJECT_PREFIX: &str = "directory";

/// Why the NATS service could not start or stop.
#[derive(Debug, thiserror::Error)]
pub enum NatsApiError {
    /// NATS refused the service or an endpoint.
    #[error("cannot register the NATS service `{SERVICE_NAME}`")]
    Register(#[source] async_nats::Error),
    /// The service could not leave cleanly.
    #[error("cannot stop the NATS service")]
    Stop(#[source] async_nats::Error),
}

/// The four lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    States,
    Counties,
    County,
    Feed,
}

impl Lookup {
    const ALL: [Lookup; 4] = [
        Lookup::States,
        Lookup::Counties,
        Lookup::County,
        Lookup::Feed,
    ];

    fn name(self) -> &'static str {
        match self {
            Lookup::States => "states",
            Lookup::Counties => "counties",
            Lookup::County => "county",
            Lookup::Feed => "feed",
        }
    }
}

fn decode<T: prost::Message + prost::Name + Default>(payload: &[u8]) -> Result<T, DirectoryError> {
    T::decode(payload)
        .map_err(|error| DirectoryError::InvalidArgument(format!("not a {}: {error}", T::NAME)))
}

async fn answer(
    directory: &Directory,
    lookup: Lookup,
    payload: &[u8],
) -> Result<Bytes, DirectoryError> {
    let bytes = match lookup {
        Lookup::States => {
            decode::<ListStatesRequest>(payload)?;
            directory.states().await?.encode_to_vec()
        }
        Lookup::Counties => {
            let request: ListCountiesRequest = decode(payload)?;
            directory.counties(request.state_id).await?.encode_to_vec()
        }
        Lookup::County => {
            let request: GetCountyRequest = decode(payload)?;
            directory.county(request.county_id).await?.encode_to_vec()
        }
        Lookup::Feed => {
            let request: GetFeedRequest = decode(payload)?;
            directory.feed(request.feed_id).await?.encode_to_vec()
        }
    };
    Ok(Bytes::from(bytes))
}

/// The registered service and its endpoints.
pub struct NatsApi {
    service: service::Service,
    endpoints: Vec<(Lookup, service::endpoint::Endpoint)>,
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
pub async fn start(client: &async_nats::Client) -> Result<NatsApi, NatsApiError> {
    let service = client
        .service_builder()
        .description("The Broadcastify directory: states, counties, systems, talkgroups, feeds")
        .start(SERVICE_NAME, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(NatsApiError::Register)?;
    let mut endpoints = Vec::new();
    for lookup in Lookup::ALL {
        let endpoint = service
            .endpoint(format!("{SUBJECT_PREFIX}.{}", lookup.name()))
            .await
            .map_err(NatsApiError::Register)?;
        endpoints.push((lookup, endpoint));
    }
    Ok(NatsApi { service, endpoints })
}

impl NatsApi {
    /// Answers requests until `shutdown`, each in its own task; then leaves the service.
    ///
    /// # Errors
    ///
    /// When the service cannot be stopped cleanly.
    pub async fn serve(
        self,
        directory: Arc<Directory>,
        metrics: Metrics,
        shutdown: CancellationToken,
    ) -> Result<(), NatsApiError> {
        let requests = futures::stream::select_all(
            self.endpoints
                .into_iter()
                .map(|(lookup, endpoint)| endpoint.map(move |request| (lookup, request))),
        );
        let mut requests = std::pin::pin!(requests.take_until(shutdown.cancelled_owned()));
        while let Some((lookup, request)) = requests.next().await {
            let directory = Arc::clone(&directory);
            let metrics = metrics.clone();
            tokio::spawn(async move {
                let reply = answer(&directory, lookup, &request.message.payload)
                    .await
                    .map_err(|error| status(&error));
                respond(request, reply, &metrics.answers).await;
            });
        }
        self.service.stop().await.map_err(NatsApiError::Stop)
    }
}

/// Why a request to the directory service failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No answer (no responder, timeout, connection).
    #[error(
        "the directory service did not answer (is the archive cache running with `directory.enabled`?)"
    )]
    NoAnswer(#[source] async_nats::Error),
    /// The service answered with an error: its gRPC code and message.
    #[error("the directory service answered {code:?}: {message}")]
    Refused {
        /// The gRPC code.
        code: tonic::Code,
        /// The message.
        message: String,
    },
    /// The answer is not the message expected.
    #[error("the directory service's answer is unreadable")]
    Unreadable(#[source] prost::DecodeError),
}

/// Asks the directory service over NATS.
#[derive(Debug, Clone)]
pub struct Client {
    nats: async_nats::Client,
    timeout: Duration,
}

impl Client {
    /// A client over `nats`, waiting at most `timeout` per answer.
    pub fn new(nats: async_nats::Client, timeout: Duration) -> Self {
        Self { nats, timeout }
    }

    async fn ask<Q: prost::Message, A: prost::Message + Default>(
        &self,
        lookup: Lookup,
        request: &Q,
    ) -> Result<A, ClientError> {
        let subject = format!("{SUBJECT_PREFIX}.{}", lookup.name());
        let request = async_nats::Request::new()
            .payload(Bytes::from(request.encode_to_vec()))
            .timeout(Some(self.timeout));
        let message = self
            .nats
            .send_request(subject, request)
            .await
            .map_err(|error| ClientError::NoAnswer(error.into()))?;
        if let Some(headers) = &message.headers
            && let Some(code) = headers.get(service::NATS_SERVICE_ERROR_CODE)
        {
            let code = code
                .as_str()
                .parse::<i32>()
                .unwrap_or(tonic::Code::Unknown as i32);
            return Err(ClientError::Refused {
                code: tonic::Code::from_i32(code),
                message: headers
                    .get(service::NATS_SERVICE_ERROR)
                    .map(|value| value.as_str().to_owned())
                    .unwrap_or_default(),
            });
        }
        A::decode(message.payload).map_err(ClientError::Unreadable)
    }

    /// Every state.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn states(&self) -> Result<ListStatesResponse, ClientError> {
        self.ask(Lookup::States, &ListStatesRequest {}).await
    }

    /// State `state_id`'s counties.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn counties(&self, state_id: i64) -> Result<ListCountiesResponse, ClientError> {
        self.ask(Lookup::Counties, &ListCountiesRequest { state_id })
            .await
    }

    /// County `county_id`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn county(&self, county_id: i64) -> Result<GetCountyResponse, ClientError> {
        self.ask(Lookup::County, &GetCountyRequest { county_id })
            .await
    }

    /// Feed `feed_id`.
    ///
    /// # Errors
    ///
    /// [`ClientError`].
    pub async fn feed(&self, feed_id: i64) -> Result<GetFeedResponse, ClientError> {
        self.ask(Lookup::Feed, &GetFeedRequest { feed_id }).await
    }
}
