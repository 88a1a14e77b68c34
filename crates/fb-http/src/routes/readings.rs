//! Readings in (HTTP ingest), readings out (queries, latest values), and the dead letters.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use bytes::Bytes;
use http_body_util::BodyExt;

use fb_app::ingest::Origin;
use fb_app::plant::{Bucket, ReadingsQuery, ReadingsResult};
use fb_core::Code;
use fb_core::plant::Rejection;
use fb_core::ports::DeadLetterFilter;

use crate::api::v1::{
    DeadLetter, DeadLetterList, DeadLettersParams, IngestReport, LatestReadings, Point,
    ReadingsParams, ReadingsPayload, ReadingsResponse, StatsBucket,
};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppPath, AppQuery, Caller, query_time};
use crate::formats;
use crate::state::AppState;

/// A refused payload keeps at most this much of its body: enough to see what was sent.
const OVERSIZE_SAMPLE: usize = 64 * 1024;

/// Ingests a batch of readings: a JSON array of `{machine, sensor, ts, value, unit}` or CSV with
/// a header row; `Content-Encoding: gzip` accepted. Refused items are kept as dead letters and
/// counted in the answer; the answer comes after everything has been stored.
#[utoipa::path(post, operation_id = "ingest_readings", path = "/api/v1/readings", tag = "readings",
    request_body(
        description = "A JSON array of readings (or one reading), or CSV with a header row \
                       naming machine, sensor, value and optionally ts and unit; gzip with \
                       Content-Encoding: gzip",
        content(
            (ReadingsPayload = "application/json"),
            (String = "text/csv"),
        ),
    ),
    responses(
        (status = 200, description = "Counts of accepted, duplicate and rejected readings", body = IngestReport),
        (status = 400, description = "Malformed JSON or CSV, JSON nested deeper than server.max_json_depth, or undecodable body (kept as a dead letter)", body = ErrorBody),
        (status = 413, description = "Payload too large (a sample is kept as a dead letter)", body = ErrorBody),
        (status = 415, description = "Neither JSON nor CSV", body = ErrorBody),
        (status = 503, description = "Ingest is full; retry after Retry-After", body = ErrorBody),
    ))]
pub(crate) async fn ingest(
    State(state): State<AppState>,
    Caller(caller): Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IngestReport>, ApiError> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = text(header::CONTENT_TYPE).unwrap_or_default();
    let origin = Origin {
        source: "http".into(),
        content_type: content_type.clone(),
    };
    let limit = state.options.ingest_max_bytes;

    let bytes = match read_limited(body, limit).await {
        Ok(bytes) => bytes,
        Err(sample) => {
            return Err(refuse(
                &state,
                &origin,
                sample,
                Rejection::PayloadTooLarge { limit },
            )
            .await);
        }
    };
    let format = match formats::format_of(&content_type) {
        Ok(format) => format,
        Err(rejection) => return Err(refuse(&state, &origin, bytes.into(), rejection).await),
    };
    let encoding = text(header::CONTENT_ENCODING);
    let decoded = match formats::decode(
        bytes.clone(),
        encoding.as_deref(),
        state.options.ingest_max_decoded_bytes,
    ) {
        Ok(decoded) => decoded,
        Err(rejection) => return Err(refuse(&state, &origin, bytes.into(), rejection).await),
    };
    // Parsing a large batch takes milliseconds of CPU: off the async workers.
    let parsed = {
        let decoded = decoded.clone();
        let max_depth = state.options.max_json_depth;
        tokio::task::spawn_blocking(move || formats::parse(format, &decoded, max_depth))
            .await
            .map_err(|_| ApiError::new(Code::internal, "the parser stopped"))?
    };
    let items = match parsed {
        Ok(items) => items,
        Err(rejection) => return Err(refuse(&state, &origin, decoded.into(), rejection).await),
    };
    let report = state.ingest.ingest(&caller, &origin, items).await?;
    Ok(Json(report.into()))
}

