//! Config primitives every crate with settings shares, and nothing else: the client library
//! and the bus use them without pulling in a service runtime.
//!
//! # Layout
//!
//! - [`layered`]: defaults < YAML file < `BCFY_*` environment, every problem reported at once
//!   (exit [`EXIT_CONFIG`]), and the [`Validate`] trait for checks types cannot express;
//! - [`units`]: durations (`30s`) and sizes (`512KiB`);
//! - [`checks`]: checks several settings types make (http(s) URLs, durations above zero);
//! - [`print`](mod@print): the effective config as YAML, secrets masked (`print-config`);
//! - [`yaml`]: one YAML document from outside read as JSON, without aliases or path keys.

pub mod checks;
pub mod layered;
pub mod print;
pub mod units;
pub mod yaml;

pub use layered::{
    ConfigError, ConfigIssue, ConfigSource, ENV_CONFIG_FILE, ENV_PREFIX, EXIT_CONFIG, Validate,
    join_path,
};
pub use print::to_yaml;
