//! The upstream's JSON mapped onto the `broadcastify.v1` directory messages.
//!
//! No response of these APIs has been captured (the protocol notes, §7, say so): the field names
//! below come from public client code and from the Calls API's live records. Each mapped key is
//! marked **(S)** (one public source uses it) or **(G)** (a guess, with its reason). Every key not
//! mapped is kept in `extra_fields` as raw JSON, and ids are read whether they come as numbers or
//! as numeric strings (the catalog sends `"status":"1"`, so strings are likely elsewhere too).

use std::collections::BTreeMap;

use bcfy_proto::{County, DirectoryTalkgroup, Feed, RadioSystem, State};
use serde_json::{Map, Value};

/// Why an answer could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// The body is not JSON.
    #[error("not JSON: {0}")]
    NotJson(String),
    /// The list or object the answer should hold is missing.
    #[error("no `{0}` in the answer")]
    Missing(&'static str),
    /// A record lacks its id, or the id is not a number.
    #[error("a `{record}` record has no numeric `{field}`")]
    NoId {
        /// The record's kind.
        record: &'static str,
        /// The id field.
        field: &'static str,
    },
}

/// Parses `body` as a JSON object.
///
/// # Errors
///
/// [`ShapeError::NotJson`] when it is not one.
pub fn object(body: &[u8]) -> Result<Map<String, Value>, ShapeError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(ShapeError::NotJson(format!(
            "a JSON {} at the top",
            kind(&other)
        ))),
        Err(error) => Err(ShapeError::NotJson(error.to_string())),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The array under `key`; an object of records keyed by id counts too (PHP APIs send either).
///
/// # Errors
///
/// [`ShapeError::Missing`] when there is neither.
pub fn records<'a>(
    answer: &'a Map<String, Value>,
    key: &'static str,
) -> Result<Vec<&'a Map<String, Value>>, ShapeError> {
    match answer.get(key) {
        Some(Value::Array(items)) => Ok(items.iter().filter_map(Value::as_object).collect()),
        Some(Value::Object(items)) => Ok(items.values().filter_map(Value::as_object).collect()),
        _ => Err(ShapeError::Missing(key)),
    }
}

/// One record: the keys read, and everything else kept.
struct Record<'a> {
    fields: &'a Map<String, Value>,
    read: Vec<&'static str>,
}

impl<'a> Record<'a> {
    fn new(fields: &'a Map<String, Value>) -> Self {
        Self {
            fields,
            read: Vec::new(),
        }
    }

