//! Every service binary's command line, run as a process: `--help`, `--version` with the git
//! revision, `check-config` (0, or 64 with every problem at once) and `print-config` (the
//! effective config, secrets masked, readable back as a config file).

use std::path::Path;
use std::process::{Command, Output};

use bcfy_e2e::service::{SERVICES, binary};

/// Exit code for bad arguments or config (`EX_USAGE`).
const EXIT_USAGE: i32 = 64;

fn run(name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(binary(name))
        .args(args)
        // A developer's own BCFY_* variables must not change the answers.
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .unwrap_or_else(|e| panic!("{name} runs: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(dir: &Path, name: &str, yaml: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn every_binary_answers_help_and_version_without_a_config() {
    let revision = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| text(&o.stdout).trim().to_owned());
    for name in SERVICES {
        let help = run(name, &["--help"], &[]);
        assert_eq!(help.status.code(), Some(0), "{name} --help: {help:?}");
        let usage = text(&help.stdout);
        for expected in [
            "--config",
            "healthcheck",
            "check-config",
            "print-config",
            "run",
        ] {
            assert!(
                usage.contains(expected),
                "{name} --help lacks {expected}:\n{usage}"
            );
        }
        let version = run(name, &["--version"], &[]);
        assert_eq!(version.status.code(), Some(0), "{name} --version");
        let version = text(&version.stdout);
        assert!(version.starts_with(&format!("{name} 0.")), "{version}");
        if let Some(revision) = &revision {
            assert!(
                version.contains(revision.as_str()),
                "{version} lacks {revision}"
            );
        }
        let wrong = run(name, &["--no-such-flag"], &[]);
        assert_eq!(wrong.status.code(), Some(EXIT_USAGE), "{name}: {wrong:?}");
        assert!(text(&wrong.stderr).contains("--no-such-flag"));
    }
    let transcriber = text(&run("transcriber", &["--help"], &[]).stdout);
    assert!(transcriber.contains("convert-model"), "{transcriber}");
    // The simulator beside them answers too.
    let version = run("bcfy-sim", &["--version"], &[]);
    assert_eq!(version.status.code(), Some(0), "bcfy-sim --version");
    assert!(text(&version.stdout).starts_with("bcfy-sim 0."));
}

#[test]
fn check_config_lists_unknown_keys_with_every_other_problem() {
    let dir = tempfile::tempdir().unwrap();
    // An unknown key, a value of the wrong type, and a failed check (no shards), at once.
    let config = write(
        dir.path(),
        "poller.yaml",
        "live_producer:\n  jiter_ratio: 0.2\n  poll_interval: soon\nnats:\n  urls: [\"nats://[bad\"]\n",
    );
    let out = run("poller", &["check-config", "--config", &config], &[]);
    assert_eq!(out.status.code(), Some(EXIT_USAGE), "{out:?}");
    let problems = text(&out.stderr);
    for expected in [
        "live_producer.jiter_ratio: unknown setting",
        "live_producer.poll_interval:",
        "shards: list at least one shard",
        "nats.urls: `nats://[bad` is not a NATS server address",
    ] {
        assert!(
            problems.contains(expected),
            "missing {expected:?} in:\n{problems}"
        );
    }
    let good = write(
        dir.path(),
        "good.yaml",
        "shards:\n  - name: fire\n    groups: [\"7001-2345\"]\n",
    );
    let out = run("poller", &["check-config", "--config", &good], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    // Every service validates the same way; with defaults alone the others are valid.
    for name in [
        "audio-fetcher",
        "transcriber",
        "archive-cache",
        "gateway",
        "alerter",
    ] {
        let out = run(name, &["check-config"], &[]);
        assert_eq!(out.status.code(), Some(0), "{name}: {out:?}");
        let out = run(
            name,
            &["check-config"],
            &[("BCFY_NATS__URLS", "nats://[bad")],
        );
        assert_eq!(out.status.code(), Some(EXIT_USAGE), "{name}: {out:?}");
    }
}

#[test]
fn check_config_reads_the_gateway_keys_file() {
    let dir = tempfile::tempdir().unwrap();
    for (file, expected) in [
        (
            "keys:\n  - name: newsroom\n    sha256: not-a-digest\n",
            "auth.keys_file.keys.0.sha256",
        ),
        (
            "keys:\n  - name: newsroom\n    sha256: 00\n    grant:\n      scope: [\"7001-x\"]\n",
            "`7001-x` is not `SID` or `SID-TG`",
        ),
    ] {
        let keys = write(dir.path(), "keys.yaml", file);
        let out = run(
            "gateway",
            &["check-config"],
            &[("BCFY_AUTH__KEYS_FILE", &keys)],
        );
        assert_eq!(out.status.code(), Some(EXIT_USAGE), "{out:?}");
        let problems = String::from_utf8_lossy(&out.stderr);
        assert!(
            problems.contains(expected),
            "missing {expected:?} in:\n{problems}"
        );
    }
}

#[test]
fn print_config_shows_defaults_file_and_env_with_secrets_masked() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "poller.yaml",
        "shards:\n  - name: fire\n    groups: [\"7001-2345\"]\nlive_producer:\n  poll_interval: 3s\n",
    );
    let env = [
        ("BCFY_BROADCASTIFY__USERNAME", "scanner"),
        ("BCFY_BROADCASTIFY__PASSWORD", "hunter2-secret"),
        ("BCFY_NATS__URLS", "nats://a:4222,nats://b:4222"),
    ];
    let out = run("poller", &["print-config", "--config", &config], &env);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let printed = text(&out.stdout);
    assert!(!printed.contains("hunter2-secret"), "{printed}");
    for expected in [
        "\"password\": \"********\"",
        "\"username\": \"scanner\"",
        "\"poll_interval\": \"3s\"",
        "\"jitter_ratio\": 0.1",
        "\"nats://b:4222\"",
        "\"7001-2345\"",
        "\"shutdown_grace\": \"10s\"",
    ] {
        assert!(
            printed.contains(expected),
            "missing {expected} in:\n{printed}"
        );
    }
    // What it prints is a config the service reads back as the same config.
    let again = write(dir.path(), "printed.yaml", &printed);
    let out = run("poller", &["print-config", "--config", &again], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(text(&out.stdout), printed);
}

#[tokio::test]
async fn a_service_whose_start_fails_exits_instead_of_lingering() {
    let dir = tempfile::tempdir().unwrap();
    // The file exists (so the config is valid) but is not NATS credentials: the start fails.
    let creds = write(dir.path(), "bad.creds", "not a credentials file\n");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let config = write(
        dir.path(),
        "poller.yaml",
        &format!(
            "nats:\n  credentials_file: {creds}\nadmin:\n  listen_addr: 127.0.0.1:{port}\nshards:\n  - name: fire\n    groups: [\"7001-2345\"]\n"
        ),
    );
    let mut child = tokio::process::Command::new(binary("poller"))
        .args(["--config", &config])
        .env_clear()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait())
        .await
        .expect("a failed start exits instead of running on")
        .unwrap();
    assert_eq!(status.code(), Some(1), "{status:?}");
}

