//! The gateway: the pipeline over HTTP for everything that does not speak NATS — live events
//! as Server-Sent Events and WebSocket frames, transcript search, a call's metadata, transcripts
//! and audio, the talkgroups seen, with API keys, scopes and rates. Like every service it talks
//! to the rest only through JetStream; its only state is the search index, which it builds from
//! the transcripts stream, so any replica serves any client.
//!
//! # Layout
//!
//! - [`config`]: the settings, [`GatewayConfig`];
//! - [`auth`]: API keys, scopes and rates;
//! - [`event`]: a stored message as an event (JSON by the protobuf mapping) and the [`Cursor`];
//! - [`hub`]: the fan-out of each stream to every client; [`feed`]: one client's stream,
//!   replay then live; [`filter`]: what a client asks to see;
//! - [`lookup`]: finding a call in the streams; [`audio`]: serving its file;
//! - [`search`]: the transcript index, built from the stream;
//! - [`api`] and [`routes`]: the HTTP API; [`serve`]: plain or TLS; [`stall`]: closing
//!   connections whose client stopped reading;
//! - [`metrics`], [`error`].

pub mod api;
pub mod audio;
pub mod auth;
pub mod config;
pub mod error;
pub mod event;
pub mod feed;
pub mod filter;
pub mod hub;
pub mod lookup;
pub mod metrics;
pub mod routes;
pub mod search;
pub mod serve;
pub mod stall;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bcfy_bus::topology::STREAM_CALLS_AUDIO;
use bcfy_runtime::service::{Context, StartError};
use tokio::net::TcpListener;

pub use config::GatewayConfig;
pub use event::Cursor;

use crate::api::Api;
use crate::audio::AudioCache;
use crate::auth::KeyStore;
use crate::hub::Hub;

/// How long a directory request may take (a county not yet cached costs two upstream requests).
const DIRECTORY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Why the gateway could not run.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// NATS or the metrics could not be set up.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The keys file could not be read.
    #[error(transparent)]
    Keys(#[from] Box<bcfy_config::ConfigError>),
    /// TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] serve::TlsError),
    /// The streams' state could not be read.
    #[error(transparent)]
    Hub(#[from] hub::HubError),
    /// The search index could not be opened.
    #[error(transparent)]
    Search(#[from] search::SearchError),
    /// The listener failed.
    #[error("cannot serve on {addr}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Runs the gateway until shutdown; then streaming clients are told to reconnect, and open
/// requests finish.
///
/// # Errors
///
/// When the keys, TLS, the listener, NATS or the metrics cannot be set up.
pub async fn run(config: GatewayConfig, context: Context) -> Result<(), GatewayError> {
    let shutdown = context.shutdown().clone();
    let metrics = context.register(metrics::Metrics::register)?;
    let keys = KeyStore::load(
        config.auth.keys_file.as_deref(),
        config.auth.anonymous_grant(),
    )?;
    let tls = config.http.tls.as_ref().map(serve::acceptor).transpose()?;
    let addr = config.http.listen_addr;
    let listen_error = |source| GatewayError::Listen { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(listen_error)?;
    let Some(bus) = context.connect(&config.nats, &config.topology).await? else {
        return Ok(());
    };
    let hub = Hub::start(
        &bus.js,
        config.http.client_buffer,
        metrics.clone(),
        shutdown.clone(),
    )
    .await?;
    let search = search::SearchIndex::open(config.search.index_dir.as_deref())?;
    search::indexer::start(
        search.clone(),
        bus.js.clone(),
        metrics.clone(),
        shutdown.clone(),
    )
    .await?;
    let audio_max_age = config
        .topology
        .limits()
        .iter()
        .find(|(name, _, _)| *name == STREAM_CALLS_AUDIO)
        .map(|(_, _, limits)| limits.max_age)
        .unwrap_or_default();
    let dropped_for_stalling = metrics
        .clients_dropped
        .with_label_values(&["stopped_reading"]);
    let api = Arc::new(Api {
        js: bus.js.clone(),
        hub,
        metrics,
        audio_cache: AudioCache::new(config.http.audio_cache_bytes.as_usize()),
        audio_max_age,
        heartbeat: config.http.heartbeat,
        streams_end: shutdown.child_token(),
        talkgroup_names: Mutex::new(HashMap::new()),
        openapi: routes::openapi::build(),
        search,
        directory: bcfy_directory::nats_api::Client::new(bus.client.clone(), DIRECTORY_TIMEOUT),
    });
    tracing::info!(
        addr = %listener.local_addr().map_err(listen_error)?,
        tls = tls.is_some(),
        keys = keys.len(),
        anonymous = config.auth.allow_anonymous,
        "Gateway started."
    );
    let router = api::router(api, Arc::new(keys), &config.http.cors_origins);
    context.set_ready();
    let stall = serve::StallLimit {
        limit: config.http.write_timeout,
        closed: dropped_for_stalling,
    };
    serve::serve(listener, tls, stall, router, shutdown)
        .await
        .map_err(listen_error)?;
    tracing::info!("Gateway stopped.");
    Ok(())
}
