//! `bcfy-sim`: the Broadcastify simulator as a standalone server (see `--help`).

use std::process::ExitCode;

use bcfy_simulator::{SimConfig, Simulator};
use clap::Parser as _;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = SimConfig::parse();
    let simulator = match Simulator::start(config).await {
        Ok(simulator) => simulator,
        Err(error) => {
            tracing::error!(error = %error, "Cannot start the simulator.");
            return ExitCode::FAILURE;
        }
    };
    let world = simulator.world();
    let groups: Vec<String> = world
        .talkgroups
        .iter()
        .map(|t| format!("{}-{}", t.sid, t.tg))
        .collect();
    tracing::info!(
        url = %simulator.url(),
        username = %simulator.config().username,
        groups = %groups.join(","),
        playlist_uuid = %world.playlist_uuid,
        calls_per_second = simulator.config().calls_per_second,
        "Broadcastify simulator listening."
    );
    if let Err(error) = tokio::signal::ctrl_c().await {
        tracing::error!(error = %error, "Cannot wait for Ctrl-C.");
    }
    simulator.stop();
    tracing::info!(calls = simulator.ledger().len(), "Simulator stopped.");
    ExitCode::SUCCESS
}
