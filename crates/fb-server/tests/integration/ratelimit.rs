//! Rate limits through the real router and settings: per client address, per principal, login,
//! and shared between two nodes in the Redis on this machine (a key prefix per test).
//! Quotas refill over an hour, so no token comes back while a test runs.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;

use fb_core::identity::Role;

use crate::support::{Response, TestApp};

pub(crate) fn peer(ip: &str) -> SocketAddr {
    SocketAddr::new(ip.parse().unwrap(), 40_000)
}

fn header<'a>(r: &'a Response, name: &str) -> &'a str {
    r.headers
        .get(name)
        .map(|v| v.to_str().unwrap())
        .unwrap_or("")
}

/// Settings that shrink one policy to `burst` requests an hour.
fn small(policy: &str, burst: u32) -> Vec<(String, String)> {
    let upper = policy.to_ascii_uppercase();
    vec![
        (
            format!("FB__RATE_LIMITS__{upper}__BURST"),
            burst.to_string(),
        ),
        (
            format!("FB__RATE_LIMITS__{upper}__PERIOD_SECS"),
            "3600".into(),
        ),
    ]
}

/// The `t` (seconds until the quota is whole) of `policy` in a RateLimit field.
fn reset_secs(field: &str, policy: &str) -> u64 {
    let member = field
        .split(", ")
        .find(|m| m.starts_with(&format!("\"{policy}\";")))
        .unwrap_or_else(|| panic!("no {policy} in {field}"));
    member.rsplit_once(";t=").unwrap().1.parse().unwrap()
}

async fn get_from(app: &TestApp, ip: &str, path: &str, token: Option<&str>) -> Response {
    app.call_from(peer(ip), Method::GET, path, token, None)
        .await
}

async fn openapi_from(app: &TestApp, ip: &str) -> Response {
    get_from(app, ip, "/api/v1/openapi.json", None).await
}

#[tokio::test]
async fn exceeding_the_per_ip_limit_is_429_with_retry_after_and_ratelimit_fields() {
    let app = TestApp::with_env(small("per_ip", 3)).await;
    for remaining in [2, 1, 0] {
        let ok = openapi_from(&app, "203.0.113.1").await;
        assert_eq!(ok.status, StatusCode::OK);
        assert_eq!(header(&ok, "ratelimit-policy"), "\"per_ip\";q=3;w=3600");
        assert!(
            header(&ok, "ratelimit").starts_with(&format!("\"per_ip\";r={remaining};t=")),
            "{}",
            header(&ok, "ratelimit")
        );
    }
    let refused = openapi_from(&app, "203.0.113.1").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.code(), "rate_limited");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("per_ip")
    );
    assert_eq!(
        header(&refused, "ratelimit-policy"),
        "\"per_ip\";q=3;w=3600"
    );
    assert!(header(&refused, "ratelimit").starts_with("\"per_ip\";r=0;t="));
    // A token comes back every 20 minutes; the bucket is whole again in an hour.
    let retry_after: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1_150..=1_200).contains(&retry_after), "{retry_after}");
    assert!((3_550..=3_600).contains(&reset_secs(header(&refused, "ratelimit"), "per_ip")));

    // Another address has its own budget; probes are never limited.
    assert_eq!(
        openapi_from(&app, "203.0.113.2").await.status,
        StatusCode::OK
    );
    let probe = get_from(&app, "203.0.113.1", "/healthz", None).await;
    assert_eq!(probe.status, StatusCode::OK);
    assert_eq!(header(&probe, "ratelimit"), "");
    // Unknown routes are counted too (scanners).
    let unknown = get_from(&app, "203.0.113.1", "/wp-login.php", None).await;
    assert_eq!(unknown.status, StatusCode::TOO_MANY_REQUESTS);

    let metrics = app.state.metrics.render();
    assert!(
        metrics.contains("fb_http_rate_limited_total{policy=\"per_ip\"}"),
        "{metrics}"
    );
    app.finish().await;
}

#[tokio::test]
async fn the_per_principal_limit_counts_a_user_from_any_address() {
    let app = TestApp::with_env(small("per_principal", 3)).await;
    let operator = app.token_for("olga", Role::Operator).await;
    let viewer = app.token_for("vera", Role::Viewer).await;
    for (i, ip) in ["198.51.100.1", "198.51.100.2", "198.51.100.3"]
        .iter()
        .enumerate()
    {
        let me = get_from(&app, ip, "/api/v1/auth/me", Some(&operator)).await;
        assert_eq!(me.status, StatusCode::OK);
        // Both policies that applied are announced, the principal's first.
        assert_eq!(
            header(&me, "ratelimit-policy"),
            "\"per_principal\";q=3;w=3600, \"per_ip\";q=2000;w=1"
        );
        assert!(
            header(&me, "ratelimit").starts_with(&format!("\"per_principal\";r={};", 2 - i)),
            "{}",
            header(&me, "ratelimit")
        );
    }
    let refused = get_from(&app, "198.51.100.4", "/api/v1/machines", Some(&operator)).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.code(), "rate_limited");
    assert!(header(&refused, "ratelimit").starts_with("\"per_principal\";r=0;"));
    assert!(!header(&refused, "retry-after").is_empty());
    // Another user is not affected.
    let other = get_from(&app, "198.51.100.4", "/api/v1/auth/me", Some(&viewer)).await;
    assert_eq!(other.status, StatusCode::OK);
    app.finish().await;
}

pub(crate) async fn login_from(
    app: &TestApp,
    ip: &str,
    username: &str,
    password: &str,
) -> Response {
    app.call_from(
        peer(ip),
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"username": username, "password": password})),
    )
    .await
}

