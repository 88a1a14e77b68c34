use time::{Duration, OffsetDateTime};

use crate::error::Code;

use super::{MachineId, SensorKey, SensorSpec};

/// One sensor value at one instant. Identity is (machine, sensor, ts): storing the same triple
/// twice keeps the first value, so redelivered readings are harmless.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub machine: MachineId,
    pub sensor: SensorKey,
    /// UTC, microsecond precision.
    pub ts: OffsetDateTime,
    pub value: f64,
}

/// How far from "now" a reading's timestamp may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IngestLimits {
    /// Clock skew tolerated for devices whose clocks run ahead.
    pub max_future: Duration,
    /// Older readings are refused (they would land beyond raw retention).
    pub max_age: Duration,
}

impl Default for IngestLimits {
    fn default() -> Self {
        Self {
            max_future: Duration::minutes(5),
            max_age: Duration::days(30),
        }
    }
}

/// Why a reading (or a whole payload) was refused. Each maps to a stable error code, which is
/// also what the dead-letter store records.
#[derive(Debug, Clone, PartialEq)]
pub enum Rejection {
    UnknownMachine(String),
    UnknownSensor {
        machine: String,
        sensor: String,
    },
    InactiveMachine(String),
    InvalidId {
        field: &'static str,
        value: String,
    },
    NonNumericValue(String),
    NonFiniteValue,
    OutOfRange {
        value: f64,
        min: f64,
        max: f64,
    },
    InvalidTimestamp(String),
    TimestampInFuture {
        ts: OffsetDateTime,
        max_future: Duration,
    },
    TimestampTooOld {
        ts: OffsetDateTime,
        max_age: Duration,
    },
    UnitMismatch {
        expected: String,
        got: String,
    },
    MalformedJson(String),
    /// Arrays and objects nested deeper than the limit; refused before parsing.
    JsonTooDeep {
        limit: usize,
    },
    MalformedCsv(String),
    PayloadTooLarge {
        limit: usize,
    },
    InvalidEncoding(String),
    UnsupportedContentType(String),
}

impl Rejection {
    pub fn code(&self) -> Code {
        match self {
            Rejection::UnknownMachine(_) => Code::unknown_machine,
            Rejection::UnknownSensor { .. } => Code::unknown_sensor,
            Rejection::InactiveMachine(_) => Code::machine_inactive,
            Rejection::InvalidId { .. } => Code::invalid_field,
            Rejection::NonNumericValue(_) => Code::non_numeric_value,
            Rejection::NonFiniteValue => Code::non_finite_value,
            Rejection::OutOfRange { .. } => Code::value_out_of_range,
            Rejection::InvalidTimestamp(_) => Code::invalid_timestamp,
            Rejection::TimestampInFuture { .. } => Code::timestamp_in_future,
            Rejection::TimestampTooOld { .. } => Code::timestamp_too_old,
            Rejection::UnitMismatch { .. } => Code::unit_mismatch,
            Rejection::MalformedJson(_) => Code::invalid_json,
            Rejection::JsonTooDeep { .. } => Code::json_too_deep,
            Rejection::MalformedCsv(_) => Code::invalid_csv,
            Rejection::PayloadTooLarge { .. } => Code::payload_too_large,
            Rejection::InvalidEncoding(_) => Code::invalid_encoding,
            Rejection::UnsupportedContentType(_) => Code::unsupported_media_type,
        }
    }
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::UnknownMachine(m) => write!(f, "unknown machine '{m}'"),
            Rejection::UnknownSensor { machine, sensor } => {
                write!(f, "machine '{machine}' has no sensor '{sensor}'")
            }
            Rejection::InactiveMachine(m) => write!(f, "machine '{m}' is not active"),
            Rejection::InvalidId { field, value } => {
                write!(
                    f,
                    "{field} '{value}' is not a valid id (letters, digits, '.', '_', '-'; at most 64)"
                )
            }
            Rejection::NonNumericValue(v) => write!(f, "value '{v}' is not a number"),
            Rejection::NonFiniteValue => write!(f, "value is NaN or infinite"),
            Rejection::OutOfRange { value, min, max } => {
                write!(
                    f,
                    "value {value} is outside the sensor's physical range [{min}, {max}]"
                )
            }
            Rejection::InvalidTimestamp(t) => {
                write!(
                    f,
                    "timestamp '{t}' is not RFC 3339 or a Unix time in seconds or milliseconds"
                )
            }
            Rejection::TimestampInFuture { ts, max_future } => {
                write!(
                    f,
                    "timestamp {ts} is more than {} s in the future",
                    max_future.whole_seconds()
                )
            }
            Rejection::TimestampTooOld { ts, max_age } => {
                write!(
                    f,
                    "timestamp {ts} is more than {} days old",
                    max_age.whole_days()
                )
            }
            Rejection::UnitMismatch { expected, got } => {
                write!(
                    f,
                    "unit '{got}' does not match the sensor's unit '{expected}'"
                )
            }
            Rejection::MalformedJson(e) => write!(f, "malformed JSON: {e}"),
            Rejection::JsonTooDeep { limit } => {
                write!(f, "JSON nested deeper than {limit} levels")
            }
            Rejection::MalformedCsv(e) => write!(f, "malformed CSV: {e}"),
            Rejection::PayloadTooLarge { limit } => {
                write!(f, "payload larger than {limit} (bytes, or items per batch)")
            }
            Rejection::InvalidEncoding(e) => write!(f, "cannot decode the body: {e}"),
            Rejection::UnsupportedContentType(t) => {
                write!(
                    f,
                    "content type '{t}' is not accepted; send application/json or text/csv"
                )
            }
        }
    }
}

