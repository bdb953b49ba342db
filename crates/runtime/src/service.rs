//! The fixed order every service binary runs in (CONVENTIONS §2.2): read the config (print
//! every problem and exit 64), build the runtime, set up telemetry, run the service with the
//! signal-driven token, drain under the grace deadline, and map the result to an exit code.

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::admin::AdminConfig;
use crate::config::{ConfigSource, EXIT_CONFIG, Validate};
use crate::shutdown::{DrainOutcome, Shutdown};
use crate::telemetry::{self, LogConfig, OtlpSettings};

/// What `main` needs to know of a service's config.
pub trait ServiceConfig: DeserializeOwned + Validate {
    /// Log settings.
    fn log(&self) -> &LogConfig;
    /// The admin port (probed by `healthcheck`).
    fn admin(&self) -> &AdminConfig;
    /// How long shutdown waits for in-flight work.
    fn shutdown_grace(&self) -> Duration;
}

/// Runs service `name`: `run(config, shutdown)` until it returns or a signal's drain ends.
/// With `healthcheck` as the first argument it only probes a running instance's `/readyz`
/// (see [`crate::healthcheck`]).
pub fn main<C, F, Fut, E>(name: &'static str, run: F) -> ExitCode
where
    C: ServiceConfig,
    F: FnOnce(C, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Display + Send + 'static,
{
    let config: C = match ConfigSource::from_process().load() {
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
    if std::env::args().nth(1).as_deref() == Some("healthcheck") {
        return crate::healthcheck::exit_code(config.admin());
    }
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
        let mut service = shutdown.spawn(run(config, token.clone()));
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
        match joined {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(error)) => {
                tracing::error!(error = %error, service = name, "Service failed.");
                ExitCode::FAILURE
            }
            Err(error) => {
                tracing::error!(error = %error, service = name, "Service task panicked.");
                ExitCode::FAILURE
            }
        }
    })
}
