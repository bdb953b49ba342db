//! Broadcastify call JSON to and from [`Call`], without losing anything.
//!
//! Every documented key becomes a typed field. A key that is unknown, or whose value the typed
//! field cannot hold exactly (`null`, a string where a number belongs, a fractional number where
//! an integer belongs, an empty list), is kept in `extra_fields` as raw JSON text. Writing the
//! call back gives the same JSON value as the input (key order aside), which is what lets
//! downstream consumers see everything the upstream sent even when Broadcastify adds fields.
//!
//! The key names follow `docs/protocol.md` §3.4–3.5 (note the hyphen in `call-ttl` and the
//! camel case of `systemId`, `siteId`, `tgId`, `tgCid`, `freqList`, `srcList`).

use std::collections::BTreeMap;

use serde_json::{Map, Number, Value};

use crate::{Call, FrequencyEntry, SourceEntry, TrunkRecorderMetadata};

/// Why a JSON value could not be turned into a [`Call`], or a [`Call`] into JSON.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum JsonError {
    /// The call (or a nested record) was not a JSON object.
    #[error("expected a JSON object for {what}, found {found}")]
    NotAnObject {
        /// Which record was expected.
        what: &'static str,
        /// The JSON type found instead.
        found: &'static str,
    },
    /// An `extra_fields` entry did not hold valid JSON text.
    #[error("extra field `{key}` does not hold valid JSON text")]
    InvalidExtraField {
        /// The offending key.
        key: String,
    },
    /// A floating-point field held NaN or an infinity, which JSON cannot express.
    #[error("field `{key}` holds a non-finite number")]
    NonFiniteNumber {
        /// The offending key.
        key: &'static str,
    },
}

/// JSON equality that compares numbers by value: `0` (as the upstream writes a float field's
/// whole value) equals `0.0` (as a typed `double` writes it back). This is the sense in which
/// [`Call::to_json`] gives back what [`Call::from_json`] read.
pub fn equivalent(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| equivalent(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| equivalent(v, w)))
        }
        _ => a == b,
    }
}