/// Reads the body up to `limit` bytes; past it, returns the first bytes as a sample. A body that
/// arrives in one frame is passed on without a copy.
async fn read_limited(mut body: Body, limit: usize) -> Result<Bytes, Vec<u8>> {
    let mut first: Option<Bytes> = None;
    let mut rest: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            return Err(first.map(|b| b.to_vec()).unwrap_or(rest));
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let have = first.as_ref().map_or(0, Bytes::len) + rest.len();
        if have + data.len() > limit {
            let mut sample = first.map(|b| b.to_vec()).unwrap_or_default();
            sample.extend_from_slice(&rest);
            let room = OVERSIZE_SAMPLE.saturating_sub(sample.len());
            sample.extend_from_slice(&data[..room.min(data.len())]);
            sample.truncate(OVERSIZE_SAMPLE);
            return Err(sample);
        }
        match first.take() {
            None if rest.is_empty() => first = Some(data),
            None => rest.extend_from_slice(&data),
            Some(earlier) => {
                rest.reserve(earlier.len() + data.len());
                rest.extend_from_slice(&earlier);
                rest.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| rest.into()))
}

/// Keeps a refused payload as a dead letter and turns the refusal into the error response.
async fn refuse(
    state: &AppState,
    origin: &Origin,
    payload: Vec<u8>,
    rejection: Rejection,
) -> ApiError {
    match state
        .ingest
        .reject_payload(origin, payload, &rejection)
        .await
    {
        Ok(id) => ApiError::new(
            rejection.code(),
            format!("{rejection}; kept as dead letter {id}"),
        ),
        Err(e) => ApiError::from(e),
    }
}

/// Readings of one machine: raw points, or buckets (count, min, max, mean) from the minute or
/// hour rollups. `from` defaults to one hour before `to`, `to` to now.
#[utoipa::path(get, operation_id = "query_readings", path = "/api/v1/machines/{machine}/readings", tag = "readings",
    params(("machine" = String, Path, description = "Machine id"), ReadingsParams),
    responses(
        (status = 200, description = "Points or buckets", body = ReadingsResponse),
        (status = 400, description = "Invalid parameter, or range/points over the limits (query_too_large)", body = ErrorBody),
        (status = 404, description = "No such machine", body = ErrorBody),
    ))]
pub(crate) async fn query(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(machine): AppPath<String>,
    AppQuery(params): AppQuery<ReadingsParams>,
) -> Result<Json<ReadingsResponse>, ApiError> {
    let to = query_time("to", params.to.as_deref())?.unwrap_or_else(|| state.plant.now());
    let from = query_time("from", params.from.as_deref())?.unwrap_or(to - time::Duration::hours(1));
    let bucket = params.bucket.as_deref().map(parse_bucket).transpose()?;
    let agg = Aggregates::parse(params.agg.as_deref())?;
    let query = ReadingsQuery {
        machine: machine.clone(),
        sensor: params.sensor.clone(),
        from,
        to,
        bucket,
    };
    let response = match state.plant.readings(&caller, &query).await? {
        ReadingsResult::Raw(points) => ReadingsResponse {
            machine,
            from,
            to,
            resolution: "raw".into(),
            bucket_secs: None,
            points: Some(points.into_iter().map(Point::from).collect()),
            buckets: None,
        },
        ReadingsResult::Buckets {
            resolution,
            bucket_secs,
            buckets,
        } => ReadingsResponse {
            machine,
            from,
            to,
            resolution: match resolution {
                fb_core::ports::Resolution::Minute => "minute".into(),
                fb_core::ports::Resolution::Hour => "hour".into(),
            },
            bucket_secs: Some(bucket_secs),
            points: None,
            buckets: Some(
                buckets
                    .into_iter()
                    .map(|b| StatsBucket {
                        sensor: b.sensor.0,
                        start: b.start,
                        count: agg.count.then_some(b.count),
                        min: agg.min.then_some(b.min),
                        max: agg.max.then_some(b.max),
                        mean: agg.mean.then(|| b.sum / b.count.max(1) as f64),
                    })
                    .collect(),
            ),
        },
    };
    Ok(Json(response))
}

