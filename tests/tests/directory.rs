//! The directory in the whole system, as processes against a real nats-server and bcfy-sim: a
//! poller shard that names a county waits (not ready, saying why) until the directory service
//! answers, then polls exactly that county's chosen talkgroups, and follows a change to them;
//! the archive cache serves the directory over gRPC, and the gateway at `/v1/directory/…` with
//! typed errors.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use async_nats::jetstream;
use bcfy_bus::topology::STREAM_CALLS_LIVE;
use bcfy_e2e::Service;
use bcfy_e2e::yaml::{common, common_on, directory, free_port, site};
use bcfy_proto::GetCountyRequest;
use bcfy_proto::directory_service_client::DirectoryServiceClient;
use bcfy_simulator::{CallSpec, RecordedRequest, SimConfig, Simulator};
use bcfy_test_support::{NatsServer, eventually};
use serde_json::Value;

/// Building the binaries if needed, and the shard's first lookup back-off.
const PATIENCE: Duration = Duration::from_secs(180);

/// The `groups[]` a live-calls poll asked for.
fn polled_groups(request: &RecordedRequest) -> BTreeSet<String> {
    request
        .form
        .iter()
        .filter(|(k, _)| k == "groups[]")
        .map(|(_, v)| v.clone())
        .collect()
}

