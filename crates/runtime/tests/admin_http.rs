//! The admin port over real HTTP: `/livez`, `/readyz` following the readiness latches, and
//! `/metrics` in Prometheus text format.

use std::net::SocketAddr;

use bcfy_runtime::admin::{AdminConfig, AdminServer, Readiness};
use bcfy_runtime::healthcheck;
use tokio_util::sync::CancellationToken;

/// What `<service> healthcheck` would conclude (a blocking probe, off the runtime's thread).
async fn healthcheck_passes(addr: SocketAddr) -> bool {
    tokio::task::spawn_blocking(move || healthcheck::ready(&AdminConfig { listen_addr: addr }))
        .await
        .unwrap()
}

async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let response = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn readyz_flips_with_the_latches_and_metrics_are_served() -> anyhow::Result<()> {
    let readiness = Readiness::new();
    let nats = readiness.latch("nats");
    let session = readiness.latch("upstream-session");
    let registry = prometheus::Registry::new();
    let counter = prometheus::IntCounter::new("bcfy_test_events_total", "Events seen.")?;
    registry.register(Box::new(counter.clone()))?;
    counter.inc_by(3);

    let server = AdminServer::bind("127.0.0.1:0".parse()?).await?;
    let addr = server.local_addr()?;
    let shutdown = CancellationToken::new();
    let serving = tokio::spawn(server.serve(readiness.clone(), registry, shutdown.clone()));

    assert_eq!(get(addr, "/livez").await, (200, "ok\n".to_owned()));
    assert_eq!(
        get(addr, "/readyz").await,
        (503, "not ready: nats, upstream-session\n".into())
    );

    nats.set_ready();
    assert_eq!(
        get(addr, "/readyz").await,
        (503, "not ready: upstream-session\n".into())
    );
    assert!(!healthcheck_passes(addr).await);
    session.set_ready();
    assert_eq!(get(addr, "/readyz").await, (200, "ready\n".to_owned()));
    assert!(healthcheck_passes(addr).await);

    // A component that loses its dependency pulls the latch again.
    nats.set_not_ready();
    assert_eq!(
        get(addr, "/readyz").await,
        (503, "not ready: nats\n".to_owned())
    );

    let (status, metrics) = get(addr, "/metrics").await;
    assert_eq!(status, 200);
    assert!(metrics.contains("bcfy_test_events_total 3"), "{metrics}");

    shutdown.cancel();
    serving.await??;
    Ok(())
}
