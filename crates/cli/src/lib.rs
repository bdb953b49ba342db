//! What the operator commands share, so that scripts can rely on the same things from each:
//!
//! - exit codes from BSD `sysexits` ([`Exit`]): a wrong flag or value is 64 whatever the
//!   command, a missing thing 66, an unreachable service 69, a refusal 77;
//! - [`main`]: parse the command line (a usage error prints clap's message and exits 64), run
//!   the command on a Tokio runtime, and print a failure as one `name: reason` line;
//! - [`out`] and [`note`]: standard output that a closed pipe (`| head`) does not turn into an
//!   error, and one-line notes on standard error;
//! - [`NatsArgs`]: `--nats`, `--creds`, `--tls-ca` (and `NATS_URL`, `NATS_CREDS`, `NATS_CA`), the
//!   way the `nats` CLI names them.

use std::fmt::Display;
use std::future::Future;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bcfy_bus::connect::{NatsConfig, TlsConfig};

/// How a command ended, as the exit code a script sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 64: a flag or value is wrong.
    Usage,
    /// 65: what was read cannot be decoded or used.
    Data,
    /// 66: the thing asked for does not exist.
    NotFound,
    /// 69: a service (NATS, an upstream) cannot be reached or cannot answer now.
    Unavailable,
    /// 75: stopped part-way; running it again goes on.
    Interrupted,
    /// 77: refused: the credentials or the permissions are not enough.
    Refused,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(match exit {
            Exit::Usage => 64,
            Exit::Data => 65,
            Exit::NotFound => 66,
            Exit::Unavailable => 69,
            Exit::Interrupted => 75,
            Exit::Refused => 77,
        })
    }
}

/// A command's failure: what to print and how to exit.
pub trait Failure: Display {
    /// The exit code it means.
    fn exit(&self) -> Exit;
}

/// Parses `A` from the command line and runs `command` with it on a Tokio runtime; a failure is
/// printed as `{name}: {failure}` on standard error.
pub fn main<A, E, F>(name: &str, command: impl FnOnce(A) -> F) -> ExitCode
where
    A: clap::Parser,
    E: Failure,
    F: Future<Output = Result<(), E>>,
{
    let args = match A::try_parse() {
        Ok(args) => args,
        Err(error) => {
            // `--help` and `--version` are "errors" printed on standard output.
            let usage = error.use_stderr();
            error.print().unwrap_or_default();
            return if usage {
                Exit::Usage.into()
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            note(&format!("{name}: cannot start: {error}"));
            return Exit::Unavailable.into();
        }
    };
    match runtime.block_on(command(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            note(&format!("{name}: {failure}"));
            failure.exit().into()
        }
    }
}

/// Writes `text` to standard output; a closed pipe is not worth reporting.
pub fn out(text: &str) {
    std::io::stdout()
        .write_all(text.as_bytes())
        .unwrap_or_default();
}

/// A line on standard error.
pub fn note(line: &str) {
    writeln!(std::io::stderr(), "{line}").unwrap_or_default();
}

/// Where a command finds NATS.
#[derive(Debug, Clone, clap::Args)]
pub struct NatsArgs {
    /// NATS server.
    #[arg(
        long,
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        global = true
    )]
    pub nats: String,
    /// NATS credentials file.
    #[arg(long, env = "NATS_CREDS", global = true)]
    pub creds: Option<PathBuf>,
    /// NATS user (the `operator` of deploy/nats-authorization.conf); its password is read from
    /// `NATS_PASSWORD`, never from the command line.
    #[arg(long, env = "NATS_USER", global = true)]
    pub user: Option<String>,
    /// The user's password (environment only).
    #[arg(skip = std::env::var("NATS_PASSWORD").ok())]
    pub password: Option<String>,
    /// CA certificate for a NATS server with TLS.
    #[arg(long, env = "NATS_CA", global = true)]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate, for a NATS server that verifies clients.
    #[arg(long, env = "NATS_CERT", global = true, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The client certificate's key.
    #[arg(long, env = "NATS_KEY", global = true, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

impl NatsArgs {
    /// Connects as `name`, waiting at most five seconds for the server.
    ///
    /// # Errors
    ///
    /// Why the server could not be reached, naming it (the command's [`Exit::Unavailable`]).
    pub async fn connect(&self, name: &str) -> Result<async_nats::Client, String> {
        let config = NatsConfig {
            urls: vec![self.nats.clone()],
            credentials_file: self.creds.clone(),
            user: self.user.clone(),
            password: self.password.clone().map(Into::into),
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            tls: TlsConfig {
                ca_file: self.tls_ca.clone(),
                cert_file: self.tls_cert.clone(),
                key_file: self.tls_key.clone(),
                ..TlsConfig::default()
            },
            ..NatsConfig::default()
        };
        bcfy_bus::connect::connect(&config, name)
            .await
            .map_err(|error| format!("NATS at {}: {error}", self.nats))
    }
}
