//! The API's behaviour over a real store: login, tokens, API keys, errors, limits.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use serde_json::json;

use fb_core::identity::Role;

use crate::support::{TestApp, forge};

#[tokio::test]
async fn bootstrap_admin_logs_in_and_opens_a_protected_route() {
    let app = TestApp::new().await;
    let login = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"username": "admin", "password": app.admin_password}),
        )
        .await;
    assert_eq!(login.status, StatusCode::OK);
    assert_eq!(login.body["token_type"], "Bearer");
    assert_eq!(login.body["expires_in"], 3600);
    assert_eq!(login.body["must_change_password"], true);
    assert!(
        login.body["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("fbr_")
    );
    // Admins need a second factor: until it is enrolled, only their own account is theirs.
    assert_eq!(login.body["mfa_enrolment_required"], true);
    let token = login.body["access_token"].as_str().unwrap();

    let me = app.get("/api/v1/auth/me", Some(token)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["name"], "admin");
    assert_eq!(me.body["role"], "admin");
    assert_eq!(me.body["kind"], "user");
    assert_eq!(me.body["mfa_enrolment_required"], true);
    assert_eq!(
        me.body["permissions"],
        json!(["self.read", "self.password", "self.security"])
    );

    let refused = app.get("/api/v1/users", Some(token)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.code(), "mfa_enrolment_required");

    let enrolment = app
        .post("/api/v1/auth/mfa/totp", Some(token), json!({}))
        .await;
    assert_eq!(enrolment.status, StatusCode::OK);
    assert!(
        enrolment.body["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/factorybrain:admin?")
    );
    let secret = enrolment.body["secret"].as_str().unwrap();
    let right = crate::support::totp_code(secret, 0);
    let wrong = format!(
        "{:06}",
        (right.parse::<u32>().unwrap() + 500_000) % 1_000_000
    );
    let refused = app
        .post(
            "/api/v1/auth/mfa/totp/confirm",
            Some(token),
            json!({"code": wrong}),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.code(), "mfa_code_invalid");
    let confirmed = app
        .post(
            "/api/v1/auth/mfa/totp/confirm",
            Some(token),
            json!({"code": right}),
        )
        .await;
    assert_eq!(confirmed.status, StatusCode::OK, "{}", confirmed.body);
    assert_eq!(
        confirmed.body["recovery_codes"].as_array().unwrap().len(),
        10
    );

    let users = app.get("/api/v1/users", Some(token)).await;
    assert_eq!(users.status, StatusCode::OK);
    assert_eq!(users.body["users"][0]["username"], "admin");
    assert_eq!(users.body["users"][0]["mfa_enabled"], true);
    app.finish().await;
}

