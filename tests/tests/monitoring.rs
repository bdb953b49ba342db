//! The chart's dashboard and alert rules against the real thing: a real Prometheus (Debian's
//! `prometheus` package) scrapes the real services (poller, audio fetcher, transcriber with a
//! fake STT, alerter) while calls flow with faults on, loads the chart's alert rules (each
//! evaluates without error), and every query of the chart's Grafana dashboard returns data.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime};

use bcfy_e2e::Service;
use bcfy_e2e::pipeline::{STT_KEY, fake_stt};
use bcfy_e2e::yaml::{common_on, free_port, site};
use bcfy_simulator::{CallSpec, Fault, Route, SimConfig, Simulator};
use bcfy_test_support::{NatsServer, eventually};
use serde_json::Value;

const PATIENCE: Duration = Duration::from_secs(180);
const CHART_FILES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../helm/bcfy-pipeline/files");

/// A Prometheus process, killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.child.kill().ok();
        self.child.wait().ok();
    }
}

impl Prometheus {
    /// Scrapes `targets` every second as the job `bcfy-pipeline`, with the chart's rules.
    fn start(dir: &Path, targets: &[u16]) -> Self {
        let port = free_port();
        let config = dir.join("prometheus.yml");
        let targets: Vec<String> = targets
            .iter()
            .map(|p| format!("\"127.0.0.1:{p}\""))
            .collect();
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [\"{CHART_FILES}/prometheus-rules.yaml\"]\nscrape_configs:\n  - job_name: bcfy-pipeline\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            ),
        )
        .expect("written");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prometheus runs (apt-get install prometheus)");
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Option<Value> {
        let answer: Value = reqwest::Client::new()
            .get(format!("{}/api/v1/{path}", self.url))
            .query(query)
            .send()
            .await
            .ok()?
            .json()
            .await
            .ok()?;
        (answer["status"] == "success").then(|| answer["data"].clone())
    }

    /// The series `expr` returns now (empty while it has none).
    async fn query(&self, expr: &str) -> Vec<Value> {
        self.api("query", &[("query", expr)])
            .await
            .and_then(|data| data["result"].as_array().cloned())
            .unwrap_or_default()
    }
}

/// Every query of the chart's dashboard, with its panel's title.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(format!("{CHART_FILES}/grafana-dashboard.json"))
        .expect("the dashboard");
    let dashboard: Value = serde_json::from_str(&text).expect("JSON");
    dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|panel| {
            let title = panel["title"].as_str().unwrap_or_default().to_owned();
            panel["targets"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(move |t| {
                    (
                        title.clone(),
                        t["expr"].as_str().unwrap_or_default().to_owned(),
                    )
                })
        })
        .collect()
}

#[tokio::test]
async fn every_dashboard_query_returns_data_and_every_rule_evaluates() {
    let nats = NatsServer::start().await;
    let sim = Simulator::start(SimConfig::for_tests())
        .await
        .expect("bcfy-sim");
    let stt = fake_stt().await;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    let talkgroup = sim.world().talkgroups[0].clone();
    for i in 0..6 {
        sim.add_call(CallSpec {
            talkgroup: Some((talkgroup.sid, talkgroup.tg)),
            clip: Some(i),
            ts: Some(now - 30 + i as i64),
            ..CallSpec::default()
        });
    }
    // Failures of every kind the dashboard shows: a failed poll, unusable records (dead
    // letters), a failed download; the fake STT fails every other request.
    sim.inject(
        Route::LiveCalls,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
    );
    sim.inject(Route::LiveCalls, Fault::BadRecords);
    sim.inject(
        Route::Audio,
        Fault::Status {
            status: 503,
            retry_after: None,
        },
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let url = nats.url();
    let _services = [
        Service::start(
            "poller",
            &format!(
                "{}{}live_producer:\n  poll_interval: 1s\n  initial_backoff: 200ms\nshards:\n  - name: fire\n    groups: [\"{}-{}\"]\n",
                common_on(&url, "info", ports[0]),
                site(&sim, true),
                talkgroup.sid,
                talkgroup.tg
            ),
            dir.path(),
        ),
        Service::start(
            "audio-fetcher",
            &format!("{}{}", common_on(&url, "info", ports[1]), site(&sim, false)),
            dir.path(),
        ),
        Service::start_with_env(
            "transcriber",
            &format!(
                "{}transcription:\n  provider: openai\n  endpoint_url: {}\n  api_key: {STT_KEY}\nconsumer:\n  retry_initial_delay: 200ms\n",
                common_on(&url, "info", ports[2]),
                stt.url()
            ),
            dir.path(),
            &[],
        ),
        Service::start(
            "alerter",
            &format!(
                "{}rules:\n  - name: any-words\n    regex: \"\\\\w\"\ndestinations:\n  - name: nowhere\n    url: {}/no-such-hook\nmonitor:\n  interval: 1s\n  stale_after: 10s\n",
                common_on(&url, "info", ports[3]),
                sim.url()
            ),
            dir.path(),
        ),
    ];
    stt.answer((
        reqwest::StatusCode::SERVICE_UNAVAILABLE,
        vec![],
        "{\"error\":\"overloaded\"}",
    ));
    let prometheus = Prometheus::start(dir.path(), &ports);

    let queries = dashboard_queries();
    assert!(queries.len() >= 10, "{queries:?}");
    eventually(PATIENCE, "every dashboard query to return data", || async {
        let mut empty = Vec::new();
        for (title, expr) in &queries {
            if prometheus.query(expr).await.is_empty() {
                empty.push(format!("{title}: {expr}"));
            }
        }
        if !empty.is_empty() {
            eprintln!("still without data: {empty:#?}");
        }
        empty.is_empty().then_some(())
    })
    .await;

    let groups = prometheus.api("rules", &[]).await.expect("the rules");
    let rules: Vec<Value> = groups["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(rules.len(), 9, "the chart's rules are loaded");
    for rule in &rules {
        assert_eq!(rule["health"], "ok", "{rule}");
    }
}
