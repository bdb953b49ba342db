//! The poller's `run` in-process against a real `nats-server` and `bcfy-sim` over HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::jetstream::{self, consumer::PullConsumer};
use bcfy_broadcastify::ClientConfig;
use bcfy_bus::connect::NatsConfig;
use bcfy_bus::ensure::{ensure_consumer, ensure_topology};
use bcfy_bus::topology::{
    ConsumerSpec, KV_POLLER_CURSORS, KV_UPSTREAM_BUDGET, STREAM_CALLS_LIVE, Topology,
    TopologyConfig,
};
use bcfy_poller::cursor::Cursors;
use bcfy_poller::{LiveProducerConfig, PollerConfig, ShardConfig};
use bcfy_proto::LiveCallEnvelope;
use bcfy_simulator::{CallSpec, Fault, RetryAfter, Route, SimConfig, Simulator};
use bcfy_test_support::{NatsServer, ServiceUnderTest, eventually};
use futures::StreamExt as _;
use prost::Message as _;

const PATIENCE: Duration = Duration::from_secs(20);
const FIRE: (i64, i64) = (7001, 2345);
const LAW: (i64, i64) = (7001, 2346);
const OTHER: (i64, i64) = (7002, 2345);

/// A `ts` five seconds ago, for a newest call a test places the cursor by.
fn recent_ts() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(now.as_secs()).unwrap() - 5
}

struct Harness {
    nats: NatsServer,
    sim: Simulator,
    js: jetstream::Context,
    /// Every envelope the poller sent, by `Nats-Msg-Id`, as seen on the wire: a plain
    /// subscriber gets each publish, including those the stream drops as duplicates.
    sent: Arc<Mutex<BTreeMap<String, usize>>>,
}

async fn harness() -> Harness {
    bcfy_test_support::trace_init();
    let nats = NatsServer::start().await;
    let sim = Simulator::start(SimConfig::for_tests()).await.unwrap();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let sent = Arc::new(Mutex::new(BTreeMap::new()));
    let mut wire = client.subscribe("calls.live.>").await.unwrap();
    client.flush().await.unwrap();
    let counts = Arc::clone(&sent);
    tokio::spawn(async move {
        while let Some(message) = wire.next().await {
            let id = message
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            *counts.lock().unwrap().entry(id).or_insert(0) += 1;
        }
    });
    let js = jetstream::new(client);
    Harness {
        nats,
        sim,
        js,
        sent,
    }
}

fn shard(name: &str, (sid, tg): (i64, i64)) -> ShardConfig {
    ShardConfig {
        name: name.into(),
        groups: vec![format!("{sid}-{tg}")],
        ..ShardConfig::default()
    }
}

impl Harness {
    fn config(&self, instance: &str, shards: Vec<ShardConfig>) -> PollerConfig {
        let url = url::Url::parse(&self.sim.url()).unwrap();
        PollerConfig {
            nats: NatsConfig {
                urls: vec![self.nats.url()],
                ..NatsConfig::default()
            },
            topology: TopologyConfig {
                lease_ttl: Duration::from_secs(2),
                ..TopologyConfig::default()
            },
            broadcastify: ClientConfig {
                username: Some("demo".into()),
                password: Some("demo-password".to_owned().into()),
                request_timeout: Duration::from_secs(5),
                ..ClientConfig::default()
            }
            .with_origin(url),
            live_producer: LiveProducerConfig {
                poll_interval: Duration::from_millis(200),
                jitter_ratio: 0.0,
                initial_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(1),
                look_back: Duration::from_secs(120),
                ..LiveProducerConfig::default()
            },
            shards,
            instance_id: Some(instance.into()),
            ..PollerConfig::default()
        }
    }

    /// Every envelope in `CALLS_LIVE`, in stream order (an empty list before the stream exists).
    async fn published(&self) -> Vec<LiveCallEnvelope> {
        let Ok(mut stream) = self.js.get_stream(STREAM_CALLS_LIVE).await else {
            return Vec::new();
        };
        let last = stream.info().await.unwrap().state.last_sequence;
        let mut envelopes = Vec::new();
        for sequence in 1..=last {
            if let Ok(message) = stream.get_raw_message(sequence).await {
                envelopes.push(LiveCallEnvelope::decode(message.payload.as_ref()).unwrap());
            }
        }
        envelopes
    }

