//! The effective config as YAML for `print-config`, with secrets masked.
//!
//! Strings are written in JSON's double-quoted form, which YAML reads as the same string, so the
//! output can be fed back as a config file whatever the strings contain.

use serde::{Serialize, Serializer};
use serde_json::Value;

/// What a secret prints as.
pub const MASK: &str = "********";

/// `#[serde(serialize_with = "bcfy_config::print::masked")]` for an optional secret: set or not
/// is shown, the value never.
///
/// # Errors
///
/// When the serializer fails.
pub fn masked<T, S: Serializer>(secret: &Option<T>, serializer: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(_) => serializer.serialize_str(MASK),
        None => serializer.serialize_none(),
    }
}

/// `value` as a YAML document.
///
/// # Errors
///
/// When `value` cannot be represented as JSON (a map with non-string keys).
pub fn to_yaml(value: &impl Serialize) -> Result<String, serde_json::Error> {
    let mut out = String::new();
    match serde_json::to_value(value)? {
        Value::Object(map) if map.is_empty() => out.push_str("{}\n"),
        Value::Object(map) => write_map(&mut out, &map, 0),
        other => {
            write_scalar(&mut out, &other);
            out.push('\n');
        }
    }
    Ok(out)
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    for (key, value) in map {
        out.push_str(&" ".repeat(indent));
        out.push_str(&Value::String(key.clone()).to_string());
        out.push(':');
        write_nested(out, value, indent);
    }
}

/// The value after `key:` or `-`: inline when it is a scalar or empty, on the next lines
/// otherwise.
fn write_nested(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_map(out, map, indent + 2);
        }
        Value::Array(items) if !items.is_empty() => {
            out.push('\n');
            for item in items {
                out.push_str(&" ".repeat(indent + 2));
                out.push('-');
                write_nested(out, item, indent + 2);
            }
        }
        scalar => {
            out.push(' ');
            write_scalar(out, scalar);
            out.push('\n');
        }
    }
}

fn write_scalar(out: &mut String, value: &Value) {
    match value {
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
        // JSON's forms of null, booleans, numbers and strings are YAML's too.
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde::Deserialize;

    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Sample {
        name: String,
        urls: Vec<String>,
        nested: BTreeMap<String, Vec<u32>>,
        empty: Vec<String>,
        none: Option<u32>,
        #[serde(serialize_with = "masked")]
        password: Option<String>,
        tricky: String,
    }

    #[test]
    fn yaml_reads_back_as_the_same_value_with_the_secret_masked() {
        let sample = Sample {
            name: "poller".to_owned(),
            urls: vec!["nats://a:4222".to_owned(), "nats://b:4222".to_owned()],
            nested: BTreeMap::from([("7001-1".to_owned(), vec![1, 2]), ("e".to_owned(), vec![])]),
            empty: vec![],
            none: None,
            password: Some("hunter2".to_owned()),
            tricky: "a: b # not a comment\n- \"quoted\" ☎".to_owned(),
        };
        let yaml = to_yaml(&sample).unwrap();
        assert!(!yaml.contains("hunter2"), "{yaml}");
        let read: Sample = config::Config::builder()
            .add_source(config::File::from_str(&yaml, config::FileFormat::Yaml))
            .build()
            .unwrap()
            .try_deserialize()
            .unwrap();
        assert_eq!(
            read,
            Sample {
                password: Some(MASK.to_owned()),
                ..sample
            },
            "{yaml}"
        );
    }
}
