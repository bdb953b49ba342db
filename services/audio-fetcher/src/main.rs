//! `audio-fetcher`: see the library docs. Runs until SIGTERM or Ctrl-C, then drains.

use std::process::ExitCode;

fn main() -> ExitCode {
    bcfy_runtime::service::main("audio-fetcher", bcfy_audio_fetcher::run)
}
