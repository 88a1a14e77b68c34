//! Topic and payload parsing.

use fb_app::ingest::{Item, RawReading, RawValue};
use fb_core::plant::Rejection;

/// What one MQTT message holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Parsed {
    Readings(Vec<(RawReading, Vec<u8>)>),
    Refused(Rejection, Vec<u8>),
}

impl Parsed {
    pub fn into_items(self) -> Vec<Item> {
        match self {
            Parsed::Readings(readings) => readings
                .into_iter()
                .map(|(reading, raw)| Item::Parsed { reading, raw })
                .collect(),
            Parsed::Refused(rejection, raw) => vec![Item::Unparsed { rejection, raw }],
        }
    }
}

fn value_of(v: &serde_json::Value) -> RawValue {
    match v {
        serde_json::Value::Number(n) => n.as_f64().map_or(RawValue::Missing, RawValue::Number),
        serde_json::Value::String(s) => RawValue::Text(s.clone()),
        serde_json::Value::Null => RawValue::Missing,
        other => RawValue::Text(other.to_string()),
    }
}

fn ts_of(v: Option<&serde_json::Value>) -> Option<String> {
    match v {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// `{prefix}/{site}/{machine}/{sensor}`: `{"ts", "value", "unit"}` or a bare number.
/// `{prefix}/{site}/{machine}`: `{"ts": …, "<sensor>": value, …}`.
pub fn parse_message(prefix: &str, topic: &str, payload: &[u8]) -> Parsed {
    let raw = payload.to_vec();
    let levels: Vec<&str> = topic
        .strip_prefix(prefix)
        .and_then(|t| t.strip_prefix('/'))
        .map(|t| t.split('/').collect())
        .unwrap_or_default();
    let text = String::from_utf8_lossy(payload);
    match levels.as_slice() {
        [_site, machine, sensor] => {
            let reading = |ts, value, unit| RawReading {
                machine: (*machine).into(),
                sensor: (*sensor).into(),
                ts,
                value,
                unit,
            };
            match serde_json::from_slice::<serde_json::Value>(payload) {
                Ok(serde_json::Value::Object(map)) => {
                    let unit = map.get("unit").and_then(|u| u.as_str()).map(str::to_owned);
                    let value = map.get("value").map_or(RawValue::Missing, value_of);
                    Parsed::Readings(vec![(reading(ts_of(map.get("ts")), value, unit), raw)])
                }
                Ok(serde_json::Value::Number(n)) => Parsed::Readings(vec![(
                    reading(
                        None,
                        n.as_f64().map_or(RawValue::Missing, RawValue::Number),
                        None,
                    ),
                    raw,
                )]),
                // A bare value that is not JSON ("warm", "NaN"): let the value rules refuse or accept it.
                _ => Parsed::Readings(vec![(
                    reading(None, RawValue::Text(text.trim().to_owned()), None),
                    raw,
                )]),
            }
        }
        [_site, machine] => match serde_json::from_slice::<serde_json::Value>(payload) {
            Ok(serde_json::Value::Object(map)) => {
                let ts = ts_of(map.get("ts"));
                let readings = map
                    .iter()
                    .filter(|(k, _)| k.as_str() != "ts")
                    .map(|(sensor, v)| {
                        let one = serde_json::json!({"ts": map.get("ts"), sensor.as_str(): v})
                            .to_string()
                            .into_bytes();
                        (
                            RawReading {
                                machine: (*machine).into(),
                                sensor: sensor.clone(),
                                ts: ts.clone(),
                                value: value_of(v),
                                unit: None,
                            },
                            one,
                        )
                    })
                    .collect();
                Parsed::Readings(readings)
            }
            Ok(_) => Parsed::Refused(
                Rejection::MalformedJson("expected an object of sensor values".into()),
                raw,
            ),
            Err(e) => Parsed::Refused(Rejection::MalformedJson(e.to_string()), raw),
        },
        _ => Parsed::Refused(
            Rejection::MalformedJson(format!(
                "topic '{topic}' is not {prefix}/site/machine[/sensor]"
            )),
            raw,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn readings(p: Parsed) -> Vec<RawReading> {
        match p {
            Parsed::Readings(r) => r.into_iter().map(|(r, _)| r).collect(),
            Parsed::Refused(r, _) => panic!("refused: {r}"),
        }
    }

    #[test]
    fn one_sensor_topics_take_objects_or_bare_numbers() {
        let r = readings(parse_message(
            "fb",
            "fb/site/m1/temp",
            br#"{"ts":"2027-01-01T00:00:00Z","value":21.5,"unit":"C"}"#,
        ));
        assert_eq!(r[0].machine, "m1");
        assert_eq!(r[0].sensor, "temp");
        assert_eq!(r[0].value, RawValue::Number(21.5));
        assert_eq!(r[0].unit.as_deref(), Some("C"));
        let bare = readings(parse_message("fb", "fb/site/m1/temp", b"22.25"));
        assert_eq!(bare[0].value, RawValue::Number(22.25));
        assert_eq!(bare[0].ts, None, "stamped on arrival");
        let text = readings(parse_message("fb", "fb/site/m1/temp", b"warm"));
        assert_eq!(text[0].value, RawValue::Text("warm".into()));
    }

    #[test]
    fn machine_topics_carry_several_sensors() {
        let mut r = readings(parse_message(
            "fb",
            "fb/site/m1",
            br#"{"ts":1800000000,"temp":20,"vib":1.5}"#,
        ));
        r.sort_by(|a, b| a.sensor.cmp(&b.sensor));
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].sensor, "temp");
        assert_eq!(r[1].value, RawValue::Number(1.5));
        assert!(r.iter().all(|x| x.ts.as_deref() == Some("1800000000")));
        assert!(matches!(
            parse_message("fb", "fb/site/m1", b"[1,2]"),
            Parsed::Refused(..)
        ));
        assert!(matches!(
            parse_message("fb", "other/site/m1", b"1"),
            Parsed::Refused(..)
        ));
    }
}