/// A value that converts to and from JSON exactly.
trait JsonValue: Sized {
    /// The value, if `json` can be held exactly; `None` sends the key to `extra_fields`.
    fn from_json(json: &Value) -> Option<Self>;
    /// The JSON form; `key` names the field in errors.
    fn to_json(&self, key: &'static str) -> Result<Value, JsonError>;
}

/// How a message field sits in a JSON object: `Option<T>` (absent when `None`) or `Vec<T>`
/// (absent when empty).
trait JsonField: Sized {
    /// Takes the key out of `object` when its value converts exactly.
    fn take(object: &mut Map<String, Value>, key: &'static str) -> Self;
    /// Puts the field into `object` unless it is absent.
    fn put(&self, object: &mut Map<String, Value>, key: &'static str) -> Result<(), JsonError>;
}

/// Takes the key's value out of `object` when `T` can hold it exactly.
fn take_exact<T: JsonValue>(object: &mut Map<String, Value>, key: &str) -> Option<T> {
    let value = T::from_json(object.get(key)?)?;
    object.remove(key);
    Some(value)
}

// === impl JsonField ===

impl<T: JsonValue> JsonField for Option<T> {
    fn take(object: &mut Map<String, Value>, key: &'static str) -> Self {
        take_exact(object, key)
    }

    fn put(&self, object: &mut Map<String, Value>, key: &'static str) -> Result<(), JsonError> {
        if let Some(value) = self {
            object.insert(key.to_owned(), value.to_json(key)?);
        }
        Ok(())
    }
}

impl<T: JsonValue> JsonField for Vec<T> {
    fn take(object: &mut Map<String, Value>, key: &'static str) -> Self {
        take_exact(object, key).unwrap_or_default()
    }

    fn put(&self, object: &mut Map<String, Value>, key: &'static str) -> Result<(), JsonError> {
        if !self.is_empty() {
            object.insert(key.to_owned(), self.to_json(key)?);
        }
        Ok(())
    }
}

// === impl JsonValue ===

impl JsonValue for i64 {
    fn from_json(json: &Value) -> Option<Self> {
        json.as_i64()
    }

    fn to_json(&self, _key: &'static str) -> Result<Value, JsonError> {
        Ok(Value::from(*self))
    }
}

impl JsonValue for f64 {
    fn from_json(json: &Value) -> Option<Self> {
        match json {
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    fn to_json(&self, key: &'static str) -> Result<Value, JsonError> {
        Number::from_f64(*self)
            .map(Value::Number)
            .ok_or(JsonError::NonFiniteNumber { key })
    }
}

impl JsonValue for String {
    fn from_json(json: &Value) -> Option<Self> {
        json.as_str().map(str::to_owned)
    }

    fn to_json(&self, _key: &'static str) -> Result<Value, JsonError> {
        Ok(Value::String(self.clone()))
    }
}

/// A list converts only when it is non-empty and every element converts, so an empty list or a
/// mixed one stays in `extra_fields` verbatim.
impl<T: JsonValue> JsonValue for Vec<T> {
    fn from_json(json: &Value) -> Option<Self> {
        let items = json.as_array().filter(|items| !items.is_empty())?;
        items.iter().map(T::from_json).collect()
    }

    fn to_json(&self, key: &'static str) -> Result<Value, JsonError> {
        self.iter()
            .map(|item| item.to_json(key))
            .collect::<Result<_, _>>()
            .map(Value::Array)
    }
}

/// Reads the keys that stayed in `object` into `extra_fields` form.
fn extras_from(object: Map<String, Value>) -> BTreeMap<String, String> {
    object
        .into_iter()
        .map(|(key, value)| (key, value.to_string()))
        .collect()
}

/// Starts an output object from `extra_fields`; typed fields written afterwards win on a clash.
fn object_from_extras(extras: &BTreeMap<String, String>) -> Result<Map<String, Value>, JsonError> {
    extras
        .iter()
        .map(|(key, raw)| {
            serde_json::from_str(raw)
                .map(|value| (key.clone(), value))
                .map_err(|_| JsonError::InvalidExtraField { key: key.clone() })
        })
        .collect()
}

/// The JSON type name of `value`, for error messages.
fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Declares the JSON key of every field of a message once, and derives both directions from
/// that one list.
macro_rules! json_mapping {
    ($message:ident as $what:literal { $($field:ident: $key:literal),* $(,)? }) => {
        impl $message {
            /// Parses one JSON object of the upstream's shape. Unknown keys, and known keys whose
            /// value does not fit the typed field, are kept in `extra_fields`.
            ///
            /// # Errors
            ///
            /// [`JsonError::NotAnObject`] when `json` is not an object.
            pub fn from_json(json: &Value) -> Result<Self, JsonError> {
                let mut object = json.as_object().cloned().ok_or(JsonError::NotAnObject {
                    what: $what,
                    found: json_type(json),
                })?;
                Ok(Self {
                    $($field: JsonField::take(&mut object, $key),)*
                    extra_fields: extras_from(object),
                })
            }

            /// The JSON object this message stands for: the typed fields under their upstream
            /// keys, plus every `extra_fields` entry.
            ///
            /// # Errors
            ///
            /// [`JsonError::InvalidExtraField`] when an extra field is not JSON text, and
            /// [`JsonError::NonFiniteNumber`] for a NaN or infinite float.
            pub fn to_json(&self) -> Result<Value, JsonError> {
                let mut object = object_from_extras(&self.extra_fields)?;
                $(JsonField::put(&self.$field, &mut object, $key)?;)*
                Ok(Value::Object(object))
            }
        }

        impl JsonValue for $message {
            fn from_json(json: &Value) -> Option<Self> {
                $message::from_json(json).ok()
            }

            fn to_json(&self, _key: &'static str) -> Result<Value, JsonError> {
                $message::to_json(self)
            }
        }
    };
}

json_mapping!(Call as "a call" {
    id: "id",
    sid: "sid",
    system_id: "systemId",
    site_id: "siteId",
    call_type: "call_type",
    call_tg: "call_tg",
    tg_id: "tgId",
    tg_cid: "tgCid",
    call_src: "call_src",
    call_src_key: "call_src_key",
    call_src_descr: "call_src_descr",
    call_freq: "call_freq",
    call_duration: "call_duration",
    call_timediff: "call_timediff",
    meta_starttime: "meta_starttime",
    meta_stoptime: "meta_stoptime",
    ts: "ts",
    call_ttl: "call-ttl",
    filename: "filename",
    hash: "hash",
    enc: "enc",
    display: "display",
    descr: "descr",
    grouping: "grouping",
    tag: "tag",
    fid: "fid",
    metadata: "metadata",
    transcribe: "transcribe",
    transcription: "transcription",
    score: "score",
});

json_mapping!(TrunkRecorderMetadata as "call metadata" {
    freq: "freq",
    freq_error: "freq_error",
    signal: "signal",
    noise: "noise",
    source_num: "source_num",
    recorder_num: "recorder_num",
    tdma_slot: "tdma_slot",
    phase2_tdma: "phase2_tdma",
    start_time: "start_time",
    stop_time: "stop_time",
    emergency: "emergency",
    encrypted: "encrypted",
    duplex: "duplex",
    mode: "mode",
    priority: "priority",
    call_length: "call_length",
    talkgroup: "talkgroup",
    talkgroup_tag: "talkgroup_tag",
    talkgroup_description: "talkgroup_description",
    talkgroup_group: "talkgroup_group",
    talkgroup_group_tag: "talkgroup_group_tag",
    audio_type: "audio_type",
    short_name: "short_name",
    freq_list: "freqList",
    src_list: "srcList",
    start_time_ms: "start_time_ms",
    stop_time_ms: "stop_time_ms",
    call_length_ms: "call_length_ms",
    patched_talkgroups: "patched_talkgroups",
});

json_mapping!(FrequencyEntry as "a freqList entry" {
    freq: "freq",
    time: "time",
    pos: "pos",
    len: "len",
    error_count: "error_count",
    spike_count: "spike_count",
});

json_mapping!(SourceEntry as "a srcList entry" {
    src: "src",
    time: "time",
    pos: "pos",
    emergency: "emergency",
    signal_system: "signal_system",
    tag: "tag",
});
