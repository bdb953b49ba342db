//! `bcfy-directory [--upstream] [--json] states|counties STATE|county CTID|feed ID`: browse the
//! Broadcastify directory through the directory service (default, over NATS: cached, no
//! credentials needed here) or straight from the upstream (`--upstream`, with the API
//! credentials), and print a poller `shards:` block for a county's talkgroups.

mod render;

use std::process::ExitCode;
use std::time::Duration;

use bcfy_cli::{Exit, NatsArgs, note, out};
use bcfy_directory::Upstream;
use bcfy_directory::nats_api::{self, ClientError};
use bcfy_directory::shards::{self, Choice};
use bcfy_directory::upstream::{self, UpstreamConfig, UpstreamError};
use bcfy_proto::{GetCountyResponse, GetFeedResponse, ListCountiesResponse, ListStatesResponse};
use clap::{Args as ClapArgs, Parser, Subcommand};
use secrecy::SecretString;
use url::Url;

/// Browse the Broadcastify directory: states, counties, a county's talkgroups and feeds.
#[derive(Debug, Parser)]
#[command(name = "bcfy-directory", version)]
struct Args {
    /// Ask the upstream APIs directly instead of the directory service (needs the credentials).
    #[arg(long, global = true)]
    upstream: bool,
    /// Print protobuf JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Where the directory service is.
    #[command(flatten)]
    nats: NatsArgs,
    /// How long to wait for an answer.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration, global = true)]
    timeout: Duration,
    #[command(flatten)]
    credentials: Credentials,
    #[command(subcommand)]
    command: Command,
}

/// The upstream's endpoints and credentials, for `--upstream`.
#[derive(Debug, ClapArgs)]
struct Credentials {
    /// The catalog API endpoint.
    #[arg(long, env = "BROADCASTIFY_CATALOG_URL", default_value = upstream::DEFAULT_CATALOG_URL, global = true)]
    catalog_url: Url,
    /// The catalog API key.
    #[arg(
        long,
        env = "BROADCASTIFY_CATALOG_KEY",
        hide_env_values = true,
        global = true
    )]
    catalog_key: Option<String>,
    /// The Calls API origin.
    #[arg(long, env = "BROADCASTIFY_CALLS_API_URL", default_value = upstream::DEFAULT_CALLS_API_URL, global = true)]
    calls_api_url: Url,
    /// The Calls API application id.
    #[arg(long, env = "BROADCASTIFY_APP_ID", global = true)]
    app_id: Option<String>,
    /// The Calls API key id.
    #[arg(long, env = "BROADCASTIFY_API_KEY_ID", global = true)]
    api_key_id: Option<String>,
    /// The Calls API key.
    #[arg(
        long,
        env = "BROADCASTIFY_API_KEY",
        hide_env_values = true,
        global = true
    )]
    api_key: Option<String>,
    /// The Broadcastify account.
    #[arg(long, env = "BROADCASTIFY_USERNAME", global = true)]
    username: Option<String>,
    /// Its password.
    #[arg(
        long,
        env = "BROADCASTIFY_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    password: Option<String>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Every state: id, postal code, name.
    States,
    /// A state's counties.
    Counties {
        /// The state: its id, postal code (`CA`) or name.
        state: String,
    },
    /// A county's systems, talkgroups and feeds; `--shard-yaml` prints a poller shard for them.
    County {
        /// The county id (`ctid`).
        ctid: i64,
        /// Print a `shards:` block polling the chosen talkgroups instead of the tables.
        #[arg(long)]
        shard_yaml: bool,
        /// The shard's name (default: `county-{ctid}`).
        #[arg(long)]
        shard_name: Option<String>,
        /// Only talkgroups whose service tag contains this (repeatable): `--tag fire`.
        #[arg(long = "tag")]
        tags: Vec<String>,
        /// Only these groups (repeatable): `--group 7001-2345`.
        #[arg(long = "group")]
        groups: Vec<String>,
    },
    /// One live-audio feed.
    Feed {
        /// The feed id.
        id: i64,
    },
}

/// Why the command failed; each kind has its exit code.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Permission(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Data(String),
}

impl bcfy_cli::Failure for CliError {
    fn exit(&self) -> Exit {
        match self {
            CliError::Usage(_) => Exit::Usage,
            CliError::Data(_) => Exit::Data,
            CliError::NotFound(_) => Exit::NotFound,
            CliError::Unavailable(_) => Exit::Unavailable,
            CliError::Permission(_) => Exit::Refused,
        }
    }
}

impl From<ClientError> for CliError {
    fn from(error: ClientError) -> Self {
        let text = bcfy_bus::consume::error_chain(&error);
        match &error {
            ClientError::Refused { code, .. } => match code {
                tonic::Code::NotFound => CliError::NotFound(text),
                tonic::Code::PermissionDenied => CliError::Permission(text),
                tonic::Code::InvalidArgument => CliError::Usage(text),
                tonic::Code::Internal => CliError::Data(text),
                _ => CliError::Unavailable(text),
            },
            ClientError::NoAnswer(_) => CliError::Unavailable(text),
            ClientError::Unreadable(_) => CliError::Data(text),
        }
    }
}

impl From<UpstreamError> for CliError {
    fn from(error: UpstreamError) -> Self {
        let text = bcfy_bus::consume::error_chain(&error);
        match &error {
            UpstreamError::NotFound { .. } => CliError::NotFound(text),
            UpstreamError::PermissionDenied { .. } | UpstreamError::NotConfigured { .. } => {
                CliError::Permission(text)
            }
            UpstreamError::Unreadable { .. } => CliError::Data(text),
            _ => CliError::Unavailable(text),
        }
    }
}

