//! `bcfy-tail [--json] [--nats URL] [SUBJECT ...]`: prints the pipeline's events as they pass
//! (default subjects: `calls.live.>`, `calls.audio.raw.>`, `transcription.complete.>`,
//! `deadletter.>`). Ctrl-C stops it.

use std::process::ExitCode;

use bcfy_tail::{Decoder, Format};
use clap::Parser;
use futures::StreamExt as _;

/// Watch the pipeline's NATS subjects.
#[derive(Debug, Parser)]
#[command(name = "bcfy-tail", version)]
struct Args {
    /// NATS server.
    #[arg(long, env = "NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats: String,
    /// JSON lines (protobuf JSON mapping) instead of one summary line per call event.
    #[arg(long)]
    json: bool,
    /// Subjects to watch (wildcards allowed).
    subjects: Vec<String>,
}

const DEFAULT_SUBJECTS: [&str; 4] = [
    "calls.live.>",
    "calls.audio.raw.>",
    "transcription.complete.>",
    "deadletter.>",
];

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let format = if args.json {
        Format::Json
    } else {
        Format::Summary
    };
    let client = match async_nats::connect(&args.nats).await {
        Ok(client) => client,
        Err(error) => {
            #[expect(clippy::print_stderr, reason = "a command-line tool")]
            {
                eprintln!("bcfy-tail: cannot connect to {}: {error}", args.nats);
            }
            return ExitCode::FAILURE;
        }
    };
    let subjects: Vec<String> = if args.subjects.is_empty() {
        DEFAULT_SUBJECTS.iter().map(|s| (*s).to_owned()).collect()
    } else {
        args.subjects
    };
    let mut streams = Vec::new();
    for subject in subjects {
        match client.subscribe(subject.clone()).await {
            Ok(subscriber) => streams.push(subscriber),
            Err(error) => {
                #[expect(clippy::print_stderr, reason = "a command-line tool")]
                {
                    eprintln!("bcfy-tail: cannot subscribe to {subject}: {error}");
                }
                return ExitCode::FAILURE;
            }
        }
    }
    let mut messages = futures::stream::select_all(streams);
    let decoder = Decoder::new();
    loop {
        let message = tokio::select! {
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
            message = messages.next() => match message {
                Some(message) => message,
                None => return ExitCode::SUCCESS,
            },
        };
        let content_type = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Content-Type"))
            .map(|v| v.as_str().to_owned());
        #[expect(
            clippy::print_stdout,
            clippy::print_stderr,
            reason = "a command-line tool"
        )]
        match decoder.render(
            &message.subject,
            content_type.as_deref(),
            &message.payload,
            format,
        ) {
            Ok(Some(line)) => println!("{line}"),
            Ok(None) => {}
            Err(error) => eprintln!("bcfy-tail: {}: {error}", message.subject),
        }
    }
}
