//! The command line every service binary shares, parsed one way for all of them:
//!
//! ```text
//! <service> [--config FILE] [run]     run until SIGTERM or Ctrl-C (the default)
//! <service> healthcheck               probe a running instance's /readyz: exit 0 or 1
//! <service> check-config              validate the config: exit 0, or 64 with every problem
//! <service> print-config              the effective config (defaults, file, env), secrets masked
//! <service> --help | --version
//! ```
//!
//! A service may add commands of its own (the transcriber's `convert-model`).

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Arg, ArgMatches, Command};

/// The workspace version and the git revision it was built from.
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("BCFY_GIT_REVISION"),
    ")"
);

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Run the service.
    Run,
    /// Probe a running instance's readiness.
    Healthcheck,
    /// Validate the config and exit.
    CheckConfig,
    /// Print the effective config and exit.
    PrintConfig,
    /// A command the service added, with its own arguments.
    Extra(String, ArgMatches),
}

/// A parsed command line.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// `--config FILE`, when given (it overrides `BCFY_CONFIG_FILE`).
    pub config_file: Option<PathBuf>,
    /// The command.
    pub action: Action,
}

/// Why the command line was not a request to do something.
#[derive(Debug)]
pub enum Refusal {
    /// `--help` or `--version`: print the text and exit 0.
    Informational(clap::Error),
    /// Bad arguments: print the text and exit 64.
    Usage(clap::Error),
}

/// The command line of service `name`, with `extra` commands of its own.
pub fn command(name: &'static str, about: &'static str, extra: Vec<Command>) -> Command {
    Command::new(name)
        .version(VERSION)
        .about(about)
        .arg(
            Arg::new("config")
                .long("config")
                .short('c')
                .value_name("FILE")
                .value_parser(clap::value_parser!(PathBuf))
                .global(true)
                .help("YAML config file (overrides BCFY_CONFIG_FILE; BCFY_* variables override it)"),
        )
        .subcommand(Command::new("run").about("Run until SIGTERM or Ctrl-C, then drain (the default)"))
        .subcommand(
            Command::new("healthcheck")
                .about("Ask the running instance's admin port for /readyz: exit 0 when ready, 1 otherwise"),
        )
        .subcommand(
            Command::new("check-config")
                .about("Validate the config: exit 0, or 64 with every problem listed"),
        )
        .subcommand(Command::new("print-config").about(
            "Print the effective config (defaults, then the file, then BCFY_* variables) as YAML, secrets masked",
        ))
        .subcommands(extra)
}

/// Parses `args` (the program name first) against `command`.
///
/// # Errors
///
/// [`Refusal::Informational`] for `--help`/`--version`, [`Refusal::Usage`] for anything the
/// command does not accept.
pub fn parse<I, T>(command: Command, args: I) -> Result<Invocation, Refusal>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let matches = command.try_get_matches_from(args).map_err(|error| {
        use clap::error::ErrorKind;
        match error.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => Refusal::Informational(error),
            _ => Refusal::Usage(error),
        }
    })?;
    let config_file = matches.get_one::<PathBuf>("config").cloned();
    let action = match matches.subcommand() {
        None | Some(("run", _)) => Action::Run,
        Some(("healthcheck", _)) => Action::Healthcheck,
        Some(("check-config", _)) => Action::CheckConfig,
        Some(("print-config", _)) => Action::PrintConfig,
        Some((name, sub)) => Action::Extra(name.to_owned(), sub.clone()),
    };
    Ok(Invocation {
        config_file,
        action,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_args(args: &[&str]) -> Result<Invocation, Refusal> {
        let extra = vec![Command::new("convert-model").arg(Arg::new("from").required(true))];
        parse(command("svc", "A service.", extra), args)
    }

    #[test]
    fn no_command_runs_and_config_goes_anywhere() {
        let plain = parse_args(&["svc"]).unwrap();
        assert_eq!(plain.action, Action::Run);
        assert_eq!(plain.config_file, None);
        for args in [
            &["svc", "--config", "a.yaml"][..],
            &["svc", "-c", "a.yaml", "run"],
            &["svc", "check-config", "--config=a.yaml"],
        ] {
            let invocation = parse_args(args).unwrap();
            assert_eq!(
                invocation.config_file,
                Some(PathBuf::from("a.yaml")),
                "{args:?}"
            );
        }
        assert_eq!(
            parse_args(&["svc", "print-config"]).unwrap().action,
            Action::PrintConfig
        );
        assert_eq!(
            parse_args(&["svc", "healthcheck"]).unwrap().action,
            Action::Healthcheck
        );
    }

    #[test]
    fn help_and_version_are_informational_and_name_the_revision() {
        let Err(Refusal::Informational(help)) = parse_args(&["svc", "--help"]) else {
            panic!("--help is informational");
        };
        let help = help.render().to_string();
        for command in [
            "run",
            "healthcheck",
            "check-config",
            "print-config",
            "convert-model",
        ] {
            assert!(help.contains(command), "{command} missing from:\n{help}");
        }
        let Err(Refusal::Informational(version)) = parse_args(&["svc", "--version"]) else {
            panic!("--version is informational");
        };
        let version = version.render().to_string();
        assert!(version.contains(env!("BCFY_GIT_REVISION")), "{version}");
        assert!(version.starts_with("svc 0."), "{version}");
    }

    #[test]
    fn unknown_arguments_are_usage_errors() {
        for args in [
            &["svc", "--shards"][..],
            &["svc", "frobnicate"],
            &["svc", "--config"],
        ] {
            assert!(
                matches!(parse_args(args), Err(Refusal::Usage(_))),
                "{args:?}"
            );
        }
    }

    #[test]
    fn extra_commands_keep_their_arguments() {
        let invocation = parse_args(&["svc", "convert-model", "dir"]).unwrap();
        let Action::Extra(name, matches) = invocation.action else {
            panic!("an extra command");
        };
        assert_eq!(name, "convert-model");
        assert_eq!(matches.get_one::<String>("from").unwrap(), "dir");
    }
}
