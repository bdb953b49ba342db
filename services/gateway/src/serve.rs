//! Serving the router on the public port: plain HTTP, or TLS through rustls. TLS handshakes
//! run in their own tasks, so a slow client cannot hold up the accept loop. Every connection
//! is closed once a write to it has waited past the limit ([`StallGuard`]).

use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use prometheus::IntCounter;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;

use crate::stall::StallGuard;

use crate::config::TlsConfig;

/// Longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshaken connections waiting for the server.
const ACCEPTED_BUFFER: usize = 64;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("cannot read {path}")]
    Pem {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// rustls refused the certificate and key.
    #[error("the certificate and key do not make a TLS server")]
    Config(#[source] rustls::Error),
}

/// The acceptor of `config`'s certificate chain and key.
///
/// # Errors
///
/// [`TlsError`] when a file cannot be read or the pair is refused.
pub fn acceptor(config: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let pem_error = |path: &Path| {
        let path = path.display().to_string();
        move |source| TlsError::Pem { path, source }
    };
    let chain = CertificateDer::pem_file_iter(&config.cert_path)
        .map_err(pem_error(&config.cert_path))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error(&config.cert_path))?;
    let key =
        PrivateKeyDer::from_pem_file(&config.key_path).map_err(pem_error(&config.key_path))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(TlsError::Config)?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(server)))
}

/// How connections whose client stopped reading are closed.
#[derive(Debug, Clone)]
pub struct StallLimit {
    /// Longest a write may wait.
    pub limit: Duration,
    /// Counts the connections closed for it.
    pub closed: IntCounter,
}

impl StallLimit {
    fn guard<T>(&self, io: T) -> StallGuard<T> {
        StallGuard::new(io, self.limit, self.closed.clone())
    }
}

/// Waits for the next TCP connection; `None` after shutdown.
async fn next_tcp(
    listener: &TcpListener,
    shutdown: &CancellationToken,
) -> Option<(TcpStream, SocketAddr)> {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return None,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => return Some(accepted),
                Err(error) => {
                    // Out of file descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %error, "Accepting a connection failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// A plain listener whose connections are guarded against stalled clients.
struct PlainListener {
    listener: TcpListener,
    stall: StallLimit,
    shutdown: CancellationToken,
}

impl axum::serve::Listener for PlainListener {
    type Io = StallGuard<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match next_tcp(&self.listener, &self.shutdown).await {
            Some((tcp, peer)) => (self.stall.guard(tcp), peer),
            // Only after shutdown, when the server stops accepting anyway.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

/// A listener whose connections are TLS-handshaken in the background.
struct TlsListener {
    accepted: mpsc::Receiver<(StallGuard<TlsStream<TcpStream>>, SocketAddr)>,
    local_addr: SocketAddr,
}

impl TlsListener {
    fn new(
        listener: TcpListener,
        acceptor: TlsAcceptor,
        stall: StallLimit,
        shutdown: CancellationToken,
    ) -> io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (sender, accepted) = mpsc::channel(ACCEPTED_BUFFER);
        tokio::spawn(async move {
            while let Some((tcp, peer)) = next_tcp(&listener, &shutdown).await {
                let (acceptor, sender, stall) = (acceptor.clone(), sender.clone(), stall.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        // The server may be shutting down; the connection is dropped then.
                        Ok(Ok(stream)) => drop(sender.send((stall.guard(stream), peer)).await),
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, error = %error, "TLS handshake failed.")
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out."),
                    }
                });
            }
        });
        Ok(Self {
            accepted,
            local_addr,
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = StallGuard<TlsStream<TcpStream>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // Only after shutdown, when the server stops accepting anyway.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

/// Serves `router` on `listener` (through `tls` when set) until `shutdown`, then waits for the
/// open connections to finish.
///
/// # Errors
///
/// When the listener fails.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    stall: StallLimit,
    router: Router,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let stopped = shutdown.clone().cancelled_owned();
    match tls {
        Some(acceptor) => {
            let listener = TlsListener::new(listener, acceptor, stall, shutdown)?;
            axum::serve(listener, router)
                .with_graceful_shutdown(stopped)
                .await
        }
        None => {
            let listener = PlainListener {
                listener,
                stall,
                shutdown,
            };
            axum::serve(listener, router)
                .with_graceful_shutdown(stopped)
                .await
        }
    }
}
