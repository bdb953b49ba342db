//! `bcfy-deadletters [--nats URL] [--json] list|show|stats|redrive …`: see the crate docs and
//! `deploy/README.md` for the workflow.

use std::process::ExitCode;
use std::time::SystemTime;

use bcfy_cli::{NatsArgs, note, out};
use bcfy_deadletters::filter::FilterArgs;
use bcfy_deadletters::letters::{Letter, Store};
use bcfy_deadletters::redrive::{self, Outcome};
use bcfy_deadletters::{CliError, render};
use bcfy_tail::Decoder;
use clap::{Parser, Subcommand};
use serde_json::json;

/// Read the pipeline's dead letters and send them through again.
#[derive(Debug, Parser)]
#[command(name = "bcfy-deadletters", version)]
struct Args {
    #[command(flatten)]
    nats: NatsArgs,
    /// JSON for scripts: one object per line for `list` and `redrive`, one object otherwise.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// A table of dead letters: time, stage, kind, call, talkgroup, attempts, reason.
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Show the newest this many.
        #[arg(long, default_value_t = 1000)]
        limit: usize,
    },
    /// One dead letter whole, its original message decoded.
    Show {
        /// The dead letter's id (the first column of `list`).
        id: String,
    },
    /// Counts by stage and kind.
    Stats {
        #[command(flatten)]
        filter: FilterArgs,
        /// Over this long back, unless --since is given.
        #[arg(long, default_value = "24h")]
        window: String,
    },
    /// Sends dead letters through the stage that gave up on them again.
    Redrive {
        #[command(flatten)]
        filter: FilterArgs,
        /// Print what would be sent; send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Messages per second at most.
        #[arg(long, default_value_t = 10.0)]
        rate: f64,
        /// Delete each dead letter once it is sent (default: keep it, marked as redriven).
        #[arg(long)]
        purge: bool,
    },
}

fn main() -> ExitCode {
    bcfy_cli::main("bcfy-deadletters", run)
}

async fn run(args: Args) -> Result<(), CliError> {
    let now = SystemTime::now();
    // Everything the command line says is checked before NATS is asked anything.
    let command = Checked::new(args.command, now)?;
    let client = args
        .nats
        .connect("bcfy-deadletters")
        .await
        .map_err(CliError::Unavailable)?;
    let store = Store::open(async_nats::jetstream::new(client)).await?;
    let decoder = Decoder::new();
    match command {
        Checked::List { filter, limit } => {
            let letters = store.read(&filter, true).await?;
            let shown = &letters[letters.len().saturating_sub(limit)..];
            if args.json {
                for letter in shown {
                    out(&format!("{}\n", render::letter_json(letter)));
                }
            } else {
                out(&render::table(shown));
            }
            if shown.len() < letters.len() {
                note(&format!(
                    "({} older not shown; narrow the filters or raise --limit)",
                    letters.len() - shown.len()
                ));
            }
            Ok(())
        }
        Checked::Show { id } => {
            let letter = store.get(id).await?.ok_or(CliError::NotFound(id))?;
            let original = render::original(&decoder, &letter);
            if args.json {
                out(&format!(
                    "{}\n",
                    render::show_json(&decoder, &letter, &original)
                ));
            } else {
                out(&render::show_text(&letter, &original));
            }
            match original {
                Ok(_) => Ok(()),
                Err(error) => Err(CliError::Data(format!(
                    "dead letter {id}'s original message cannot be decoded: {error}"
                ))),
            }
        }
        Checked::Stats { filter } => {
            let since = filter.since.unwrap_or(now);
            let letters = store.read(&filter, false).await?;
            if args.json {
                out(&format!("{}\n", render::stats_json(since, &letters)));
            } else {
                out(&render::stats_text(since, &letters));
            }
            Ok(())
        }
        Checked::Redrive { filter, options } => {
            let letters = store.read(&filter, true).await?;
            redrive_all(&store, &letters, options, args.json).await
        }
    }
}

