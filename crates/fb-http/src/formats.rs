//! Reading payload formats: JSON arrays of objects and CSV with a header row, optionally gzip
//! compressed. Each item keeps its own raw bytes, so a refused item is dead-lettered alone.

use std::io::Read;

use serde::Deserialize;
use serde_json::value::RawValue as JsonRaw;

use fb_app::ingest::{Item, RawReading, RawValue};
use fb_core::plant::Rejection;

/// The body's media type, as far as ingest cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Csv,
}

pub(crate) fn format_of(content_type: &str) -> Result<Format, Rejection> {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/json" => Ok(Format::Json),
        "text/csv" | "application/csv" => Ok(Format::Csv),
        _ => Err(Rejection::UnsupportedContentType(
            content_type.chars().take(100).collect(),
        )),
    }
}

/// Undoes `Content-Encoding: gzip`, refusing output larger than `limit` (zip bombs).
pub(crate) fn decode(
    body: Vec<u8>,
    encoding: Option<&str>,
    limit: usize,
) -> Result<Vec<u8>, Rejection> {
    match encoding.map(|e| e.trim().to_ascii_lowercase()) {
        None => Ok(body),
        Some(e) if e.is_empty() || e == "identity" => Ok(body),
        Some(e) if e == "gzip" || e == "x-gzip" => {
            let mut out = Vec::with_capacity(body.len() * 4);
            let mut decoder = flate2::read::GzDecoder::new(body.as_slice()).take(limit as u64 + 1);
            decoder
                .read_to_end(&mut out)
                .map_err(|e| Rejection::InvalidEncoding(format!("gzip: {e}")))?;
            if out.len() > limit {
                return Err(Rejection::PayloadTooLarge { limit });
            }
            Ok(out)
        }
        Some(other) => Err(Rejection::InvalidEncoding(format!(
            "unsupported Content-Encoding '{other}'"
        ))),
    }
}

