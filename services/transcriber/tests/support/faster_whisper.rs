//! A real faster-whisper-server (the venv `scripts/tools.sh` installs) serving the tiny.en
//! CTranslate2 model on a free loopback port, killed on drop.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use bcfy_test_support::eventually;
use bcfy_test_support::speech::tiny_en_model_dir;
use tokio::process::{Child, Command};

/// The model name the server answers to (its `model_name` form field).
pub(crate) const MODEL: &str = "tiny.en";

pub(crate) struct FasterWhisperServer {
    /// `http://127.0.0.1:{port}/v1/audio/transcriptions`
    pub(crate) url: String,
    _child: Child,
    _dir: tempfile::TempDir,
}

fn binary() -> PathBuf {
    let path = std::env::var_os("FASTER_WHISPER_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../../.tools/faster-whisper-server/bin/faster-whisper-server")
        });
    assert!(
        path.is_file(),
        "faster-whisper-server is missing at {}: run `scripts/tools.sh`",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl FasterWhisperServer {
    /// Starts the server and waits until `/health` answers (the model loads on first use).
    pub(crate) async fn start() -> FasterWhisperServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("models.yaml");
        std::fs::write(
            &config,
            format!(
                "models:\n  - name: {MODEL}\n    path: {}\n    model_options: {{device: cpu, compute_type: int8, cpu_threads: 2}}\n    transcribe_options: {{language: en, beam_size: 1}}\n",
                tiny_en_model_dir().display()
            ),
        )
        .expect("config written");
        let port = free_port();
        let child = Command::new(binary())
            .arg("--config")
            .arg(&config)
            .args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .env("HF_HUB_OFFLINE", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("faster-whisper-server starts");
        let base = format!("http://127.0.0.1:{port}");
        let health = format!("{base}/health");
        eventually(Duration::from_secs(60), "faster-whisper-server", || async {
            let answer = reqwest::get(&health).await.ok()?;
            answer.status().is_success().then_some(())
        })
        .await;
        FasterWhisperServer {
            url: format!("{base}/v1/audio/transcriptions"),
            _child: child,
            _dir: dir,
        }
    }
}