/// Where the answers come from.
enum Source {
    Service(nats_api::Client),
    Upstream(Box<Upstream>),
}

impl Source {
    async fn states(&self) -> Result<ListStatesResponse, CliError> {
        Ok(match self {
            Source::Service(client) => client.states().await?,
            Source::Upstream(upstream) => ListStatesResponse {
                states: upstream.states().await?,
                freshness: None,
            },
        })
    }

    async fn counties(&self, stid: i64) -> Result<ListCountiesResponse, CliError> {
        Ok(match self {
            Source::Service(client) => client.counties(stid).await?,
            Source::Upstream(upstream) => ListCountiesResponse {
                counties: upstream.counties(stid).await?,
                freshness: None,
            },
        })
    }

    async fn county(&self, ctid: i64) -> Result<GetCountyResponse, CliError> {
        Ok(match self {
            Source::Service(client) => client.county(ctid).await?,
            Source::Upstream(upstream) => {
                let (catalog, groups) =
                    tokio::join!(upstream.catalog_county(ctid), upstream.county_groups(ctid));
                upstream::county_answer(catalog?, groups?)
            }
        })
    }

    async fn feed(&self, id: i64) -> Result<GetFeedResponse, CliError> {
        Ok(match self {
            Source::Service(client) => client.feed(id).await?,
            Source::Upstream(upstream) => GetFeedResponse {
                feed: Some(upstream.feed(id).await?),
                freshness: None,
            },
        })
    }
}

fn main() -> ExitCode {
    bcfy_cli::main("bcfy-directory", run)
}

async fn source(args: &Args) -> Result<Source, CliError> {
    if args.upstream {
        let c = &args.credentials;
        let secret = |value: &Option<String>| value.clone().map(SecretString::from);
        let config = UpstreamConfig {
            catalog_url: c.catalog_url.clone(),
            catalog_key: secret(&c.catalog_key),
            calls_api_url: c.calls_api_url.clone(),
            app_id: c.app_id.clone(),
            api_key_id: c.api_key_id.clone(),
            api_key: secret(&c.api_key),
            username: c.username.clone(),
            password: secret(&c.password),
            request_timeout: args.timeout,
            ..UpstreamConfig::default()
        };
        let upstream = Upstream::new(config)
            .map_err(|e| CliError::Unavailable(format!("cannot build the HTTP client: {e}")))?;
        return Ok(Source::Upstream(Box::new(upstream)));
    }
    let client = args
        .nats
        .connect("bcfy-directory")
        .await
        .map_err(CliError::Unavailable)?;
    Ok(Source::Service(nats_api::Client::new(client, args.timeout)))
}

/// Prints `answer` as JSON or with `table`, and how old it is on standard error.
fn print<M: prost::Message + prost::Name>(
    json: bool,
    answer: &M,
    freshness: Option<&bcfy_proto::Freshness>,
    table: impl Fn(&M) -> String,
) -> Result<(), CliError> {
    if json {
        let value = bcfy_tail::Decoder::new()
            .to_json(&M::full_name(), &answer.encode_to_vec())
            .map_err(|e| CliError::Data(e.to_string()))?;
        out(&format!("{value}\n"));
    } else {
        out(&table(answer));
        if let Some(line) = render::freshness(freshness) {
            note(&line);
        }
    }
    Ok(())
}

/// The state `text` names: its id, postal code or name.
async fn state_id(source: &Source, text: &str) -> Result<i64, CliError> {
    if let Ok(id) = text.parse::<i64>() {
        return Ok(id);
    }
    let states = source.states().await?;
    bcfy_directory::model::state_named(&states.states, text).ok_or_else(|| {
        CliError::NotFound(format!(
            "no state is named or coded `{text}`; `bcfy-directory states` lists them"
        ))
    })
}

async fn run(args: Args) -> Result<(), CliError> {
    let source = source(&args).await?;
    match &args.command {
        Command::States => {
            let answer = source.states().await?;
            print(
                args.json,
                &answer,
                answer.freshness.as_ref(),
                render::states,
            )
        }
        Command::Counties { state } => {
            let stid = state_id(&source, state).await?;
            let answer = source.counties(stid).await?;
            print(
                args.json,
                &answer,
                answer.freshness.as_ref(),
                render::counties,
            )
        }
        Command::County {
            ctid,
            shard_yaml,
            shard_name,
            tags,
            groups,
        } => {
            let answer = source.county(*ctid).await?;
            if !*shard_yaml {
                return print(
                    args.json,
                    &answer,
                    answer.freshness.as_ref(),
                    render::county,
                );
            }
            let choice = Choice {
                groups: groups.clone(),
                tags: tags.clone(),
            };
            let chosen = shards::chosen(&answer, &choice);
            if chosen.is_empty() {
                return Err(CliError::NotFound(format!(
                    "county {ctid} has no trunked talkgroup that matches"
                )));
            }
            let name = shard_name
                .clone()
                .unwrap_or_else(|| format!("county-{ctid}"));
            if !bcfy_bus::call_id::is_token_safe(&name) {
                return Err(CliError::Usage(format!(
                    "shard name `{name}`: use [A-Za-z0-9_-]"
                )));
            }
            out(&shards::shard_yaml(&name, &chosen));
            Ok(())
        }
        Command::Feed { id } => {
            let answer = source.feed(*id).await?;
            print(args.json, &answer, answer.freshness.as_ref(), render::feed)
        }
    }
}