#[tokio::test]
async fn login_is_limited_long_before_other_routes_with_the_default_settings() {
    let app = TestApp::new().await;
    let ip = "192.0.2.10";
    // Five wrong passwords for one user from one address (a few typos)...
    for _ in 0..5 {
        let wrong = login_from(&app, ip, "admin", "not-the-password").await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
        assert!(header(&wrong, "ratelimit-policy").contains("\"login_per_ip_and_user\";q=5;w=300"));
    }
    // ...then even the right one waits: guessing stops here.
    let refused = login_from(&app, ip, "admin", &app.admin_password).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.code(), "rate_limited");
    assert!(header(&refused, "ratelimit").contains("\"login_per_ip_and_user\";r=0;"));
    let retry_after: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // The same address is nowhere near its limit on other routes...
    for _ in 0..20 {
        assert_eq!(openapi_from(&app, ip).await.status, StatusCode::OK);
    }
    // ...and the user can still log in from another address.
    let elsewhere = login_from(&app, "192.0.2.11", "admin", &app.admin_password).await;
    assert_eq!(elsewhere.status, StatusCode::OK);
    app.finish().await;
}

#[tokio::test]
async fn login_attempts_of_one_address_are_limited_across_usernames() {
    let mut env = small("login_per_ip", 3);
    env.extend(small("login_per_user", 100));
    let app = TestApp::with_env(env).await;
    for name in ["anna", "bert", "carl"] {
        let r = login_from(&app, "192.0.2.20", name, "some-password-123").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let refused = login_from(&app, "192.0.2.20", "dora", "some-password-123").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(header(&refused, "ratelimit").starts_with("\"login_per_ip\";r=0;"));
    // Made-up names that cannot exist do not get buckets of their own, but still cost the address.
    let bogus = login_from(&app, "192.0.2.21", "NOT A NAME", "some-password-123").await;
    assert_eq!(bogus.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        header(&bogus, "ratelimit-policy"),
        "\"login_per_ip\";q=3;w=3600, \"per_ip\";q=2000;w=1"
    );
    app.finish().await;
}

#[tokio::test]
async fn behind_trusted_proxies_clients_are_told_apart_by_x_forwarded_for() {
    let mut env = small("per_ip", 1);
    env.push((
        "FB__SERVER__TRUSTED_PROXIES".into(),
        "[\"10.0.0.0/8\"]".into(),
    ));
    let app = TestApp::with_env(env).await;
    let via = |proxy: &str, forwarded: &str| {
        let mut request = Request::builder()
            .uri("/api/v1/openapi.json")
            .header("x-forwarded-for", forwarded)
            .body(Body::empty())
            .unwrap();
        request.extensions_mut().insert(ConnectInfo(peer(proxy)));
        request
    };
    // Two clients behind the same proxy: a budget each.
    assert_eq!(
        app.request(via("10.0.0.2", "198.51.100.7")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.request(via("10.0.0.2", "198.51.100.8")).await.status,
        StatusCode::OK
    );
    // The first again, through another of our proxies, with an invented entry in front.
    let again = app
        .request(via("10.0.0.3", "6.6.6.6, 198.51.100.7, 10.0.0.2"))
        .await;
    assert_eq!(again.status, StatusCode::TOO_MANY_REQUESTS);
    // A client that is not a proxy cannot choose whom it is counted as.
    assert_eq!(
        app.request(via("203.0.113.5", "1.1.1.1")).await.status,
        StatusCode::OK
    );
    let spoofed = app.request(via("203.0.113.5", "2.2.2.2")).await;
    assert_eq!(spoofed.status, StatusCode::TOO_MANY_REQUESTS);
    app.finish().await;
}

fn redis_env(prefix: &str, url: &str) -> Vec<(String, String)> {
    let mut env = small("per_ip", 3);
    env.push(("FB__RATE_LIMITS__REDIS_URL".into(), url.into()));
    env.push(("FB__RATE_LIMITS__REDIS_PREFIX".into(), prefix.into()));
    env
}

fn redis_url() -> String {
    std::env::var("FB_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

#[tokio::test]
async fn with_redis_two_nodes_enforce_one_budget() {
    let prefix = format!("fbtest:{}:", uuid::Uuid::now_v7().simple());
    let node_a = TestApp::with_env(redis_env(&prefix, &redis_url())).await;
    let node_b = TestApp::with_env(redis_env(&prefix, &redis_url())).await;
    let client = "203.0.113.50";
    assert_eq!(openapi_from(&node_a, client).await.status, StatusCode::OK);
    assert_eq!(openapi_from(&node_b, client).await.status, StatusCode::OK);
    let third = openapi_from(&node_a, client).await;
    assert_eq!(third.status, StatusCode::OK);
    assert!(
        header(&third, "ratelimit").starts_with("\"per_ip\";r=0;"),
        "node A counted node B's request: {}",
        header(&third, "ratelimit")
    );
    assert_eq!(
        openapi_from(&node_b, client).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        openapi_from(&node_a, client).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    node_a.finish().await;
    node_b.finish().await;
}

#[tokio::test]
async fn with_redis_unreachable_requests_succeed_and_are_limited_on_each_node() {
    let prefix = format!("fbtest:{}:", uuid::Uuid::now_v7().simple());
    // Nothing listens on port 1.
    let app = TestApp::with_env(redis_env(&prefix, "redis://127.0.0.1:1")).await;
    for _ in 0..3 {
        assert_eq!(
            openapi_from(&app, "203.0.113.60").await.status,
            StatusCode::OK
        );
    }
    let refused = openapi_from(&app, "203.0.113.60").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.code(), "rate_limited");
    // Logging in (password check, token) works as usual.
    app.admin_token().await;
    assert!(
        app.state
            .metrics
            .render()
            .contains("fb_rate_limit_fallbacks_total")
    );
    app.finish().await;
}
