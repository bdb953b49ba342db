//! Records the git revision for `--version`: `BCFY_GIT_REVISION` when the build sets it (an
//! image built without `.git`), else `git rev-parse --short HEAD`, else "unknown".

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-env-changed=BCFY_GIT_REVISION");
    let top = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let git = top.join(".git");
    // A commit moves HEAD or the branch it names; either reruns this script.
    for watched in ["HEAD", "refs/heads", "packed-refs"] {
        let path = git.join(watched);
        if path.exists() {
            println!("cargo::rerun-if-changed={}", path.display());
        }
    }
    let revision = std::env::var("BCFY_GIT_REVISION").ok().or_else(|| {
        Command::new("git")
            .args(["rev-parse", "--short=12", "HEAD"])
            .current_dir(&top)
            .output()
            .ok()
            .filter(|output| output.status.success())
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .map(|text| text.trim().to_owned())
    });
    println!(
        "cargo::rustc-env=BCFY_GIT_REVISION={}",
        revision.unwrap_or_else(|| "unknown".to_owned())
    );
}