/// The timestamps a batch accepts, in Unix microseconds, worked out once per batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeWindow {
    earliest: i64,
    latest: i64,
    limits: IngestLimits,
}

impl IngestLimits {
    pub fn window(self, now: OffsetDateTime) -> TimeWindow {
        TimeWindow {
            earliest: super::to_micros(now - self.max_age),
            latest: super::to_micros(now + self.max_future),
            limits: self,
        }
    }
}

/// The per-reading rules once machine and sensor are known: finite, within the physical range,
/// unit consistent, timestamp (Unix microseconds) within the batch's window.
pub fn check_reading(
    sensor: &SensorSpec,
    value: f64,
    unit: Option<&str>,
    ts: i64,
    window: &TimeWindow,
) -> Result<(), Rejection> {
    if !value.is_finite() {
        return Err(Rejection::NonFiniteValue);
    }
    if value < sensor.physical_min || value > sensor.physical_max {
        return Err(Rejection::OutOfRange {
            value,
            min: sensor.physical_min,
            max: sensor.physical_max,
        });
    }
    if let Some(unit) = unit
        && unit != sensor.unit
    {
        return Err(Rejection::UnitMismatch {
            expected: sensor.unit.clone(),
            got: unit.to_owned(),
        });
    }
    if ts > window.latest {
        return Err(Rejection::TimestampInFuture {
            ts: super::from_micros(ts),
            max_future: window.limits.max_future,
        });
    }
    if ts < window.earliest {
        return Err(Rejection::TimestampTooOld {
            ts: super::from_micros(ts),
            max_age: window.limits.max_age,
        });
    }
    Ok(())
}

/// Parses a reading timestamp: RFC 3339, or a Unix time in seconds (≤ 1e11) or milliseconds.
/// Truncated to microseconds, the precision every store keeps.
pub fn parse_timestamp(raw: &str) -> Result<OffsetDateTime, Rejection> {
    let raw = raw.trim();
    let parsed = if let Ok(n) = raw.parse::<f64>() {
        from_unix_number(n)
    } else {
        OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339).ok()
    };
    parsed
        .map(|t| crate::clock::truncate_to_micros(t.to_offset(time::UtcOffset::UTC)))
        .ok_or_else(|| Rejection::InvalidTimestamp(raw.chars().take(64).collect()))
}

