//! Extractors whose rejections use the API's error format.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use fb_core::Code;
use fb_core::error::FieldError;
use fb_core::identity::Principal;

use crate::error::ApiError;
use crate::state::AppState;

/// A JSON body with our error format. Problems name the field in `details`, e.g.
/// `{"field": "role", "reason": "unknown variant ..., expected one of admin, ..."}`, and never
/// echo a submitted value (it might be a password). Bodies nested deeper than
/// `server.max_json_depth` are refused before parsing.
pub(crate) struct AppJson<T>(pub T);

impl<T> FromRequest<AppState> for AppJson<T>
where
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        if !is_json(request.headers()) {
            return Err(ApiError::new(
                Code::unsupported_media_type,
                "expected a request body with Content-Type: application/json",
            ));
        }
        let bytes = read_body(request, state).await?;
        parse_json_within(&bytes, state.options.max_json_depth).map(AppJson)
    }
}

/// Like [`AppJson`], but an empty body (as `curl -X POST` sends) is the default value: for
/// actions whose fields are all optional.
pub(crate) struct OptionalJson<T>(pub T);

impl<T> FromRequest<AppState> for OptionalJson<T>
where
    T: DeserializeOwned + Default,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let headers = request.headers().clone();
        let bytes = read_body(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        if !is_json(&headers) {
            return Err(ApiError::new(
                Code::unsupported_media_type,
                "expected a request body with Content-Type: application/json",
            ));
        }
        parse_json_within(&bytes, state.options.max_json_depth).map(OptionalJson)
    }
}

/// The whole body, within `server.max_body_bytes`.
async fn read_body(request: Request, state: &AppState) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state)
        .await
        .map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(Code::payload_too_large, "the request body is too large")
            } else {
                ApiError::new(Code::invalid_json, "the request body could not be read")
            }
        })
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            let m = m.trim();
            m.eq_ignore_ascii_case("application/json")
                || (m.starts_with("application/") && m.ends_with("+json"))
        })
}

