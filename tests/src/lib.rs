//! Runs the services' real binaries for whole-system tests: each with a YAML config written to a
//! temporary directory, its output in a log file there, killed when dropped. The binaries are
//! built by `cargo test --no-run --workspace`, as nextest builds them (a service package's
//! integration tests need its binary): a no-op after `cargo nextest run --workspace`. A plain
//! `cargo build --bins` resolves features without the dev-dependencies and rebuilds the whole
//! workspace (measured 121–138 s in CI).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;

/// The directory the workspace's binaries are built into (next to this test's own binary).
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/{profile}/deps/<test> → target/{profile}
    exe.parent()
        .and_then(Path::parent)
        .expect("a target directory")
        .to_owned()
}

fn build_once() {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        let status = Command::new(env!("CARGO"))
            // What `cargo nextest run --workspace` itself runs to build (same profile, same
            // features with dev-dependencies): a no-op after it.
            .args(["test", "--no-run", "--workspace", "--quiet"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the service binaries failed");
    });
}

/// One service process.
#[derive(Debug)]
pub struct Service {
    child: Child,
    /// Its log file.
    pub log: PathBuf,
}

impl Service {
    /// Starts binary `name` with `config` (YAML) written into `dir`.
    pub fn start(name: &str, config: &str, dir: &Path) -> Service {
        build_once();
        let config_path = dir.join(format!("{name}.yaml"));
        std::fs::write(&config_path, config).expect("config written");
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(bin_dir().join(name))
            .arg("--config")
            .arg(&config_path)
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} starts: {e}"));
        Service { child, log }
    }

    /// The process's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // The test is over (or failed): no drain needed.
        if self.child.kill().is_ok() {
            self.child.wait().ok();
        }
    }
}
