//! What the directory's tests share: the simulator's credentials as an upstream config, and a
//! directory "replica" over a real nats-server.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use bcfy_bus::ensure;
use bcfy_bus::topology::{KV_DIRECTORY, KV_UPSTREAM_BUDGET, Topology, TopologyConfig};
use bcfy_directory::metrics::Metrics;
use bcfy_directory::{CacheSettings, Directory, Upstream, UpstreamConfig};
use bcfy_simulator::Simulator;
use bcfy_test_support::NatsServer;
use bcfy_upstream::UpstreamGate;
use secrecy::SecretString;

/// The simulator's directory endpoints and credentials.
pub(crate) fn upstream_config(sim: &Simulator) -> UpstreamConfig {
    let config = sim.config();
    UpstreamConfig {
        catalog_url: format!("{}/audio/", sim.url()).parse().expect("a URL"),
        catalog_key: Some(SecretString::from(config.catalog_key.clone())),
        calls_api_url: format!("{}/", sim.url()).parse().expect("a URL"),
        app_id: Some(config.app_id.clone()),
        api_key_id: Some(config.api_key_id.clone()),
        api_key: Some(SecretString::from(config.api_key.clone())),
        username: Some(config.username.clone()),
        password: Some(SecretString::from(config.password.clone())),
        ..UpstreamConfig::default()
    }
}

/// A nats-server with the topology.
pub(crate) async fn nats() -> (NatsServer, async_nats::Client, jetstream::Context) {
    let nats = NatsServer::start().await;
    let client = async_nats::connect(nats.url()).await.expect("connects");
    let js = jetstream::new(client.clone());
    ensure::ensure_topology(&js, &Topology::new(TopologyConfig::default()))
        .await
        .expect("topology");
    (nats, client, js)
}

/// A directory replica named `name`, its levels fresh for `ttl`, and its metrics.
pub(crate) async fn replica(
    js: &jetstream::Context,
    name: &str,
    upstream: UpstreamConfig,
    ttl: Duration,
) -> (Arc<Directory>, Metrics, prometheus::Registry) {
    let registry = prometheus::Registry::new();
    let metrics = Metrics::register(&registry).expect("metrics");
    let gate = UpstreamGate::new(
        js.get_key_value(KV_UPSTREAM_BUDGET).await.expect("bucket"),
        None,
    );
    let directory = Directory::new(
        js.get_key_value(KV_DIRECTORY).await.expect("bucket"),
        Upstream::new(upstream).expect("client"),
        gate,
        CacheSettings {
            ttl,
            claim_ttl: Duration::from_secs(5),
            budget_wait_max: Duration::from_secs(1),
        },
        name.to_owned(),
        metrics.clone(),
    );
    (Arc::new(directory), metrics, registry)
}
