//! The OWASP API Security Top 10 (2023), item by item: one test each, named after it, over the
//! real router on a real store (a real socket, broker or binary where the item is about one).
//! Each test's comment says what the item is and how FactoryBrain meets it. This is the
//! checklist an auditor reads: where a behaviour is tested in depth elsewhere, the test here
//! checks it end to end in a few assertions and names the test that goes further.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use fb_core::identity::Role;
use fb_http::{Access, routes};

use crate::events::{Handshake, open_ok, refused, serve};
use crate::ratelimit::{login_from, peer};
use crate::scopes::{assert_code, machine, north, reading, two_sites};
use crate::support::{Response, TestApp, forge};

fn header_of<'a>(response: &'a Response, name: &str) -> &'a str {
    response
        .headers
        .get(name)
        .map_or("", |v| v.to_str().unwrap())
}

/// POSTs `body` as `token` and returns the text `field` of the answer (a secret shown once).
async fn post_for(app: &TestApp, path: &str, token: &str, body: Value, field: &str) -> String {
    let r = app.post(path, Some(token), body).await;
    let text = r.body[field].as_str();
    text.unwrap_or_else(|| panic!("no {field} in {}", r.body))
        .to_owned()
}

/// The admin's token, once the machine `press-01` of the site `north` exists.
async fn admin_with_press(app: &TestApp) -> String {
    let admin = app.admin_token().await;
    let created = app
        .post(
            "/api/v1/machines",
            Some(&admin),
            machine("press-01", "north"),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    admin
}

/// A POST with a JSON body sent as it is (`TestApp`'s helpers serialise a value).
fn raw_json_post(path: &str, token: Option<&str>, body: Body) -> Request<Body> {
    let mut request = Request::post(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    request.body(body).unwrap()
}

/// An error answer without what differs between any two answers: its request id, and the
/// id the caller asked for (`asked`, replaced by `X` in the message).
fn error_shape(response: &Response, asked: &str) -> (StatusCode, Value) {
    let mut error = response.body["error"].clone();
    error["request_id"] = Value::Null;
    let message = error["message"]
        .as_str()
        .unwrap_or_default()
        .replace(asked, "X");
    error["message"] = Value::String(message);
    (response.status, error)
}

/// **API1:2023 Broken Object Level Authorization**: an API that takes an object's id must check
/// that the caller may reach that object. FactoryBrain's objects (machines, their readings,
/// latest values and anomalies, alerts) belong to a site, and users and API keys can be limited
/// to sites. `fb_app::scope` checks the caller's sites on every read and write, and an object
/// outside them answers exactly like one that does not exist (404), so ids of other sites
/// cannot even be probed. In depth: `scopes::scoped_callers_reach_only_their_sites_*`.
#[tokio::test]
async fn api1_broken_object_level_authorization_objects_of_other_sites_do_not_exist() {
    let app = TestApp::new().await;
    let (admin, north_alert, south_alert) = two_sites(&app).await;
    let user = app.token_for_sites("nils", Role::Operator, north()).await;
    let gateway = json!({"name": "north gateway", "role": "operator", "sites": ["north"]});
    let key = post_for(&app, "/api/v1/api_keys", &admin, gateway, "key").await;
    let missing_alert = uuid::Uuid::now_v7().to_string();

    for caller in [user.as_str(), key.as_str()] {
        // Reads: the other site's machine, readings, latest values and alert.
        for (path, theirs, missing) in [
            ("/api/v1/machines/{}", "south-press", "no-such-press"),
            (
                "/api/v1/machines/{}/readings",
                "south-press",
                "no-such-press",
            ),
            ("/api/v1/machines/{}/latest", "south-press", "no-such-press"),
            ("/api/v1/alerts/{}", &south_alert, &missing_alert),
        ] {
            let mine = path.replace(
                "{}",
                if path.contains("alerts") {
                    &north_alert
                } else {
                    "north-press"
                },
            );
            assert_eq!(
                app.get(&mine, Some(caller)).await.status,
                StatusCode::OK,
                "{mine}"
            );
            let outside = app.get(&path.replace("{}", theirs), Some(caller)).await;
            let absent = app.get(&path.replace("{}", missing), Some(caller)).await;
            assert_eq!(
                outside.status,
                StatusCode::NOT_FOUND,
                "{path}: {}",
                outside.body
            );
            assert_eq!(
                error_shape(&outside, theirs),
                error_shape(&absent, missing),
                "{path}: another site's object must look missing"
            );
        }
        // Writes: changing the other site's machine or alert, or sending it readings.
        let patch = app
            .patch(
                "/api/v1/machines/south-press",
                Some(caller),
                json!({"status": "offline"}),
            )
            .await;
        assert_code(&patch, StatusCode::NOT_FOUND, "machine_not_found");
        for step in ["acknowledge", "resolve"] {
            let r = app
                .post(
                    &format!("/api/v1/alerts/{south_alert}/{step}"),
                    Some(caller),
                    json!({"comment": "not mine"}),
                )
                .await;
            assert_code(&r, StatusCode::NOT_FOUND, "alert_not_found");
        }
        let at = OffsetDateTime::now_utc() - time::Duration::minutes(1);
        let sent = app
            .post(
                "/api/v1/readings",
                Some(caller),
                json!([reading("south-press", at, 99.0)]),
            )
            .await;
        assert_eq!(
            sent.body["rejections"][0]["code"], "unknown_machine",
            "{}",
            sent.body
        );
    }
    // Nothing of the south site changed.
    let south = app.get("/api/v1/machines/south-press", Some(&admin)).await;
    assert_eq!(south.body["status"], "running");
    let alert = app
        .get(&format!("/api/v1/alerts/{south_alert}"), Some(&admin))
        .await;
    assert_eq!(alert.body["status"], "open", "{}", alert.body);
    app.finish().await;
}

/// **API2:2023 Broken Authentication**: weak token checks, sessions that cannot be ended, and
/// unlimited guessing. Access tokens are HS256 JWTs checked as RFC 8725 asks: one algorithm
/// (`alg: none` and others refused), `typ: at+jwt`, signature, issuer, audience, expiry and
/// not-before; they name their session, which is read on every request. A refresh token works
/// once, and presenting a used one again ends the whole session (OAuth 2.0 Security BCP).
/// Password and second-factor guesses count against the same per-account limits and are
/// refused with 429 before any hash is computed. In depth: `api::tokens_with_*`,
/// `ratelimit::login_*`, and fb-app's token and session tests.
#[tokio::test]
async fn api2_broken_authentication_tokens_refresh_reuse_and_guessing() {
    let app = TestApp::new().await;
    let vera = app.token_for("vera", Role::Viewer).await;
    let me = app.get("/api/v1/auth/me", Some(&vera)).await;
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({
        "iss": "factorybrain", "aud": "factorybrain-api", "sub": me.body["id"],
        "sid": me.body["session_id"],
        "iat": now, "nbf": now, "exp": now + 600, "jti": uuid::Uuid::now_v7(),
    });
    let hs256 = Some(jsonwebtoken::Algorithm::HS256);
    let typed = || json!({"typ": "at+jwt"});
    // The claims as the server signs them are accepted: each refusal below is about the one
    // thing changed.
    let genuine = forge(typed(), claims.clone(), hs256);
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&genuine)).await.status,
        StatusCode::OK
    );
    let with = |name: &str, value: Value| {
        let mut changed = claims.clone();
        changed[name] = value;
        forge(typed(), changed, hs256)
    };
    let attacker_key = jsonwebtoken::EncodingKey::from_secret(b"a-guess-at-the-server-signing-key");
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    for (what, token) in [
        ("expired", with("exp", json!(now - 60))),
        ("wrong audience", with("aud", json!("another-api"))),
        ("wrong issuer", with("iss", json!("someone-else"))),
        (
            "alg none",
            forge(
                json!({"alg": "none", "typ": "at+jwt"}),
                claims.clone(),
                None,
            ),
        ),
        (
            "forged signature",
            jsonwebtoken::encode(&header, &claims, &attacker_key).unwrap(),
        ),
        ("untyped", forge(json!({}), claims.clone(), hs256)),
    ] {
        let r = app.get("/api/v1/auth/me", Some(&token)).await;
        assert_eq!(
            (r.status, r.code()),
            (StatusCode::UNAUTHORIZED, "invalid_token"),
            "{what}: {}",
            r.body
        );
    }

    // A refresh token works once; its reuse ends the session, tokens already issued included.
    let vera_login = json!({"username": "vera", "password": "vera-password-123"});
    let login = app.post("/api/v1/auth/login", None, vera_login).await;
    let first_refresh = login.body["refresh_token"].clone();
    let refresh = |token: Value| {
        app.post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": token}),
        )
    };
    let refreshed = refresh(first_refresh.clone()).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    let access = refreshed.body["access_token"].as_str().unwrap().to_owned();
    let me = |token: String| {
        let app = &app;
        async move { app.get("/api/v1/auth/me", Some(&token)).await }
    };
    assert_eq!(me(access.clone()).await.status, StatusCode::OK);
    let reused = refresh(first_refresh).await;
    assert_code(&reused, StatusCode::UNAUTHORIZED, "refresh_token_reused");
    assert_code(
        &me(access.clone()).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );
    let next = refresh(refreshed.body["refresh_token"].clone()).await;
    assert_eq!(next.status, StatusCode::UNAUTHORIZED, "{}", next.body);
    let other_session = me(vera.clone()).await;
    assert_eq!(
        other_session.status,
        StatusCode::OK,
        "the user's other sessions go on"
    );

    // Guessing a password from one address: five tries for one account, then 429.
    for _ in 0..5 {
        let wrong = login_from(&app, "203.0.113.7", "vera", "guess-123456").await;
        assert_code(&wrong, StatusCode::UNAUTHORIZED, "invalid_credentials");
    }
    let held = login_from(&app, "203.0.113.7", "vera", "vera-password-123").await;
    assert_code(&held, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(header_of(&held, "retry-after").parse::<u64>().unwrap() >= 1);

    // Guessing a second factor with the password known: the code guesses count against the
    // account's budget of code checks, five in five minutes (the enrolment took one).
    app.admin_token().await;
    let challenge = admin_challenge(&app, "203.0.113.8").await;
    for _ in 0..4 {
        let wrong = guess_code(&app, "203.0.113.8", &challenge).await;
        assert_code(&wrong, StatusCode::UNAUTHORIZED, "mfa_code_invalid");
    }
    let held = guess_code(&app, "203.0.113.8", &challenge).await;
    assert_code(&held, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let limits = header_of(&held, "ratelimit");
    assert!(
        limits.contains("\"second_factor_per_user\";r=0"),
        "{limits}"
    );
    app.finish().await;
}

/// The admin's password login from `ip`: the challenge for the second factor.
async fn admin_challenge(app: &TestApp, ip: &str) -> String {
    let r = login_from(app, ip, "admin", &app.admin_password).await;
    let challenge = r.body["mfa_token"].as_str();
    challenge.unwrap_or_else(|| panic!("{}", r.body)).to_owned()
}

/// A wrong code for the admin's `challenge`, sent from `ip`.
async fn guess_code(app: &TestApp, ip: &str, challenge: &str) -> Response {
    let guess = json!({"mfa_token": challenge, "code": app.wrong_code("admin")});
    let verify = "/api/v1/auth/mfa/verify";
    app.call_from(peer(ip), Method::POST, verify, None, Some(guess))
        .await
}

/// Every string in a JSON document, keys and values, with the path to it.
fn strings(value: &Value, path: &str, into: &mut Vec<(String, String)>) {
    match value {
        Value::String(s) => into.push((path.to_owned(), s.clone())),
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                strings(item, &format!("{path}[{i}]"), into);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let at = format!("{path}.{key}");
                into.push((at.clone(), key.clone()));
                strings(item, &at, into);
            }
        }
        _ => {}
    }
}

