//! Security misconfiguration and resource limits at the HTTP edge: the security headers of
//! every answer, and JSON nested too deep refused before parsing.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};

use crate::support::{Response, TestApp};

fn header<'a>(response: &'a Response, name: &str) -> Option<&'a str> {
    response.headers.get(name).map(|v| v.to_str().unwrap())
}

fn assert_security_headers(response: &Response, what: &str) {
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        (
            "content-security-policy",
            "default-src 'none'; frame-ancestors 'none'",
        ),
    ] {
        assert_eq!(header(response, name), Some(value), "{what}: {name}");
    }
}

#[tokio::test]
async fn every_answer_carries_the_security_headers_and_hsts_only_when_configured() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let me = app.get("/api/v1/auth/me", Some(&admin)).await;
    assert_eq!(me.status, StatusCode::OK);
    let missing = app.get("/api/v1/no-such-route", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let probe = app.get("/healthz", None).await;
    assert_eq!(probe.status, StatusCode::OK);
    let refused = app.get("/api/v1/auth/me", None).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    for (response, what) in [
        (&me, "an API route"),
        (&missing, "a 404"),
        (&probe, "/healthz"),
        (&refused, "a 401"),
    ] {
        assert_security_headers(response, what);
        assert_eq!(
            header(response, "strict-transport-security"),
            None,
            "{what}: not known to be reached over HTTPS"
        );
    }
    app.finish().await;

    let https = TestApp::with_env(vec![(
        "FB__SERVER__HSTS_MAX_AGE_SECS".into(),
        "31536000".into(),
    )])
    .await;
    for path in ["/healthz", "/api/v1/nothing"] {
        let response = https.get(path, None).await;
        assert_eq!(
            header(&response, "strict-transport-security"),
            Some("max-age=31536000"),
            "{path}"
        );
        assert_security_headers(&response, path);
    }
    https.finish().await;
}

/// `depth` nested arrays around `inner`.
fn nested(depth: usize, inner: &str) -> String {
    format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn json_nested_deeper_than_the_setting_is_refused_before_parsing() {
    let app = TestApp::with_env(vec![("FB__SERVER__MAX_JSON_DEPTH".into(), "8".into())]).await;
    let admin = app.admin_token().await;
    let post = |path: &str, content_type: &str, body: String| {
        Request::post(path)
            .header(header::AUTHORIZATION, format!("Bearer {admin}"))
            .header(header::CONTENT_TYPE, content_type)
            .body(Body::from(body))
            .unwrap()
    };

    // A request body: the object and 8 arrays is 9 levels; within the depth, the same body is
    // judged on its content as usual.
    let user = |depth| {
        let password = nested(depth, r#""a-password-123""#);
        let body = format!(r#"{{"username":"deep","role":"viewer","password":{password}}}"#);
        post("/api/v1/users", "application/json", body)
    };
    let refused = app.request(user(8)).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(refused.code(), "json_too_deep");
    assert_eq!(refused.body["error"]["details"][0]["field"], "body");
    let judged = app.request(user(7)).await;
    assert_eq!(judged.code(), "invalid_json", "{}", judged.body);

    // A readings payload is refused whole and kept as a dead letter, like any unreadable one.
    let deep_readings = format!(
        r#"[{{"machine":"m","sensor":"t","value":{}}}]"#,
        nested(7, "1")
    );
    let refused = app
        .request(post("/api/v1/readings", "application/json", deep_readings))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(refused.code(), "json_too_deep");
    let letters = app.get("/api/v1/dead-letters", Some(&admin)).await;
    let letters: &Vec<Value> = letters.body["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["code"], "json_too_deep");
    // One level less parses, and the odd value is refused by itself.
    let readings = app
        .request(post(
            "/api/v1/readings",
            "application/json",
            json!([{"machine": "m", "sensor": "t", "value": [[[[[1]]]]]}]).to_string(),
        ))
        .await;
    assert_eq!(readings.status, StatusCode::OK, "{}", readings.body);
    assert_eq!(readings.body["rejected"], 1);
    app.finish().await;
}
