//! `transcriber`: see the library docs. Runs until SIGTERM or Ctrl-C, then drains.
//!
//! `transcriber convert-model <ctranslate2-dir> <out.bin>` converts a CTranslate2
//! (faster-whisper) Whisper model into the ggml file the built-in engine loads, once, ahead of
//! time (otherwise the service converts it into `transcription.whisper.model_cache_dir` at start).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Arg, ArgMatches, Command};

fn main() -> ExitCode {
    let convert = Command::new("convert-model")
        .about("Convert a CTranslate2 (faster-whisper) Whisper model into the ggml file the built-in engine loads")
        .arg(Arg::new("from").value_name("CTRANSLATE2_DIR").required(true).value_parser(clap::value_parser!(PathBuf)))
        .arg(Arg::new("to").value_name("OUT_BIN").required(true).value_parser(clap::value_parser!(PathBuf)));
    bcfy_runtime::service::Binary::new("transcriber", env!("CARGO_PKG_DESCRIPTION"))
        .command(convert, convert_model)
        .main(bcfy_transcriber::run)
}

#[expect(
    clippy::print_stderr,
    clippy::print_stdout,
    reason = "a command-line tool"
)]
fn convert_model(args: &ArgMatches) -> ExitCode {
    let path = |name| args.get_one::<PathBuf>(name).expect("a required argument");
    let (from, to) = (path("from"), path("to"));
    match bcfy_whisper::convert(from, to) {
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