/// **API3:2023 Broken Object Property Level Authorization**: a caller reads or writes a property
/// of an object it may not (mass assignment, excessive data exposure). Every request body
/// refuses fields it does not know (`deny_unknown_fields`, checked over the whole OpenAPI
/// document by a test in fb-http), so no body carries a `role`, `sites` or read-only field;
/// which fields a machine patch may touch decides the permission it needs; nobody changes their
/// own role or sites; and answers carry no password hash, key hash, TOTP secret or recovery
/// code (only their one-time display at creation). In depth: `scopes::no_body_carries_*`,
/// `scopes::user_access_changes_follow_the_rules`, `machines::operators_edit_*`.
#[tokio::test]
async fn api3_broken_object_property_level_authorization_no_field_beyond_ones_rights() {
    let app = TestApp::new().await;
    let admin = admin_with_press(&app).await;
    let viewer = app.token_for("vic", Role::Viewer).await;
    let operator = app.token_for("ola", Role::Operator).await;

    // A viewer cannot set a role, its own or anyone's, nor slip one into a body it may send.
    let r = app
        .patch("/api/v1/users/vic", Some(&viewer), json!({"role": "admin"}))
        .await;
    assert_code(&r, StatusCode::FORBIDDEN, "permission_denied");
    let r = app
        .post(
            "/api/v1/auth/password",
            Some(&viewer),
            json!({"current_password": "vic-password-123", "new_password": "a-new-password-456", "role": "admin"}),
        )
        .await;
    assert_code(&r, StatusCode::BAD_REQUEST, "invalid_json");
    assert_eq!(r.body["error"]["details"][0]["field"], "role");
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&viewer)).await.body["role"],
        "viewer"
    );

    // An operator changes a machine's operational fields, not its identity, nor what
    // detection computes.
    let patch = |body: Value| app.patch("/api/v1/machines/press-01", Some(&operator), body);
    assert_eq!(
        patch(json!({"status": "maintenance"})).await.status,
        StatusCode::OK
    );
    let renamed = patch(json!({"name": "Renamed"})).await;
    assert_code(&renamed, StatusCode::FORBIDDEN, "permission_denied");
    assert!(
        renamed.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("plant.manage")
    );
    let health = patch(json!({"health_score": 100})).await;
    assert_code(&health, StatusCode::BAD_REQUEST, "invalid_json");
    assert_eq!(health.body["error"]["details"][0]["field"], "health_score");

    // Nobody changes their own role, not even an admin.
    let own = app
        .patch(
            "/api/v1/users/admin",
            Some(&admin),
            json!({"role": "viewer"}),
        )
        .await;
    assert_code(&own, StatusCode::FORBIDDEN, "own_access_change");

    // Secrets are shown once when made, and never in any answer after.
    let historian = json!({"name": "historian", "role": "viewer"});
    let key = post_for(&app, "/api/v1/api_keys", &admin, historian, "key").await;
    let press = json!({"name": "press-01", "machine": "press-01"});
    let device = post_for(&app, "/api/v1/devices", &admin, press, "password").await;
    let sam = app.token_for("sam", Role::Viewer).await;
    let totp_secret = post_for(&app, "/api/v1/auth/mfa/totp", &sam, json!({}), "secret").await;
    let confirmed = app
        .post(
            "/api/v1/auth/mfa/totp/confirm",
            Some(&sam),
            json!({"code": crate::support::totp_code(&totp_secret, 0)}),
        )
        .await;
    let recovery_code = confirmed.body["recovery_codes"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let key_secret = key.splitn(3, '_').nth(2).unwrap().to_owned();
    let secrets = [
        key.as_str(),
        key_secret.as_str(),
        device.as_str(),
        totp_secret.as_str(),
        recovery_code.as_str(),
        "sam-password-123",
        app.admin_password.as_str(),
    ];
    let reads = [
        ("/api/v1/auth/me", &sam),
        ("/api/v1/auth/mfa", &sam),
        ("/api/v1/auth/sessions", &sam),
        ("/api/v1/users", &admin),
        ("/api/v1/users/sam/sessions?all=true", &admin),
        ("/api/v1/api_keys", &admin),
        ("/api/v1/devices", &admin),
        ("/api/v1/audit?limit=1000", &admin),
    ];
    for (path, token) in reads {
        let r = app.get(path, Some(token)).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
        let mut found = Vec::new();
        strings(&r.body, "", &mut found);
        for (at, text) in found {
            // Names of stored credentials; the audit chain's own hashes are none.
            let lower = text.to_ascii_lowercase();
            let chain_hash = path.starts_with("/api/v1/audit")
                && (at.ends_with("].hash") || at.ends_with("].prev_hash"));
            assert!(
                chain_hash
                    || !(lower.contains("hash")
                        || lower.contains("secret")
                        || lower.contains("$argon2")),
                "{path} {at}: {text}"
            );
            assert!(
                !secrets.iter().any(|s| text.contains(s)),
                "{path} {at} carries a secret"
            );
        }
    }
    app.finish().await;
}