#[tokio::test]
async fn wrong_password_unknown_user_and_disabled_user_look_the_same() {
    let app = TestApp::new().await;
    app.token_for("olga", Role::Operator).await;
    app.post(
        "/api/v1/users/olga/disable",
        Some(&app.admin_token().await),
        json!({}),
    )
    .await;
    for (username, password) in [
        ("admin", "wrong-password-123"),
        ("nobody", "whatever-password"),
        ("olga", "olga-password-123"),
    ] {
        let r = app
            .post(
                "/api/v1/auth/login",
                None,
                json!({"username": username, "password": password}),
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{username}");
        assert_eq!(r.code(), "invalid_credentials");
        assert_eq!(r.body["error"]["message"], "invalid username or password");
    }
    app.finish().await;
}

#[tokio::test]
async fn missing_and_garbage_credentials_are_401_with_the_error_format() {
    let app = TestApp::new().await;
    let none = app.get("/api/v1/users", None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.code(), "missing_credentials");
    assert_eq!(
        none.headers[header::WWW_AUTHENTICATE],
        "Bearer realm=\"factorybrain\""
    );
    let request_id = none.headers["x-request-id"].to_str().unwrap();
    assert_eq!(none.body["error"]["request_id"], request_id);

    let garbage = app.get("/api/v1/users", Some("not-a-jwt")).await;
    assert_eq!(garbage.status, StatusCode::UNAUTHORIZED);
    assert_eq!(garbage.code(), "invalid_token");

    let basic = app
        .request(
            Request::get("/api/v1/users")
                .header(header::AUTHORIZATION, "Basic YWRtaW46YWRtaW4=")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(basic.code(), "missing_credentials");
    app.finish().await;
}

#[tokio::test]
async fn viewer_gets_403_on_admin_routes_but_reads_itself() {
    let app = TestApp::new().await;
    let viewer = app.token_for("vera", Role::Viewer).await;
    let r = app
        .post(
            "/api/v1/users",
            Some(&viewer),
            json!({"username": "eve", "role": "admin"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "permission_denied");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("users.manage")
    );
    assert_eq!(
        app.get("/api/v1/api_keys", Some(&viewer)).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        app.get("/metrics", Some(&viewer)).await.status,
        StatusCode::FORBIDDEN
    );
    let me = app.get("/api/v1/auth/me", Some(&viewer)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(
        me.body["permissions"],
        json!([
            "self.read",
            "self.password",
            "self.security",
            "plant.read",
            "tickets.read"
        ])
    );
    app.finish().await;
}

#[tokio::test]
async fn tokens_with_another_algorithm_or_alg_none_are_rejected() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let me = app.get("/api/v1/auth/me", Some(&admin)).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({
        "iss": "factorybrain", "aud": "factorybrain-api", "sub": me.body["id"],
        "sid": me.body["session_id"],
        "iat": now, "nbf": now, "exp": now + 600, "jti": uuid::Uuid::now_v7(),
    });
    // Sanity: the same claims signed the way the server signs are accepted, so the rejections
    // below are about the algorithm and nothing else.
    let genuine = forge(
        json!({"typ": "at+jwt"}),
        claims.clone(),
        Some(jsonwebtoken::Algorithm::HS256),
    );
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&genuine)).await.status,
        StatusCode::OK
    );

    for alg in [
        jsonwebtoken::Algorithm::HS384,
        jsonwebtoken::Algorithm::HS512,
    ] {
        let token = forge(json!({"typ": "at+jwt"}), claims.clone(), Some(alg));
        let r = app.get("/api/v1/auth/me", Some(&token)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{alg:?}");
        assert_eq!(r.code(), "invalid_token");
    }
    for alg in ["none", "None", "NONE"] {
        let token = forge(json!({"alg": alg, "typ": "at+jwt"}), claims.clone(), None);
        let r = app.get("/api/v1/auth/me", Some(&token)).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "alg {alg}");
        assert_eq!(r.code(), "invalid_token");
    }
    let untyped = forge(
        json!({}),
        claims.clone(),
        Some(jsonwebtoken::Algorithm::HS256),
    );
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&untyped)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let mut expired = claims.clone();
    expired["exp"] = json!(now - 3600);
    let expired = forge(
        json!({"typ": "at+jwt"}),
        expired,
        Some(jsonwebtoken::Algorithm::HS256),
    );
    let r = app.get("/api/v1/auth/me", Some(&expired)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    app.finish().await;
}