    /// Waits until exactly `keys` (and nothing else) are published, each once.
    async fn expect_published(&self, keys: &BTreeSet<String>) {
        let ids = eventually(PATIENCE, "the calls to be published", || async {
            let ids: Vec<String> = self
                .published()
                .await
                .into_iter()
                .map(|e| e.call_id)
                .collect();
            (ids.len() >= keys.len()).then_some(ids)
        })
        .await;
        let unique: BTreeSet<String> = ids.iter().cloned().collect();
        assert_eq!(
            unique.len(),
            ids.len(),
            "a call was published twice: {ids:?}"
        );
        assert_eq!(&unique, keys);
    }

    /// Adds a call on `talkgroup` with `ts` (epoch seconds).
    fn add_at(&self, talkgroup: (i64, i64), ts: i64) -> bcfy_simulator::LedgerEntry {
        self.sim.add_call(CallSpec {
            talkgroup: Some(talkgroup),
            ts: Some(ts),
            ..CallSpec::default()
        })
    }

    fn add(&self, talkgroup: (i64, i64)) -> String {
        self.sim
            .add_call(CallSpec {
                talkgroup: Some(talkgroup),
                ..CallSpec::default()
            })
            .key
    }

    /// How often the poller sent call `key`.
    fn sends(&self, key: &str) -> usize {
        self.sent.lock().unwrap().get(key).copied().unwrap_or(0)
    }

    /// Waits until each of `keys` was sent once (and nothing else of the shard's calls).
    async fn expect_sent_once(&self, keys: &BTreeSet<String>) {
        let sent = eventually(PATIENCE, "each call on the wire", || async {
            let sent = self.sent.lock().unwrap().clone();
            keys.iter().all(|k| sent.contains_key(k)).then_some(sent)
        })
        .await;
        for key in keys {
            assert_eq!(sent[key], 1, "{key} was sent {} times", sent[key]);
        }
        assert_eq!(
            sent.len(),
            keys.len(),
            "more calls sent than expected: {sent:?}"
        );
    }

    /// The shard's saved cursor, once it is `expected`.
    async fn expect_cursor(&self, shard: &str, expected: f64) -> f64 {
        let cursors = Cursors::new(self.js.get_key_value(KV_POLLER_CURSORS).await.unwrap());
        eventually(PATIENCE, "the cursor to be saved", || async {
            cursors
                .load(shard)
                .await
                .unwrap()
                .filter(|c| *c == expected)
        })
        .await
    }

    fn live_requests(&self) -> Vec<bcfy_simulator::RecordedRequest> {
        self.sim
            .requests()
            .into_iter()
            .filter(|r| r.uri == "/calls/apis/live-calls")
            .collect()
    }

    fn logins(&self) -> usize {
        self.sim
            .requests()
            .iter()
            .filter(|r| r.uri == "/login/" && r.method == "POST")
            .count()
    }
}

type Running = ServiceUnderTest<bcfy_poller::PollerError>;

fn start(config: PollerConfig) -> Running {
    ServiceUnderTest::start("poller", config, bcfy_poller::run)
}