/// **API4:2023 Unrestricted Resource Consumption**: requests that cost the server without
/// bound. Every dimension has a limit with its own 4xx: body size (413 `payload_too_large`),
/// JSON nesting (400 `json_too_deep`, before parsing), points per query (400
/// `query_too_large`), requests per client and per principal (429 `rate_limited` with
/// `Retry-After`), event streams per principal (429 `too_many_connections`, before the
/// handshake) and time per request (504 `request_timeout`). In depth: `api::oversized_*`,
/// `hardening::json_nested_*`, `readings::query_limits_*`, `ratelimit.rs`, `events::one_stream_*`.
#[tokio::test]
async fn api4_unrestricted_resource_consumption_every_dimension_has_a_limit() {
    let app = TestApp::with_env(vec![
        ("FB__SERVER__MAX_BODY_BYTES".into(), "4096".into()),
        ("FB__SERVER__MAX_JSON_DEPTH".into(), "8".into()),
        ("FB__QUERY__MAX_POINTS".into(), "2".into()),
        (
            "FB__EVENTS__MAX_CONNECTIONS_PER_PRINCIPAL".into(),
            "1".into(),
        ),
    ])
    .await;
    let admin = admin_with_press(&app).await;

    let big = json!({"username": "admin", "password": "x".repeat(8192)});
    let r = app.post("/api/v1/auth/login", None, big).await;
    assert_code(&r, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");

    let deep = format!(
        r#"{{"username":"a","password":{}"x"{}}}"#,
        "[".repeat(8),
        "]".repeat(8)
    );
    let r = app
        .request(raw_json_post("/api/v1/auth/login", None, Body::from(deep)))
        .await;
    assert_code(&r, StatusCode::BAD_REQUEST, "json_too_deep");

    let start = OffsetDateTime::now_utc() - time::Duration::minutes(10);
    let batch: Vec<Value> = (0..3)
        .map(|i| reading("press-01", start + time::Duration::seconds(i), 20.0))
        .collect();
    let stored = app
        .post("/api/v1/readings", Some(&admin), json!(batch))
        .await;
    assert_eq!(stored.body["accepted"], 3, "{}", stored.body);
    let r = app
        .get(
            "/api/v1/machines/press-01/readings?sensor=temperature",
            Some(&admin),
        )
        .await;
    assert_code(&r, StatusCode::BAD_REQUEST, "query_too_large");

    let addr = serve(&app).await;
    let (_stream, _) = open_ok(addr, Handshake::bearer(&admin)).await;
    assert_eq!(
        refused(addr, Handshake::bearer(&admin)).await,
        (StatusCode::TOO_MANY_REQUESTS, "too_many_connections".into())
    );
    app.finish().await;

    // Requests per principal (the per-address limit works alike, see ratelimit.rs).
    let limited = TestApp::with_env(vec![
        ("FB__RATE_LIMITS__PER_PRINCIPAL__BURST".into(), "3".into()),
        (
            "FB__RATE_LIMITS__PER_PRINCIPAL__PERIOD_SECS".into(),
            "3600".into(),
        ),
    ])
    .await;
    let viewer = limited.token_for("vera", Role::Viewer).await;
    for _ in 0..3 {
        assert_eq!(
            limited.get("/api/v1/machines", Some(&viewer)).await.status,
            StatusCode::OK
        );
    }
    let r = limited.get("/api/v1/machines", Some(&viewer)).await;
    assert_code(&r, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(header_of(&r, "retry-after").parse::<u64>().unwrap() >= 1);
    limited.finish().await;

    // Time: a request whose body never ends is cut off (a slow-loris client).
    let patient = TestApp::with_env(vec![(
        "FB__SERVER__REQUEST_TIMEOUT_SECS".into(),
        "1".into(),
    )])
    .await;
    let never_ends = futures::stream::pending::<Result<axum::body::Bytes, std::io::Error>>();
    let r = patient
        .request(raw_json_post(
            "/api/v1/auth/login",
            None,
            Body::from_stream(never_ends),
        ))
        .await;
    assert_code(&r, StatusCode::GATEWAY_TIMEOUT, "request_timeout");
    patient.finish().await;
}

/// **API5:2023 Broken Function Level Authorization**: a caller reaches a function meant for a
/// more privileged role. Every route declares one permission in the route table and its guard
/// checks it before the handler runs (and every use case checks it again); the role →
/// permission table is `Role::allows`. Refusals are 403 `permission_denied` and recorded in
/// the audit log. In depth: `access::each_role_passes_the_access_check_exactly_where_*`, which
/// walks every route with every role.
#[tokio::test]
async fn api5_broken_function_level_authorization_roles_reach_only_their_routes() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let operator = app.token_for("otto", Role::Operator).await;
    let supervisor = app.token_for("sue", Role::Supervisor).await;
    let operator_key = post_for(
        &app,
        "/api/v1/api_keys",
        &admin,
        json!({"name": "line gateway", "role": "operator"}),
        "key",
    )
    .await;
    let admin_routes = [
        (Method::GET, "/api/v1/users", None),
        (
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "mallory", "role": "admin"})),
        ),
        (Method::POST, "/api/v1/users/admin/disable", None),
        (Method::GET, "/api/v1/api_keys", None),
        (
            Method::POST,
            "/api/v1/api_keys",
            Some(json!({"name": "mine", "role": "admin"})),
        ),
        (Method::GET, "/api/v1/devices", None),
        (
            Method::POST,
            "/api/v1/devices",
            Some(json!({"name": "rogue"})),
        ),
        (Method::GET, "/api/v1/audit", None),
        (
            Method::POST,
            "/api/v1/machines",
            Some(machine("rogue-press", "north")),
        ),
        (Method::DELETE, "/api/v1/machines/any-press", None),
    ];
    for caller in [&operator, &operator_key] {
        for (method, path, body) in &admin_routes {
            let r = app
                .call(method.clone(), path, Some(caller), body.clone())
                .await;
            assert_code(&r, StatusCode::FORBIDDEN, "permission_denied");
        }
    }
    // A supervisor reads users but manages none.
    assert_eq!(
        app.get("/api/v1/users", Some(&supervisor)).await.status,
        StatusCode::OK
    );
    for (method, path, body) in [
        (
            Method::POST,
            "/api/v1/users",
            Some(json!({"username": "mallory", "role": "viewer"})),
        ),
        (
            Method::PATCH,
            "/api/v1/users/otto",
            Some(json!({"role": "admin"})),
        ),
        (Method::POST, "/api/v1/users/otto/disable", None),
        (Method::POST, "/api/v1/users/admin/mfa/reset", None),
    ] {
        let r = app.call(method, path, Some(&supervisor), body).await;
        assert_code(&r, StatusCode::FORBIDDEN, "permission_denied");
    }
    // Nothing happened, and each refusal is on record.
    let users = app.get("/api/v1/users", Some(&admin)).await;
    assert!(!users.body.to_string().contains("mallory"));
    let denied = app
        .get(
            "/api/v1/audit?action=user.create&outcome=denied&limit=100",
            Some(&admin),
        )
        .await;
    assert_eq!(
        denied.body["records"].as_array().unwrap().len(),
        3,
        "{}",
        denied.body
    );
    app.finish().await;
}

