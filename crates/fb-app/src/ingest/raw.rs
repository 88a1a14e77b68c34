//! Readings as they arrive, before validation, and how JSON fields become them.
//!
//! `RawTime` and `RawValue` implement `Deserialize` by hand (a visitor over any scalar) so that
//! a JSON payload becomes items without an intermediate `serde_json::Value` per reading; any
//! serde format can use them.

use bytes::Bytes;
use serde::Deserialize;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};

use fb_core::plant::{from_unix_number, parse_timestamp_micros, to_micros};

use super::short;

/// A value as it arrived: JSON numbers, or text (CSV cells, quoted JSON) still to be parsed.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum RawValue {
    Number(f64),
    Text(String),
    #[default]
    Missing,
}

impl RawValue {
    /// A text cell: a number when it reads as one, else text for the value rule to refuse.
    pub fn from_text(text: &str) -> Self {
        let text = text.trim();
        match text.parse::<f64>() {
            Ok(v) => RawValue::Number(v),
            Err(_) if text.is_empty() => RawValue::Missing,
            Err(_) => RawValue::Text(text.to_owned()),
        }
    }
}

/// A timestamp as it arrived, read by the adapter (RFC 3339 text, or a Unix number).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum RawTime {
    /// None was given: the reading is stamped on arrival.
    #[default]
    Arrival,
    /// Unix microseconds.
    Micros(i64),
    /// Something that is no timestamp, kept for the rejection.
    Invalid(String),
}

impl RawTime {
    /// RFC 3339, or a Unix time in seconds or milliseconds written as text.
    pub fn parse(text: &str) -> Self {
        match parse_timestamp_micros(text) {
            Ok(micros) => RawTime::Micros(micros),
            Err(_) => RawTime::Invalid(short(text.trim())),
        }
    }

    /// A JSON number: Unix seconds, or milliseconds (see `from_unix_number`).
    pub fn from_number(n: f64) -> Self {
        match from_unix_number(n) {
            Some(t) => RawTime::Micros(to_micros(t)),
            None => RawTime::Invalid(short(&n.to_string())),
        }
    }
}

/// One reading as received, before validation.
#[derive(Debug, Clone, PartialEq)]
pub struct RawReading {
    pub machine: String,
    pub sensor: String,
    pub ts: RawTime,
    pub value: RawValue,
    pub unit: Option<String>,
}

/// An item's bytes as received, for the dead-letter store. Slices of the payload they came in,
/// so keeping them costs no copy; `prefix` (a CSV header line) is written before `body` when
/// the item is kept alone, so that it can be replayed alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawBytes {
    pub prefix: Bytes,
    pub body: Bytes,
}

impl RawBytes {
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.prefix.len() + self.body.len());
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice(&self.body);
        out
    }
}

impl<T: Into<Bytes>> From<T> for RawBytes {
    fn from(body: T) -> Self {
        Self {
            prefix: Bytes::new(),
            body: body.into(),
        }
    }
}

/// Any JSON scalar (or a container, described for the rejection message).
enum Scalar<'de> {
    Number(f64),
    Text(std::borrow::Cow<'de, str>),
    Null,
    Other(&'static str),
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a number or a string")
    }
    fn visit_f64<E>(self, v: f64) -> Result<Self::Value, E> {
        Ok(Scalar::Number(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Scalar::Number(v as f64))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Scalar::Number(v as f64))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(std::borrow::Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Scalar::Text(std::borrow::Cow::Owned(v.to_owned())))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Scalar::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Scalar::Other(if v { "true" } else { "false" }))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other("(an array)"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Other("(an object)"))
    }
}

/// A timestamp field: RFC 3339 text or a Unix number; `null` means "stamped on arrival".
impl<'de> Deserialize<'de> for RawTime {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match d.deserialize_any(ScalarVisitor)? {
            Scalar::Number(n) => RawTime::from_number(n),
            Scalar::Text(text) => RawTime::parse(&text),
            Scalar::Null => RawTime::Arrival,
            Scalar::Other(what) => RawTime::Invalid(what.to_owned()),
        })
    }
}

/// A value field: a number, or text that the value rule reads (or refuses).
impl<'de> Deserialize<'de> for RawValue {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match d.deserialize_any(ScalarVisitor)? {
            Scalar::Number(n) => RawValue::Number(n),
            Scalar::Text(text) => RawValue::Text(text.into_owned()),
            Scalar::Null => RawValue::Missing,
            Scalar::Other(what) => RawValue::Text(what.to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Fields {
        #[serde(default)]
        ts: RawTime,
        #[serde(default)]
        value: RawValue,
    }

    fn fields(json: &str) -> (RawTime, RawValue) {
        let f: Fields = serde_json::from_str(json).unwrap();
        (f.ts, f.value)
    }

    #[test]
    fn scalars_become_times_and_values() {
        assert_eq!(
            fields(r#"{"ts": 1800000000, "value": 2}"#),
            (
                RawTime::Micros(1_800_000_000_000_000),
                RawValue::Number(2.0)
            )
        );
        assert_eq!(
            fields(r#"{"ts": "1800000000000", "value": "2.5"}"#),
            (
                RawTime::Micros(1_800_000_000_000_000),
                RawValue::Text("2.5".into())
            )
        );
        assert_eq!(
            fields(r#"{"ts": null}"#),
            (RawTime::Arrival, RawValue::Missing)
        );
        assert_eq!(fields("{}"), (RawTime::Arrival, RawValue::Missing));
        assert_eq!(
            fields(r#"{"ts": [1], "value": {"a": 1}}"#),
            (
                RawTime::Invalid("(an array)".into()),
                RawValue::Text("(an object)".into())
            )
        );
        assert_eq!(
            fields(r#"{"ts": "soon"}"#).0,
            RawTime::Invalid("soon".into())
        );
        assert_eq!(RawValue::from_text(" 1e3 "), RawValue::Number(1000.0));
        assert_eq!(RawValue::from_text(""), RawValue::Missing);
        assert_eq!(RawValue::from_text("warm"), RawValue::Text("warm".into()));
    }
}
