//! Typed durations and byte sizes for config files and env vars.
//!
//! Durations are written with a unit (`30s`, `500ms`, `1h 30m`); a bare number means seconds,
//! so the spec's float keys (`poll_interval: 2.0`) keep working. Sizes are written with a unit
//! (`512KiB`, `10MB`, `1GiB`); a bare number means bytes.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// `#[serde(with = "bcfy_config::units::duration")]` for a [`Duration`] field.
pub mod duration {
    use super::*;

    /// Deserializes `"30s"`, `"500ms"`, `"1h 30m"`, or a number of seconds.
    ///
    /// # Errors
    ///
    /// When the value is negative, not finite, or not a duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        deserializer.deserialize_any(DurationVisitor)
    }

    /// Writes `30s`, `1h 30m`: the form the config files use (and the schema's defaults show).
    ///
    /// # Errors
    ///
    /// When the serializer fails.
    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*value))
    }
}

/// `#[serde(with = "bcfy_config::units::optional_duration")]` for an `Option<Duration>` field.
pub mod optional_duration {
    use super::*;

    /// Like [`super::duration::deserialize`]; `null` gives `None`.
    ///
    /// # Errors
    ///
    /// When the value is present and not a duration.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        #[derive(Deserialize)]
        struct Wrapped(#[serde(with = "super::duration")] Duration);
        Ok(Option::<Wrapped>::deserialize(deserializer)?.map(|Wrapped(d)| d))
    }

    /// Like [`super::duration::serialize`]; `None` gives `null`.
    ///
    /// # Errors
    ///
    /// When the serializer fails.
    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => super::duration::serialize(duration, serializer),
            None => serializer.serialize_none(),
        }
    }
}

struct DurationVisitor;

impl de::Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"30s\", \"500ms\" or \"1h 30m\", or a number of seconds")
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Duration, E> {
        let value = value.trim();
        if let Ok(seconds) = value.parse::<f64>() {
            return self.visit_f64(seconds);
        }
        humantime::parse_duration(value).map_err(|_| {
            E::custom(format!(
                "`{value}` is not a duration (use e.g. 30s, 500ms, 1h 30m)"
            ))
        })
    }

    fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Duration, E> {
        Ok(Duration::from_secs(seconds))
    }

    fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<Duration, E> {
        u64::try_from(seconds)
            .map(Duration::from_secs)
            .map_err(|_| E::custom(format!("{seconds} is negative")))
    }

    fn visit_f64<E: de::Error>(self, seconds: f64) -> Result<Duration, E> {
        Duration::try_from_secs_f64(seconds).map_err(|_| {
            E::custom(format!(
                "{seconds} seconds is not a valid duration (negative or too large)"
            ))
        })
    }
}

/// The JSON schema of a duration setting (`#[schemars(with = "units::DurationSchema")]` beside
/// `#[serde(with = "units::duration")]`): what config files and the Helm chart's values schema
/// accept.
#[derive(Debug)]
pub struct DurationSchema;

impl schemars::JsonSchema for DurationSchema {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A duration with a unit (30s, 500ms, 1h 30m) or a number of seconds.",
            "anyOf": [
                {"type": "string", "pattern": "^\\s*([0-9]+(\\.[0-9]+)?\\s*[a-zµ]*\\s*)+$"},
                {"type": "number", "minimum": 0}
            ]
        })
    }
}

/// A size in bytes, written `512KiB`, `10MB`, `1GiB` or as a bare number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

/// Why a size string was rejected.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("`{input}` is not a size (use e.g. 512KiB, 10MB, 1GiB or a number of bytes)")]
pub struct InvalidByteSize {
    input: String,
}

impl schemars::JsonSchema for ByteSize {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ByteSize".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "A size with a unit (512KiB, 10MB, 1GiB) or a number of bytes.",
            "anyOf": [
                {"type": "string", "pattern": "^\\s*[0-9]+(\\.[0-9]+)?\\s*([KkMmGgTt][Ii]?[Bb]|[Bb])?\\s*$"},
                {"type": "integer", "minimum": 0}
            ]
        })
    }
}

impl ByteSize {
    /// The size in bytes.
    pub fn bytes(self) -> u64 {
        self.0
    }

