//! The fault run on a three-node JetStream cluster: the six services with
//! `topology.replicas: 3`, each connected with all three URLs, calls flowing with the
//! simulator's faults on; then `kill -9` of the meta leader, later of the leader of
//! `CALLS_AUDIO`, later of a follower, each restarted on its own store; then a rolling restart of
//! all three (SIGTERM, start, wait until healthy, next), as Kubernetes does it.
//!
//! Pass: every call the simulator listed ends as exactly one live event, one transcript of its
//! own audio and one alert of a rule that matches every transcript, all within 60 s of the last
//! recovery, and no service exited or was restarted.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream;
use bcfy_bus::connect::{NatsConfig, connect};
use bcfy_bus::topology::{
    STREAM_ALERTS, STREAM_CALLS_AUDIO, STREAM_CALLS_LIVE, STREAM_TRANSCRIPTIONS,
};
use bcfy_e2e::Service;
use bcfy_e2e::backlog::pipeline_idle;
use bcfy_e2e::faults::{
    BETWEEN_FAULTS, DELIVERY_BOUND, DOWN_FOR, Tally, script_every_fault, service_configs,
    spawn_feeder, start_upstreams, stored, transcripts_of,
};
use bcfy_e2e::yaml::{common, free_port};
use bcfy_proto::Alert;
use bcfy_simulator::Simulator;
use bcfy_test_support::{NatsCluster, eventually};
use tokio::time::Instant;

/// Every stream and bucket on all three nodes.
const REPLICATED: &str = "topology:\n  replicas: 3\n";

/// The node leading `stream`, as the stream reports it.
async fn stream_leader(js: &jetstream::Context, stream: &str) -> Option<usize> {
    let info = js.get_stream(stream).await.ok()?.info().await.ok()?.clone();
    NatsCluster::node_named(info.cluster.as_ref()?.leader.as_deref()?)
}

/// The node leading `CALLS_AUDIO`, once there is one.
async fn calls_audio_leader(js: &jetstream::Context) -> usize {
    eventually(Duration::from_secs(30), "a CALLS_AUDIO leader", || {
        stream_leader(js, STREAM_CALLS_AUDIO)
    })
    .await
}

/// Queues one of every upstream fault, then lets the calls flow through them for `pause`.
async fn faults_then_wait(sim: &Simulator, pause: Duration) {
    script_every_fault(sim);
    tokio::time::sleep(pause).await;
}

