//! The admin HTTP port every service runs: `/livez`, `/readyz` and Prometheus `/metrics`.
//!
//! Readiness is a set of named latches. A component registers one (for example "nats" or
//! "upstream-session"), releases it when it can serve, and pulls it again when it cannot (bad
//! credentials, NATS down). `/readyz` answers 200 only while every latch is released and
//! otherwise lists the ones holding it back, so Kubernetes stops routing to a pod that cannot
//! work without restarting it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// Admin port settings (`admin.listen_addr`).
#[derive(Debug, Clone, Deserialize, serde::Serialize, schemars::JsonSchema)]
#[serde(default)]
#[schemars(deny_unknown_fields)]
pub struct AdminConfig {
    /// Where `/livez`, `/readyz` and `/metrics` are served.
    pub listen_addr: SocketAddr,
}

/// Default admin address: every interface, port 9090.
pub const DEFAULT_ADMIN_ADDR: &str = "0.0.0.0:9090";

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen_addr: DEFAULT_ADMIN_ADDR
                .parse()
                .expect("a valid constant address"),
        }
    }
}

/// The set of readiness latches of one service instance.
#[derive(Debug, Clone, Default)]
pub struct Readiness {
    latches: Arc<Mutex<BTreeMap<String, bool>>>,
}

/// One named readiness condition; not ready until [`set_ready`](Self::set_ready).
#[derive(Debug, Clone)]
pub struct ReadinessLatch {
    name: String,
    latches: Arc<Mutex<BTreeMap<String, bool>>>,
}

// === impl Readiness ===

impl Readiness {
    /// An empty set (ready, since nothing holds it back).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a latch, initially not ready.
    pub fn latch(&self, name: impl Into<String>) -> ReadinessLatch {
        let name = name.into();
        self.lock().insert(name.clone(), false);
        ReadinessLatch {
            name,
            latches: Arc::clone(&self.latches),
        }
    }

    /// True when every latch is ready.
    pub fn is_ready(&self) -> bool {
        self.lock().values().all(|ready| *ready)
    }

    /// The names of the latches that are not ready.
    pub fn waiting_on(&self) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, ready)| !**ready)
            .map(|(name, _)| name.clone())
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, bool>> {
        self.latches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

// === impl ReadinessLatch ===

impl ReadinessLatch {
    /// Marks this condition as met.
    pub fn set_ready(&self) {
        self.set(true);
    }

    /// Marks this condition as not met (again).
    pub fn set_not_ready(&self) {
        self.set(false);
    }

    fn set(&self, ready: bool) {
        let mut latches = self
            .latches
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        latches.insert(self.name.clone(), ready);
    }
}

#[derive(Clone)]
struct AdminState {
    readiness: Readiness,
    registry: prometheus::Registry,
}

/// A bound admin listener; bind first (port 0 in tests) so the address is known before serving.
#[derive(Debug)]
pub struct AdminServer {
    listener: tokio::net::TcpListener,
}

impl AdminServer {
    /// Binds the admin address.
    ///
    /// # Errors
    ///
    /// When the address cannot be bound.
    pub async fn bind(addr: SocketAddr) -> std::io::Result<Self> {
        Ok(Self {
            listener: tokio::net::TcpListener::bind(addr).await?,
        })
    }

    /// The bound address.
    ///
    /// # Errors
    ///
    /// When the socket has no local address (it always has once bound).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` is cancelled.
    ///
    /// # Errors
    ///
    /// When the server fails while accepting connections.
    pub async fn serve(
        self,
        readiness: Readiness,
        registry: prometheus::Registry,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let router = Router::new()
            .route("/livez", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics))
            .with_state(AdminState {
                readiness,
                registry,
            });
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
    }
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    let waiting = state.readiness.waiting_on();
    if waiting.is_empty() {
        (StatusCode::OK, "ready\n".to_owned())
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {}\n", waiting.join(", ")),
        )
    }
}

async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    match prometheus::TextEncoder::new().encode_to_string(&state.registry.gather()) {
        Ok(text) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
            text,
        )
            .into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, error.to_string()).into_response(),
    }
}
