//! The fixed order every service binary runs in: parse the command line, read the config (print
//! every problem and exit 64), then run the command — by default: build the runtime, set up
//! telemetry, open the admin port, run the service with its [`Context`] until it returns or a
//! signal's drain ends, and map the result to an exit code.
//!
//! # Layout
//!
//! - [`context`]: what a service is handed ([`Context`]) and NATS with the topology ensured
//!   ([`Bus`]);
//! - [`worker`]: a durable consumer's bounded pull loop with hold-back and drain ([`Worker`]);
//! - [`dead_letters`]: what a consuming stage gives up on, dead-lettered and counted
//!   ([`DeadLetters`]);
//! - [`refusals`]: a provider refusing the service itself pauses it instead of failing calls
//!   ([`Refusals`]);
//! - [`micro`]: answering a NATS micro-service request with gRPC codes, counted;
//! - [`signals`]: the health figures every replica reports on `status.{service}` for the
//!   alerter's integration monitor ([`Signals`]).

pub mod context;
pub mod dead_letters;
pub mod micro;
pub mod refusals;
pub mod signals;
pub mod worker;

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use bcfy_bus::connect::NatsConfig;
use bcfy_bus::topology::TopologyConfig;
use bcfy_config::{ConfigIssue, ConfigSource, EXIT_CONFIG, Validate, join_path};
use clap::{ArgMatches, Command};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use context::{Bus, Context, StartError};
pub use dead_letters::DeadLetters;
pub use refusals::{Admission, Refusals};
pub use signals::{SignalHandle, Signals};
pub use worker::Worker;

use crate::admin::{AdminConfig, AdminServer};
use crate::cli::{self, Action, Refusal};
use crate::shutdown::{DrainOutcome, Shutdown};
use crate::telemetry::{self, LogConfig, OtlpSettings};

/// The settings every service has, under the same top-level keys (`nats`, `topology`,
/// `admin`, `log`, `shutdown_grace`). [`service_config!`](crate::service_config) implements
/// it for a config struct with those fields.
pub trait ServiceConfig: DeserializeOwned + Serialize + Validate {
    /// The NATS connection.
    fn nats(&self) -> &NatsConfig;
    /// Stream and bucket limits.
    fn topology(&self) -> &TopologyConfig;
    /// Log settings.
    fn log(&self) -> &LogConfig;
    /// The admin port (probed by `healthcheck`).
    fn admin(&self) -> &AdminConfig;
    /// How long shutdown waits for in-flight work.
    fn shutdown_grace(&self) -> Duration;
}

/// Implements [`ServiceConfig`] for a config struct with the shared fields `nats`, `topology`,
/// `admin`, `log` and `shutdown_grace`.
#[macro_export]
macro_rules! service_config {
    ($config:ty) => {
        impl $crate::service::ServiceConfig for $config {
            fn nats(&self) -> &::bcfy_bus::connect::NatsConfig {
                &self.nats
            }
            fn topology(&self) -> &::bcfy_bus::topology::TopologyConfig {
                &self.topology
            }
            fn log(&self) -> &$crate::telemetry::LogConfig {
                &self.log
            }
            fn admin(&self) -> &$crate::admin::AdminConfig {
                &self.admin
            }
            fn shutdown_grace(&self) -> ::std::time::Duration {
                self.shutdown_grace
            }
        }
    };
}

/// The checks of the shared settings; a service's [`Validate`] calls it before its own.
pub fn validate_shared(config: &impl ServiceConfig, prefix: &str, issues: &mut Vec<ConfigIssue>) {
    config.nats().validate(&join_path(prefix, "nats"), issues);
    config
        .topology()
        .validate(&join_path(prefix, "topology"), issues);
    config.log().validate(&join_path(prefix, "log"), issues);
}

/// A command a service adds to the shared command line, and what runs it.
type ExtraCommand = (Command, fn(&ArgMatches) -> ExitCode);
/// A command that runs the service itself, with settings taken from its arguments.
type ServiceCommand = (Command, fn(&ArgMatches) -> Vec<(String, String)>);

/// A service binary: its name, its help text, and any commands of its own.
#[derive(Debug)]
pub struct Binary {
    name: &'static str,
    about: &'static str,
    extra: Vec<ExtraCommand>,
    service_commands: Vec<ServiceCommand>,
}

impl Binary {
    /// Binary `name`, described by `about` in `--help`.
    pub fn new(name: &'static str, about: &'static str) -> Self {
        Self {
            name,
            about,
            extra: Vec::new(),
            service_commands: Vec::new(),
        }
    }

    /// Adds command `command`, which runs the service like `run` does, with the settings
    /// `settings` reads from its arguments (dotted paths such as `retranscribe.job`, and
    /// values as a `BCFY_` variable would give them) over the file and the environment.
    #[must_use]
    pub fn service_command(
        mut self,
        command: Command,
        settings: fn(&ArgMatches) -> Vec<(String, String)>,
    ) -> Self {
        self.service_commands.push((command, settings));
        self
    }

    /// Adds command `command`, run by `run` without the service's config.
    #[must_use]
    pub fn command(mut self, command: Command, run: fn(&ArgMatches) -> ExitCode) -> Self {
        self.extra.push((command, run));
        self
    }

