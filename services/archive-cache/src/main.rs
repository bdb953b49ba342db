//! `archive-cache`: see the library docs. Runs until SIGTERM or Ctrl-C, then drains.

use std::process::ExitCode;

fn main() -> ExitCode {
    bcfy_runtime::service::main("archive-cache", bcfy_archive_cache::run)
}
