//! Topic and payload parsing.

use std::borrow::Cow;
use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Deserialize;

use fb_app::ingest::{Item, RawBytes, RawReading, RawTime, RawValue};
use fb_core::plant::Rejection;

/// `{"ts", "value", "unit"}` on a sensor topic.
#[derive(Deserialize)]
struct SensorMessage<'a> {
    #[serde(default)]
    ts: RawTime,
    #[serde(default)]
    value: RawValue,
    #[serde(default, borrow)]
    unit: Option<Cow<'a, str>>,
}

/// Parses one message into items. Every item keeps the whole message as its raw bytes (a
/// refcounted slice, no copy): a dead letter then holds exactly what the device sent, and
/// replaying it re-stores the message's other readings as harmless duplicates.
///
/// `{prefix}/{site}/{machine}/{sensor}`: `{"ts", "value", "unit"}` or a bare number.
/// `{prefix}/{site}/{machine}`: `{"ts": …, "<sensor>": value, …}`.
pub fn parse_message(prefix: &str, topic: &str, payload: &Bytes) -> Vec<Item> {
    let raw = || RawBytes::from(payload.clone());
    let refused = |rejection| {
        vec![Item::Unparsed {
            rejection,
            raw: raw(),
        }]
    };
    let levels: Vec<&str> = topic
        .strip_prefix(prefix)
        .and_then(|t| t.strip_prefix('/'))
        .map(|t| t.split('/').collect())
        .unwrap_or_default();
    match levels.as_slice() {
        // Commands to machines (`crate::commands`) share the prefix: they are not readings.
        [_site, _machine, crate::commands::COMMAND_LEVEL] => Vec::new(),
        [_site, machine, sensor] => {
            let reading = |ts, value, unit| Item::Parsed {
                reading: RawReading {
                    machine: (*machine).into(),
                    sensor: (*sensor).into(),
                    ts,
                    value,
                    unit,
                },
                raw: raw(),
            };
            let text = String::from_utf8_lossy(payload);
            let trimmed = text.trim();
            if trimmed.starts_with('{') {
                match serde_json::from_str::<SensorMessage>(trimmed) {
                    Ok(m) => vec![reading(m.ts, m.value, m.unit.map(Cow::into_owned))],
                    Err(e) => refused(Rejection::MalformedJson(e.to_string())),
                }
            } else {
                // A bare value, stamped on arrival: a JSON number, or text such as "warm" or
                // "NaN" that the value rules refuse or accept.
                vec![reading(
                    RawTime::Arrival,
                    RawValue::from_text(trimmed),
                    None,
                )]
            }
        }
        [_site, machine] => {
            match serde_json::from_slice::<BTreeMap<Cow<str>, serde_json::Value>>(payload) {
                Ok(map) => {
                    let ts = match map.get("ts") {
                        Some(v) => RawTime::deserialize(v).unwrap_or(RawTime::Arrival),
                        None => RawTime::Arrival,
                    };
                    map.iter()
                        .filter(|(k, _)| k.as_ref() != "ts")
                        .map(|(sensor, v)| Item::Parsed {
                            reading: RawReading {
                                machine: (*machine).into(),
                                sensor: sensor.as_ref().into(),
                                ts: ts.clone(),
                                value: RawValue::deserialize(v).unwrap_or_default(),
                                unit: None,
                            },
                            raw: raw(),
                        })
                        .collect()
                }
                Err(e) if e.is_data() => refused(Rejection::MalformedJson(
                    "expected an object of sensor values".into(),
                )),
                Err(e) => refused(Rejection::MalformedJson(e.to_string())),
            }
        }
        _ => refused(Rejection::MalformedJson(format!(
            "topic '{topic}' is not {prefix}/site/machine[/sensor]"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readings(items: Vec<Item>) -> Vec<RawReading> {
        items
            .into_iter()
            .map(|item| match item {
                Item::Parsed { reading, .. } => reading,
                Item::Unparsed { rejection, .. } => panic!("refused: {rejection}"),
            })
            .collect()
    }

    fn parse(topic: &str, payload: &'static [u8]) -> Vec<Item> {
        parse_message("fb", topic, &Bytes::from_static(payload))
    }

    #[test]
    fn command_topics_are_not_readings() {
        assert!(parse("fb/site/m1/cmd", br#"{"id":"x","command":"standby"}"#).is_empty());
    }

    #[test]
    fn one_sensor_topics_take_objects_or_bare_numbers() {
        let r = readings(parse(
            "fb/site/m1/temp",
            br#"{"ts":"2027-01-01T00:00:00Z","value":21.5,"unit":"C"}"#,
        ));
        assert_eq!(r[0].machine, "m1");
        assert_eq!(r[0].sensor, "temp");
        assert_eq!(r[0].value, RawValue::Number(21.5));
        assert_eq!(r[0].ts, RawTime::Micros(1_798_761_600_000_000));
        assert_eq!(r[0].unit.as_deref(), Some("C"));
        let bare = readings(parse("fb/site/m1/temp", b"22.25"));
        assert_eq!(bare[0].value, RawValue::Number(22.25));
        assert_eq!(bare[0].ts, RawTime::Arrival, "stamped on arrival");
        let text = readings(parse("fb/site/m1/temp", b"warm"));
        assert_eq!(text[0].value, RawValue::Text("warm".into()));
        assert!(matches!(
            &parse("fb/site/m1/temp", b"{\"value\":")[0],
            Item::Unparsed { rejection: Rejection::MalformedJson(_), raw } if raw.to_vec() == b"{\"value\":"
        ));
    }

    #[test]
    fn machine_topics_carry_several_sensors() {
        let items = parse("fb/site/m1", br#"{"ts":1800000000,"temp":20,"vib":1.5}"#);
        let r = readings(items.clone());
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].sensor, "temp");
        assert_eq!(r[1].value, RawValue::Number(1.5));
        assert!(
            r.iter()
                .all(|x| x.ts == RawTime::Micros(1_800_000_000_000_000))
        );
        let Item::Parsed { raw, .. } = &items[1] else {
            panic!("parsed")
        };
        assert_eq!(raw.to_vec(), br#"{"ts":1800000000,"temp":20,"vib":1.5}"#);
        assert!(matches!(
            &parse("fb/site/m1", b"[1,2]")[0],
            Item::Unparsed { .. }
        ));
        assert!(matches!(
            &parse("other/site/m1", b"1")[0],
            Item::Unparsed { .. }
        ));
    }
}
