//! `alerter`: see the library docs. Runs until SIGTERM or Ctrl-C, then drains.

use std::process::ExitCode;

fn main() -> ExitCode {
    bcfy_runtime::service::Binary::new("alerter", env!("CARGO_PKG_DESCRIPTION"))
        .main(bcfy_alerter::run)
}