/// **API6:2023 Unrestricted Access to Sensitive Business Flows**: a flow that hurts the
/// business when automated at scale. Today that is logging in: password and second-factor
/// guesses for one account are limited per address and per account from any address, so a
/// guesser spread over many addresses gains nothing (and the account's own tokens and API
/// keys keep working). Approving purchase orders, the flow with money behind it, comes with
/// issue #7 behind confidence gates and `orders.approve`; its test belongs here then.
#[tokio::test]
async fn api6_sensitive_business_flows_login_guessing_is_held_across_addresses() {
    let app = TestApp::with_env(vec![
        ("FB__RATE_LIMITS__LOGIN_PER_USER__BURST".into(), "6".into()),
        (
            "FB__RATE_LIMITS__LOGIN_PER_USER__PERIOD_SECS".into(),
            "3600".into(),
        ),
    ])
    .await;
    // The admin's enrolment (a login and a code) and the attacker's one login with the stolen
    // password take two of the account's six logins and one of its five code checks.
    let admin = app.admin_token().await;
    let challenge = admin_challenge(&app, "198.51.100.1").await;
    // One code guess from each of many addresses: no address is ever near its own limits.
    let mut answers = Vec::new();
    for i in 0..6 {
        let r = guess_code(&app, &format!("198.51.100.{}", 10 + i), &challenge).await;
        answers.push((r.status, r.code().to_owned()));
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            let limits = header_of(&r, "ratelimit");
            assert!(
                limits.contains("\"second_factor_per_user\";r=0"),
                "{limits}"
            );
        }
    }
    let wrong = (StatusCode::UNAUTHORIZED, "mfa_code_invalid".to_owned());
    let held = (StatusCode::TOO_MANY_REQUESTS, "rate_limited".to_owned());
    let expected = [&wrong, &wrong, &wrong, &wrong, &held, &held].map(Clone::clone);
    assert_eq!(answers, expected);
    // Passwords likewise: one guess from each of many addresses, then even the right one is
    // held.
    let mut answers = Vec::new();
    for i in 0..4 {
        let r = login_from(
            &app,
            &format!("198.51.100.{}", 50 + i),
            "admin",
            "guess-123456",
        )
        .await;
        answers.push((r.status, r.code().to_owned()));
    }
    let wrong = (StatusCode::UNAUTHORIZED, "invalid_credentials".to_owned());
    assert_eq!(answers, [&wrong, &wrong, &wrong, &wrong].map(Clone::clone));
    let r = login_from(&app, "198.51.100.99", "admin", &app.admin_password).await;
    assert_eq!((r.status, r.code().to_owned()), held);
    let limits = header_of(&r, "ratelimit");
    assert!(limits.contains("\"login_per_user\";r=0"), "{limits}");
    // The account's session in use is not held back, and other accounts log in.
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&admin)).await.status,
        StatusCode::OK
    );
    app.token_for("vera", Role::Viewer).await;
    app.finish().await;
}

