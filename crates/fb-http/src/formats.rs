//! Reading payload formats: JSON arrays of objects and CSV with a header row, optionally gzip
//! compressed. Each item keeps its own raw bytes, so a refused item is dead-lettered alone.

use std::borrow::Cow;
use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue as JsonRaw;

use fb_app::ingest::{Item, PayloadParser, RawBytes, RawReading, RawTime, RawValue};
use fb_core::plant::Rejection;

/// The body's media type, as far as ingest cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Json,
    Csv,
}

pub(crate) fn format_of(content_type: &str) -> Result<Format, Rejection> {
    match fb_app::ingest::media_type(content_type).as_str() {
        "application/json" => Ok(Format::Json),
        "text/csv" | "application/csv" => Ok(Format::Csv),
        _ => Err(Rejection::UnsupportedContentType(
            content_type.chars().take(100).collect(),
        )),
    }
}

/// Undoes `Content-Encoding: gzip`, refusing output larger than `limit` (zip bombs).
pub(crate) fn decode(
    body: Bytes,
    encoding: Option<&str>,
    limit: usize,
) -> Result<Bytes, Rejection> {
    match encoding.map(|e| e.trim().to_ascii_lowercase()) {
        None => Ok(body),
        Some(e) if e.is_empty() || e == "identity" => Ok(body),
        Some(e) if e == "gzip" || e == "x-gzip" => {
            let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(limit));
            let mut decoder = flate2::read::GzDecoder::new(&body[..]).take(limit as u64 + 1);
            decoder
                .read_to_end(&mut out)
                .map_err(|e| Rejection::InvalidEncoding(format!("gzip: {e}")))?;
            if out.len() > limit {
                return Err(Rejection::PayloadTooLarge { limit });
            }
            Ok(out.into())
        }
        Some(other) => Err(Rejection::InvalidEncoding(format!(
            "unsupported Content-Encoding '{other}'"
        ))),
    }
}

/// Parses one format for replays of dead letters (the media type picks the parser), with the
/// JSON depth limit of the door they came in by.
struct FormatParser {
    format: Format,
    max_json_depth: usize,
}

impl PayloadParser for FormatParser {
    fn parse(&self, _source: &str, payload: Bytes) -> Result<Vec<Item>, Rejection> {
        parse(self.format, &payload, self.max_json_depth)
    }
}

/// The payload formats of `POST /api/v1/readings`, by media type, for the ingest service's
/// replay of dead letters; JSON nested deeper than `max_json_depth` is refused as on the route.
pub fn payload_parsers(max_json_depth: usize) -> Vec<(&'static str, Arc<dyn PayloadParser>)> {
    let parser = |format| -> Arc<dyn PayloadParser> {
        Arc::new(FormatParser {
            format,
            max_json_depth,
        })
    };
    vec![
        ("application/json", parser(Format::Json)),
        ("text/csv", parser(Format::Csv)),
        ("application/csv", parser(Format::Csv)),
    ]
}

pub(crate) fn parse(
    format: Format,
    body: &Bytes,
    max_json_depth: usize,
) -> Result<Vec<Item>, Rejection> {
    match format {
        Format::Json => parse_json(body, max_json_depth),
        Format::Csv => parse_csv(body),
    }
}

/// One reading object, borrowing from the payload where it can (strings without escapes).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JsonReading<'a> {
    #[serde(borrow)]
    machine: Cow<'a, str>,
    #[serde(borrow)]
    sensor: Cow<'a, str>,
    #[serde(default)]
    ts: RawTime,
    #[serde(default)]
    value: RawValue,
    #[serde(default, borrow)]
    unit: Option<Cow<'a, str>>,
}

/// An array of `{machine, sensor, ts?, value, unit?}` (a single object is one item). A payload
/// nested deeper than `max_depth` is refused whole, before any reading is parsed.
pub(crate) fn parse_json(body: &Bytes, max_depth: usize) -> Result<Vec<Item>, Rejection> {
    let too_deep = || Rejection::JsonTooDeep { limit: max_depth };
    let malformed = |e: serde_json::Error| {
        // serde_json stops at 128 levels; deeper is this limit's refusal, not a syntax error.
        if crate::extract::nests_deeper_than(body, max_depth) {
            too_deep()
        } else {
            Rejection::MalformedJson(e.to_string())
        }
    };
    let trimmed = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .map_or(&body[..0], |i| &body[i..]);
    let (raws, outer_levels): (Vec<&JsonRaw>, usize) = if trimmed.first() == Some(&b'{') {
        (vec![serde_json::from_slice(body).map_err(malformed)?], 0)
    } else {
        (serde_json::from_slice(body).map_err(malformed)?, 1)
    };
    // The depth is checked reading by reading once the array is split (which serde_json bounds
    // at 128 levels): on a 5,000-reading payload, a string-aware scan of the whole body cost
    // 0.6 ms against 1.7 ms for parsing it, while per reading, where one vectorised search
    // settles a reading without nested values, the check costs 0.08 ms.
    let item_depth = max_depth.saturating_sub(outer_levels);
    if raws
        .iter()
        .any(|raw| crate::extract::nests_deeper_than(raw.get().as_bytes(), item_depth))
    {
        return Err(too_deep());
    }
    Ok(raws
        .into_iter()
        .map(|raw| json_item(raw.get(), body.slice_ref(raw.get().as_bytes()).into()))
        .collect())
}

