//! `GET /v1/calls` in-process against a real nats-server, with transcripts published straight
//! into `TRANSCRIPTIONS`: words, phrases, number words, prefixes, filters, facets, highlights,
//! pages, a newer transcript replacing an older one, a key's scope, bad input, and a restart
//! that goes on from the last indexed sequence.

use std::net::SocketAddr;
use std::time::Duration;

use async_nats::jetstream;
use bcfy_bus::subject::{self, Shard};
use bcfy_bus::{CallId, Publisher};
use bcfy_gateway::GatewayConfig;
use bcfy_proto::{Call, TranscriptionResult};
use bcfy_test_support::{NatsServer, ServiceUnderTest, eventually};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

const PATIENCE: Duration = Duration::from_secs(60);
const T0: i64 = 1_767_225_600;
const NARROW_KEY: &str = "key-for-7001-2345";

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

/// Transcript `n`: (shard, start offset, unit number, unit name, text).
const CALLS: [(Shard, i64, i64, &str, &str); 4] = [
    (
        Shard {
            sid: 7001,
            tg: 2345,
        },
        0,
        1201,
        "E12",
        "Engine 12 respond to 400 Elm Street for a structure fire",
    ),
    (
        Shard {
            sid: 7001,
            tg: 2345,
        },
        60,
        4101,
        "Medic 41",
        "Medic 41 en route to Elm Street",
    ),
    (
        Shard {
            sid: 7001,
            tg: 2346,
        },
        120,
        0,
        "",
        "engine twelve clear, back in service",
    ),
    (
        Shard { sid: 7002, tg: 100 },
        180,
        0,
        "",
        "Units respond to Oak Avenue",
    ),
];

fn call_id(n: usize) -> CallId {
    CallId::parse(&format!(
        "1502-{}-{}-search{n}",
        T0 + CALLS[n].1,
        CALLS[n].0.tg
    ))
    .expect("id")
}

async fn publish(js: &jetstream::Context, n: usize, text: &str, msg_id: &str) {
    let (shard, offset, unit, name, _) = CALLS[n];
    let result = TranscriptionResult {
        call_id: call_id(n).to_string(),
        text: text.to_owned(),
        call: Some(Call {
            ts: Some(T0 + offset),
            call_tg: Some(shard.tg),
            display: (shard.tg == 2345).then(|| "FD Dispatch".to_owned()),
            call_src: (unit > 0).then_some(unit),
            call_src_descr: (!name.is_empty()).then(|| name.to_owned()),
            ..Call::default()
        }),
        ..TranscriptionResult::default()
    };
    Publisher::new(js.clone())
        .publish(subject::transcription(shard, &call_id(n)), msg_id, &result)
        .await
        .expect("stored");
}

struct Gateway {
    service: ServiceUnderTest<bcfy_gateway::GatewayError>,
    url: String,
}

