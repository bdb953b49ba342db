//! `poller`: see the library docs. Runs until SIGTERM or Ctrl-C, then drains.

use std::process::ExitCode;

use bcfy_poller::PollerConfig;
use bcfy_runtime::config::{ConfigSource, EXIT_CONFIG};
use bcfy_runtime::shutdown::Shutdown;
use bcfy_runtime::telemetry::{self, OtlpSettings};

fn main() -> ExitCode {
    let config: PollerConfig = match ConfigSource::from_process().load() {
        Ok(config) => config,
        Err(error) => {
            #[expect(
                clippy::print_stderr,
                reason = "logging is not set up before the config is read"
            )]
            {
                eprintln!("poller: {error}");
            }
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(_) => return ExitCode::FAILURE,
    };
    runtime.block_on(async {
        let _telemetry =
            match telemetry::init("poller", &config.log, &OtlpSettings::from_process_env()) {
                Ok(guard) => guard,
                Err(_) => return ExitCode::FAILURE,
            };
        let shutdown = Shutdown::new();
        shutdown.cancel_on_signal();
        let grace = config.shutdown_grace;
        let token = shutdown.token();
        let poller = shutdown.spawn(bcfy_poller::run(config, token));
        let outcome = poller.await;
        shutdown.drain(grace).await;
        match outcome {
            Ok(Ok(())) => ExitCode::SUCCESS,
            Ok(Err(error)) => {
                tracing::error!(error = %error, "Poller failed.");
                ExitCode::FAILURE
            }
            Err(_) => ExitCode::FAILURE,
        }
    })
}