fn json_item(text: &str, raw: RawBytes) -> Item {
    match serde_json::from_str::<JsonReading>(text) {
        Ok(r) => Item::Parsed {
            reading: RawReading {
                machine: r.machine.into_owned(),
                sensor: r.sensor.into_owned(),
                ts: r.ts,
                value: r.value,
                unit: r.unit.map(Cow::into_owned),
            },
            raw,
        },
        Err(e) => Item::Unparsed {
            rejection: Rejection::MalformedJson(e.to_string()),
            raw,
        },
    }
}

/// CSV with a header row naming `machine`, `sensor`, `value` and optionally `ts` and `unit`, in
/// any order. A row with the wrong number of cells is refused alone.
pub(crate) fn parse_csv(body: &Bytes) -> Result<Vec<Item>, Rejection> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(&body[..]);
    let headers = reader
        .byte_headers()
        .map_err(|e| Rejection::MalformedCsv(e.to_string()))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name.as_bytes()))
    };
    let (Some(machine), Some(sensor), Some(value)) =
        (column("machine"), column("sensor"), column("value"))
    else {
        return Err(Rejection::MalformedCsv(
            "the header row must name the columns machine, sensor and value (ts and unit are optional)".into(),
        ));
    };
    let (ts, unit) = (column("ts"), column("unit"));
    // A dead-lettered row is kept with the header line, so that it can be replayed alone.
    let header_end = reader.position().byte() as usize;
    let header_line = body.slice(..header_end.min(body.len()));
    let mut items = Vec::new();
    let mut record = csv::ByteRecord::new();
    loop {
        let start = reader.position().byte() as usize;
        let more = match reader.read_byte_record(&mut record) {
            Ok(more) => more,
            Err(e) => {
                // Reading bytes from memory fails only on broken quoting near the end; the rest
                // of the body cannot be split into rows, so it is kept as one refused item.
                items.push(Item::Unparsed {
                    rejection: Rejection::MalformedCsv(e.to_string()),
                    raw: RawBytes {
                        prefix: header_line.clone(),
                        body: body.slice(start.min(body.len())..),
                    },
                });
                break;
            }
        };
        if !more {
            break;
        }
        let end = (reader.position().byte() as usize).clamp(start, body.len());
        let raw = RawBytes {
            prefix: header_line.clone(),
            body: body.slice(start..end),
        };
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
        let cell = |i: usize| String::from_utf8_lossy(record.get(i).unwrap_or(b""));
        let optional = |i: Option<usize>| i.map(cell).filter(|c| !c.is_empty());
        items.push(Item::Parsed {
            reading: RawReading {
                machine: cell(machine).into_owned(),
                sensor: cell(sensor).into_owned(),
                ts: optional(ts).map_or(RawTime::Arrival, |t| RawTime::parse(&t)),
                value: RawValue::from_text(&cell(value)),
                unit: optional(unit).map(Cow::into_owned),
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

    /// The OpenAPI document describes payloads with `api::v1::ReadingsPayload`; the parser has
    /// its own borrowing copy. Both take the same fields and refuse others.
    #[test]
    fn the_documented_reading_shape_is_what_the_parser_reads() {
        use crate::api::v1::ReadingsPayload;
        let full =
            r#"{"machine":"m","sensor":"t","ts":"2027-01-01T00:00:00Z","value":"1.5","unit":"K"}"#;
        let minimal = r#"{"machine":"m","sensor":"t","value":1.5}"#;
        let unix = r#"{"machine":"m","sensor":"t","ts":1800000000,"value":1.5}"#;
        let extra = r#"{"machine":"m","sensor":"t","value":1.5,"colour":"red"}"#;
        for (text, readable) in [(full, true), (minimal, true), (unix, true), (extra, false)] {
            let documented = serde_json::from_str::<ReadingsPayload>(text).is_ok();
            let items = parse_json(&Bytes::from(text.to_owned()), 32).unwrap();
            let parsed = matches!(items[0], Item::Parsed { .. });
            assert_eq!((documented, parsed), (readable, readable), "{text}");
            let batch = format!("[{text},{text}]");
            assert_eq!(
                serde_json::from_str::<ReadingsPayload>(&batch).is_ok(),
                readable
            );
        }
    }

    #[test]
    fn json_items_keep_their_own_bytes() {
        let items = parse_json(&Bytes::from_static(br#"[{"machine":"m","sensor":"t","ts":"2027-01-01T00:00:00Z","value":1.5},
                                   {"machine":"m","sensor":"t","value":"oops","extra":1},
                                   {"machine":"m","sensor":"t","ts":1800000000,"value":"2.5","unit":"K"},
                                   {"machine":"m\u0031","sensor":"t","ts":true,"value":null}]"#), 32)
        .unwrap();
        assert_eq!(items.len(), 4);
        assert_eq!(reading(&items[0]).value, RawValue::Number(1.5));
        assert_eq!(
            reading(&items[0]).ts,
            RawTime::Micros(1_798_761_600_000_000)
        );
        match &items[1] {
            Item::Unparsed { rejection, raw } => {
                assert!(matches!(rejection, Rejection::MalformedJson(_)));
                assert_eq!(
                    raw.to_vec(),
                    br#"{"machine":"m","sensor":"t","value":"oops","extra":1}"#
                );
            }
            other => panic!("{other:?}"),
        }
        let third = reading(&items[2]);
        assert_eq!(third.ts, RawTime::Micros(1_800_000_000_000_000));
        assert_eq!(third.value, RawValue::Text("2.5".into()));
        assert_eq!(third.unit.as_deref(), Some("K"));
        let fourth = reading(&items[3]);
        assert_eq!(fourth.machine, "m1", "escapes are decoded");
        assert_eq!(fourth.ts, RawTime::Invalid("true".into()));
        assert_eq!(fourth.value, RawValue::Missing);
        assert_eq!(
            parse_json(
                &Bytes::from_static(br#"{"machine":"m","sensor":"t","value":1}"#),
                32
            )
            .unwrap()
            .len(),
            1
        );
        assert!(matches!(
            parse_json(&Bytes::from_static(b"[{\"machine\":"), 32),
            Err(Rejection::MalformedJson(_))
        ));
    }

    #[test]
    fn json_payloads_nested_too_deep_are_refused_whole() {
        let payload = |value: &str| {
            Bytes::from(format!(
                r#"[{{"machine":"m","sensor":"t","value":1}},{{"machine":"m","sensor":"t","value":{value}}}]"#
            ))
        };
        // The array, the reading and three levels inside its value.
        let deep = payload("[[[1]]]");
        assert_eq!(
            parse_json(&deep, 4),
            Err(Rejection::JsonTooDeep { limit: 4 })
        );
        assert_eq!(
            Rejection::JsonTooDeep { limit: 4 }.code(),
            fb_core::Code::json_too_deep
        );
        // Within the limit it parses, and the odd value is refused by itself as before.
        let items = parse_json(&deep, 5).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(reading(&items[0]).value, RawValue::Number(1.0));
        // Deeper than serde_json itself goes is this refusal too, not a syntax error.
        let abyss = Bytes::from(format!("[{}1{}]", "[".repeat(500), "]".repeat(500)));
        assert_eq!(
            parse_json(&abyss, 32),
            Err(Rejection::JsonTooDeep { limit: 32 })
        );
        // The replay parsers apply the same limit.
        let (_, json) = payload_parsers(4)
            .into_iter()
            .find(|(media, _)| *media == "application/json")
            .unwrap();
        assert_eq!(
            json.parse("http", deep).unwrap_err(),
            Rejection::JsonTooDeep { limit: 4 }
        );
    }

    #[test]
    fn csv_columns_in_any_order_and_bad_rows_alone() {
        let items = parse_csv(&Bytes::from_static(
            b"ts,value,sensor,machine\n2027-01-01T00:00:00Z,1.5,t,m\n,2,t\n,warm,t,m\n",
        ))
        .unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(reading(&items[0]).machine, "m");
        assert_eq!(reading(&items[0]).value, RawValue::Number(1.5));
        match &items[1] {
            Item::Unparsed {
                rejection: Rejection::MalformedCsv(_),
                raw,
            } => assert_eq!(raw.to_vec(), b"ts,value,sensor,machine\n,2,t\n"),
            other => panic!("{other:?}"),
        }
        assert_eq!(reading(&items[2]).ts, RawTime::Arrival);
        assert_eq!(reading(&items[2]).value, RawValue::Text("warm".into()));
        assert!(matches!(
            parse_csv(&Bytes::from_static(b"a,b\n1,2\n")),
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
            decode(gz.clone().into(), Some("gzip"), 20_000)
                .unwrap()
                .len(),
            10_000
        );
        assert!(matches!(
            decode(gz.into(), Some("gzip"), 5_000),
            Err(Rejection::PayloadTooLarge { .. })
        ));
        assert!(matches!(
            decode(Bytes::from_static(b"not gzip"), Some("gzip"), 100),
            Err(Rejection::InvalidEncoding(_))
        ));
        assert!(matches!(
            decode(Bytes::new(), Some("br"), 100),
            Err(Rejection::InvalidEncoding(_))
        ));
        assert_eq!(
            format_of("application/json; charset=utf-8"),
            Ok(Format::Json)
        );
        assert!(format_of("text/plain").is_err());
    }
}
