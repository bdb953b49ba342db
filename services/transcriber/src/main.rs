//! `transcriber`: see the library docs. Runs until SIGTERM or Ctrl-C, then drains.
//!
//! `transcriber convert-model <ctranslate2-dir> <out.bin>` converts a CTranslate2
//! (faster-whisper) Whisper model into the ggml file the built-in engine loads, once, ahead of
//! time (otherwise the service converts it into `transcription.whisper.model_cache_dir` at start).

use std::path::PathBuf;
use std::process::ExitCode;

const USAGE: &str = "usage: transcriber [--config FILE]\n       transcriber convert-model <ctranslate2-model-dir> <out.bin>";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("convert-model") => convert_model(&args[1..]),
        Some("--help" | "-h" | "help") => {
            #[expect(clippy::print_stdout, reason = "usage asked for on the command line")]
            {
                println!("{USAGE}");
            }
            ExitCode::SUCCESS
        }
        _ => bcfy_runtime::service::main("transcriber", bcfy_transcriber::run),
    }
}

#[expect(
    clippy::print_stderr,
    clippy::print_stdout,
    reason = "a command-line tool"
)]
fn convert_model(args: &[String]) -> ExitCode {
    let [from, to] = args else {
        eprintln!("{USAGE}");
        return ExitCode::from(64);
    };
    let (from, to) = (PathBuf::from(from), PathBuf::from(to));
    match bcfy_whisper::convert(&from, &to) {
        Ok(()) => {
            println!("{} → {}", from.display(), to.display());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("transcriber convert-model: {error}");
            ExitCode::FAILURE
        }
    }
}