#[tokio::test]
async fn api_key_works_until_revoked() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let created = app
        .post(
            "/api/v1/api_keys",
            Some(&admin),
            json!({"name": "historian bridge", "role": "viewer"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let key = created.body["key"].as_str().unwrap().to_owned();
    let id = created.body["api_key"]["id"].as_str().unwrap().to_owned();
    assert!(key.starts_with("fbk_"));

    let me = app.get("/api/v1/auth/me", Some(&key)).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["kind"], "api_key");
    assert_eq!(me.body["role"], "viewer");
    assert_eq!(
        app.get("/api/v1/users", Some(&key)).await.status,
        StatusCode::FORBIDDEN
    );

    let listed = app.get("/api/v1/api_keys", Some(&admin)).await;
    let entry = &listed.body["api_keys"][0];
    assert_eq!(entry["id"], id.as_str());
    assert!(
        entry["last_used_at"].is_string(),
        "use is recorded: {entry}"
    );
    assert!(
        entry.get("secret_hash").is_none() && entry.get("key").is_none(),
        "no secret in lists"
    );

    let revoked = app
        .post(
            &format!("/api/v1/api_keys/{id}/revoke"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(revoked.status, StatusCode::OK);
    assert!(revoked.body["revoked_at"].is_string());
    let after = app.get("/api/v1/auth/me", Some(&key)).await;
    assert_eq!(after.status, StatusCode::UNAUTHORIZED);
    assert_eq!(after.code(), "invalid_api_key");
    let again = app
        .post(
            &format!("/api/v1/api_keys/{id}/revoke"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(again.code(), "api_key_revoked");

    // A key with the right prefix but a wrong secret is refused too.
    let (prefix, _) = key.rsplit_once('_').unwrap();
    let forged = format!("{prefix}_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&forged)).await.code(),
        "invalid_api_key"
    );
    app.finish().await;
}

#[tokio::test]
async fn disabling_a_user_ends_its_sessions_at_once_but_not_the_last_admin() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let operator = app.token_for("otto", Role::Operator).await;
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&operator)).await.status,
        StatusCode::OK
    );
    let disabled = app
        .post("/api/v1/users/otto/disable", Some(&admin), json!({}))
        .await;
    assert_eq!(disabled.status, StatusCode::OK);
    assert_eq!(disabled.body["disabled"], true);
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&operator)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let enabled = app
        .post("/api/v1/users/otto/enable", Some(&admin), json!({}))
        .await;
    assert_eq!(enabled.body["disabled"], false);
    // Disabling ended otto's sessions for good: enabling lets otto log in again, it does not
    // bring the old session back.
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&operator)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let again = app.login("otto", "otto-password-123").await;
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&again)).await.status,
        StatusCode::OK
    );

    let last = app
        .post("/api/v1/users/admin/disable", Some(&admin), json!({}))
        .await;
    assert_eq!(last.status, StatusCode::CONFLICT);
    assert_eq!(last.code(), "last_admin");
    let missing = app
        .post("/api/v1/users/ghost/disable", Some(&admin), json!({}))
        .await;
    assert_eq!(missing.code(), "user_not_found");
    app.finish().await;
}

