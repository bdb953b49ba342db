//! Runs the services' real binaries: each with a YAML config written to a temporary directory,
//! its output appended to a log file there, killed when dropped. In tests the binaries are
//! built by `cargo test --no-run --workspace`, as nextest builds them (a service package's
//! integration tests need its binary): a no-op after `cargo nextest run --workspace`. A plain
//! `cargo build --bins` resolves features without the dev-dependencies and rebuilds the whole
//! workspace (measured 121–138 s in CI). Under `cargo bench` they are release builds.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;

/// Every service binary.
pub const SERVICES: [&str; 6] = [
    "poller",
    "audio-fetcher",
    "transcriber",
    "archive-cache",
    "alerter",
    "gateway",
];

/// The directory the workspace's binaries are built into (next to this test's own binary).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/{profile}/deps/<test> → target/{profile}
    exe.parent()
        .and_then(Path::parent)
        .expect("a target directory")
        .to_owned()
}

/// Builds the service binaries (once per process). [`Service::start`] does it too; call it
/// first when something else starts before the services and must not run during a long build
/// (a load run's call generator).
///
/// # Panics
///
/// When the build fails.
pub fn build_binaries() {
    build_once();
}

fn build_once() {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        // Under `cargo bench` (release) the binaries are measured, so they are release builds;
        // otherwise what `cargo nextest run --workspace` itself builds (same profile, same
        // features with dev-dependencies): a no-op after it.
        let release = bin_dir().ends_with("release");
        let args: &[&str] = if release {
            &["build", "--release", "--workspace", "--bins", "--quiet"]
        } else {
            &["test", "--no-run", "--workspace", "--quiet"]
        };
        let status = Command::new(env!("CARGO"))
            .args(args)
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the service binaries failed");
    });
}

/// The path of binary `name` (e.g. `poller`), built first if needed.
pub fn binary(name: &str) -> PathBuf {
    build_once();
    bin_dir().join(name)
}

/// One service process.
#[derive(Debug)]
pub struct Service {
    name: String,
    config: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
    /// Its log file; every start appends to it.
    pub log: PathBuf,
}

impl Service {
    /// Starts binary `name` with `config` (YAML) written into `dir`.
    pub fn start(name: &str, config: &str, dir: &Path) -> Service {
        Self::start_with_env(name, config, dir, &[])
    }

    /// As [`start`](Self::start), with extra environment variables (e.g. `OTEL_*`).
    pub fn start_with_env(name: &str, config: &str, dir: &Path, env: &[(&str, &str)]) -> Service {
        let config_path = dir.join(format!("{name}.yaml"));
        std::fs::write(&config_path, config).expect("config written");
        let mut service = Service {
            name: name.to_owned(),
            config: config_path,
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            child: None,
            log: dir.join(format!("{name}.log")),
        };
        service.spawn();
        service
    }

    fn spawn(&mut self) {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let child = Command::new(binary(&self.name))
            .arg("--config")
            .arg(&self.config)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} starts: {e}", self.name));
        self.child = Some(child);
    }

    /// The binary's name, e.g. `poller`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9`: no drain, no goodbye; whatever it held unacked must be redelivered.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            // An already-exited process is fine: either way it is gone.
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// Starts the same binary with the same config again (after [`kill`](Self::kill)).
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Whether the process is still running (it never exited by itself).
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| child.try_wait().is_ok_and(|status| status.is_none()))
    }

    /// The process's log so far, across restarts.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // The test is over (or failed): no drain needed.
        self.kill();
    }
}