#[tokio::test]
async fn retranscribe_runs_a_job_from_its_arguments_and_exits_when_done() {
    let nats = bcfy_test_support::NatsServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write(
        dir.path(),
        "transcriber.yaml",
        &format!(
            "nats:\n  urls: [\"{}\"]\nadmin:\n  listen_addr: 127.0.0.1:{}\ntranscription:\n  endpoint_url: http://127.0.0.1:9/v1\n",
            nats.url(),
            bcfy_e2e::yaml::free_port()
        ),
    );
    let bad = run(
        "transcriber",
        &[
            "retranscribe",
            "--config",
            &config,
            "--job",
            "x y",
            "--from",
            "2026-12-02T00:00:00Z",
            "--to",
            "2026-12-01T00:00:00Z",
        ],
        &[],
    );
    assert_eq!(bad.status.code(), Some(EXIT_USAGE), "{bad:?}");
    let errors = text(&bad.stderr);
    assert!(
        errors.contains("retranscribe.job") && errors.contains("retranscribe.to"),
        "{errors}"
    );
    // Nothing stored in the range: the job is done at once, and the process exits 0.
    let mut child = tokio::process::Command::new(binary("transcriber"))
        .args([
            "retranscribe",
            "--config",
            &config,
            "--job",
            "empty",
            "--from",
            "2026-12-01T00:00:00Z",
            "--to",
            "2026-12-02T00:00:00Z",
            "--talkgroup",
            "7001:2345",
        ])
        .env_clear()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let status = tokio::time::timeout(std::time::Duration::from_secs(30), child.wait())
        .await
        .expect("a finished job exits")
        .unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}