#[tokio::test]
async fn create_user_validates_every_field_and_generates_passwords() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let bad = app
        .post(
            "/api/v1/users",
            Some(&admin),
            json!({"username": "Bad Name", "role": "viewer", "password": "short"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.code(), "invalid_field");
    let fields: Vec<_> = bad.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["username", "password"]);

    let unknown_role = app
        .post(
            "/api/v1/users",
            Some(&admin),
            json!({"username": "rita", "role": "root"}),
        )
        .await;
    assert_eq!(unknown_role.code(), "invalid_json");
    assert!(
        unknown_role.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("role")
    );
    let unknown_field = app
        .post(
            "/api/v1/users",
            Some(&admin),
            json!({"username": "rita", "role": "viewer", "admin": true}),
        )
        .await;
    assert_eq!(unknown_field.code(), "invalid_json");
    assert!(
        unknown_field.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("admin")
    );

    let created = app
        .post(
            "/api/v1/users",
            Some(&admin),
            json!({"username": "rita", "role": "supervisor"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let password = created.body["generated_password"].as_str().unwrap();
    assert_eq!(created.body["user"]["must_change_password"], true);
    app.login("rita", password).await;
    let taken = app
        .post(
            "/api/v1/users",
            Some(&admin),
            json!({"username": "rita", "role": "viewer"}),
        )
        .await;
    assert_eq!(taken.status, StatusCode::CONFLICT);
    assert_eq!(taken.code(), "username_taken");
    app.finish().await;
}

#[tokio::test]
async fn password_change_needs_the_current_password() {
    let app = TestApp::new().await;
    let token = app.token_for("paula", Role::Operator).await;
    let wrong = app
        .post(
            "/api/v1/auth/password",
            Some(&token),
            json!({"current_password": "nope-nope-nope", "new_password": "a much better secret"}),
        )
        .await;
    assert_eq!(wrong.code(), "invalid_credentials");
    let short = app
        .post(
            "/api/v1/auth/password",
            Some(&token),
            json!({"current_password": "paula-password-123", "new_password": "short"}),
        )
        .await;
    assert_eq!(short.code(), "invalid_field");
    let ok = app.post("/api/v1/auth/password", Some(&token), json!({"current_password": "paula-password-123", "new_password": "a much better secret"})).await;
    assert_eq!(ok.status, StatusCode::NO_CONTENT);
    app.login("paula", "a much better secret").await;
    app.finish().await;
}

#[tokio::test]
async fn unknown_routes_methods_and_bodies_use_the_error_format() {
    let app = TestApp::new().await;
    let missing = app.get("/api/v1/nothing-here", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "route_not_found");
    let wrong_method = app
        .call(Method::DELETE, "/api/v1/auth/login", None, None)
        .await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong_method.code(), "method_not_allowed");

    let not_json = app
        .request(
            Request::post("/api/v1/auth/login")
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("hi"))
                .unwrap(),
        )
        .await;
    assert_eq!(not_json.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(not_json.code(), "unsupported_media_type");
    let broken = app
        .request(
            Request::post("/api/v1/auth/login")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("{\"username\":"))
                .unwrap(),
        )
        .await;
    assert_eq!(broken.status, StatusCode::BAD_REQUEST);
    assert_eq!(broken.code(), "invalid_json");
    let missing_field = app
        .post("/api/v1/auth/login", None, json!({"username": "admin"}))
        .await;
    assert_eq!(missing_field.code(), "invalid_json");
    assert!(
        missing_field.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("password")
    );
    app.finish().await;
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = TestApp::with_env(vec![("FB__SERVER__MAX_BODY_BYTES".into(), "2048".into())]).await;
    let big = json!({"username": "admin", "password": "x".repeat(4096)});
    let r = app.post("/api/v1/auth/login", None, big).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "payload_too_large");
    app.finish().await;
}

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = TestApp::new().await;
    let given = app
        .request(
            Request::get("/healthz")
                .header("x-request-id", "plc-gateway-42")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(given.headers["x-request-id"], "plc-gateway-42");
    let unsafe_id = app
        .request(
            Request::get("/healthz")
                .header("x-request-id", "bad id\twith tab")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    let generated = unsafe_id.headers["x-request-id"].to_str().unwrap();
    let parsed = uuid::Uuid::parse_str(generated).unwrap();
    assert_eq!(parsed.get_version_num(), 7);
    app.finish().await;
}

#[tokio::test]
async fn health_readiness_and_draining() {
    let app = TestApp::new().await;
    assert_eq!(
        app.get("/healthz", None).await.body,
        json!({"status": "ok"})
    );
    let ready = app.get("/readyz", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.body["store"], "sqlite");
    app.state.start_draining();
    let draining = app.get("/readyz", None).await;
    assert_eq!(draining.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(draining.code(), "not_ready");
    assert_eq!(
        app.get("/healthz", None).await.status,
        StatusCode::OK,
        "liveness is unaffected"
    );
    app.finish().await;
}

#[tokio::test]
async fn readiness_fails_when_the_store_is_closed() {
    let app = TestApp::new().await;
    app.storage.health.close().await;
    let r = app.get("/readyz", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(r.code(), "not_ready");
}

#[tokio::test]
async fn metrics_show_request_and_store_histograms() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    app.get("/healthz", None).await;
    let r = app.get("/metrics", Some(&admin)).await;
    assert_eq!(r.status, StatusCode::OK);
    let text = r.body.as_str().unwrap();
    assert!(text.contains("fb_http_request_duration_seconds_bucket{method=\"GET\",route=\"/healthz\",status=\"200\""), "{text}");
    assert!(text.contains(
        "fb_http_requests_total{method=\"POST\",route=\"/api/v1/auth/login\",status=\"200\"}"
    ));
    assert!(text.contains("fb_store_query_duration_seconds_bucket{backend=\"sqlite\",query=\"identities.user_by_username\""));
    app.finish().await;
}

#[tokio::test]
async fn the_openapi_document_is_public_and_versioned() {
    let app = TestApp::new().await;
    let r = app.get("/api/v1/openapi.json", None).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body["openapi"], "3.1.0");
    assert!(r.body["paths"]["/api/v1/auth/login"]["post"].is_object());
    app.finish().await;
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn the_same_flow_runs_on_postgres() {
    let app = TestApp::postgres().await;
    assert_eq!(app.get("/readyz", None).await.body["store"], "postgres");
    let admin = app.admin_token().await;
    let created = app
        .post(
            "/api/v1/api_keys",
            Some(&admin),
            json!({"name": "scada", "role": "operator"}),
        )
        .await;
    let key = created.body["key"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&key)).await.body["role"],
        "operator"
    );
    let supervisor = app.token_for("pgsuper", Role::Supervisor).await;
    assert_eq!(
        app.get("/api/v1/users", Some(&supervisor)).await.status,
        StatusCode::OK
    );
    let viewer = app.token_for("pgviewer", Role::Viewer).await;
    assert_eq!(
        app.get("/api/v1/users", Some(&viewer)).await.status,
        StatusCode::FORBIDDEN
    );
    app.finish().await;
}

