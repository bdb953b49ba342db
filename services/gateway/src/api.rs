//! The HTTP API: its routes, the state they share, and the layers around them (who may read,
//! CORS, latency metrics).
//!
//! | route | what |
//! |---|---|
//! | `GET /v1/events` | live events as Server-Sent Events |
//! | `GET /v1/ws` | the same events as WebSocket text frames |
//! | `GET /v1/calls` | transcribed calls found by their words, with filters and facets |
//! | `GET /v1/calls/{call_id}` | a call's metadata, transcripts and audio URL |
//! | `GET /v1/calls/{call_id}/audio` | the call's audio file |
//! | `GET /v1/talkgroups` | the talkgroups in the live stream, with their names |
//! | `GET /v1/openapi.json` | the OpenAPI document of all of the above |
//! | `GET /` (and its `/console.js`, `/console.css`) | the web console |

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use bcfy_bus::subject::Shard;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::audio::AudioCache;
use crate::auth::{KEY_HEADER, KeyStore};
use crate::error::ApiError;
use crate::hub::Hub;
use crate::metrics::Metrics;
use crate::routes;
use crate::search::SearchIndex;

/// A talkgroup's names, as its latest live call gives them.
#[derive(Debug, Clone, Default)]
pub struct TalkgroupNames {
    /// Short name (`display`).
    pub display: Option<String>,
    /// Description (`descr`).
    pub description: Option<String>,
    /// Group (`grouping`).
    pub group: Option<String>,
}

/// What every route shares.
#[derive(Debug)]
pub struct Api {
    /// JetStream.
    pub js: jetstream::Context,
    /// The live fan-out.
    pub hub: Hub,
    /// Metrics.
    pub metrics: Metrics,
    /// Recently served audio.
    pub audio_cache: AudioCache,
    /// How long `CALLS_AUDIO` keeps a call's audio.
    pub audio_max_age: Duration,
    /// Heartbeat interval of idle streams.
    pub heartbeat: Duration,
    /// Cancelled when streams must end (shutdown); they tell their clients to reconnect.
    pub streams_end: CancellationToken,
    /// Names of the talkgroups seen so far.
    pub talkgroup_names: Mutex<HashMap<Shard, TalkgroupNames>>,
    /// The OpenAPI document.
    pub openapi: serde_json::Value,
    /// The transcript index.
    pub search: SearchIndex,
    /// The directory service.
    pub directory: bcfy_directory::nats_api::Client,
}

/// The API's router: `/v1/openapi.json` and the console's files for anyone, every other route
/// behind `keys`.
pub fn router(api: Arc<Api>, keys: Arc<KeyStore>, cors_origins: &[String]) -> Router {
    let guarded = Router::new()
        .route("/v1/events", get(routes::events::sse))
        .route("/v1/ws", get(routes::events::websocket))
        .route("/v1/calls", get(routes::search::search))
        .route("/v1/calls/{call_id}", get(routes::calls::call))
        .route("/v1/calls/{call_id}/audio", get(routes::calls::audio))
        .route("/v1/talkgroups", get(routes::talkgroups::list))
        .route("/v1/directory/states", get(routes::directory::states))
        .route(
            "/v1/directory/states/{state}/counties",
            get(routes::directory::counties),
        )
        .route(
            "/v1/directory/counties/{ctid}",
            get(routes::directory::county),
        )
        .route("/v1/directory/feeds/{id}", get(routes::directory::feed))
        .route_layer(middleware::from_fn_with_state(keys, crate::auth::admit));
    let metrics = api.metrics.clone();
    Router::new()
        .route("/v1/openapi.json", get(routes::openapi::document))
        .route("/", get(routes::console::page))
        .route("/console.js", get(routes::console::script))
        .route("/console.css", get(routes::console::style))
        .merge(guarded)
        .fallback(not_found)
        .with_state(api)
        .layer(middleware::from_fn_with_state(metrics, record_latency))
        .layer(cors(cors_origins))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route (see /v1/openapi.json)")
}

fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::GET, Method::HEAD, Method::OPTIONS])
        .allow_headers([
            header::AUTHORIZATION,
            header::RANGE,
            header::IF_NONE_MATCH,
            header::IF_RANGE,
            HeaderName::from_static(KEY_HEADER),
            HeaderName::from_static("last-event-id"),
        ])
        .expose_headers([
            header::ETAG,
            header::CONTENT_RANGE,
            header::ACCEPT_RANGES,
            header::RETRY_AFTER,
        ])
}

/// Records each request's latency by route (its pattern, not its path) and status.
async fn record_latency(State(metrics): State<Metrics>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    metrics
        .request_seconds
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .observe(started.elapsed().as_secs_f64());
    response
}
