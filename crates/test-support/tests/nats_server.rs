//! The harness really runs `nats-server`: JetStream works, a restart keeps the store, and a
//! three-node cluster accepts an R3 stream.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use bcfy_test_support::{NatsCluster, NatsServer, eventually};

const PATIENCE: Duration = Duration::from_secs(20);

#[tokio::test]
async fn restart_keeps_the_store_and_the_url() -> anyhow::Result<()> {
    let mut server = NatsServer::start().await;
    let url = server.url();
    let client = async_nats::connect(&url).await?;
    let js = jetstream::new(client);
    js.create_stream(stream::Config {
        name: "KEEP".into(),
        subjects: vec!["keep.>".into()],
        ..Default::default()
    })
    .await?;
    js.publish("keep.one", "durable".into()).await?.await?;

    server.restart().await;
    assert_eq!(server.url(), url);

    let client = async_nats::connect(&url).await?;
    let js = jetstream::new(client);
    let mut stream = js.get_stream("KEEP").await?;
    assert_eq!(stream.info().await?.state.messages, 1);
    let message = stream.get_raw_message(1).await?;
    assert_eq!(message.payload.as_ref(), b"durable");
    Ok(())
}

#[tokio::test]
async fn a_killed_server_refuses_connections_until_started_again() -> anyhow::Result<()> {
    let mut server = NatsServer::start().await;
    server.kill();
    assert!(async_nats::connect(server.url()).await.is_err());
    server.start_again().await;
    async_nats::connect(server.url()).await?;
    Ok(())
}

#[tokio::test]
async fn three_node_cluster_accepts_a_replicated_stream() -> anyhow::Result<()> {
    let cluster = NatsCluster::start().await;
    let client = async_nats::connect(cluster.urls()).await?;
    let js = jetstream::new(client);
    let info = eventually(PATIENCE, "an R3 stream to be created", || async {
        js.get_or_create_stream(stream::Config {
            name: "REPLICATED".into(),
            subjects: vec!["replicated.>".into()],
            num_replicas: 3,
            ..Default::default()
        })
        .await
        .ok()
    })
    .await;
    assert_eq!(info.cached_info().config.num_replicas, 3);
    let ack = js.publish("replicated.x", "r3".into()).await?.await?;
    assert_eq!(ack.sequence, 1);
    Ok(())
}