/// Whether a JSON text nests arrays and objects deeper than `max`: the most `[` and `{` open
/// at once, counted outside strings. A scan of the bytes with no allocation, so that a deeply
/// nested body is refused before a parser recurses into it; malformed text is left for the
/// parser to report.
pub(crate) fn nests_deeper_than(json: &[u8], max: usize) -> bool {
    // The depth is at most the number of openers: one vectorised search settles most texts
    // (every reading of a readings payload, most request bodies).
    if memchr::memchr2_iter(b'[', b'{', json).nth(max).is_none() {
        return false;
    }
    let mut depth = 0usize;
    let mut at = 0;
    while let Some(&byte) = json.get(at) {
        at += 1;
        match byte {
            // Skip the string: to the next quote that is not escaped (an unterminated one
            // ends the text).
            b'"' => loop {
                let rest = json.get(at..).unwrap_or_default();
                let Some(found) = memchr::memchr2(b'"', b'\\', rest) else {
                    return false;
                };
                let escape = rest[found] == b'\\';
                at += found + 1 + usize::from(escape);
                if !escape {
                    break;
                }
            },
            b'[' | b'{' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// [`parse_json`] after refusing text nested deeper than `max_depth` (`json_too_deep`).
pub(crate) fn parse_json_within<T: DeserializeOwned>(
    bytes: &[u8],
    max_depth: usize,
) -> Result<T, ApiError> {
    if nests_deeper_than(bytes, max_depth) {
        let reason = format!("nests arrays and objects deeper than {max_depth} levels");
        return Err(ApiError::new(
            Code::json_too_deep,
            format!("the JSON body {reason} (server.max_json_depth)"),
        )
        .with_details(vec![FieldError::new("body", reason)]));
    }
    parse_json(bytes)
}

/// Reads a request body or stream message: always a JSON object. (serde's derived structs
/// also take an array of their fields in order, so `[null, null]` passed for an empty patch,
/// which no schema allows: the top level is checked first.)
pub(crate) fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        let reason = "must be a JSON object";
        return Err(
            ApiError::new(Code::invalid_json, format!("the body {reason}"))
                .with_details(vec![FieldError::new("body", reason)]),
        );
    }
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let error = match serde_path_to_error::deserialize::<_, T>(&mut deserializer) {
        Ok(value) => {
            // Trailing characters after the value make the body malformed too.
            return match deserializer.end() {
                Ok(()) => Ok(value),
                Err(e) => Err(ApiError::new(
                    Code::invalid_json,
                    format!("malformed JSON at line {} column {}", e.line(), e.column()),
                )),
            };
        }
        Err(error) => error,
    };
    let path = error.path().to_string();
    let inner = error.into_inner();
    if !inner.is_data() {
        return Err(ApiError::new(
            Code::invalid_json,
            format!(
                "malformed JSON at line {} column {}",
                inner.line(),
                inner.column()
            ),
        ));
    }
    let (field, reason) = describe_data_error(&path, &inner.to_string());
    Err(ApiError::new(
        Code::invalid_json,
        format!("invalid JSON body: {field}: {reason}"),
    )
    .with_details(vec![FieldError::new(field, reason)]))
}

/// Turns serde's message into (field path, reason) without the submitted value.
fn describe_data_error(path: &str, message: &str) -> (String, String) {
    let message = message.split(" at line ").next().unwrap_or(message);
    let join = |name: &str| {
        if path == "." || path.is_empty() {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    let quoted = |m: &str| m.split('`').nth(1).map(str::to_owned).unwrap_or_default();
    if let Some(rest) = message.strip_prefix("missing field ") {
        return (join(&quoted(rest)), "is required".to_owned());
    }
    if let Some(rest) = message.strip_prefix("unknown field ") {
        // serde_path_to_error's path already ends at the unknown field.
        let expected = rest.split_once(", ").map_or("", |(_, e)| e);
        let name = quoted(rest);
        let field = if path.ends_with(name.as_str()) {
            path.to_owned()
        } else {
            join(&name)
        };
        return (field, format!("is not a known field; {expected}"));
    }
    let field = if path == "." || path.is_empty() {
        "body".to_owned()
    } else {
        path.to_owned()
    };
    // "invalid type: string `hunter2`, expected u64" would echo the value: keep what was expected.
    if message.starts_with("invalid type")
        || message.starts_with("invalid value")
        || message.starts_with("invalid length")
    {
        let expected = message
            .split_once(", expected ")
            .map_or("a different value", |(_, e)| e);
        return (field, format!("expected {expected}"));
    }
    (field, message.to_owned())
}

/// `axum::extract::Path` with our error format.
pub(crate) struct AppPath<T>(pub T);

impl<S, T> FromRequestParts<S> for AppPath<T>
where
    axum::extract::Path<T>: FromRequestParts<S, Rejection = PathRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(AppPath(value)),
            Err(rejection) => Err(ApiError::new(
                Code::invalid_parameter,
                rejection.body_text(),
            )),
        }
    }
}

/// `axum::extract::Query` with our error format.
pub(crate) struct AppQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for AppQuery<T>
where
    axum::extract::Query<T>:
        FromRequestParts<S, Rejection = axum::extract::rejection::QueryRejection>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(AppQuery(value)),
            Err(rejection) => Err(ApiError::new(
                Code::invalid_parameter,
                rejection.body_text(),
            )),
        }
    }
}

/// An optional time query parameter: RFC 3339 or Unix seconds/milliseconds.
pub(crate) fn query_time(
    field: &str,
    raw: Option<&str>,
) -> Result<Option<time::OffsetDateTime>, ApiError> {
    raw.map(|t| {
        fb_core::plant::parse_timestamp(t)
            .map_err(|r| ApiError::invalid_parameter(field, &r.to_string()))
    })
    .transpose()
}

/// A required time query parameter: 400 naming `field` when it is missing or unreadable.
pub(crate) fn required_time(
    field: &str,
    raw: Option<&str>,
) -> Result<time::OffsetDateTime, ApiError> {
    query_time(field, raw)?.ok_or_else(|| ApiError::invalid_parameter(field, "is required"))
}