    /// The first of `keys` present, marked as read (all of them are).
    fn value(&mut self, keys: &[&'static str]) -> Option<&'a Value> {
        self.read.extend_from_slice(keys);
        keys.iter().find_map(|key| self.fields.get(*key))
    }

    fn text(&mut self, keys: &[&'static str]) -> String {
        match self.value(keys) {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Number(number)) => number.to_string(),
            _ => String::new(),
        }
    }

    fn number(&mut self, keys: &[&'static str]) -> Option<i64> {
        match self.value(keys)? {
            Value::Number(number) => number.as_i64(),
            Value::String(text) => text.trim().parse().ok(),
            _ => None,
        }
    }

    fn id(&mut self, record: &'static str, keys: &[&'static str]) -> Result<i64, ShapeError> {
        self.number(keys).ok_or(ShapeError::NoId {
            record,
            field: keys[0],
        })
    }

    /// `1`, `"1"`, `true`, `"online"` are on.
    fn flag(&mut self, keys: &[&'static str]) -> bool {
        match self.value(keys) {
            Some(Value::Bool(on)) => *on,
            Some(Value::Number(number)) => number.as_i64().is_some_and(|n| n > 0),
            Some(Value::String(text)) => {
                matches!(
                    text.trim().to_ascii_lowercase().as_str(),
                    "1" | "true" | "online" | "up"
                )
            }
            _ => false,
        }
    }

    fn extra(&self) -> BTreeMap<String, String> {
        self.fields
            .iter()
            .filter(|(key, _)| !self.read.contains(&key.as_str()))
            .map(|(key, value)| (key.clone(), value.to_string()))
            .collect()
    }
}

/// A state record of `a=states`: `stid` (S: the website's `/listen/stid/{id}`; `id` in one
/// integration guide), `name` (G: every catalog record has one), `code` (G: postal code).
///
/// # Errors
///
/// [`ShapeError::NoId`].
pub fn state(fields: &Map<String, Value>) -> Result<State, ShapeError> {
    let mut record = Record::new(fields);
    Ok(State {
        id: record.id("state", &["stid", "id"])?,
        name: record.text(&["name", "state"]),
        code: record.text(&["code", "abbrev"]),
        extra_fields: record.extra(),
    })
}

/// A county record of `a=counties` or `a=county`: `ctid` (S: `/listen/ctid/{id}` and the
/// `county&ctid=` action), `stid` (G: as the state's id), `name` (G).
///
/// # Errors
///
/// [`ShapeError::NoId`].
pub fn county(fields: &Map<String, Value>) -> Result<County, ShapeError> {
    let mut record = Record::new(fields);
    Ok(County {
        id: record.id("county", &["ctid", "id"])?,
        state_id: record.number(&["stid", "state_id"]).unwrap_or_default(),
        name: record.text(&["name", "county"]),
        extra_fields: record.extra(),
    })
}

/// A feed record: `id` or `feedId` (S: the `feed&feedId=` action), `descr` (G: as Calls records
/// name things), `genre` (S: the `feeds&genre=` action), `status` (S: `"1"` when online, one
/// WordPress plugin), `listeners` (S: the status page's `{status, listeners}`).
///
/// # Errors
///
/// [`ShapeError::NoId`].
pub fn feed(fields: &Map<String, Value>) -> Result<Feed, ShapeError> {
    let mut record = Record::new(fields);
    Ok(Feed {
        id: record.id("feed", &["id", "feedId"])?,
        name: record.text(&["descr", "name"]),
        genre: record.text(&["genre"]),
        online: record.flag(&["status"]),
        listeners: record.number(&["listeners"]).unwrap_or_default(),
        extra_fields: record.extra(),
    })
}

/// A group of the Calls API's county groups: `groupId` (S: the Calls API's live records and its
/// `groups` selector), `sid`, `display`, `descr`, `grouping`, `tag` (S: the same live records),
/// `tg` (G: read from `groupId` when absent), `systemName` (G).
///
/// # Errors
///
/// [`ShapeError::NoId`] when there is no `groupId`.
pub fn talkgroup(fields: &Map<String, Value>) -> Result<(DirectoryTalkgroup, String), ShapeError> {
    let mut record = Record::new(fields);
    let group_id = record.text(&["groupId"]);
    if group_id.is_empty() {
        return Err(ShapeError::NoId {
            record: "group",
            field: "groupId",
        });
    }
    let (from_id_sid, from_id_tg) = group_id
        .split_once('-')
        .and_then(|(sid, tg)| Some((sid.parse::<i64>().ok()?, tg.parse::<i64>().ok()?)))
        .unwrap_or_default();
    let talkgroup = DirectoryTalkgroup {
        sid: record.number(&["sid"]).unwrap_or(from_id_sid),
        tg: record.number(&["tg"]).unwrap_or(from_id_tg),
        display: record.text(&["display"]),
        descr: record.text(&["descr"]),
        tag: record.text(&["tag"]),
        grouping: record.text(&["grouping"]),
        group_id,
        extra_fields: BTreeMap::new(),
    };
    let system_name = record.text(&["systemName"]);
    Ok((
        DirectoryTalkgroup {
            extra_fields: record.extra(),
            ..talkgroup
        },
        system_name,
    ))
}

/// The id of the state `text` names: its id, postal code or name (case-insensitive).
pub fn state_named(states: &[State], text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(id) = text.parse::<i64>() {
        return Some(id);
    }
    states
        .iter()
        .find(|s| s.code.eq_ignore_ascii_case(text) || s.name.eq_ignore_ascii_case(text))
        .map(|s| s.id)
}

/// The systems the talkgroups belong to, by sid, named when a group said so.
pub fn systems(groups: &[(DirectoryTalkgroup, String)]) -> Vec<RadioSystem> {
    let mut systems: BTreeMap<i64, String> = BTreeMap::new();
    for (talkgroup, name) in groups.iter().filter(|(t, _)| t.sid > 0) {
        let entry = systems.entry(talkgroup.sid).or_default();
        if entry.is_empty() {
            entry.clone_from(name);
        }
    }
    systems
        .into_iter()
        .map(|(sid, name)| RadioSystem {
            sid,
            name,
            extra_fields: BTreeMap::new(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn ids_are_read_from_numbers_or_strings_and_unknown_keys_are_kept() {
        let state = state(&map(
            json!({"stid": "6", "name": "California", "code": "CA", "fips": 6}),
        ))
        .expect("a state");
        assert_eq!(
            (state.id, state.name.as_str(), state.code.as_str()),
            (6, "California", "CA")
        );
        assert_eq!(
            state.extra_fields.get("fips").map(String::as_str),
            Some("6")
        );
        let feed = feed(&map(json!({"feedId": 31, "descr": "County Fire", "status": "1", "listeners": "12", "mount": "x"})))
            .expect("a feed");
        assert_eq!((feed.id, feed.online, feed.listeners), (31, true, 12));
        assert_eq!(feed.extra_fields.keys().collect::<Vec<_>>(), ["mount"]);
    }

    #[test]
    fn a_record_without_its_id_is_named() {
        assert_eq!(
            county(&map(json!({"name": "Nowhere"}))),
            Err(ShapeError::NoId {
                record: "county",
                field: "ctid"
            })
        );
        assert_eq!(
            object(b"[1]"),
            Err(ShapeError::NotJson("a JSON array at the top".into()))
        );
    }

    #[test]
    fn a_group_takes_its_numbers_from_its_id_when_absent_and_systems_are_gathered() {
        let groups = [
            talkgroup(&map(json!({"groupId": "7001-2345", "display": "FD Disp 1", "systemName": "Example Trunked"}))).expect("a group"),
            talkgroup(&map(json!({"groupId": "7001-2346", "sid": 7001, "tg": "2346"}))).expect("a group"),
            talkgroup(&map(json!({"groupId": "c-991", "display": "Fire Conv"}))).expect("a group"),
        ];
        assert_eq!((groups[0].0.sid, groups[0].0.tg), (7001, 2345));
        assert_eq!((groups[2].0.sid, groups[2].0.tg), (0, 0));
        let systems = systems(&groups);
        assert_eq!(systems.len(), 1);
        assert_eq!(
            (systems[0].sid, systems[0].name.as_str()),
            (7001, "Example Trunked")
        );
    }
}