    /// Runs what the command line asks for; by default `run(config, context)` until it returns
    /// or a signal's drain ends.
    pub fn main<C, F, Fut, E>(self, run: F) -> ExitCode
    where
        C: ServiceConfig,
        F: FnOnce(C, Context) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Display + Send + 'static,
    {
        let Self {
            name,
            about,
            extra,
            service_commands,
        } = self;
        let commands = extra
            .iter()
            .map(|(c, _)| c.clone())
            .chain(service_commands.iter().map(|(c, _)| c.clone()))
            .collect();
        let command = cli::command(name, about, commands);
        let invocation = match cli::parse(command, std::env::args_os()) {
            Ok(invocation) => invocation,
            Err(Refusal::Informational(text)) => return print_clap(&text, ExitCode::SUCCESS),
            Err(Refusal::Usage(text)) => return print_clap(&text, ExitCode::from(EXIT_CONFIG)),
        };
        let mut source = ConfigSource::from_env();
        if let Some(file) = &invocation.config_file {
            source = source.with_file(file);
        }
        let mut action = invocation.action;
        if let Action::Extra(command, matches) = &action {
            if let Some((_, run_extra)) = extra.iter().find(|(c, _)| c.get_name() == command) {
                return run_extra(matches);
            }
            let (_, settings) = service_commands
                .iter()
                .find(|(c, _)| c.get_name() == command)
                .expect("clap accepts only the commands it was given");
            source = source.with_env(settings(matches).into_iter().map(|(path, value)| {
                (
                    format!(
                        "{}{}",
                        bcfy_config::ENV_PREFIX,
                        path.replace('.', "__").to_ascii_uppercase()
                    ),
                    value,
                )
            }));
            action = Action::Run;
        }
        let config: C = match source.load() {
            Ok(config) => config,
            Err(error) => {
                #[expect(
                    clippy::print_stderr,
                    reason = "logging is not set up before the config is read"
                )]
                {
                    eprintln!("{name}: {error}");
                }
                return ExitCode::from(EXIT_CONFIG);
            }
        };
        match action {
            Action::Run => serve(name, config, run),
            Action::Healthcheck => crate::healthcheck::exit_code(config.admin()),
            Action::CheckConfig => {
                #[expect(clippy::print_stdout, reason = "the command's answer")]
                {
                    println!("{name}: the config is valid");
                }
                ExitCode::SUCCESS
            }
            Action::PrintConfig => print_config(name, &config),
            Action::Extra(..) => unreachable!("handled before the config was read"),
        }
    }
}

#[expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command's answer"
)]
fn print_clap(text: &clap::Error, code: ExitCode) -> ExitCode {
    if text.use_stderr() {
        eprint!("{}", text.render().ansi());
    } else {
        print!("{}", text.render().ansi());
    }
    code
}

#[expect(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "the command's answer"
)]
fn print_config(name: &str, config: &impl Serialize) -> ExitCode {
    match bcfy_config::to_yaml(config) {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{name}: cannot print the config: {error}");
            ExitCode::FAILURE
        }
    }
}

/// The `run` command: the runtime, telemetry, the admin port, the service, the drain.
fn serve<C, F, Fut, E>(name: &'static str, config: C, run: F) -> ExitCode
where
    C: ServiceConfig,
    F: FnOnce(C, Context) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Display + Send + 'static,
{
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            #[expect(clippy::print_stderr, reason = "no runtime, so no logging")]
            {
                eprintln!("{name}: cannot start the async runtime: {error}");
            }
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let _telemetry =
            match telemetry::init(name, config.log(), &OtlpSettings::from_process_env()) {
                Ok(guard) => guard,
                Err(error) => {
                    #[expect(clippy::print_stderr, reason = "telemetry itself failed")]
                    {
                        eprintln!("{name}: {error}");
                    }
                    return ExitCode::FAILURE;
                }
            };
        let shutdown = Shutdown::new();
        shutdown.cancel_on_signal();
        let grace = config.shutdown_grace();
        let token = shutdown.token();
        let context = Context::new(name, token.clone());
        let admin_addr = config.admin().listen_addr;
        let admin = match AdminServer::bind(admin_addr).await {
            Ok(admin) => admin,
            Err(error) => {
                tracing::error!(error = %error, addr = %admin_addr, "Cannot bind the admin port.");
                return ExitCode::FAILURE;
            }
        };
        // The admin port stays up after the service returns by itself (a poller whose
        // credentials were refused), so `/readyz` keeps telling why until the signal.
        let admin = shutdown.spawn(admin.serve(
            context.readiness().clone(),
            context.registry().clone(),
            token.clone(),
        ));
        let mut service = shutdown.spawn(run(config, context));
        let joined = tokio::select! {
            joined = &mut service => joined,
            () = token.cancelled() => {
                // Signalled: in-flight work gets the grace period, then the process exits.
                if shutdown.drain(grace).await != DrainOutcome::Drained {
                    return ExitCode::FAILURE;
                }
                service.await
            }
        };
        let code = match joined {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(error)) => {
                tracing::error!(error = %error, service = name, "Service failed.");
                // A failed start leaves nothing to wait for: stop the admin port too.
                token.cancel();
                ExitCode::FAILURE
            }
            Err(error) => {
                tracing::error!(error = %error, service = name, "Service task panicked.");
                token.cancel();
                ExitCode::FAILURE
            }
        };
        if let Ok(Err(error)) = admin.await {
            tracing::warn!(error = %error, "Admin server failed.");
        }
        code
    })
}