#[tokio::test]
async fn every_call_once_and_an_exact_resume_after_a_kill() {
    let h = harness().await;
    let first: Vec<_> = (0..5).map(|_| h.add_at(FIRE, recent_ts() - 30)).collect();
    h.add(LAW); // not this shard's
    let config = h.config("a", vec![shard("fire", FIRE)]);
    let overlap = config.live_producer.overlap.as_secs_f64();
    let poller = start(config.clone());
    let mut keys: BTreeSet<String> = first.iter().map(|e| e.key.clone()).collect();
    h.expect_published(&keys).await;
    // Counted where the poller sends, not in the stream, whose dedup would hide a second send.
    h.expect_sent_once(&keys).await;
    assert_eq!(
        poller.metric("bcfy_live_producer_dispatched_total", None),
        5.0
    );
    // The cursor covers every call published, so the next holder has nothing to redo.
    let newest = first.iter().map(|e| e.ts).max().unwrap();
    let cursor = h.expect_cursor("fire", newest as f64 + 1.0).await;
    poller.kill();

    let resumed_at = h.live_requests().len();
    let mut new: BTreeSet<String> = (0..3).map(|_| h.add(FIRE)).collect();
    // A late call, its ts already behind the cursor: the look-back catches it.
    let late = h.sim.add_call(CallSpec {
        talkgroup: Some(FIRE),
        late_by: Some(Duration::from_secs(40)),
        ..CallSpec::default()
    });
    new.insert(late.key);
    keys.extend(new.iter().cloned());
    let poller = start(config);
    h.expect_published(&keys).await;
    // Resumed exactly where it stopped: no initial page, polls from the saved cursor.
    let resumed = &h.live_requests()[resumed_at..];
    assert!(resumed.iter().all(|r| r.form_field("doInit") == Some("0")));
    let from_cursor = format!("{:.3}", cursor - overlap);
    assert!(
        resumed
            .iter()
            .any(|r| r.form_field("pos") == Some(from_cursor.as_str())),
        "no poll from the saved cursor ({from_cursor})"
    );
    // Each new call went out once, and only they were new to the stream.
    for key in &new {
        assert_eq!(h.sends(key), 1, "{key}");
    }
    assert_eq!(
        poller.metric("bcfy_live_producer_dispatched_total", None),
        4.0
    );
    let envelope = h.published().await.pop().unwrap();
    assert_eq!(envelope.shard_name, "fire");
    assert_eq!(envelope.shard_key.unwrap().talkgroup_id, FIRE.1);
    let raw: serde_json::Value = serde_json::from_slice(&envelope.raw_payload).unwrap();
    assert_eq!(
        raw["filename"].as_str(),
        envelope.call.unwrap().filename.as_deref()
    );
    poller.stop().await.unwrap();
}

#[tokio::test]
async fn polls_between_sweeps_reach_back_only_the_overlap_and_sweeps_find_late_calls() {
    let h = harness().await;
    let newest = recent_ts();
    let first = h.add_at(FIRE, newest);
    let mut config = h.config("a", vec![shard("fire", FIRE)]);
    let sweep_every = Duration::from_secs(1);
    config.live_producer.look_back_interval = sweep_every;
    config.live_producer.overlap = Duration::from_secs(2);
    let poller = start(config);
    h.expect_published(&BTreeSet::from([first.key.clone()]))
        .await;

    // Behind the cursor (newest + 1) by 40 s: only a sweep reaches it.
    let late = h.add_at(FIRE, newest - 40);
    h.expect_published(&BTreeSet::from([first.key, late.key]))
        .await;
    // Two sweeps and the polls between them, from the requests the site saw.
    let polls = eventually(PATIENCE, "two sweeps after the late call", || async {
        let polls: Vec<_> = h
            .live_requests()
            .into_iter()
            .filter(|r| r.form_field("doInit") == Some("0"))
            .collect();
        let sweeps = polls
            .iter()
            .filter(|r| r.form_field("pos") == Some(&format!("{}.000", newest + 1 - 120)))
            .count();
        (sweeps >= 3).then_some(polls)
    })
    .await;
    // Every poll after the first answer saw the first call again and left it out unparsed.
    let repeats = poller.metric("bcfy_live_producer_duplicates_total", None);
    poller.stop().await.unwrap();
    assert!(
        repeats >= (polls.len() - 1) as f64,
        "{repeats} repeats left out over {} polls",
        polls.len()
    );

    let (sweep_pos, edge_pos) = (
        format!("{}.000", newest + 1 - 120),
        format!("{}.000", newest + 1 - 2),
    );
    let mut sweep_times = Vec::new();
    for poll in &polls {
        let pos = poll.form_field("pos").expect("every poll sends pos");
        assert!(
            pos == sweep_pos || pos == edge_pos,
            "a poll reached {pos}, neither the look-back ({sweep_pos}) nor the overlap ({edge_pos})"
        );
        if pos == sweep_pos {
            sweep_times.push(poll.at);
        }
    }
    for pair in sweep_times.windows(2) {
        let gap = pair[1].duration_since(pair[0]).unwrap();
        // Measured at arrival; a sweep is timed from when its poll started.
        assert!(gap >= sweep_every.mul_f64(0.9), "sweeps {gap:?} apart");
    }
    assert!(
        polls.len() > 2 * sweep_times.len(),
        "most polls reach back only the overlap: {} polls, {} sweeps",
        polls.len(),
        sweep_times.len()
    );
}

