//! `connect` from config against a real server: credentials are used, and the client
//! reconnects by itself after the server restarts, so publishing resumes with nothing to redo.

use std::time::Duration;

use async_nats::jetstream;
use bcfy_bus::connect::{NatsConfig, connect};
use bcfy_bus::ensure::ensure_topology;
use bcfy_bus::topology::{Topology, TopologyConfig};
use bcfy_test_support::{NatsServer, eventually};

fn config(server: &NatsServer) -> NatsConfig {
    NatsConfig {
        urls: vec![server.url()],
        user: Some("pipeline".into()),
        password: Some("s3cret-pass".into()),
        reconnect_max_delay: Duration::from_millis(500),
        ..NatsConfig::default()
    }
}

#[tokio::test]
async fn connects_with_user_and_password_and_survives_a_server_restart() {
    bcfy_test_support::trace_init();
    let mut server =
        NatsServer::start_with_args(&["--user", "pipeline", "--pass", "s3cret-pass"]).await;
    let client = connect(&config(&server), "connect-test").await.unwrap();
    let js = jetstream::new(client.clone());
    ensure_topology(&js, &Topology::new(TopologyConfig::default()))
        .await
        .unwrap();
    js.publish("calls.live.1.2", "before".into())
        .await
        .unwrap()
        .await
        .unwrap();

    server.restart().await;

    let ack = eventually(
        Duration::from_secs(20),
        "a publish after the restart",
        || async {
            js.publish("calls.live.1.2", "after".into())
                .await
                .ok()?
                .await
                .ok()
        },
    )
    .await;
    assert_eq!(
        ack.sequence, 2,
        "the store survived and the client reconnected"
    );
    assert_eq!(
        client.connection_state(),
        async_nats::connection::State::Connected
    );
}

#[tokio::test]
async fn wrong_credentials_never_connect() {
    let server = NatsServer::start_with_args(&["--user", "pipeline", "--pass", "right"]).await;
    let mut wrong = config(&server);
    wrong.password = Some("wrong".into());
    let client = connect(&wrong, "connect-test").await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
    assert!(
        !matches!(outcome, Ok(Ok(()))),
        "flushed without authenticating"
    );
    assert_ne!(
        client.connection_state(),
        async_nats::connection::State::Connected
    );
}
