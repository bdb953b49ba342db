//! `gateway`: see the library docs. Runs until SIGTERM or Ctrl-C, then tells streaming clients
//! to reconnect and drains.

use std::process::ExitCode;

fn main() -> ExitCode {
    bcfy_runtime::service::Binary::new("gateway", env!("CARGO_PKG_DESCRIPTION"))
        .main(bcfy_gateway::run)
}