/// What `factorybrain config check` (the settings as `serve` loads them, through
/// `Settings::load`) says of these environment variables: its exit code and its report.
fn config_check(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_factorybrain"))
        .args(["config", "check"])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&output.stdout) + String::from_utf8_lossy(&output.stderr);
    (output.status.code(), report.into_owned())
}

/// **API7:2023 Server Side Request Forgery**: the server fetches a URL someone else chose.
/// FactoryBrain connects only to URLs from its settings (MQTT broker, Redis, PostgreSQL), and
/// none from API input yet. Each is checked when the settings load (`fb_outbound::UrlPolicy`):
/// only the schemes its client speaks, and never a link-local or cloud metadata address (in
/// any spelling), an unspecified, multicast or reserved one; the error names the key, and
/// the server does not start. Any URL ever taken from input will pass
/// `UrlPolicy::public_only()` and `resolve_checked` before each connection. In depth:
/// `fb-server`'s `settings::urls` tests and `fb-outbound`'s `url` tests.
#[test]
fn api7_server_side_request_forgery_every_url_from_settings_is_checked() {
    let metadata = [
        ("FB__MQTT__URL", "mqtt://169.254.169.254:1883"),
        ("FB__RATE_LIMITS__REDIS_URL", "redis://[fd00:ec2::254]:6379"),
        ("FB__STORAGE__URL", "postgres://fb:pw@0xa9fea9fe/plant"),
    ];
    let (code, report) = config_check(&metadata);
    assert_eq!(code, Some(2), "{report}");
    for key in ["mqtt.url", "rate_limits.redis_url", "storage.url"] {
        let line = report.lines().find(|l| l.trim_start().starts_with(key));
        assert!(
            line.is_some_and(|l| l.contains("link-local") || l.contains("metadata")),
            "{key}: {report}"
        );
    }
    assert!(!report.contains("fb:pw"), "a URL's password is never shown");
    let schemes = [
        ("FB__MQTT__URL", "http://broker.plant.lan"),
        ("FB__RATE_LIMITS__REDIS_URL", "file:///etc/passwd"),
    ];
    let (code, report) = config_check(&schemes);
    assert_eq!(code, Some(2), "{report}");
    for key in ["mqtt.url", "rate_limits.redis_url"] {
        let line = report.lines().find(|l| l.trim_start().starts_with(key));
        assert!(
            line.is_some_and(|l| l.contains("is not allowed")),
            "{key}: {report}"
        );
    }
    let (code, report) = config_check(&[("FB__MQTT__URL", "mqtt://10.0.4.2:1883")]);
    assert_eq!(code, Some(0), "the plant's own network is fine: {report}");
}