/// Kills node `index` with SIGKILL, leaves it down a moment and starts it on its own store.
async fn kill_and_restart(cluster: &mut NatsCluster, index: usize) {
    cluster.nodes_mut()[index].kill();
    tokio::time::sleep(DOWN_FOR).await;
    cluster.nodes_mut()[index].start_again().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_losing_its_leaders_and_rolling_loses_and_doubles_nothing() {
    let mut cluster = NatsCluster::start().await;
    let urls = cluster.urls().join(",");
    let (sim, stt) = start_upstreams().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let http = free_port();
    let otel_off = [("OTEL_SDK_DISABLED", "true")];
    let mut configs: Vec<(&str, String)> =
        service_configs(&urls, &sim, &stt, free_port(), REPLICATED).into();
    configs.push((
        "gateway",
        format!(
            "{}{REPLICATED}http:\n  listen_addr: 127.0.0.1:{http}\nauth:\n  allow_anonymous: true\n",
            common(&urls, "info")
        ),
    ));
    configs.push((
        "alerter",
        format!(
            "{}{REPLICATED}rules:\n  - name: every-call\n    regex: \"\\\\w\"\n",
            common(&urls, "info")
        ),
    ));
    let mut services: Vec<Service> = configs
        .iter()
        .map(|(name, config)| Service::start_with_env(name, config, dir.path(), &otel_off))
        .collect();

    let feeder = spawn_feeder(&sim);
    let client = connect(
        &NatsConfig {
            urls: cluster.urls(),
            ..NatsConfig::default()
        },
        "cluster-fault-run",
    )
    .await
    .expect("NATS");
    let js = jetstream::new(client);
    eventually(Duration::from_secs(120), "the first transcript", || async {
        let mut stream = js.get_stream(STREAM_TRANSCRIPTIONS).await.ok()?;
        (stream.info().await.ok()?.state.messages > 0).then_some(())
    })
    .await;

    // The services created every stream on all three nodes.
    for stream in [
        STREAM_CALLS_LIVE,
        STREAM_CALLS_AUDIO,
        STREAM_TRANSCRIPTIONS,
        STREAM_ALERTS,
    ] {
        let info = js
            .get_stream(stream)
            .await
            .expect("the stream")
            .info()
            .await
            .expect("its info")
            .clone();
        assert_eq!(info.config.num_replicas, 3, "{stream}");
        let followers = info.cluster.map_or(0, |c| c.replicas.len());
        assert_eq!(followers, 2, "{stream} has two followers");
    }

    let started = Instant::now();
    let mut timeline = Vec::new();
    let note = |timeline: &mut Vec<String>, what: String| {
        timeline.push(format!("{:>5.1} s {what}", started.elapsed().as_secs_f64()));
    };

    faults_then_wait(&sim, BETWEEN_FAULTS).await;
    let meta = eventually(Duration::from_secs(30), "a meta leader", || {
        cluster.meta_leader()
    })
    .await;
    kill_and_restart(&mut cluster, meta).await;
    note(
        &mut timeline,
        format!("kill -9 node-{meta} (meta leader), restarted"),
    );

    faults_then_wait(&sim, BETWEEN_FAULTS).await;
    let audio = calls_audio_leader(&js).await;
    kill_and_restart(&mut cluster, audio).await;
    note(
        &mut timeline,
        format!("kill -9 node-{audio} (CALLS_AUDIO leader), restarted"),
    );

    // A follower of both the metadata and CALLS_AUDIO, one not killed yet when there is one.
    faults_then_wait(&sim, BETWEEN_FAULTS).await;
    let leaders = [
        Some(calls_audio_leader(&js).await),
        cluster.meta_leader().await,
    ];
    let killed = [meta, audio];
    let follower = (0..3)
        .filter(|i| !leaders.contains(&Some(*i)))
        .min_by_key(|i| killed.contains(i))
        .expect("a follower");
    kill_and_restart(&mut cluster, follower).await;
    note(
        &mut timeline,
        format!("kill -9 node-{follower} (a follower), restarted"),
    );

    for index in 0..3 {
        faults_then_wait(&sim, BETWEEN_FAULTS / 2).await;
        cluster.nodes_mut()[index].stop();
        cluster.nodes_mut()[index].start_again().await;
        note(
            &mut timeline,
            format!("rolling restart: node-{index} stopped and back"),
        );
    }
    let last_recovery = Instant::now();
    tokio::time::sleep(BETWEEN_FAULTS).await;
    feeder.abort();
    feeder.await.ok();

    let ledger = sim.ledger();
    eventually(DELIVERY_BOUND, "a transcript per call", || {
        transcripts_of(&js, &ledger)
    })
    .await;
    eventually(DELIVERY_BOUND, "the pipeline to be idle", || async {
        pipeline_idle(&js).await.then_some(())
    })
    .await;
    let alerts: Vec<Alert> = eventually(DELIVERY_BOUND, "an alert per call", || async {
        let alerts: Vec<Alert> = stored(&js, STREAM_ALERTS).await;
        let per_call = alerts.iter().filter(|a| a.rule == "every-call").count();
        (per_call >= ledger.len()).then_some(alerts)
    })
    .await;
    let delivered_after = last_recovery.elapsed();
    let tally = Tally::read(&js, &ledger).await;
    let mut alerts_per_call: BTreeMap<&str, usize> = BTreeMap::new();
    for alert in alerts.iter().filter(|a| a.rule == "every-call") {
        *alerts_per_call.entry(alert.call_id.as_str()).or_default() += 1;
    }
    let gateway = reqwest::get(format!(
        "http://127.0.0.1:{http}/v1/calls/{}",
        ledger[ledger.len() - 1].key
    ))
    .await
    .expect("the gateway answers")
    .status();

    eprintln!("cluster fault run:");
    for line in &timeline {
        eprintln!("  {line}");
    }
    eprintln!(
        "  calls {} · {tally} · alerts {}",
        ledger.len(),
        alerts_per_call.values().sum::<usize>()
    );
    eprintln!(
        "  everything delivered {:.1} s after the last recovery",
        delivered_after.as_secs_f64()
    );

    tally.assert_each_call_once(&ledger);
    for call in &ledger {
        assert_eq!(
            alerts_per_call.get(call.key.as_str()),
            Some(&1),
            "{}: one alert",
            call.key
        );
    }
    assert_eq!(gateway, 200, "the gateway serves the last call");
    for service in &mut services {
        assert!(
            service.running(),
            "{} exited and would have needed a restart:\n{}",
            service.name(),
            service.log_text()
        );
    }
}
