//! `/api/v1/readings`, readings queries and dead-letter bodies.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use fb_app::{ingest, plant};
use fb_core::plant::Reading;
use fb_core::ports;

/// The body of `POST /api/v1/readings` as JSON: an array of readings, or one reading. Each
/// reading is judged alone: one that breaks these rules is refused and kept as a dead letter
/// (listed in the answer's `rejections`), the rest are stored.
// Documentation only: `formats::parse_json` reads payloads without copying them into these
// types; a test there checks that both take the same fields.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ReadingsPayload {
    Batch(Vec<ReadingIn>),
    One(ReadingIn),
}

/// One reading sent to `POST /api/v1/readings` (CSV rows have the same columns).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadingIn {
    /// The machine's id.
    #[schema(example = "press-01")]
    pub machine: String,
    /// The sensor's key.
    #[schema(example = "temperature")]
    pub sensor: String,
    /// RFC 3339 text, or Unix seconds or milliseconds; absent: stamped on arrival.
    pub ts: Option<TimeIn>,
    /// A number, or numeric text.
    pub value: ValueIn,
    /// Must equal the sensor's unit when given.
    #[schema(example = "°C")]
    pub unit: Option<String>,
}

/// A reading's timestamp: RFC 3339 text or a Unix number.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum TimeIn {
    #[schema(example = "2026-11-22T08:00:00Z")]
    Text(String),
    Unix(f64),
}

/// A reading's value: a number or numeric text.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum ValueIn {
    Number(f64),
    Text(String),
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct IngestReport {
    /// Readings newly stored.
    pub accepted: usize,
    /// Readings already stored (same machine, sensor and timestamp) or repeated in the batch.
    pub duplicates: usize,
    /// Readings refused; each is kept as a dead letter.
    pub rejected: usize,
    /// The first refusals, in batch order.
    pub rejections: Vec<RowRejection>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RowRejection {
    /// Position in the batch (0-based; CSV: data row, not counting the header).
    pub index: usize,
    #[schema(example = "unknown_sensor")]
    pub code: String,
    pub reason: String,
    pub dead_letter_id: Uuid,
}

impl From<ingest::Report> for IngestReport {
    fn from(r: ingest::Report) -> Self {
        Self {
            accepted: r.accepted,
            duplicates: r.duplicates,
            rejected: r.rejected,
            rejections: r
                .rejections
                .into_iter()
                .map(|x| RowRejection {
                    index: x.index,
                    code: x.code.as_str().to_owned(),
                    reason: x.reason,
                    dead_letter_id: x.dead_letter,
                })
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReadingsParams {
    /// One sensor; all sensors of the machine when absent.
    pub sensor: Option<String>,
    /// Start (inclusive): RFC 3339 or Unix seconds/milliseconds. Default: one hour before `to`.
    pub from: Option<String>,
    /// End (exclusive). Default: now.
    pub to: Option<String>,
    /// Bucket size: `auto`, seconds, or `5m`, `1h`, `1d`. Absent: raw points.
    pub bucket: Option<String>,
    /// Statistics per bucket: a comma list of `count`, `min`, `max`, `mean`. Default: all.
    pub agg: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Point {
    pub sensor: String,
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    pub value: f64,
    /// Detection's anomaly score in [0, 1]; absent until the reading has been scored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// Whether detection flagged the reading; absent until it has been scored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub anomaly: Option<bool>,
}

impl From<Reading> for Point {
    fn from(r: Reading) -> Self {
        Self {
            sensor: r.sensor.0,
            ts: r.ts,
            value: r.value,
            score: None,
            anomaly: None,
        }
    }
}

impl From<plant::ScoredReading> for Point {
    fn from(r: plant::ScoredReading) -> Self {
        Self {
            score: r.score.map(|s| s.0),
            anomaly: r.score.map(|s| s.1),
            ..Point::from(r.reading)
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StatsBucket {
    pub sensor: String,
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReadingsResponse {
    pub machine: String,
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    /// `raw`, or the rollup the buckets were computed from: `minute` or `hour`.
    #[schema(example = "minute")]
    pub resolution: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket_secs: Option<i64>,
    /// Raw points, ordered by sensor then time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub points: Option<Vec<Point>>,
    /// Buckets, ordered by sensor then start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub buckets: Option<Vec<StatsBucket>>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LatestReadings {
    pub machine: String,
    pub readings: Vec<Point>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeadLettersParams {
    /// Only this error code, e.g. `unknown_sensor`.
    pub code: Option<String>,
    /// Only letters not replayed successfully yet.
    pub pending: Option<bool>,
    /// Page after this id (the `next_after` of the previous page).
    pub after: Option<Uuid>,
    /// 1–1000; default 100.
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeadLetter {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// `http`, `mqtt:<topic>` or `replay:<id>`.
    pub source: String,
    pub code: String,
    pub reason: String,
    pub content_type: String,
    /// The payload as text (invalid UTF-8 replaced).
    pub payload: String,
    pub payload_bytes: usize,
    #[serde(with = "time::serde::rfc3339::option")]
    pub replayed_at: Option<OffsetDateTime>,
}

impl From<ports::DeadLetter> for DeadLetter {
    fn from(l: ports::DeadLetter) -> Self {
        Self {
            id: l.id,
            received_at: l.received_at,
            source: l.source,
            code: l.code.as_str().to_owned(),
            reason: l.reason,
            content_type: l.content_type,
            payload_bytes: l.payload.len(),
            payload: String::from_utf8_lossy(&l.payload).into_owned(),
            replayed_at: l.replayed_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeadLetterList {
    pub dead_letters: Vec<DeadLetter>,
    /// Pass as `after` for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_after: Option<Uuid>,
}