async fn start(nats: &NatsServer, dir: &std::path::Path) -> Gateway {
    let keys = dir.join("keys.yaml");
    let sha: String = Sha256::digest(NARROW_KEY.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(
        &keys,
        format!(
            "keys:\n  - name: narrow\n    sha256: {sha}\n    grant:\n      scope: [\"7001-2345\"]\n"
        ),
    )
    .expect("keys written");
    let mut config = GatewayConfig::default();
    config.nats.urls = vec![nats.url()];
    config.admin.listen_addr = free_addr();
    config.http.listen_addr = free_addr();
    config.auth.allow_anonymous = true;
    config.auth.keys_file = Some(keys);
    config.search.index_dir = Some(dir.join("index"));
    let url = format!("http://{}/v1/calls", config.http.listen_addr);
    let service = ServiceUnderTest::start("gateway", config, bcfy_gateway::run);
    eventually(PATIENCE, "the gateway to be ready", || async {
        service.readiness().is_ready().then_some(())
    })
    .await;
    Gateway { service, url }
}

impl Gateway {
    async fn indexed(&self, seq: u64) {
        eventually(PATIENCE, "the index to catch up", || async {
            (self
                .service
                .metric("bcfy_gateway_search_indexed_sequence", None)
                >= seq as f64)
                .then_some(())
        })
        .await;
    }

    async fn get(&self, query: &str, key: Option<&str>) -> (u16, Value) {
        let mut request = reqwest::Client::new().get(format!("{}?{query}", self.url));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.expect("an answer");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON"))
    }

    async fn found(&self, query: &str) -> Vec<String> {
        ids(&self.get(query, None).await.1)
    }
}

fn ids(body: &Value) -> Vec<String> {
    body["calls"]
        .as_array()
        .expect("calls")
        .iter()
        .map(|c| c["call_id"].as_str().expect("an id").to_owned())
        .collect()
}

fn id(n: usize) -> String {
    call_id(n).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transcripts_are_found_by_words_phrases_numbers_prefixes_and_filters() {
    let nats = NatsServer::start().await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let gateway = start(&nats, dir.path()).await;
    let js = jetstream::new(async_nats::connect(nats.url()).await.expect("NATS"));
    for (n, call) in CALLS.iter().enumerate() {
        publish(&js, n, call.4, &format!("t{n}")).await;
    }
    // A newer transcript of call 0 replaces the older one.
    publish(
        &js,
        0,
        "Engine 12 respond to 400 Elm Street, working fire",
        "t0-v2",
    )
    .await;
    gateway.indexed(5).await;

    let (status, body) = gateway.get("q=elm+street", None).await;
    assert_eq!(status, 200, "{body}");
    let mut found = ids(&body);
    found.sort();
    assert_eq!(found, [id(0), id(1)]);
    assert_eq!(body["total"], 2);
    assert_eq!(
        body["facets"]["talkgroups"],
        serde_json::json!([{"sid": 7001, "tg": 2345, "name": "FD Dispatch", "count": 2}])
    );
    let first = &body["calls"][0];
    assert_eq!(first["talkgroup"], "FD Dispatch", "the name the call gave");
    assert!(
        first["highlight"]
            .as_str()
            .expect("highlight")
            .contains("<b>Elm</b>"),
        "{first}"
    );
    assert_eq!(
        first["audio_url"],
        format!("/v1/calls/{}/audio", first["call_id"].as_str().unwrap())
    );

    let newer = gateway.get("q=working+fire", None).await.1;
    assert_eq!(ids(&newer), [id(0)], "the newer transcript is indexed");
    assert_eq!(
        newer["calls"][0]["transcript"],
        "Engine 12 respond to 400 Elm Street, working fire"
    );
    assert!(
        gateway.found("q=structure").await.is_empty(),
        "the older one is gone"
    );

    let mut engines = gateway.found("q=%22engine+12%22").await;
    engines.sort();
    assert_eq!(engines, [id(0), id(2)], "\"engine twelve\" is engine 12");
    assert!(
        gateway.found("q=%22street+elm%22").await.is_empty(),
        "a phrase keeps its order"
    );
    assert_eq!(gateway.found("q=medic+4*").await, [id(1)], "a prefix");
    assert_eq!(
        gateway.found("q=%22engine+1%22*&tg=2346").await,
        [id(2)],
        "a phrase prefix"
    );

    assert_eq!(
        gateway.found("").await,
        [id(3), id(2), id(1), id(0)],
        "without q: every call, newest first"
    );
    assert_eq!(gateway.found("tg=2346").await, [id(2)]);
    assert_eq!(gateway.found("sid=7002").await, [id(3)]);
    assert_eq!(gateway.found("unit=e12").await, [id(0)]);
    assert_eq!(gateway.found("unit=MEDIC*").await, [id(1)]);
    assert_eq!(gateway.found("unit=4101").await, [id(1)]);
    assert_eq!(
        gateway
            .found(&format!("from={}&to={}", T0 + 60, T0 + 180))
            .await,
        [id(2), id(1)]
    );
    assert_eq!(gateway.found("has_text=false").await, Vec::<String>::new());

    // Pages.
    let (_, page) = gateway.get("limit=3", None).await;
    assert_eq!(ids(&page), [id(3), id(2), id(1)]);
    assert_eq!(page["total"], 4);
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_owned();
    let (_, rest) = gateway.get(&format!("limit=3&cursor={cursor}"), None).await;
    assert_eq!(ids(&rest), [id(0)]);
    assert_eq!(rest["next_cursor"], Value::Null);
    let (_, ranked) = gateway.get("q=respond&limit=1", None).await;
    let cursor = ranked["next_cursor"].as_str().expect("more").to_owned();
    let (_, second) = gateway
        .get(&format!("q=respond&limit=1&cursor={cursor}"), None)
        .await;
    let mut both = [ids(&ranked), ids(&second)].concat();
    both.sort();
    assert_eq!(both, [id(0), id(3)]);

    // A key sees its scope only.
    let (_, narrow) = gateway.get("", Some(NARROW_KEY)).await;
    assert_eq!(ids(&narrow), [id(1), id(0)]);
    assert_eq!(narrow["facets"]["talkgroups"][0]["tg"], 2345);
    assert_eq!(
        narrow["facets"]["talkgroups"].as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        ids(&gateway.get("q=%22engine+12%22", Some(NARROW_KEY)).await.1),
        [id(0)]
    );

    for (query, says) in [
        ("limit=0", "limit"),
        ("sort=best", "sort"),
        ("cursor=zz", "cursor"),
        ("page=2", "unknown parameter"),
        ("from=soon", "from"),
    ] {
        let (status, body) = gateway.get(query, None).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["error"], "invalid_query");
        assert!(
            body["message"].as_str().unwrap_or_default().contains(says),
            "{body}"
        );
    }
    gateway.service.stop().await.expect("stops");

    // A restart goes on from the last committed sequence.
    publish(&js, 3, "Units respond to Oak Avenue and Pine", "t3-v2").await;
    let again = start(&nats, dir.path()).await;
    assert_eq!(
        again
            .service
            .metric("bcfy_gateway_search_indexed_sequence", None),
        5.0,
        "resumed from what it had committed, not rebuilt"
    );
    again.indexed(6).await;
    assert_eq!(again.found("q=pine").await, [id(3)]);
    assert_eq!(again.get("", None).await.1["total"], 4, "no call twice");
    again.service.stop().await.expect("stops");
}