async fn redrive_all(
    store: &Store,
    letters: &[Letter],
    options: redrive::Options,
    json: bool,
) -> Result<(), CliError> {
    let mut tally = [0usize; 4];
    let report = |letter: &Letter, outcome: &Outcome| {
        let (slot, word, detail) = match outcome {
            Outcome::Sent(mark) => (
                0,
                "sent",
                json!({ "subject": mark.subject, "sequence": mark.sequence, "duplicate": mark.duplicate }),
            ),
            Outcome::WouldSend { subject, redrive } => (
                0,
                "would_send",
                json!({ "subject": subject, "redrive": redrive }),
            ),
            Outcome::AlreadyRedriven(mark) => (
                1,
                "already_redriven",
                json!({ "subject": mark.subject, "at": mark.at }),
            ),
            Outcome::Skipped(why) => (2, "skipped", json!({ "why": why })),
        };
        tally[slot] += 1;
        if json {
            out(&format!(
                "{}\n",
                json!({ "id": letter.id, "outcome": word, "detail": detail })
            ));
        } else {
            let detail = match outcome {
                Outcome::Sent(mark) => format!("to {} #{}", mark.subject, mark.sequence),
                Outcome::WouldSend { subject, redrive } => {
                    format!("to {subject} (redrive {redrive})")
                }
                Outcome::AlreadyRedriven(mark) => format!("at {}", mark.at),
                Outcome::Skipped(why) => why.clone(),
            };
            out(&format!("{:>8}  {word:<16}  {detail}\n", letter.id));
        }
    };
    let result = redrive::run(store, letters, options, report).await;
    let [sent, already, skipped, _] = tally;
    let verb = if options.dry_run {
        "would send"
    } else {
        "sent"
    };
    let summary = format!(
        "{verb} {sent}, already redriven {already}, cannot be redriven {skipped}, of {} dead letters",
        letters.len()
    );
    if json {
        out(&format!(
            "{}\n",
            json!({ "summary": { "dryRun": options.dry_run, "sent": sent, "alreadyRedriven": already, "skipped": skipped, "matched": letters.len() } })
        ));
    } else {
        note(&summary);
    }
    result?;
    if skipped > 0 {
        return Err(CliError::Data(format!(
            "{skipped} dead letters cannot be redriven (see above)"
        )));
    }
    Ok(())
}

/// A command with its arguments checked.
enum Checked {
    List {
        filter: bcfy_deadletters::filter::Filter,
        limit: usize,
    },
    Show {
        id: u64,
    },
    Stats {
        filter: bcfy_deadletters::filter::Filter,
    },
    Redrive {
        filter: bcfy_deadletters::filter::Filter,
        options: redrive::Options,
    },
}

impl Checked {
    fn new(command: Command, now: SystemTime) -> Result<Self, CliError> {
        Ok(match command {
            Command::List { filter, limit } => Checked::List {
                filter: filter.parse(now)?,
                limit,
            },
            Command::Show { id } => Checked::Show {
                id: id.parse().ok().filter(|id| *id > 0).ok_or_else(|| {
                    CliError::Usage(format!(
                        "`{id}` is not a dead letter id (a positive number, the first column of `list`)"
                    ))
                })?,
            },
            Command::Stats { filter, window } => {
                let mut filter = filter.parse(now)?;
                if filter.since.is_none() {
                    let window = humantime::parse_duration(&window).map_err(|_| {
                        CliError::Usage(format!("--window `{window}` is not a duration like 24h"))
                    })?;
                    filter.since = Some(now.checked_sub(window).ok_or_else(|| {
                        CliError::Usage(format!("--window `{}` reaches before 1970", humantime::format_duration(window)))
                    })?);
                }
                Checked::Stats { filter }
            }
            Command::Redrive {
                filter,
                dry_run,
                rate,
                purge,
            } => {
                if !(rate.is_finite() && rate > 0.0) {
                    return Err(CliError::Usage(format!(
                        "--rate {rate} must be a positive number of messages per second"
                    )));
                }
                Checked::Redrive {
                    filter: filter.parse(now)?,
                    options: redrive::Options {
                        dry_run,
                        rate,
                        purge,
                    },
                }
            }
        })
    }
}