    /// The size as `usize`, saturating on 32-bit targets.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl FromStr for ByteSize {
    type Err = InvalidByteSize;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        const UNITS: &[(&str, u64)] = &[
            ("kib", 1 << 10),
            ("mib", 1 << 20),
            ("gib", 1 << 30),
            ("tib", 1 << 40),
            ("kb", 1_000),
            ("mb", 1_000_000),
            ("gb", 1_000_000_000),
            ("tb", 1_000_000_000_000),
            ("b", 1),
        ];
        let invalid = || InvalidByteSize {
            input: input.to_owned(),
        };
        let lower = input.trim().to_ascii_lowercase();
        let (number, multiplier) = UNITS
            .iter()
            .find_map(|(unit, m)| lower.strip_suffix(unit).map(|n| (n.trim(), *m)))
            .unwrap_or((lower.as_str(), 1));
        let number: f64 = number.parse().map_err(|_| invalid())?;
        let bytes = number * multiplier as f64;
        if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 || bytes.fract() != 0.0 {
            return Err(invalid());
        }
        Ok(Self(bytes as u64))
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}B", self.0)
    }
}

/// Written in the largest binary unit that divides it (`256KiB`, `1GiB`, `1000B`), the form the
/// config files use.
impl Serialize for ByteSize {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        const UNITS: &[(&str, u64)] = &[
            ("TiB", 1 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ];
        let (unit, multiplier) = UNITS
            .iter()
            .copied()
            .find(|(_, m)| self.0 != 0 && self.0.is_multiple_of(*m))
            .unwrap_or(("B", 1));
        serializer.collect_str(&format_args!("{}{unit}", self.0 / multiplier))
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = ByteSize;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a size such as \"512KiB\", \"10MB\" or a number of bytes")
            }

            fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<ByteSize, E> {
                Ok(ByteSize(bytes))
            }

            fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<ByteSize, E> {
                u64::try_from(bytes)
                    .map(ByteSize)
                    .map_err(|_| E::custom("a size cannot be negative"))
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<ByteSize, E> {
                value.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize, Debug)]
    struct Holder {
        #[serde(with = "duration")]
        every: Duration,
    }

    fn duration_of(json: &str) -> Result<Duration, serde_json::Error> {
        serde_json::from_str::<Holder>(&format!(r#"{{"every": {json}}}"#)).map(|h| h.every)
    }

    #[test]
    fn durations_take_units_or_seconds() {
        assert_eq!(duration_of(r#""30s""#).unwrap(), Duration::from_secs(30));
        assert_eq!(
            duration_of(r#""500ms""#).unwrap(),
            Duration::from_millis(500)
        );
        assert_eq!(
            duration_of(r#""1h 30m""#).unwrap(),
            Duration::from_secs(5400)
        );
        assert_eq!(duration_of("2.5").unwrap(), Duration::from_millis(2500));
        assert_eq!(duration_of(r#""2.0""#).unwrap(), Duration::from_secs(2));
        assert_eq!(duration_of("7").unwrap(), Duration::from_secs(7));
    }

    #[test]
    fn bad_durations_are_rejected_with_the_input() {
        assert!(duration_of("-1").is_err());
        let error = duration_of(r#""soon""#).unwrap_err().to_string();
        assert!(error.contains("`soon`"), "{error}");
    }

    #[test]
    fn sizes_are_written_in_the_largest_exact_binary_unit_and_read_back() {
        for (bytes, written) in [
            (256 * 1024, "256KiB"),
            (1 << 30, "1GiB"),
            (1000, "1000B"),
            (0, "0B"),
            (1536, "1536B"),
        ] {
            let json = serde_json::to_string(&ByteSize(bytes)).unwrap();
            assert_eq!(json, format!("\"{written}\""));
            assert_eq!(
                serde_json::from_str::<ByteSize>(&json).unwrap(),
                ByteSize(bytes)
            );
        }
    }

    #[test]
    fn sizes_take_binary_and_decimal_units() {
        assert_eq!("512KiB".parse::<ByteSize>().unwrap(), ByteSize(512 * 1024));
        assert_eq!("10MB".parse::<ByteSize>().unwrap(), ByteSize(10_000_000));
        assert_eq!("1 GiB".parse::<ByteSize>().unwrap(), ByteSize(1 << 30));
        assert_eq!("1.5KiB".parse::<ByteSize>().unwrap(), ByteSize(1536));
        assert_eq!("4096".parse::<ByteSize>().unwrap(), ByteSize(4096));
        assert_eq!(
            serde_json::from_str::<ByteSize>("8192").unwrap(),
            ByteSize(8192)
        );
    }

    #[test]
    fn bad_sizes_are_rejected() {
        for bad in ["", "lots", "-1KiB", "0.5B", "1XB"] {
            assert!(bad.parse::<ByteSize>().is_err(), "{bad} was accepted");
        }
    }
}