#[tokio::test]
async fn a_county_shard_polls_the_talkgroups_the_directory_lists_and_the_directory_is_served() {
    let nats = NatsServer::start().await;
    let sim = Simulator::start(SimConfig::for_tests())
        .await
        .expect("bcfy-sim");
    let fire: BTreeSet<String> = sim
        .world()
        .talkgroups
        .iter()
        .filter(|t| t.tag_label.contains("Fire"))
        .map(|t| format!("{}-{}", t.sid, t.tg))
        .collect();
    let other = sim
        .world()
        .talkgroups
        .iter()
        .find(|t| !t.tag_label.contains("Fire"))
        .map(|t| (t.sid, t.tg))
        .expect("a talkgroup that is not fire");
    assert!(fire.len() >= 2, "{fire:?}");
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let mut talkgroups: Vec<(i64, i64)> = fire
        .iter()
        .map(|g| {
            let (sid, tg) = g.split_once('-').expect("sid-tg");
            (sid.parse().expect("sid"), tg.parse().expect("tg"))
        })
        .collect();
    talkgroups.push(other);
    for (n, talkgroup) in talkgroups.iter().enumerate() {
        sim.add_call(CallSpec {
            talkgroup: Some(*talkgroup),
            ts: Some(now - 30 + n as i64),
            ..CallSpec::default()
        });
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let admin = free_port();
    let poller = Service::start(
        "poller",
        &format!(
            "{}{}live_producer:\n  poll_interval: 1s\ndirectory_refresh: 1s\nshards:\n  - name: fire\n    county: 207\n    county_tags: [fire]\n",
            common_on(&nats.url(), "info", admin),
            site(&sim, true)
        ),
        dir.path(),
    );
    let http = reqwest::Client::new();
    // No directory service yet: the shard waits, and readiness says for what.
    let waiting = eventually(PATIENCE, "the poller to say what it waits for", || async {
        let answer = http
            .get(format!("http://127.0.0.1:{admin}/readyz"))
            .send()
            .await
            .ok()?;
        (answer.status() == 503)
            .then(|| answer.text())?
            .await
            .ok()
            .filter(|body| body.contains("directory-fire"))
    })
    .await;
    assert!(waiting.contains("directory-fire"), "{waiting}");

    let (grpc, port) = (free_port(), free_port());
    let _services = [
        Service::start(
            "archive-cache",
            &format!(
                "{}{}{}  ttl: 1s\ngrpc:\n  listen_addr: 127.0.0.1:{grpc}\n",
                common(&nats.url(), "info"),
                site(&sim, true),
                directory(&sim)
            ),
            dir.path(),
        ),
        Service::start(
            "gateway",
            &format!(
                "{}http:\n  listen_addr: 127.0.0.1:{port}\nauth:\n  allow_anonymous: true\nsearch:\n  index_dir: {}\n",
                common(&nats.url(), "info"),
                dir.path().join("index").display()
            ),
            dir.path(),
        ),
    ];

    // The shard finds its county and publishes the fire calls.
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("NATS"));
    eventually(PATIENCE, "the fire calls on calls.live", || async {
        let stored = js
            .get_stream(STREAM_CALLS_LIVE)
            .await
            .ok()?
            .info()
            .await
            .ok()?
            .state
            .messages;
        (stored >= fire.len() as u64).then_some(())
    })
    .await;
    let polled: Vec<BTreeSet<String>> = sim
        .requests()
        .iter()
        .filter(|r| r.uri.starts_with("/calls/apis/live-calls"))
        .map(polled_groups)
        .collect();
    assert!(!polled.is_empty());
    assert!(
        polled.iter().all(|groups| *groups == fire),
        "every poll asks for exactly the county's fire talkgroups: {polled:?}"
    );
    let log = poller.log_text();
    assert!(log.contains("Cannot look the shard's county up"), "{log}");
    assert!(
        log.contains("Shard follows its county's talkgroups"),
        "{log}"
    );

    // gRPC.
    let mut client = eventually(PATIENCE, "the archive cache's gRPC port", || async {
        DirectoryServiceClient::connect(format!("http://127.0.0.1:{grpc}"))
            .await
            .ok()
    })
    .await;
    let county = client
        .get_county(GetCountyRequest { county_id: 207 })
        .await
        .expect("the county")
        .into_inner();
    assert_eq!(county.talkgroups.len(), sim.world().talkgroups.len());
    let missing = client
        .get_county(GetCountyRequest { county_id: 999 })
        .await
        .expect_err("no such county");
    assert_eq!(missing.code(), tonic::Code::NotFound);

    // The gateway.
    let base = format!("http://127.0.0.1:{port}/v1/directory");
    let get = |path: &str| {
        let url = format!("{base}{path}");
        let http = http.clone();
        async move {
            let answer = http.get(url).send().await.expect("the gateway answers");
            let status = answer.status().as_u16();
            (status, answer.json::<Value>().await.expect("a JSON body"))
        }
    };
    let states = eventually(PATIENCE, "the gateway", || async {
        let answer = http.get(format!("{base}/states")).send().await.ok()?;
        answer
            .status()
            .is_success()
            .then(|| answer.json::<Value>())?
            .await
            .ok()
    })
    .await;
    assert_eq!(states["states"][0]["code"], "CA");
    let (status, counties) = get("/states/ca/counties").await;
    assert_eq!(status, 200);
    assert_eq!(counties["counties"][0]["name"], "Example County");
    let (status, county) = get("/counties/207").await;
    assert_eq!(status, 200);
    assert_eq!(county["talkgroups"][0]["groupId"], "7001-2345");
    assert_eq!(county["feeds"][0]["listeners"], "42");
    let (status, feed) = get("/feeds/31002").await;
    assert_eq!(
        (status, feed["feed"]["name"].as_str()),
        (200, Some("Example County Sheriff"))
    );
    let (status, error) = get("/counties/999").await;
    assert_eq!((status, error["error"].as_str()), (404, Some("not_found")));
    let (status, error) = get("/counties/two").await;
    assert_eq!((status, error["error"].as_str()), (400, Some("invalid_id")));
    let (status, error) = get("/states/Atlantis/counties").await;
    assert_eq!((status, error["error"].as_str()), (404, Some("not_found")));

    // A talkgroup leaves the county's listing: the shard's next refresh drops it.
    let retired = fire.iter().next().cloned().expect("a fire talkgroup");
    let (sid, tg) = retired.split_once('-').expect("sid-tg");
    sim.retire_from_directory(sid.parse().expect("sid"), tg.parse().expect("tg"));
    let remaining: BTreeSet<String> = fire.iter().filter(|g| **g != retired).cloned().collect();
    let seen_before = sim.requests().len();
    eventually(
        PATIENCE,
        "the shard to poll without the retired talkgroup",
        || async {
            let requests = sim.requests();
            requests[seen_before..]
                .iter()
                .filter(|r| r.uri.starts_with("/calls/apis/live-calls"))
                .any(|r| polled_groups(r) == remaining)
                .then_some(())
        },
    )
    .await;
    let log = poller.log_text();
    assert!(log.contains("The county's talkgroups changed"), "{log}");
    assert!(
        log.contains(&retired),
        "the log names what was removed: {log}"
    );
}
