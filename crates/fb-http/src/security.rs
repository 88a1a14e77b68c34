//! What browsers are told about our answers (security headers on every response) and which
//! web pages may talk to us from a browser (the origin policy of the event stream).

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

use fb_core::Code;

use crate::error::ApiError;
use crate::state::AppState;

/// The Content-Security-Policy of every API answer: JSON, never a document, so it may load,
/// run and be framed by nothing.
pub const API_CONTENT_SECURITY_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// The Content-Security-Policy prepared for the web dashboard under `/ui`, which sets it on its
/// own answers (the layer below keeps a policy a route chose). Everything from our own origin
/// only, no inline script or style elements and no `eval` (scripts are files the dashboard
/// ships), images also as `data:` URLs (chart exports), and the page cannot be framed.
/// `connect-src 'self'` covers `fetch` to the API and the event stream's `ws:`/`wss:` on the
/// same host (CSP Level 3).
pub const DASHBOARD_CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; \
     object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The headers every answer carries unless its route set them itself.
const STATIC_HEADERS: [(HeaderName, &str); 6] = [
    // Browsers must not guess a type: a JSON answer never runs as a script or page.
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    // Clickjacking, for browsers that predate frame-ancestors.
    (header::X_FRAME_OPTIONS, "DENY"),
    // URLs may carry ids worth keeping in the plant.
    (header::REFERRER_POLICY, "no-referrer"),
    (
        HeaderName::from_static("cross-origin-opener-policy"),
        "same-origin",
    ),
    (
        HeaderName::from_static("cross-origin-resource-policy"),
        "same-origin",
    ),
    (header::CONTENT_SECURITY_POLICY, API_CONTENT_SECURITY_POLICY),
];

/// Outermost middleware: adds the security headers to every answer, errors and probes
/// included, and `Strict-Transport-Security` when `server.hsts_max_age_secs` says the server is
/// reached over HTTPS. A header a route set itself (the dashboard's own policy) is kept.
pub(crate) async fn headers(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in STATIC_HEADERS {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    let max_age = state.options.hsts_max_age_secs;
    if max_age > 0
        && let Ok(value) = HeaderValue::try_from(format!("max-age={max_age}"))
    {
        headers
            .entry(header::STRICT_TRANSPORT_SECURITY)
            .or_insert(value);
    }
    response
}

/// Browser origins (`scheme://host[:port]`), besides the server's own, whose pages may open the
/// event stream (`server.allowed_origins`), kept in the form [`normalize_origin`] gives.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedOrigins(Vec<String>);

impl AllowedOrigins {
    /// Checks and normalises every entry; the errors name the entry and what is wrong.
    pub fn parse(entries: &[String]) -> Result<Self, Vec<String>> {
        let mut origins = Vec::new();
        let mut errors = Vec::new();
        for entry in entries {
            match normalize_origin(entry) {
                Ok(origin) => origins.push(origin),
                Err(reason) => errors.push(format!("'{entry}': {reason}")),
            }
        }
        if errors.is_empty() {
            Ok(Self(origins))
        } else {
            Err(errors)
        }
    }
}

/// An origin as browsers send it, `scheme://host[:port]`, in one spelling: lowercase, without
/// the scheme's default port. Only `http` and `https`; no path, user or query.
pub fn normalize_origin(text: &str) -> Result<String, &'static str> {
    let text = text.trim().to_ascii_lowercase();
    let (scheme, authority) = text
        .split_once("://")
        .ok_or("must look like https://host or http://host:port")?;
    let default_port = match scheme {
        "http" => ":80",
        "https" => ":443",
        _ => return Err("the scheme must be http or https"),
    };
    let host_and_port = authority.strip_suffix(default_port).unwrap_or(authority);
    let plain = |c: char| c.is_ascii_alphanumeric() || "-.:[]".contains(c);
    if host_and_port.is_empty() || !host_and_port.chars().all(plain) {
        return Err("must be only scheme://host[:port], without path, user or query");
    }
    Ok(format!("{scheme}://{host_and_port}"))
}

/// Cross-site WebSocket hijacking: a page on any site can open a WebSocket to us, and the
/// browser sends that page's `Origin`. A request with an Origin passes only if it is the
/// server's own (the scheme it is reached by, the `Host` asked for) or listed; one without
/// (not a browser) passes.
pub(crate) fn check_origin(
    headers: &HeaderMap,
    allowed: &AllowedOrigins,
    own_scheme: &str,
) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let sent = String::from_utf8_lossy(origin.as_bytes());
    let normalized = normalize_origin(&sent).ok();
    let own = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .and_then(|host| normalize_origin(&format!("{own_scheme}://{host}")).ok());
    if let Some(origin) = &normalized
        && (Some(origin) == own.as_ref() || allowed.0.contains(origin))
    {
        return Ok(());
    }
    let shown: String = sent.chars().take(200).collect();
    Err(ApiError::new(
        Code::origin_not_allowed,
        format!(
            "pages from the origin '{shown}' may not use this route; only the server's own \
             origin ({}) and those in server.allowed_origins may",
            own.as_deref().unwrap_or("unknown: no Host header")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_headers(host: &str, origin: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_str(host).unwrap());
        if let Some(origin) = origin {
            headers.insert(header::ORIGIN, HeaderValue::from_str(origin).unwrap());
        }
        headers
    }

    #[test]
    fn origins_have_one_spelling() {
        assert_eq!(
            normalize_origin("HTTPS://Plant.Example:443").unwrap(),
            "https://plant.example"
        );
        assert_eq!(
            normalize_origin("http://10.0.0.5:8080").unwrap(),
            "http://10.0.0.5:8080"
        );
        assert_eq!(normalize_origin("http://[::1]:80").unwrap(), "http://[::1]");
        for bad in [
            "plant.example",
            "ftp://plant.example",
            "https://plant.example/ui",
            "https://user@plant.example",
            "https://",
            "null",
        ] {
            assert!(normalize_origin(bad).is_err(), "{bad}");
        }
        let errors =
            AllowedOrigins::parse(&["https://ok.example".into(), "nope".into()]).unwrap_err();
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("'nope': "), "{errors:?}");
    }

    #[test]
    fn only_the_own_and_listed_origins_pass() {
        let allowed = AllowedOrigins::parse(&["https://dashboard.example".into()]).unwrap();
        let check = |host: &str, origin: Option<&str>, scheme: &str| {
            check_origin(&request_headers(host, origin), &allowed, scheme)
        };
        assert!(check("plant:8080", None, "http").is_ok(), "not a browser");
        assert!(check("plant:8080", Some("http://plant:8080"), "http").is_ok());
        assert!(check("plant:443", Some("https://PLANT"), "https").is_ok());
        assert!(check("plant:8080", Some("https://dashboard.example"), "http").is_ok());
        for (origin, scheme) in [
            ("http://evil.example", "http"),
            // Same host, other scheme or port: another origin.
            ("https://plant:8080", "http"),
            ("http://plant:8081", "http"),
            ("http://plant:8080", "https"),
            ("null", "http"),
        ] {
            let refused = check("plant:8080", Some(origin), scheme).unwrap_err();
            assert_eq!(refused.code(), Code::origin_not_allowed, "{origin}");
        }
    }
}
