//! `transcriber`: see the library docs. Runs until SIGTERM or Ctrl-C, then drains.
//!
//! `transcriber convert-model [--weights q8_0] <ctranslate2-dir> <out.bin>` converts a
//! CTranslate2 (faster-whisper) Whisper model into the ggml file the built-in engine loads, once,
//! ahead of time (otherwise the service converts it into `transcription.whisper.model_cache_dir`
//! at start).
//!
//! `transcriber retranscribe --job NAME --from T --to T [--talkgroup SID[:TG]]` runs the
//! service as a re-transcription job (see `bcfy_transcriber::revise`) and exits when it is done.

use std::path::PathBuf;
use std::process::ExitCode;

use bcfy_whisper::Weights;
use clap::{Arg, ArgMatches, Command};

fn main() -> ExitCode {
    let convert = Command::new("convert-model")
        .about("Convert a CTranslate2 (faster-whisper) Whisper model into the ggml file the built-in engine loads")
        .arg(Arg::new("from").value_name("CTRANSLATE2_DIR").required(true).value_parser(clap::value_parser!(PathBuf)))
        .arg(Arg::new("to").value_name("OUT_BIN").required(true).value_parser(clap::value_parser!(PathBuf)))
        .arg(
            Arg::new("weights")
                .long("weights")
                .help("How the weight matrices are stored")
                .value_parser(["f16", "q8_0", "q5_0", "q5_1"])
                .default_value("f16"),
        );
    let retranscribe = Command::new("retranscribe")
        .about("Transcribe the stored calls of a time range again with the configured provider and model, publishing each as a new revision; continues a killed job of the same name")
        .arg(Arg::new("job").long("job").required(true).help("The job's name: letters, digits, - and _"))
        .arg(Arg::new("from").long("from").required(true).help("Calls that started at or after this time (RFC 3339)"))
        .arg(Arg::new("to").long("to").required(true).help("Calls that started before this time (RFC 3339)"))
        .arg(Arg::new("talkgroup").long("talkgroup").help("sid (a system) or sid:tg (one talkgroup); every talkgroup when unset"));
    bcfy_runtime::service::Binary::new("transcriber", env!("CARGO_PKG_DESCRIPTION"))
        .command(convert, convert_model)
        .service_command(retranscribe, retranscribe_settings)
        .main(bcfy_transcriber::run)
}

/// `retranscribe.*` from the command's arguments.
fn retranscribe_settings(args: &ArgMatches) -> Vec<(String, String)> {
    ["job", "from", "to", "talkgroup"]
        .into_iter()
        .filter_map(|name| {
            let value = args.get_one::<String>(name)?;
            Some((format!("retranscribe.{name}"), value.clone()))
        })
        .collect()
}

#[expect(
    clippy::print_stderr,
    clippy::print_stdout,
    reason = "a command-line tool"
)]
fn convert_model(args: &ArgMatches) -> ExitCode {
    let path = |name| args.get_one::<PathBuf>(name).expect("a required argument");
    let (from, to) = (path("from"), path("to"));
    let weights = args
        .get_one::<String>("weights")
        .map_or("f16", String::as_str);
    let weights: Weights = serde_json::from_value(serde_json::Value::from(weights))
        .expect("clap allows only the known weight types");
    match bcfy_whisper::convert(from, to, weights) {
        Ok(()) => {
            println!("{} → {} ({})", from.display(), to.display(), weights.name());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("transcriber convert-model: {error}");
            ExitCode::FAILURE
        }
    }
}
