//! Layered configuration: defaults < YAML file < `BCFY_`-prefixed environment.
//!
//! Every service config is a plain serde struct with `#[serde(default)]`, so its `Default` impl
//! holds the defaults. A YAML file (path from `--config FILE` or `BCFY_CONFIG_FILE`) overrides
//! them, and environment variables override the file: `BCFY_NATS__URLS` sets `nats.urls`
//! (`__` separates levels, a single `_` stays part of a name, names are case-insensitive).
//!
//! Config types refuse unknown keys in their JSON schema (`#[schemars(deny_unknown_fields)]`),
//! not in serde: serde would stop at the first unknown key and hide what else is wrong, where
//! the loader reports each unknown key with its full path beside every other problem.
//!
//! Loading reports **every** problem in one go: each value of the wrong type, each unknown
//! setting (a typo), and each failed [`Validate`] check, with its dotted path. A service prints
//! them and exits with [`EXIT_CONFIG`] (64, `EX_USAGE`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Exit code for invalid configuration (`EX_USAGE` from sysexits.h).
pub const EXIT_CONFIG: u8 = 64;
/// Prefix of every environment variable the services read.
pub const ENV_PREFIX: &str = "BCFY_";
/// Environment variable naming the YAML config file (the `--config` flag wins).
pub const ENV_CONFIG_FILE: &str = "BCFY_CONFIG_FILE";
/// Separator between levels in environment variable names.
const ENV_LEVEL_SEPARATOR: &str = "__";
/// Upper bound on fix-and-retry rounds; each round removes one bad value.
const MAX_ROUNDS: usize = 64;

/// Semantic checks that types alone cannot express (ranges, combinations, files that exist).
pub trait Validate {
    /// Adds one [`ConfigIssue`] per problem to `issues`; `prefix` is this value's dotted path.
    fn validate(&self, prefix: &str, issues: &mut Vec<ConfigIssue>);
}

/// One bad setting: where it is, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted path of the setting, e.g. `nats.urls`.
    pub setting: String,
    /// What is wrong with it.
    pub message: String,
}

impl ConfigIssue {
    /// An issue with the setting at `prefix` + `name`.
    pub fn new(prefix: &str, name: &str, message: impl Into<String>) -> Self {
        Self {
            setting: join_path(prefix, name),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.setting, self.message)
    }
}

/// `prefix.name`, or `name` when the prefix is empty.
pub fn join_path(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}.{name}")
    }
}

/// Everything wrong with a configuration, reported at once.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read or is not valid YAML.
    #[error("cannot read config file {path}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: config::ConfigError,
    },
    /// One or more settings are invalid.
    #[error("{} invalid setting(s):\n  {}", .0.len(), issues_list(.0))]
    Invalid(Vec<ConfigIssue>),
}

fn issues_list(issues: &[ConfigIssue]) -> String {
    issues
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n  ")
}

impl ConfigError {
    /// The individual issues (empty for a file error).
    pub fn issues(&self) -> &[ConfigIssue] {
        match self {
            Self::Invalid(issues) => issues,
            Self::File { .. } => &[],
        }
    }
}

/// Where configuration comes from. Tests build one by hand instead of touching the process
/// environment.
#[derive(Debug, Clone, Default)]
pub struct ConfigSource {
    file: Option<PathBuf>,
    env: BTreeMap<String, String>,
}

impl ConfigSource {
    /// The process's sources: `BCFY_CONFIG_FILE` and every `BCFY_*` environment variable. A
    /// `--config FILE` argument, read by the command line, goes on top with [`Self::with_file`].
    pub fn from_env() -> Self {
        Self {
            file: std::env::var_os(ENV_CONFIG_FILE).map(PathBuf::from),
            env: std::env::vars().collect(),
        }
    }

    /// Adds a YAML file layer.
    #[must_use]
    pub fn with_file(mut self, path: impl AsRef<Path>) -> Self {
        self.file = Some(path.as_ref().to_owned());
        self
    }