#[tokio::test]
async fn slow_answers_neither_hold_polls_behind_a_sweep_nor_stretch_the_interval() {
    let h = harness().await;
    let newest = recent_ts();
    let first = h.add_at(FIRE, newest);
    let mut config = h.config("a", vec![shard("fire", FIRE)]);
    let interval = Duration::from_secs(1);
    config.live_producer.poll_interval = interval;
    config.live_producer.look_back_interval = Duration::from_secs(3);
    let poller = start(config);
    h.expect_published(&BTreeSet::from([first.key])).await;

    // Every answer from now on takes 700 ms.
    let slow = Duration::from_millis(700);
    let from = SystemTime::now();
    h.sim
        .inject_times(Route::LiveCalls, Fault::Slow(slow), 1_000);
    let sweep_pos = format!("{}.000", newest + 1 - 120);
    let polls = eventually(PATIENCE, "two sweeps and six polls", || async {
        let polls: Vec<_> = h
            .live_requests()
            .into_iter()
            .filter(|r| r.at > from && r.form_field("doInit") == Some("0"))
            .collect();
        let sweeps = polls
            .iter()
            .filter(|r| r.form_field("pos") == Some(sweep_pos.as_str()))
            .count();
        (sweeps >= 2 && polls.len() - sweeps >= 6).then_some(polls)
    })
    .await;
    poller.stop().await.unwrap();

    let (sweeps, edges): (Vec<_>, Vec<_>) = polls
        .iter()
        .partition(|r| r.form_field("pos") == Some(sweep_pos.as_str()));
    for sweep in &sweeps {
        assert!(
            edges.iter().any(|edge| {
                let apart = edge
                    .at
                    .duration_since(sweep.at)
                    .unwrap_or_else(|before| before.duration());
                apart < slow
            }),
            "no poll went out while the sweep at {:?} was being answered",
            sweep.at
        );
    }
    let mut gaps: Vec<Duration> = edges
        .windows(2)
        .map(|pair| pair[1].at.duration_since(pair[0].at).unwrap())
        .collect();
    gaps.sort();
    let median = gaps[gaps.len() / 2];
    // One interval apart, not an interval after each slow answer (1.7 s).
    assert!(
        median < interval + slow / 2,
        "polls {median:?} apart with a {interval:?} interval: {gaps:?}"
    );
}

#[tokio::test]
async fn a_failed_sweep_is_retried_at_the_next_poll_not_a_sweep_interval_later() {
    let h = harness().await;
    let mut config = h.config("a", vec![shard("fire", FIRE)]);
    // One sweep at the start; the next would be due only after the test's patience.
    config.live_producer.look_back_interval = 3 * PATIENCE;
    // A cursor an earlier run saved, and a call 40 s behind it that only a sweep reaches.
    let cursor = recent_ts();
    ensure_topology(&h.js, &Topology::new(config.topology.clone()))
        .await
        .unwrap();
    Cursors::new(h.js.get_key_value(KV_POLLER_CURSORS).await.unwrap())
        .save("fire", cursor as f64)
        .await
        .unwrap();
    let late = h.add_at(FIRE, cursor - 40);
    // The first four live requests fail: the sweep started at once is among them (it goes out
    // about 0.1 s after the first poll, the polls back off from 0.1 s).
    h.sim.inject_times(
        Route::LiveCalls,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
        4,
    );
    let poller = start(config);
    h.expect_published(&BTreeSet::from([late.key])).await;
    poller.stop().await.unwrap();

    let sweep_pos = format!("{}.000", cursor - 120);
    let sweeps: Vec<u16> = h
        .live_requests()
        .iter()
        .filter(|r| r.form_field("pos") == Some(sweep_pos.as_str()))
        .map(|r| r.status)
        .collect();
    assert_eq!(
        sweeps.first(),
        Some(&503),
        "the first sweep failed: {sweeps:?}"
    );
    assert!(sweeps.len() >= 2, "and was sent again: {sweeps:?}");
}