/// `auto`, seconds (`300`), or a number with a unit: `5m`, `1h`, `1d`.
fn parse_bucket(raw: &str) -> Result<Bucket, ApiError> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("auto") {
        return Ok(Bucket::Auto);
    }
    let (number, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(ApiError::invalid_parameter(
                "bucket",
                "use auto, seconds, or a number with s, m, h or d (e.g. 5m)",
            ));
        }
    };
    number
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(scale))
        .map(Bucket::Seconds)
        .ok_or_else(|| {
            ApiError::invalid_parameter(
                "bucket",
                "use auto, seconds, or a number with s, m, h or d (e.g. 5m)",
            )
        })
}

/// Which statistics buckets carry (`agg=mean,max`); all by default.
struct Aggregates {
    count: bool,
    min: bool,
    max: bool,
    mean: bool,
}

impl Aggregates {
    fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let Some(raw) = raw.filter(|r| !r.trim().is_empty()) else {
            return Ok(Self {
                count: true,
                min: true,
                max: true,
                mean: true,
            });
        };
        let mut agg = Self {
            count: false,
            min: false,
            max: false,
            mean: false,
        };
        for name in raw.split(',').map(str::trim) {
            match name {
                "count" => agg.count = true,
                "min" => agg.min = true,
                "max" => agg.max = true,
                "mean" | "avg" => agg.mean = true,
                _ => {
                    return Err(ApiError::invalid_parameter(
                        "agg",
                        "a comma list of count, min, max and mean",
                    ));
                }
            }
        }
        Ok(agg)
    }
}

/// The newest reading of every sensor of a machine.
#[utoipa::path(get, operation_id = "latest_readings", path = "/api/v1/machines/{machine}/latest", tag = "readings",
    params(("machine" = String, Path, description = "Machine id")),
    responses(
        (status = 200, description = "Latest value per sensor", body = LatestReadings),
        (status = 404, description = "No such machine", body = ErrorBody),
    ))]
pub(crate) async fn latest(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(machine): AppPath<String>,
) -> Result<Json<LatestReadings>, ApiError> {
    let readings = state.plant.latest(&caller, &machine).await?;
    Ok(Json(LatestReadings {
        machine,
        readings: readings.into_iter().map(Point::from).collect(),
    }))
}

/// Refused payloads and readings, oldest first, with their raw bytes and the reason.
#[utoipa::path(get, operation_id = "list_dead_letters", path = "/api/v1/dead-letters", tag = "readings",
    params(DeadLettersParams),
    responses((status = 200, description = "Dead letters", body = DeadLetterList)))]
pub(crate) async fn dead_letters(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppQuery(params): AppQuery<DeadLettersParams>,
) -> Result<Json<DeadLetterList>, ApiError> {
    let code = match params.code.as_deref() {
        Some(c) => Some(Code::parse(c).ok_or_else(|| {
            ApiError::invalid_parameter("code", "not an error code (see docs/errors.md)")
        })?),
        None => None,
    };
    let limit = params.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::invalid_parameter(
            "limit",
            "must be between 1 and 1000",
        ));
    }
    let filter = DeadLetterFilter {
        code,
        pending_only: params.pending.unwrap_or(false),
        after: params.after,
        limit,
    };
    let letters = state.ingest.dead_letters(&caller, &filter).await?;
    let next_after = (letters.len() == limit)
        .then(|| letters.last().map(|l| l.id))
        .flatten();
    Ok(Json(DeadLetterList {
        dead_letters: letters.into_iter().map(DeadLetter::from).collect(),
        next_after,
    }))
}

/// Feeds a dead letter through ingest again (after the registry was fixed). When nothing in it
/// is refused, the letter is marked replayed; otherwise the new refusals are new dead letters.
#[utoipa::path(post, operation_id = "replay_dead_letter", path = "/api/v1/dead-letters/{id}/replay", tag = "readings",
    params(("id" = uuid::Uuid, Path, description = "Dead letter id")),
    responses(
        (status = 200, description = "What the replay stored and refused", body = IngestReport),
        (status = 404, description = "No such dead letter", body = ErrorBody),
        (status = 409, description = "The letter's payload is refused as a whole, so it cannot be replayed (dead_letter_unreadable)", body = ErrorBody),
    ))]
pub(crate) async fn replay(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(id): AppPath<uuid::Uuid>,
) -> Result<Json<IngestReport>, ApiError> {
    let report = state.ingest.replay(&caller, id).await?;
    Ok(Json(report.into()))
}