    /// Adds environment variables (only `BCFY_*` ones are read, `BCFY_CONFIG_FILE` aside).
    #[must_use]
    pub fn with_env<K: Into<String>, V: Into<String>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.env
            .extend(vars.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Loads `T`: defaults, then the file, then the environment, then [`Validate`].
    ///
    /// # Errors
    ///
    /// [`ConfigError::File`] when the file cannot be read or parsed; otherwise
    /// [`ConfigError::Invalid`] with every bad setting.
    pub fn load<T: DeserializeOwned + Validate>(&self) -> Result<T, ConfigError> {
        let mut tree = self.file_layer()?;
        for (key, value) in &self.env {
            if let Some(path) = env_path(key) {
                insert_at(&mut tree, &path, Value::String(value.clone()));
            }
        }
        let mut tree = Value::Object(tree);
        let mut issues = Vec::new();
        for _ in 0..MAX_ROUNDS {
            match deserialize::<T>(&tree) {
                Ok((config, unknown)) => {
                    issues.extend(unknown.into_iter().map(|setting| ConfigIssue {
                        setting,
                        message: "unknown setting (a typo?)".to_owned(),
                    }));
                    config.validate("", &mut issues);
                    return if issues.is_empty() {
                        Ok(config)
                    } else {
                        Err(ConfigError::Invalid(issues))
                    };
                }
                Err(issue) => {
                    let removed = remove_at(&mut tree, &issue.setting);
                    issues.push(issue);
                    if !removed {
                        break;
                    }
                }
            }
        }
        Err(ConfigError::Invalid(issues))
    }

    fn file_layer(&self) -> Result<Map<String, Value>, ConfigError> {
        let Some(path) = &self.file else {
            return Ok(Map::new());
        };
        let file_error = |source| ConfigError::File {
            path: path.clone(),
            source,
        };
        let layer = config::Config::builder()
            .add_source(config::File::from(path.as_path()).format(config::FileFormat::Yaml))
            .build()
            .map_err(file_error)?;
        layer.try_deserialize().map_err(file_error)
    }
}

/// Deserializes `T` from the merged tree with the `config` crate's lenient rules (a string
/// `"5"` from the environment fills a number, a number fills a string), collecting the paths of
/// settings `T` does not know.
fn deserialize<T: DeserializeOwned>(tree: &Value) -> Result<(T, Vec<String>), ConfigIssue> {
    // Through JSON text (which YAML reads as it is) rather than `Config::try_from`, whose cost
    // grows with the square of a list's length: 10,000 alert rules took minutes that way.
    let text = tree.to_string();
    let layered = config::Config::builder()
        .add_source(config::File::from_str(&text, config::FileFormat::Yaml))
        .build()
        .map_err(|e| issue_from(&e))?;
    let mut unknown = Vec::new();
    let config = serde_ignored::deserialize(layered, |path| unknown.push(path.to_string()))
        .map_err(|e| issue_from(&e))?;
    Ok((config, unknown))
}

/// The setting a `config` error points at, and the error without the location noise.
fn issue_from(error: &config::ConfigError) -> ConfigIssue {
    match error {
        config::ConfigError::Type {
            key,
            unexpected,
            expected,
            ..
        } => ConfigIssue {
            setting: key.clone().unwrap_or_default(),
            message: format!("invalid type: {unexpected}, expected {expected}"),
        },
        config::ConfigError::At { error, key, .. } => {
            let inner = issue_from(error);
            let setting = match (key, inner.setting.is_empty()) {
                (Some(key), true) => key.clone(),
                _ => inner.setting,
            };
            ConfigIssue {
                setting,
                message: inner.message,
            }
        }
        other => ConfigIssue {
            setting: String::new(),
            message: other.to_string(),
        },
    }
}

/// `BCFY_NATS__URLS` -> `["nats", "urls"]`; `None` for other variables.
fn env_path(key: &str) -> Option<Vec<String>> {
    if key == ENV_CONFIG_FILE {
        return None;
    }
    let rest = key.strip_prefix(ENV_PREFIX)?;
    let path: Vec<String> = rest
        .split(ENV_LEVEL_SEPARATOR)
        .map(str::to_ascii_lowercase)
        .collect();
    path.iter().all(|p| !p.is_empty()).then_some(path)
}

fn insert_at(tree: &mut Map<String, Value>, path: &[String], value: Value) {
    let (last, parents) = path.split_last().expect("env paths are not empty");
    let mut node = tree;
    for name in parents {
        let child = node
            .entry(name.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if !child.is_object() {
            *child = Value::Object(Map::new());
        }
        node = child.as_object_mut().expect("just made an object");
    }
    node.insert(last.clone(), value);
}

/// Removes the value at a dotted path (`a.b`, `a.list[2]`); false when nothing was there.
fn remove_at(tree: &mut Value, setting: &str) -> bool {
    let mut steps: Vec<Step<'_>> = Vec::new();
    for part in setting.split('.') {
        let (name, indexes) = part
            .split_once('[')
            .map_or((part, ""), |(n, rest)| (n, rest));
        if !name.is_empty() {
            steps.push(Step::Key(name));
        }
        for index in indexes.split('[').filter(|s| !s.is_empty()) {
            match index.trim_end_matches(']').parse() {
                Ok(i) => steps.push(Step::Index(i)),
                Err(_) => return false,
            }
        }
    }
    let Some((last, parents)) = steps.split_last() else {
        return false;
    };
    let mut node = tree;
    for step in parents {
        let next = match (step, node) {
            (Step::Key(k), Value::Object(map)) => map.get_mut(*k),
            (Step::Index(i), Value::Array(items)) => items.get_mut(*i),
            _ => None,
        };
        match next {
            Some(next) => node = next,
            None => return false,
        }
    }
    match (last, node) {
        (Step::Key(k), Value::Object(map)) => map.remove(*k).is_some(),
        (Step::Index(i), Value::Array(items)) if *i < items.len() => {
            items.remove(*i);
            true
        }
        _ => false,
    }
}

enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

#[cfg(test)]
mod tests;