#[tokio::test]
async fn three_replicas_share_one_login_and_one_relogin() {
    let h = harness().await;
    let shards = [("fire", FIRE), ("law", LAW), ("other", OTHER)];
    let mut keys: BTreeSet<String> = shards.iter().map(|(_, tg)| h.add(*tg)).collect();
    let replicas: Vec<Running> = shards
        .iter()
        .map(|(name, tg)| start(h.config(name, vec![shard(name, *tg)])))
        .collect();
    h.expect_published(&keys).await;
    assert_eq!(h.logins(), 1, "one login for the fleet");

    h.sim.expire_sessions();
    keys.extend(shards.iter().map(|(_, tg)| h.add(*tg)));
    h.expect_published(&keys).await;
    assert_eq!(h.logins(), 2, "one re-login for three rejected replicas");
    for replica in replicas {
        replica.stop().await.unwrap();
    }
}

#[tokio::test]
async fn a_bad_password_stops_polling_without_a_login_storm() {
    let h = harness().await;
    h.add(FIRE);
    let replicas: Vec<Running> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            let mut config = h.config(name, vec![shard(name, FIRE)]);
            config.broadcastify.password = Some("wrong".to_owned().into());
            start(config)
        })
        .collect();
    for replica in &replicas {
        eventually(PATIENCE, "the shard to give up", || async {
            (replica.metric("bcfy_live_producer_auth_failures_total", None) >= 1.0).then_some(())
        })
        .await;
        assert_eq!(replica.readiness().waiting_on(), ["upstream-session"]);
    }
    assert_eq!(h.logins(), 1, "one refused login for the whole fleet");
    assert!(h.published().await.is_empty());
    for replica in replicas {
        // Every shard stopped by itself; `run` returns without a shutdown.
        replica.join().await.unwrap();
    }
}

#[tokio::test]
async fn retry_after_pauses_every_replica() {
    let h = harness().await;
    let shards = [("fire", FIRE), ("law", LAW), ("other", OTHER)];
    let keys: BTreeSet<String> = shards.iter().map(|(_, tg)| h.add(*tg)).collect();
    let replicas: Vec<Running> = shards
        .iter()
        .map(|(name, tg)| start(h.config(name, vec![shard(name, *tg)])))
        .collect();
    h.expect_published(&keys).await;

    h.sim.inject(
        Route::LiveCalls,
        Fault::Status {
            status: 429,
            retry_after: Some(RetryAfter::Seconds(2)),
        },
    );
    // Another replica sees the shared deadline: it waits, and reports not ready meanwhile.
    let waiting_on = eventually(PATIENCE, "a replica to wait out the 429", || async {
        replicas
            .iter()
            .find(|r| r.metric("bcfy_live_producer_rate_limit_waits_total", None) >= 1.0)
            .map(|r| r.readiness().waiting_on())
    })
    .await;
    assert_eq!(waiting_on, ["upstream-backoff"]);
    let at_429 = h
        .live_requests()
        .iter()
        .find(|r| r.status == 429)
        .expect("the 429 was answered")
        .at;
    // Polls already in flight when the 429 came may still land; none may start after that.
    let in_flight = Duration::from_millis(300);
    let after = eventually(PATIENCE, "polling to resume", || async {
        let requests = h.live_requests();
        requests
            .iter()
            .any(|r| r.at > at_429 + Duration::from_secs(2))
            .then_some(requests)
    })
    .await;
    let during: Vec<Duration> = after
        .iter()
        .filter_map(|r| r.at.duration_since(at_429).ok())
        .filter(|since| *since > in_flight && *since < Duration::from_millis(1_950))
        .collect();
    assert!(during.is_empty(), "polls during the back-off: {during:?}");
    for replica in replicas {
        replica.stop().await.unwrap();
    }
}