/// The `kid` (key id) in an access token's header.
fn key_id(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// **API8:2023 Security Misconfiguration**: insecure defaults, missing hardening, verbose
/// errors. There is no default secret: every installation generates its own token signing
/// key and first admin password, `config example` ships every secret empty, and the embedded
/// broker refuses anonymous devices unless told otherwise. Every answer (API, errors, probes)
/// carries the security headers, and the dashboard's pages will carry
/// `DASHBOARD_CONTENT_SECURITY_POLICY`; no CORS header invites other origins; 5xx bodies say
/// nothing of the internals; methods a route does not have are refused. In depth:
/// `hardening::every_answer_carries_*`, `devices::embedded`, `settings` tests.
#[tokio::test]
async fn api8_security_misconfiguration_no_default_secrets_and_hardened_answers() {
    let generated = || TestApp::with_env(vec![("FB__AUTH__JWT_SECRET".into(), String::new())]);
    let (one, two) = (generated().await, generated().await);
    assert_ne!(one.admin_password, two.admin_password);
    let token = one.admin_token().await;
    let other = two.admin_token().await;
    assert_ne!(
        key_id(&token),
        key_id(&other),
        "each installation has its own signing key"
    );
    assert_code(
        &two.get("/api/v1/auth/me", Some(&token)).await,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
    );
    two.finish().await;

    let example = std::process::Command::new(env!("CARGO_BIN_EXE_factorybrain"))
        .args(["config", "example"])
        .output()
        .unwrap();
    let example: Value =
        serde_saphyr::from_str(&String::from_utf8(example.stdout).unwrap()).unwrap();
    for (section, key) in [
        ("auth", "jwt_secret"),
        ("auth", "jwt_previous_secret"),
        ("storage", "url"),
        ("rate_limits", "redis_url"),
        ("mqtt", "password"),
    ] {
        assert_eq!(example[section][key], "", "{section}.{key} ships empty");
    }
    assert_eq!(example["mqtt"]["embedded_allow_anonymous"], false);

    // Security headers on an API answer, an error, a probe; no CORS welcome for a stranger.
    let app = one;
    let evil = "https://evil.example";
    let answers = [
        app.request(
            Request::get("/api/v1/auth/me")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .header(header::ORIGIN, evil)
                .body(Body::empty())
                .unwrap(),
        )
        .await,
        app.get("/api/v1/machines/nothing-here", Some(&token)).await,
        app.get("/healthz", None).await,
    ];
    for r in &answers {
        assert_eq!(header_of(r, "x-content-type-options"), "nosniff");
        assert_eq!(header_of(r, "x-frame-options"), "DENY");
        assert_eq!(
            header_of(r, "content-security-policy"),
            fb_http::API_CONTENT_SECURITY_POLICY
        );
        assert!(
            r.headers
                .keys()
                .all(|name| !name.as_str().starts_with("access-control-"))
        );
    }
    assert!(fb_http::DASHBOARD_CONTENT_SECURITY_POLICY.contains("frame-ancestors 'none'"));
    assert!(!fb_http::DASHBOARD_CONTENT_SECURITY_POLICY.contains("unsafe-inline"));

    // Methods a route does not have: refused, in the error format, with nothing echoed.
    for method in ["OPTIONS", "TRACE", "PUT", "CONNECT"] {
        let r = app
            .request(
                Request::builder()
                    .method(method)
                    .uri("/api/v1/auth/me")
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .header(header::ORIGIN, evil)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_code(&r, StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
        assert!(
            !r.body.to_string().contains(&token),
            "{method} echoes the request"
        );
    }

    // A server error tells the client nothing of its cause: here, the store is gone.
    app.storage.health.close().await;
    let r = app.get("/api/v1/machines", Some(&token)).await;
    assert!(r.status.is_server_error(), "{}: {}", r.status, r.body);
    let text = r.body.to_string().to_ascii_lowercase();
    for internal in ["sqlx", "sqlite", "pool", "closed", "panicked", ".rs"] {
        assert!(!text.contains(internal), "{internal} in {text}");
    }
    assert_eq!(r.body["error"]["details"], json!([]));

    #[cfg(feature = "embedded-broker")]
    {
        use crate::devices::embedded::{connects, start_broker};
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let env = vec![
            ("FB__MQTT__EMBEDDED_BROKER".to_owned(), "true".to_owned()),
            (
                "FB__MQTT__EMBEDDED_LISTEN".to_owned(),
                format!("127.0.0.1:{port}"),
            ),
        ];
        let broker_app = TestApp::with_env(env.clone()).await;
        let (settings, _broker) = start_broker(&broker_app, env);
        assert!(!settings.mqtt.embedded_allow_anonymous);
        assert!(
            !connects(
                port,
                &format!("anon-{}", uuid::Uuid::now_v7().simple()),
                None
            )
            .await,
            "an anonymous device must not connect"
        );
        broker_app.finish().await;
    }
}

/// **API9:2023 Improper Inventory Management**: forgotten routes, versions and hosts nobody
/// documents or guards. The route table is the only source of routes; the OpenAPI document
/// served at `/api/v1/openapi.json` is generated from it, security included, so every route
/// is documented with the credential it needs and nothing undocumented answers. All of the
/// API is under `/api/v1`; only the probes and `/metrics` are outside, and no other version
/// exists. In depth: fb-http's `openapi` tests (also against the committed `schema/openapi.json`).
#[tokio::test]
async fn api9_improper_inventory_management_the_document_is_the_whole_api() {
    let app = TestApp::new().await;
    let served = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(served.status, StatusCode::OK);
    let paths = served.body["paths"].as_object().unwrap();
    let mut documented = BTreeSet::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            documented.insert((
                method.to_ascii_uppercase(),
                path.clone(),
                operation["security"].to_string(),
            ));
        }
    }
    let routed: BTreeSet<_> = routes::table()
        .into_iter()
        .map(|route| {
            let security = match route.access {
                Access::Public => json!([]),
                Access::Requires(_) => json!([{"bearer": []}]),
            }
            .to_string();
            (route.method.to_string(), route.path.to_owned(), security)
        })
        .collect();
    assert_eq!(
        documented, routed,
        "the document and the route table differ"
    );
    let outside: BTreeSet<&str> = routed
        .iter()
        .map(|(_, path, _)| path.as_str())
        .filter(|path| !path.starts_with("/api/v1/"))
        .collect();
    assert_eq!(outside, BTreeSet::from(["/healthz", "/readyz", "/metrics"]));
    let admin = app.admin_token().await;
    for undocumented in [
        "/api/v2/machines",
        "/api/machines",
        "/api/v0/users",
        "/admin",
        "/debug/vars",
    ] {
        let r = app.get(undocumented, Some(&admin)).await;
        assert_code(&r, StatusCode::NOT_FOUND, "route_not_found");
    }
    app.finish().await;
}

/// One complete RESP command (an array of bulk strings) at the start of `buffer`: its name
/// and its length in bytes.
fn resp_command(buffer: &[u8]) -> Option<(Vec<u8>, usize)> {
    fn line(buffer: &[u8], at: &mut usize) -> Option<usize> {
        let rest = buffer.get(*at..)?;
        let end = rest.windows(2).position(|w| w == b"\r\n")?;
        let number = std::str::from_utf8(rest.get(1..end)?).ok()?.parse().ok()?;
        *at += end + 2;
        Some(number)
    }
    let mut at = 0;
    let count = line(buffer, &mut at)?;
    let mut name = None;
    for _ in 0..count {
        let len = line(buffer, &mut at)?;
        let argument = buffer.get(at..at + len)?;
        name.get_or_insert_with(|| argument.to_ascii_uppercase());
        at += len + 2;
    }
    (buffer.len() >= at).then_some((name?, at))
}

/// A server on a local port that speaks enough of Redis' protocol to be connected to: it
/// answers every command with OK, and the rate-limit script with `answer`. Counts the scripts
/// it was asked to run.
async fn fake_redis(answer: &'static [u8]) -> (u16, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let scripts = Arc::new(AtomicUsize::new(0));
    let counted = scripts.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut pending = Vec::new();
                let mut chunk = [0u8; 4096];
                while let Ok(read) = socket.read(&mut chunk).await {
                    if read == 0 {
                        return;
                    }
                    pending.extend_from_slice(&chunk[..read]);
                    while let Some((name, used)) = resp_command(&pending) {
                        pending.drain(..used);
                        let reply: &[u8] = if name.starts_with(b"EVAL") {
                            counted.fetch_add(1, Ordering::SeqCst);
                            answer
                        } else {
                            b"+OK\r\n"
                        };
                        if socket.write_all(reply).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (port, scripts)
}

/// **API10:2023 Unsafe Consumption of APIs**: trusting what other systems send. What
/// FactoryBrain takes from outside is checked like user input: Redis' rate-limit answers are
/// re-derived with fb-core's GCRA and anything that does not add up (or does not parse) makes
/// the node limit on its own instead of trusting it; MQTT and HTTP payloads are parsed
/// strictly, and what cannot be read is refused and kept whole as a dead letter with its
/// source, never half-applied. In depth: `ratelimit::with_redis_*`, `mqtt.rs`,
/// `readings::malformed_*`, the embedded broker's device checks in `devices.rs`.
#[tokio::test]
async fn api10_unsafe_consumption_of_apis_answers_and_payloads_from_outside_are_checked() {
    // A Redis that answers nonsense: "allowed", with numbers by which the bucket is empty; or
    // a value that is no answer at all. A limiter that trusted it would never refuse.
    for nonsense in [
        &b"*3\r\n:1\r\n:1000000\r\n:9000000000000000000\r\n"[..],
        &b"$8\r\nnonsense\r\n"[..],
    ] {
        let (port, scripts) = fake_redis(nonsense).await;
        let app = TestApp::with_env(vec![
            (
                "FB__RATE_LIMITS__REDIS_URL".into(),
                format!("redis://127.0.0.1:{port}"),
            ),
            ("FB__RATE_LIMITS__PER_IP__BURST".into(), "3".into()),
            ("FB__RATE_LIMITS__PER_IP__PERIOD_SECS".into(), "3600".into()),
        ])
        .await;
        let client = peer("203.0.113.70");
        let openapi = || app.call_from(client, Method::GET, "/api/v1/openapi.json", None, None);
        for _ in 0..3 {
            assert_eq!(openapi().await.status, StatusCode::OK);
        }
        assert_code(
            &openapi().await,
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
        );
        assert!(scripts.load(Ordering::SeqCst) > 0, "Redis was asked");
        app.finish().await;
    }

    // HTTP: a payload that cannot be read is refused whole and kept as a dead letter.
    let prefix = format!("fbtest-{}", uuid::Uuid::now_v7().simple());
    let app = TestApp::with_env(vec![("FB__MQTT__TOPIC_PREFIX".into(), prefix.clone())]).await;
    let admin = admin_with_press(&app).await;
    let broken = r#"[{"machine":"press-01","sensor":"temperature","value":"#;
    let r = app
        .request(raw_json_post(
            "/api/v1/readings",
            Some(&admin),
            Body::from(broken),
        ))
        .await;
    assert_code(&r, StatusCode::BAD_REQUEST, "invalid_json");

    // MQTT (through the Mosquitto on this machine): a malformed message likewise.
    let topic = format!("{prefix}/north/press-01/temperature");
    let options = crate::mqtt::ingest_options(&prefix, &format!("{prefix}-ingest"));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let ingest = tokio::spawn(fb_mqtt::run(options, app.state.ingest.clone(), stopped));
    let publisher_options =
        rumqttc::MqttOptions::new(format!("{prefix}-device"), "127.0.0.1", 1883);
    let (publisher, mut events) = rumqttc::AsyncClient::new(publisher_options, 10);
    let pump = tokio::spawn(async move { while events.poll().await.is_ok() {} });
    // Messages published before ingest has subscribed are not delivered: publish until one is.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let letter = loop {
        publisher
            .publish(
                &topic,
                rumqttc::QoS::AtLeastOnce,
                false,
                r#"{"value": 21.5"#,
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let letters = app
            .get("/api/v1/dead-letters?code=invalid_json", Some(&admin))
            .await;
        let found = letters.body["dead_letters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["source"] == format!("mqtt:{topic}"))
            .cloned();
        if let Some(letter) = found {
            break letter;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no MQTT dead letter arrived"
        );
    };
    let http_letter = app
        .get("/api/v1/dead-letters?code=invalid_json", Some(&admin))
        .await;
    assert!(
        http_letter.body["dead_letters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["source"] == "http"),
        "{}",
        http_letter.body
    );
    assert_eq!(letter["code"], "invalid_json");
    let latest = app
        .get("/api/v1/machines/press-01/latest", Some(&admin))
        .await;
    assert_eq!(
        latest.body["readings"],
        json!([]),
        "nothing half-applied: {}",
        latest.body
    );
    stop.send(true).unwrap();
    ingest.await.unwrap().unwrap();
    pump.abort();
    app.finish().await;
}