/// The authenticated caller, put in the request by the access check of the route.
pub(crate) struct Caller(pub Principal);

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Caller)
            // Only reachable if a handler that needs a caller is mounted as public: a bug.
            .ok_or_else(|| ApiError::new(Code::internal, Code::internal.description()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
        count: u64,
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        level: u8,
    }

    fn details(json: &str) -> (Code, Vec<(String, String)>) {
        let e = parse_json::<Body>(json.as_bytes()).unwrap_err();
        let d = e
            .details()
            .iter()
            .map(|f| (f.field.clone(), f.reason.clone()))
            .collect();
        (e.code(), d)
    }

    #[test]
    fn missing_unknown_and_mistyped_fields_are_named() {
        assert_eq!(
            details(r#"{"name":"a"}"#).1,
            [("count".to_owned(), "is required".to_owned())]
        );
        let (_, d) = details(r#"{"name":"a","count":1,"colour":2}"#);
        assert_eq!(d[0].0, "colour");
        assert!(
            d[0].1.starts_with("is not a known field; expected one of"),
            "{}",
            d[0].1
        );
        let (code, d) = details(r#"{"name":"a","count":1,"inner":{"level":"high"}}"#);
        assert_eq!(code, Code::invalid_json);
        assert_eq!(d, [("inner.level".to_owned(), "expected u8".to_owned())]);
    }

    /// Found by schemathesis: `PATCH /api/v1/users/{user}` answered 200 to `[null, null]`.
    #[test]
    fn a_body_that_is_not_an_object_is_refused_though_serde_reads_structs_from_arrays() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Patch {
            role: Option<String>,
            sites: Option<Vec<String>>,
        }
        assert!(serde_json::from_str::<Patch>("[null, null]").is_ok());
        for body in ["[null, null]", " []", "\"role\"", "null", "1"] {
            let e = parse_json::<Patch>(body.as_bytes()).unwrap_err();
            assert_eq!(e.code(), Code::invalid_json, "{body}");
            assert_eq!(e.details()[0].field, "body", "{body}");
        }
        assert!(parse_json::<Patch>(b" \n{}").is_ok());
    }

    #[test]
    fn submitted_values_are_not_echoed() {
        let e = parse_json::<Body>(br#"{"name":"hunter2-secret","count":"hunter2-secret"}"#)
            .unwrap_err();
        assert!(!format!("{e:?}").contains("hunter2"), "{e:?}");
    }

    #[test]
    fn syntax_errors_give_the_position() {
        let e = parse_json::<Body>(br#"{"name": "#).unwrap_err();
        assert_eq!(e.code(), Code::invalid_json);
        assert!(e.details().is_empty());
        let trailing = parse_json::<Body>(br#"{"name":"a","count":1} x"#).unwrap_err();
        assert_eq!(trailing.code(), Code::invalid_json);
    }

    #[test]
    fn depth_counts_brackets_outside_strings_only() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(!nests_deeper_than(nested(32).as_bytes(), 32));
        assert!(nests_deeper_than(nested(33).as_bytes(), 32));
        // Siblings do not add up: depth is what is open at once.
        assert!(!nests_deeper_than(
            br#"{"a":[1,[2]],"b":[3,[4]],"c":{"d":{}}}"#,
            3
        ));
        assert!(nests_deeper_than(
            br#"{"a":[1,[2]],"b":[3,[4]],"c":{"d":{}}}"#,
            2
        ));
        // Brackets in strings, escaped quotes included, are text.
        let text = br#"{"name":"[[[[{{{{ \"[[[[ \\"}"#;
        assert!(!nests_deeper_than(text, 1));
        assert!(!nests_deeper_than(b"", 0));
    }

    #[test]
    fn too_deep_bodies_are_refused_naming_the_body_before_parsing() {
        let deep = format!(r#"{{"name":"a","count":1,"inner":{}}}"#, "[".repeat(40));
        let e = parse_json_within::<Body>(deep.as_bytes(), 32).unwrap_err();
        assert_eq!(e.code(), Code::json_too_deep);
        assert_eq!(e.details()[0].field, "body");
        assert!(e.details()[0].reason.contains("32"), "{:?}", e.details());
        let ok = parse_json_within::<Body>(br#"{"name":"a","count":1,"inner":{"level":2}}"#, 2);
        assert!(ok.is_ok());
    }
}