#[tokio::test]
async fn backpressure_pauses_polling_until_the_backlog_drains() {
    let h = harness().await;
    let (mut keys, poller, consumer) = over_its_backlog(&h).await;

    let held_back = h.add(FIRE);
    eventually(PATIENCE, "polls to pause", || async {
        (poller.metric("bcfy_live_producer_backpressure_pauses_total", None) >= 3.0).then_some(())
    })
    .await;
    assert_eq!(
        h.published().await.len(),
        5,
        "nothing polled while the backlog is over"
    );
    drain(&consumer, 5).await;
    keys.insert(held_back);
    h.expect_published(&keys).await;
    poller.stop().await.unwrap();
}

#[tokio::test]
async fn a_backlog_worked_off_since_the_last_reading_does_not_pause_polling() {
    let h = harness().await;
    let (mut keys, poller, consumer) = over_its_backlog(&h).await;
    // The fetcher catches up before the next reading (one a second): the poller must not
    // pause on the reading it still holds.
    drain(&consumer, 5).await;
    let pauses = || poller.metric("bcfy_live_producer_backpressure_pauses_total", None);
    let before = pauses();
    keys.insert(h.add(FIRE));
    h.expect_published(&keys).await;
    assert_eq!(pauses(), before, "no pause once the backlog is gone");
    poller.stop().await.unwrap();
}

/// A poller with `queue_maxsize` 3 that published 5 calls nobody fetched, once its backlog
/// reading shows them: the calls, the poller and the fetcher's consumer.
async fn over_its_backlog(h: &Harness) -> (BTreeSet<String>, Running, PullConsumer) {
    let keys: BTreeSet<String> = (0..5).map(|_| h.add(FIRE)).collect();
    let mut config = h.config("a", vec![shard("fire", FIRE)]);
    config.live_producer.queue_maxsize = 3;
    let poller = start(config);
    h.expect_published(&keys).await;
    let (consumer, _) = ensure_consumer(&h.js, &ConsumerSpec::audio_fetcher(64))
        .await
        .unwrap();
    eventually(PATIENCE, "a backlog reading over the threshold", || async {
        (poller.metric("bcfy_live_producer_downstream_backlog", None) >= 5.0).then_some(())
    })
    .await;
    (keys, poller, consumer)
}

async fn drain(consumer: &PullConsumer, count: usize) {
    let mut messages = consumer
        .fetch()
        .max_messages(count)
        .messages()
        .await
        .unwrap();
    while let Some(message) = messages.next().await {
        message.unwrap().double_ack().await.unwrap();
    }
}

