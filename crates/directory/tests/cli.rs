//! `bcfy-directory` as a process: straight against the simulator (`--upstream`) and through
//! the directory's NATS service on a real nats-server; its tables, JSON and `shards:` block, and
//! the exit code of each kind of failure.

mod common;

use std::process::Output;
use std::time::Duration;

use bcfy_directory::nats_api;
use bcfy_simulator::{SimConfig, Simulator};
use bcfy_test_support::NatsServer;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// `--upstream` and the simulator's endpoints and credentials, with `catalog_key`.
fn upstream_flags(sim: &Simulator, catalog_key: &str) -> Vec<String> {
    let config = sim.config();
    [
        ("--upstream", String::new()),
        ("--catalog-url", format!("{}/audio/", sim.url())),
        ("--catalog-key", catalog_key.to_owned()),
        ("--calls-api-url", format!("{}/", sim.url())),
        ("--app-id", config.app_id.clone()),
        ("--api-key-id", config.api_key_id.clone()),
        ("--api-key", config.api_key.clone()),
        ("--username", config.username.clone()),
        ("--password", config.password.clone()),
    ]
    .into_iter()
    .flat_map(|(flag, value)| [flag.to_owned(), value])
    .filter(|arg| !arg.is_empty())
    .collect()
}

async fn cli(args: &[String]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bcfy-directory"))
        .args(args)
        .env_remove("NATS_URL")
        .output()
        .await
        .expect("the command runs")
}

fn args(base: &[String], more: &[&str]) -> Vec<String> {
    base.iter()
        .cloned()
        .chain(more.iter().map(|s| (*s).to_owned()))
        .collect()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn straight_against_the_upstream_it_lists_each_level_and_writes_a_shard() {
    let sim = Simulator::start(SimConfig::for_tests()).await.expect("sim");
    let upstream = upstream_flags(&sim, &sim.config().catalog_key);

    let states = cli(&args(&upstream, &["states"])).await;
    assert_eq!(states.status.code(), Some(0), "{}", stderr(&states));
    assert!(
        stdout(&states).starts_with("ID  CODE  NAME\n6   CA    California\n"),
        "{}",
        stdout(&states)
    );

    let counties = cli(&args(&upstream, &["counties", "ca"])).await;
    assert_eq!(
        stdout(&counties),
        "CTID  NAME\n207   Example County\n208   Quiet County\n"
    );

    let county = cli(&args(&upstream, &["county", "207"])).await;
    let text = stdout(&county);
    assert!(text.starts_with("Example County\n"), "{text}");
    assert!(text.contains("7001-2345  FD Disp 1"), "{text}");
    assert!(text.contains("31001  online"), "{text}");

    let json = cli(&args(&upstream, &["--json", "county", "207"])).await;
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(
        json["talkgroups"].as_array().map(Vec::len),
        Some(sim.world().talkgroups.len())
    );
    assert_eq!(
        json["systems"][1]["sid"], "7002",
        "protobuf JSON writes int64 as strings"
    );

    let shard = cli(&args(
        &upstream,
        &[
            "county",
            "207",
            "--shard-yaml",
            "--tag",
            "fire",
            "--shard-name",
            "fire",
        ],
    ))
    .await;
    let fire: Vec<String> = sim
        .world()
        .talkgroups
        .iter()
        .filter(|t| t.tag_label.to_lowercase().contains("fire"))
        .map(|t| format!("{}-{}", t.sid, t.tg))
        .collect();
    let yaml = stdout(&shard);
    assert!(
        yaml.starts_with("shards:\n  - name: fire\n    groups:\n"),
        "{yaml}"
    );
    let listed: Vec<&str> = yaml
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- \"")?.split('"').next())
        .collect();
    assert_eq!(listed, fire);
}

#[tokio::test]
async fn each_failure_has_its_exit_code() {
    let sim = Simulator::start(SimConfig::for_tests()).await.expect("sim");
    let upstream = upstream_flags(&sim, &sim.config().catalog_key);
    let code = |output: &Output| output.status.code();

    let unknown = cli(&args(&upstream, &["county", "999"])).await;
    assert_eq!(code(&unknown), Some(66), "{}", stderr(&unknown));
    let no_state = cli(&args(&upstream, &["counties", "Atlantis"])).await;
    assert_eq!(code(&no_state), Some(66));
    assert!(
        stderr(&no_state).contains("bcfy-directory states"),
        "{}",
        stderr(&no_state)
    );
    let refused = cli(&args(&upstream_flags(&sim, "wrong"), &["states"])).await;
    assert_eq!(code(&refused), Some(77), "{}", stderr(&refused));
    assert!(
        stderr(&refused).contains("refuses the credentials"),
        "{}",
        stderr(&refused)
    );
    let usage = cli(&args(&upstream, &["county", "two-hundred"])).await;
    assert_eq!(code(&usage), Some(64));
    let nothing_matches = cli(&args(&upstream, &["county", "208", "--shard-yaml"])).await;
    assert_eq!(code(&nothing_matches), Some(66));

    let nats = NatsServer::start().await;
    let no_service = cli(&["--nats".to_owned(), nats.url(), "states".to_owned()]).await;
    assert_eq!(code(&no_service), Some(69), "{}", stderr(&no_service));
}

#[tokio::test]
async fn through_the_service_answers_are_cached_and_say_so() {
    let sim = Simulator::start(SimConfig::for_tests()).await.expect("sim");
    let (nats, client, js) = common::nats().await;
    let (directory, metrics, _) = common::replica(
        &js,
        "test",
        common::upstream_config(&sim),
        Duration::from_secs(3600),
    )
    .await;
    let stop = CancellationToken::new();
    let api = nats_api::start(&client).await.expect("service");
    let served = tokio::spawn(api.serve(directory, metrics, stop.clone()));
    let service = ["--nats".to_owned(), nats.url()];

    let first = cli(&args(&service, &["county", "207"])).await;
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("(fetched now)"),
        "{}",
        stderr(&first)
    );
    let second = cli(&args(&service, &["county", "207"])).await;
    assert_eq!(stdout(&second), stdout(&first));
    assert!(
        stderr(&second).contains("(cached, fetched"),
        "{}",
        stderr(&second)
    );
    let unknown = cli(&args(&service, &["feed", "5"])).await;
    assert_eq!(unknown.status.code(), Some(66), "{}", stderr(&unknown));
    stop.cancel();
    served.await.expect("joined").expect("stops");
}