/// [`parse_timestamp`] as Unix microseconds. The form devices send almost always,
/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`, is read by a direct path (ingest reads hundreds
/// of thousands a second); anything else goes through the general parser, with the same result.
pub fn parse_timestamp_micros(raw: &str) -> Result<i64, Rejection> {
    match rfc3339_micros(raw.trim().as_bytes()) {
        Some(micros) => Ok(micros),
        None => parse_timestamp(raw).map(super::to_micros),
    }
}

/// The common RFC 3339 shape, or `None` to let the general parser decide (also for anything
/// out of range, such as leap seconds or day 31 of a short month, which it judges).
fn rfc3339_micros(b: &[u8]) -> Option<i64> {
    let digits = |range: std::ops::Range<usize>| -> Option<i64> {
        let part = b.get(range)?;
        part.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't' | b' ')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (hour, minute, second) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month)
        || day < 1
        || day > month_days[(month - 1) as usize]
        || hour > 23
        || minute > 59
        || second > 59
    {
        return None;
    }
    let mut at = 19;
    let mut micros = 0i64;
    if b.get(at) == Some(&b'.') {
        at += 1;
        let start = at;
        while b.get(at).is_some_and(u8::is_ascii_digit) {
            // Digits past the sixth are dropped (truncation to microseconds).
            if at - start < 6 {
                micros = micros * 10 + i64::from(b[at] - b'0');
            }
            at += 1;
        }
        let count = at - start;
        if count == 0 {
            return None;
        }
        for _ in count..6 {
            micros *= 10;
        }
    }
    let offset_secs = match b.get(at..)? {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let two = |a: u8, c: u8| -> Option<i64> {
                (a.is_ascii_digit() && c.is_ascii_digit())
                    .then(|| i64::from(a - b'0') * 10 + i64::from(c - b'0'))
            };
            let (h, m) = (two(*h1, *h2)?, two(*m1, *m2)?);
            if h > 23 || m > 59 {
                return None;
            }
            let secs = h * 3600 + m * 60;
            if *sign == b'-' { -secs } else { secs }
        }
        _ => return None,
    };
    let days = crate::clock::days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Some(secs * 1_000_000 + micros)
}

/// Unix seconds when below 1e11 (until the year 5138), otherwise milliseconds.
pub fn from_unix_number(n: f64) -> Option<OffsetDateTime> {
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let micros = if n < 1e11 { n * 1e6 } else { n * 1e3 };
    // The cast saturates for numbers beyond i128 (1e308 is a valid JSON number), and then the
    // product would overflow: such a number is no time, like any other out of range.
    let nanos = (micros.round() as i128).checked_mul(1000)?;
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

#[cfg(test)]
mod tests {
    use super::super::SensorKind;
    use super::*;

    fn sensor() -> SensorSpec {
        SensorSpec {
            key: SensorKey("temperature".into()),
            kind: SensorKind::Temperature,
            unit: "°C".into(),
            physical_min: -40.0,
            physical_max: 200.0,
            warning_low: None,
            warning_high: None,
            critical_low: None,
            critical_high: None,
        }
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    /// Found by schemathesis: a reading stamped `1.7976931348623157e+308` overflowed (a panic
    /// in debug builds, a 500 for the whole batch).
    #[test]
    fn unix_numbers_beyond_any_time_are_no_time() {
        for n in [f64::MAX, 1e300, 1e30, f64::INFINITY, f64::NAN, -1.0] {
            assert_eq!(from_unix_number(n), None, "{n}");
        }
        assert_eq!(
            from_unix_number(1_800_000_000.0),
            Some(now()),
            "seconds still read"
        );
        assert_eq!(
            from_unix_number(1_800_000_000_000.0),
            Some(now()),
            "milliseconds"
        );
    }

    fn check(value: f64, unit: Option<&str>, ts: OffsetDateTime) -> Result<(), Code> {
        let window = IngestLimits::default().window(now());
        check_reading(&sensor(), value, unit, crate::plant::to_micros(ts), &window)
            .map_err(|r| r.code())
    }

    #[test]
    fn accepts_plausible_readings() {
        assert_eq!(check(21.5, Some("°C"), now()), Ok(()));
        assert_eq!(check(200.0, None, now() + Duration::minutes(4)), Ok(()));
        assert_eq!(check(-40.0, None, now() - Duration::days(29)), Ok(()));
    }

    #[test]
    fn rejects_each_kind_of_bad_value_with_its_code() {
        assert_eq!(check(f64::NAN, None, now()), Err(Code::non_finite_value));
        assert_eq!(
            check(f64::INFINITY, None, now()),
            Err(Code::non_finite_value)
        );
        assert_eq!(check(200.1, None, now()), Err(Code::value_out_of_range));
        assert_eq!(check(20.0, Some("K"), now()), Err(Code::unit_mismatch));
        assert_eq!(
            check(20.0, None, now() + Duration::minutes(6)),
            Err(Code::timestamp_in_future)
        );
        assert_eq!(
            check(20.0, None, now() - Duration::days(31)),
            Err(Code::timestamp_too_old)
        );
    }

    #[test]
    fn the_direct_path_agrees_with_the_general_parser() {
        let general = |s: &str| parse_timestamp(s).map(crate::plant::to_micros);
        let mut samples = vec![
            "1970-01-01T00:00:00Z".to_owned(),
            "2024-02-29T23:59:59.999999999Z".to_owned(),
            "2027-01-15T10:00:00+02:00".to_owned(),
            "2027-01-15T10:00:00.5-05:30".to_owned(),
            "2000-03-01t00:00:00z".to_owned(),
            "1999-12-31 23:59:59.1Z".to_owned(),
        ];
        // Every month end of four centuries' worth of years, and fractions of every length.
        for year in [1900, 1970, 1999, 2000, 2023, 2024, 2100, 2400, 9999] {
            for month in 1..=12 {
                for day in [1, 28, 29, 30, 31] {
                    samples.push(format!("{year:04}-{month:02}-{day:02}T12:34:56Z"));
                }
            }
        }
        for digits in 1..=9 {
            samples.push(format!(
                "2026-12-01T18:35:33.{}Z",
                "123456789".get(..digits).unwrap_or("")
            ));
        }
        for s in &samples {
            assert_eq!(
                parse_timestamp_micros(s).map_err(|r| r.code()),
                general(s).map_err(|r| r.code()),
                "{s}"
            );
        }
        for bad in [
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-12-01T24:00:00Z",
            "2026-12-01T00:00:00",
            "2026-12-01T00:00:00.Z",
            "2026-12-01T00:00:00+2:00",
        ] {
            assert_eq!(
                parse_timestamp_micros(bad).map_err(|r| r.code()),
                general(bad).map_err(|r| r.code()),
                "{bad}"
            );
        }
        assert_eq!(
            parse_timestamp_micros("2026-12-01T18:35:33.5Z"),
            Ok(1_796_150_133_500_000)
        );
    }

    #[test]
    fn timestamps_in_three_notations() {
        let t = parse_timestamp("2027-01-15T08:00:00.123456789Z").unwrap();
        assert_eq!(t.nanosecond(), 123_456_000, "truncated to microseconds");
        assert_eq!(parse_timestamp("1800000000").unwrap(), now());
        assert_eq!(parse_timestamp("1800000000000").unwrap(), now());
        assert_eq!(
            parse_timestamp("1800000000.5").unwrap(),
            now() + Duration::milliseconds(500)
        );
        let offset = parse_timestamp("2027-01-15T10:00:00+02:00").unwrap();
        assert_eq!(offset, parse_timestamp("2027-01-15T08:00:00Z").unwrap());
        assert_eq!(offset.offset(), time::UtcOffset::UTC);
        for bad in ["yesterday", "-5", "", "NaN"] {
            assert_eq!(
                parse_timestamp(bad).map_err(|r| r.code()),
                Err(Code::invalid_timestamp),
                "{bad}"
            );
        }
    }
}
