//! One YAML (or JSON) document read as JSON, for values that come from outside at run time (an
//! alert rule stored in a bucket) rather than from the operator's config file.
//!
//! Two things the config loader does are refused here on purpose: YAML aliases, because each one
//! is a copy of what it names and a few lines of aliases naming each other grow into gigabytes;
//! and keys read as paths (`a[33333333]` makes the config crate allocate an array of that
//! length — a 100-byte rule took 3 GiB and 10 s, found by the `alert_rule` fuzz target). Keys
//! here are plain names, and types are what the document says (no string-to-number coercion).

use serde_json::Value;
use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::{Yaml, YamlLoader};

/// Why a text is not one usable YAML document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlError {
    /// Not YAML.
    #[error("not YAML: {0}")]
    Syntax(String),
    /// An alias (`*name`).
    #[error("YAML aliases (`*name`) are not accepted here")]
    Alias,
    /// More than one document (`---`).
    #[error("more than one YAML document")]
    Documents,
}

/// The single document of `text` as JSON (`null` when empty).
///
/// # Errors
///
/// [`YamlError`] when `text` is not YAML, uses an alias or holds several documents.
pub fn document(text: &str) -> Result<Value, YamlError> {
    let syntax = |error: yaml_rust2::ScanError| YamlError::Syntax(error.to_string());
    // Checked on the events, before the loader copies an alias's target.
    let mut parser = Parser::new_from_str(text);
    let mut documents = 0;
    loop {
        match parser.next_token().map_err(syntax)?.0 {
            Event::StreamEnd => break,
            Event::Alias(_) => return Err(YamlError::Alias),
            Event::DocumentStart => documents += 1,
            _ => {}
        }
    }
    if documents > 1 {
        return Err(YamlError::Documents);
    }
    let loaded = YamlLoader::load_from_str(text).map_err(syntax)?;
    Ok(loaded.first().map_or(Value::Null, to_json))
}

/// A loaded YAML node as JSON: keys are strings (other keys their JSON text), a real that is not
/// a finite number stays a string, nulls and bad values are `null`.
pub fn to_json(yaml: &Yaml) -> Value {
    match yaml {
        Yaml::Real(text) => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or_else(|| Value::String(text.clone()), Value::Number),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(items) => Value::Array(items.iter().map(to_json).collect()),
        Yaml::Hash(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let key = match key {
                        Yaml::String(s) => s.clone(),
                        other => to_json(other).to_string(),
                    };
                    (key, to_json(value))
                })
                .collect(),
        ),
        Yaml::Null | Yaml::BadValue | Yaml::Alias(_) => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn yaml_and_json_read_alike() {
        let yaml = document("name: fire\nkeywords: [structure fire]\nscore: 0.5\non: true\n");
        let json = document(
            r#"{"name": "fire", "keywords": ["structure fire"], "score": 0.5, "on": true}"#,
        );
        assert_eq!(yaml, json);
        assert_eq!(
            yaml.unwrap(),
            json!({"name": "fire", "keywords": ["structure fire"], "score": 0.5, "on": true})
        );
        assert_eq!(document(""), Ok(Value::Null));
    }

    #[test]
    fn a_path_like_key_is_a_plain_key() {
        let read = document(r#"{"name": "fuzz", "coote3[33333333]": null}"#).unwrap();
        assert_eq!(read, json!({"name": "fuzz", "coote3[33333333]": null}));
    }

    #[test]
    fn aliases_and_several_documents_are_refused() {
        let laughs = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n\
                      c: [*b, *b, *b, *b, *b, *b, *b, *b]\n";
        assert_eq!(document(laughs), Err(YamlError::Alias));
        assert_eq!(document("a: 1\n---\nb: 2\n"), Err(YamlError::Documents));
        assert!(matches!(document("a: [1, 2"), Err(YamlError::Syntax(_))));
    }
}