#[tokio::test]
async fn a_standby_takes_over_when_the_lease_holder_dies() {
    let h = harness().await;
    let mut keys: BTreeSet<String> = (0..2).map(|_| h.add(FIRE)).collect();
    let first = start(h.config("a", vec![shard("fire", FIRE)]));
    h.expect_published(&keys).await;
    let second = start(h.config("b", vec![shard("fire", FIRE)]));
    let held = |r: &Running| r.metric("bcfy_live_producer_lease_held", Some(("shard", "fire")));
    eventually(PATIENCE, "the standby to be up", || async {
        (second.metric("bcfy_live_producer_lease_held", None) == 0.0 && held(&first) == 1.0)
            .then_some(())
    })
    .await;

    first.kill();
    keys.insert(h.add(FIRE));
    h.expect_published(&keys).await;
    assert_eq!(held(&second), 1.0);
    second.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_json_counts_an_error_and_keeps_the_cursor() {
    let h = harness().await;
    let mut keys: BTreeSet<String> = BTreeSet::from([h.add(FIRE)]);
    let poller = start(h.config("a", vec![shard("fire", FIRE)]));
    h.expect_published(&keys).await;
    let cursors = h.js.get_key_value(KV_POLLER_CURSORS).await.unwrap();
    let saved = cursors.get("shard-fire").await.unwrap().unwrap();

    h.sim.inject(Route::LiveCalls, Fault::MalformedJson);
    eventually(PATIENCE, "the parse error", || async {
        (poller.metric(
            "bcfy_live_producer_poll_errors_total",
            Some(("kind", "response_parsing")),
        ) >= 1.0)
            .then_some(())
    })
    .await;
    assert_eq!(
        cursors.get("shard-fire").await.unwrap().unwrap(),
        saved,
        "cursor unchanged"
    );
    keys.insert(h.add(FIRE));
    h.expect_published(&keys).await;
    poller.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_finishes_the_poll_in_flight() {
    let h = harness().await;
    let first_ts = h
        .sim
        .add_call(CallSpec {
            talkgroup: Some(FIRE),
            ..CallSpec::default()
        })
        .ts;
    let mut keys: BTreeSet<String> = (0..300).map(|_| h.add(FIRE)).collect();
    keys.extend(
        h.sim
            .ledger()
            .into_iter()
            .filter(|e| e.ts == first_ts)
            .map(|e| e.key),
    );
    let mut config = h.config("a", vec![shard("fire", FIRE)]);
    config.live_producer.initial_position = Some(first_ts as f64 - 1.0);
    let poller = start(config);
    eventually(PATIENCE, "publishing to start", || async {
        (!h.published().await.is_empty()).then_some(())
    })
    .await;
    poller.stop().await.unwrap();
    // Stopped cleanly: the poll in flight finished, so its cursor covers whatever it published
    // and every call below the cursor is in the stream (none abandoned).
    let published: BTreeSet<String> = h.published().await.into_iter().map(|e| e.call_id).collect();
    let cursors = Cursors::new(h.js.get_key_value(KV_POLLER_CURSORS).await.unwrap());
    let cursor = cursors.load("fire").await.unwrap().expect("a cursor saved");
    let ledger = h.sim.ledger();
    for entry in ledger.iter().filter(|e| (e.ts as f64) < cursor) {
        assert!(
            published.contains(&entry.key),
            "{} is below the cursor but not published",
            entry.key
        );
    }
    // A restart adds the rest, each new to the stream once.
    let poller = start(h.config("a", vec![shard("fire", FIRE)]));
    h.expect_published(&keys).await;
    let added = poller.metric("bcfy_live_producer_dispatched_total", None);
    assert_eq!(added as usize, keys.len() - published.len());
    poller.stop().await.unwrap();
}

#[tokio::test]
async fn the_request_budget_is_shared_by_every_replica_and_covers_sweeps() {
    const BUDGET: usize = 5;
    let h = harness().await;
    // A call on each talkgroup gives each shard a cursor at once, so sweeps start too.
    let newest = recent_ts();
    let sweep_pos = format!("{}.000", newest + 1 - 120);
    let replicas: Vec<Running> = [("fire", FIRE), ("law", LAW)]
        .iter()
        .map(|(name, tg)| {
            h.add_at(*tg, newest);
            let mut config = h.config(name, vec![shard(name, *tg)]);
            config.live_producer.rate_limit_per_minute = Some(BUDGET as u32);
            config.live_producer.look_back_interval = Duration::from_secs(1);
            start(config)
        })
        .collect();
    eventually(
        Duration::from_secs(70),
        "a sweep, and a replica waiting for the budget",
        || async {
            let waits: f64 = replicas
                .iter()
                .map(|r| r.metric("bcfy_live_producer_rate_limit_waits_total", None))
                .sum();
            let swept = h
                .live_requests()
                .iter()
                .any(|r| r.form_field("pos") == Some(sweep_pos.as_str()));
            (waits >= 1.0 && swept).then_some(())
        },
    )
    .await;
    for replica in replicas {
        replica.stop().await.unwrap();
    }
    // The budget is counted in the minute a request is sent, which is not always the minute it
    // arrives (one sent at 59.99 s lands in the next minute): read the fleet's counters.
    let budget = h.js.get_key_value(KV_UPSTREAM_BUDGET).await.unwrap();
    let mut per_minute = BTreeMap::<String, usize>::new();
    let mut keys = budget.keys().await.unwrap();
    while let Some(key) = keys.next().await {
        let key = key.unwrap();
        if key.starts_with("minute-") {
            let used = budget.get(&key).await.unwrap().expect("a counter");
            per_minute.insert(key, std::str::from_utf8(&used).unwrap().parse().unwrap());
        }
    }
    assert!(per_minute.values().all(|n| *n <= BUDGET), "{per_minute:?}");
    assert_eq!(per_minute.values().max(), Some(&BUDGET), "{per_minute:?}");
    // Every poll and sweep the simulator saw was paid for from those counters.
    let paid: usize = per_minute.values().sum();
    let sent = h.live_requests().len();
    assert!(
        sent <= paid,
        "{sent} requests, {paid} taken from the budget"
    );
}

#[tokio::test]
async fn each_published_call_starts_a_trace_of_its_own() {
    let h = harness().await;
    let keys = BTreeSet::from([h.add(FIRE), h.add(FIRE)]);
    let poller = start(h.config("a", vec![shard("fire", FIRE)]));
    h.expect_published(&keys).await;
    let stream = h.js.get_stream(STREAM_CALLS_LIVE).await.unwrap();
    let mut trace_ids = BTreeSet::new();
    for sequence in 1..=2 {
        let message = stream.get_raw_message(sequence).await.unwrap();
        let traceparent = message
            .headers
            .get("traceparent")
            .expect("a traceparent header");
        let parts: Vec<&str> = traceparent.as_str().split('-').collect();
        assert_eq!(parts.len(), 4, "{traceparent:?}");
        assert_ne!(parts[1], "0".repeat(32), "a real trace id");
        trace_ids.insert(parts[1].to_owned());
        assert_eq!(
            message.headers.get("Content-Type").map(|v| v.as_str()),
            Some("application/protobuf; proto=broadcastify.v1.LiveCallEnvelope")
        );
    }
    assert_eq!(trace_ids.len(), 2, "one trace per call, even from one poll");
    poller.stop().await.unwrap();
}

#[tokio::test]
async fn unusable_upstream_records_are_dead_lettered() {
    let h = harness().await;
    let mut keys = BTreeSet::from([h.add(FIRE)]);
    let poller = start(h.config("a", vec![shard("fire", FIRE)]));
    h.expect_published(&keys).await;
    h.sim.inject(Route::LiveCalls, Fault::BadRecords);
    eventually(PATIENCE, "two dead letters", || async {
        (poller.metric("bcfy_live_producer_dead_letters_total", None) >= 2.0).then_some(())
    })
    .await;
    let mut stream =
        h.js.get_stream(bcfy_bus::topology::STREAM_DEAD_LETTERS)
            .await
            .unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 2);
    let first = stream.get_raw_message(1).await.unwrap();
    let letter = bcfy_proto::DeadLetter::decode(first.payload.as_ref()).unwrap();
    assert_eq!(letter.stage, "poller");
    assert_eq!(letter.original_headers["shard"], "fire");
    assert!(!letter.reason.is_empty());
    keys.insert(h.add(FIRE));
    h.expect_published(&keys).await;
    poller.stop().await.unwrap();
}

#[tokio::test]
async fn a_poll_with_more_new_calls_than_the_ack_window_publishes_them_all() {
    let h = harness().await;
    let mut keys = BTreeSet::from([h.add(FIRE)]);
    let poller = start(h.config("a", vec![shard("fire", FIRE)]));
    h.expect_published(&keys).await;
    // More new calls in one answer than async-nats lets a publisher have unacknowledged (5,000):
    // sending them all before awaiting any ack used to stall the shard for good.
    for _ in 0..6_000 {
        keys.insert(h.add(FIRE));
    }
    eventually(PATIENCE, "6,001 calls on calls.live", || async {
        let mut stream = h.js.get_stream(STREAM_CALLS_LIVE).await.ok()?;
        let stored = stream.info().await.ok()?.state.messages;
        (stored >= keys.len() as u64).then_some(())
    })
    .await;
    h.expect_published(&keys).await;
    poller.stop().await.unwrap();
}