pub(crate) fn parse(format: Format, body: &[u8]) -> Result<Vec<Item>, Rejection> {
    match format {
        Format::Json => parse_json(body),
        Format::Csv => parse_csv(body),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonReading {
    machine: String,
    sensor: String,
    #[serde(default)]
    ts: Option<serde_json::Value>,
    #[serde(default)]
    value: Option<serde_json::Value>,
    #[serde(default)]
    unit: Option<String>,
}

/// An array of `{machine, sensor, ts?, value, unit?}` (a single object is one item).
pub(crate) fn parse_json(body: &[u8]) -> Result<Vec<Item>, Rejection> {
    let malformed = |e: serde_json::Error| Rejection::MalformedJson(e.to_string());
    let trimmed = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&body[..0], |i| &body[i..]);
    let raws: Vec<&JsonRaw> = if trimmed.first() == Some(&b'{') {
        vec![serde_json::from_slice(body).map_err(malformed)?]
    } else {
        serde_json::from_slice(body).map_err(malformed)?
    };
    Ok(raws.into_iter().map(|raw| json_item(raw.get())).collect())
}

fn json_item(text: &str) -> Item {
    let raw = text.as_bytes().to_vec();
    match serde_json::from_str::<JsonReading>(text) {
        Ok(r) => {
            let ts = match r.ts {
                None | Some(serde_json::Value::Null) => None,
                Some(serde_json::Value::String(s)) => Some(s),
                Some(serde_json::Value::Number(n)) => Some(n.to_string()),
                Some(other) => {
                    return Item::Unparsed {
                        rejection: Rejection::InvalidTimestamp(other.to_string()),
                        raw,
                    };
                }
            };
            let value = match r.value {
                Some(serde_json::Value::Number(n)) => {
                    n.as_f64().map_or(RawValue::Missing, RawValue::Number)
                }
                Some(serde_json::Value::String(s)) => RawValue::Text(s),
                Some(serde_json::Value::Null) | None => RawValue::Missing,
                Some(other) => RawValue::Text(other.to_string()),
            };
            Item::Parsed {
                reading: RawReading {
                    machine: r.machine,
                    sensor: r.sensor,
                    ts,
                    value,
                    unit: r.unit,
                },
                raw,
            }
        }
        Err(e) => Item::Unparsed {
            rejection: Rejection::MalformedJson(e.to_string()),
            raw,
        },
    }
}

/// CSV with a header row naming `machine`, `sensor`, `value` and optionally `ts` and `unit`, in
/// any order. A row with the wrong number of cells is refused alone.
pub(crate) fn parse_csv(body: &[u8]) -> Result<Vec<Item>, Rejection> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(body);
    let headers = reader
        .headers()
        .map_err(|e| Rejection::MalformedCsv(e.to_string()))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(machine), Some(sensor), Some(value)) =
        (column("machine"), column("sensor"), column("value"))
    else {
        return Err(Rejection::MalformedCsv(
            "the header row must name the columns machine, sensor and value (ts and unit are optional)".into(),
        ));
    };
    let (ts, unit) = (column("ts"), column("unit"));
    let header_line = headers.iter().collect::<Vec<_>>().join(",");
    let mut items = Vec::new();
    for record in reader.records() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                items.push(Item::Unparsed {
                    rejection: Rejection::MalformedCsv(e.to_string()),
                    raw: Vec::new(),
                });
                continue;
            }
        };
        // With its header, so that a dead-lettered row can be replayed on its own.
        let raw = format!(
            "{header_line}\n{}",
            record.iter().collect::<Vec<_>>().join(",")
        )
        .into_bytes();
        if record.len() != headers.len() {
            let reason = format!(
                "row has {} cells, the header {}",
                record.len(),
                headers.len()
            );
            items.push(Item::Unparsed {
                rejection: Rejection::MalformedCsv(reason),
                raw,
            });
            continue;
        }
        let cell = |i: usize| record.get(i).unwrap_or("").to_owned();
        let optional = |i: Option<usize>| i.map(cell).filter(|c| !c.is_empty());
        let value = match cell(value) {
            v if v.is_empty() => RawValue::Missing,
            v => RawValue::Text(v),
        };
        items.push(Item::Parsed {
            reading: RawReading {
                machine: cell(machine),
                sensor: cell(sensor),
                ts: optional(ts),
                value,
                unit: optional(unit),
            },
            raw,
        });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(item: &Item) -> &RawReading {
        match item {
            Item::Parsed { reading, .. } => reading,
            Item::Unparsed { rejection, .. } => panic!("unexpected rejection {rejection}"),
        }
    }

    #[test]
    fn json_items_keep_their_own_bytes() {
        let items = parse_json(br#"[{"machine":"m","sensor":"t","ts":"2027-01-01T00:00:00Z","value":1.5},
                                   {"machine":"m","sensor":"t","value":"oops","extra":1},
                                   {"machine":"m","sensor":"t","ts":1800000000,"value":"2.5","unit":"K"}]"#)
        .unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(reading(&items[0]).value, RawValue::Number(1.5));
        match &items[1] {
            Item::Unparsed { rejection, raw } => {
                assert!(matches!(rejection, Rejection::MalformedJson(_)));
                assert_eq!(
                    raw.as_slice(),
                    br#"{"machine":"m","sensor":"t","value":"oops","extra":1}"#
                );
            }
            other => panic!("{other:?}"),
        }
        let third = reading(&items[2]);
        assert_eq!(third.ts.as_deref(), Some("1800000000"));
        assert_eq!(third.value, RawValue::Text("2.5".into()));
        assert_eq!(
            parse_json(br#"{"machine":"m","sensor":"t","value":1}"#)
                .unwrap()
                .len(),
            1
        );
        assert!(matches!(
            parse_json(b"[{\"machine\":"),
            Err(Rejection::MalformedJson(_))
        ));
    }

    #[test]
    fn csv_columns_in_any_order_and_bad_rows_alone() {
        let items =
            parse_csv(b"ts,value,sensor,machine\n2027-01-01T00:00:00Z,1.5,t,m\n,2,t\n,NaN,t,m\n")
                .unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(reading(&items[0]).machine, "m");
        assert!(matches!(
            &items[1],
            Item::Unparsed {
                rejection: Rejection::MalformedCsv(_),
                ..
            }
        ));
        assert_eq!(reading(&items[2]).ts, None);
        assert_eq!(reading(&items[2]).value, RawValue::Text("NaN".into()));
        assert!(matches!(
            parse_csv(b"a,b\n1,2\n"),
            Err(Rejection::MalformedCsv(_))
        ));
    }

    #[test]
    fn gzip_is_decoded_within_limits() {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&[b'x'; 10_000]).unwrap();
        let gz = encoder.finish().unwrap();
        assert_eq!(
            decode(gz.clone(), Some("gzip"), 20_000).unwrap().len(),
            10_000
        );
        assert!(matches!(
            decode(gz, Some("gzip"), 5_000),
            Err(Rejection::PayloadTooLarge { .. })
        ));
        assert!(matches!(
            decode(b"not gzip".to_vec(), Some("gzip"), 100),
            Err(Rejection::InvalidEncoding(_))
        ));
        assert!(matches!(
            decode(vec![], Some("br"), 100),
            Err(Rejection::InvalidEncoding(_))
        ));
        assert_eq!(
            format_of("application/json; charset=utf-8"),
            Ok(Format::Json)
        );
        assert!(format_of("text/plain").is_err());
    }
}
