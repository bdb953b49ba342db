//! A real faster-whisper-server (the venv `scripts/tools.sh` installs) serving the tiny.en
//! CTranslate2 model on a free loopback port, killed on drop: for the provider tests and the
//! transcript quality benchmark.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::eventually;
use crate::speech::tiny_en_model_dir;

/// The model name the server answers to (its `model_name` form field).
pub const MODEL: &str = "tiny.en";

/// The running server; dropping it kills it.
#[derive(Debug)]
pub struct FasterWhisperServer {
    /// `http://127.0.0.1:{port}/v1/audio/transcriptions`
    pub url: String,
    child: Child,
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
    /// Starts the server decoding greedily (beam 1, as the built-in engine does by default)
    /// and waits until `/health` answers (the model loads on first use).
    pub async fn start() -> FasterWhisperServer {
        Self::start_with_beam(Some(1)).await
    }

    /// As [`FasterWhisperServer::start`] with `beam_size` (`None`: faster-whisper's default, 5).
    ///
    /// # Panics
    ///
    /// When the server is not installed or does not come up within a minute.
    pub async fn start_with_beam(beam_size: Option<u32>) -> FasterWhisperServer {
        let beam = beam_size.map_or_else(String::new, |beam| format!(", beam_size: {beam}"));
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("models.yaml");
        std::fs::write(
            &config,
            format!(
                "models:\n  - name: {MODEL}\n    path: {}\n    model_options: {{device: cpu, compute_type: int8, cpu_threads: 2}}\n    transcribe_options: {{language: en{beam}}}\n",
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
            child,
            _dir: dir,
        }
    }
}

impl FasterWhisperServer {
    /// The server's process id, for its CPU time.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}