#[tokio::test]
async fn a_password_change_ends_older_sessions() {
    let app = TestApp::new().await;
    let old = app.token_for("sven", Role::Operator).await;
    // Tokens carry whole seconds; make sure the change happens in a later second than the login.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let changed = app
        .post("/api/v1/auth/password", Some(&old), json!({"current_password": "sven-password-123", "new_password": "an entirely new secret"}))
        .await;
    assert_eq!(changed.status, StatusCode::NO_CONTENT);
    let r = app.get("/api/v1/auth/me", Some(&old)).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("session has ended"),
        "{}",
        r.body
    );
    let fresh = app.login("sven", "an entirely new secret").await;
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&fresh)).await.status,
        StatusCode::OK
    );
    app.finish().await;
}

#[tokio::test]
async fn responses_are_never_cached() {
    let app = TestApp::new().await;
    let login = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"username": "admin", "password": app.admin_password}),
        )
        .await;
    assert_eq!(login.headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(
        app.get("/healthz", None).await.headers[header::CACHE_CONTROL],
        "no-store"
    );
    app.finish().await;
}

#[tokio::test]
async fn invented_http_methods_do_not_become_metric_labels() {
    let app = TestApp::new().await;
    let method = Method::from_bytes(b"BREW").unwrap();
    let r = app.call(method, "/healthz", None, None).await;
    assert_eq!(r.code(), "method_not_allowed");
    let metrics = app.get("/metrics", Some(&app.admin_token().await)).await;
    let text = metrics.body.as_str().unwrap();
    assert!(
        !text.contains("BREW"),
        "client-chosen method leaked into labels"
    );
    assert!(text.contains("method=\"OTHER\""), "{text}");
    app.finish().await;
}

/// A six-digit code must not be guessable by spreading tries over many addresses: wrong codes
/// count against the user, wherever they come from.
#[tokio::test]
async fn second_factor_guesses_are_counted_per_user_across_addresses() {
    let app = TestApp::new().await;
    app.admin_token().await; // enrols the admin's second factor
    let challenge = app
        .post(
            "/api/v1/auth/login",
            None,
            json!({"username": "admin", "password": app.admin_password}),
        )
        .await;
    let token = challenge.body["mfa_token"].as_str().unwrap().to_owned();
    let mut refused_at = None;
    for i in 0..10u8 {
        let peer: std::net::SocketAddr = format!("198.51.100.{}:4000", i + 1).parse().unwrap();
        let r = app
            .call_from(
                peer,
                Method::POST,
                "/api/v1/auth/mfa/verify",
                None,
                Some(json!({"mfa_token": token, "code": "000000"})),
            )
            .await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(r.code(), "rate_limited");
            assert!(
                r.headers["ratelimit-policy"]
                    .to_str()
                    .unwrap()
                    .contains("second_factor_per_user")
            );
            refused_at = Some(i);
            break;
        }
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    }
    // Five code checks in all: enrolment confirmed one, four guesses spent the rest.
    assert_eq!(refused_at, Some(4), "the user's budget is spent");
    app.finish().await;
}

/// The audit log and the metrics name every site's machines and users: a caller limited to
/// some sites reads neither.
#[tokio::test]
async fn callers_of_some_sites_read_neither_the_audit_log_nor_metrics() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let created = app
        .post(
            "/api/v1/users",
            Some(&admin),
            json!({"username": "site-admin", "role": "admin", "sites": ["plant-a"],
                   "password": "site-admin-password-123"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let scoped = app
        .enrolled_login("site-admin", "site-admin-password-123")
        .await;
    for path in ["/api/v1/audit", "/metrics"] {
        let r = app.get(path, Some(&scoped)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {}", r.body);
        assert_eq!(r.code(), "site_out_of_scope", "{path}");
        assert_eq!(
            app.get(path, Some(&admin)).await.status,
            StatusCode::OK,
            "{path}"
        );
    }
    app.finish().await;
}
