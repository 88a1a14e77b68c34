//! Walks the route table through the real router: every route declares its access, only the
//! allow-listed routes are public, and each role gets exactly what the permission table says.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use serde_json::json;

use fb_core::identity::Role;
use fb_http::{Access, routes};

use crate::support::TestApp;

const PUBLIC: &[(&str, &str)] = &[
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/api/v1/auth/login"),
    // Authenticated by what they carry: the login's MFA token, a refresh token.
    ("POST", "/api/v1/auth/mfa/verify"),
    ("POST", "/api/v1/auth/refresh"),
    ("GET", "/api/v1/openapi.json"),
];

/// A concrete path for a route template.
fn concrete(path: &str) -> String {
    path.replace("{user}", "nobody-here")
        .replace("{key}", "000000000000")
        .replace("{machine}", "no-such-machine")
        .replace("{id}", "01a20254-7012-7493-9c41-8192686a39fe")
        .replace("{session}", "01a20254-7012-7493-9c41-8192686a39ff")
}

#[test]
fn only_the_allow_listed_routes_are_public() {
    let public: BTreeSet<_> = routes::table()
        .into_iter()
        .filter(|r| r.access == Access::Public)
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    let expected: BTreeSet<_> = PUBLIC
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(public, expected);
}

#[tokio::test]
async fn every_protected_route_refuses_anonymous_callers() {
    let app = TestApp::new().await;
    for route in routes::table() {
        let Access::Requires(permission) = route.access else {
            continue;
        };
        let body = matches!(route.method, Method::POST | Method::PATCH).then(|| json!({}));
        let r = app
            .call(route.method.clone(), &concrete(route.path), None, body)
            .await;
        assert_eq!(
            r.status,
            StatusCode::UNAUTHORIZED,
            "{} {} (needs {permission}) answered {} without credentials",
            route.method,
            route.path,
            r.status
        );
        assert_eq!(r.code(), "missing_credentials");
    }
    app.finish().await;
}

#[tokio::test]
async fn each_role_passes_the_access_check_exactly_where_its_permissions_allow() {
    let app = TestApp::new().await;
    for role in Role::ALL {
        let name = format!("walker-{role}");
        let password = format!("{name}-password-123");
        let mut token = app.token_for(&name, role).await;
        for route in routes::table() {
            let Access::Requires(permission) = route.access else {
                continue;
            };
            // An empty body: allowed callers get past the access check and fail validation or
            // lookup (never 401/403); refused callers get 403 before the handler runs.
            let body = matches!(route.method, Method::POST | Method::PATCH).then(|| json!({}));
            let r = app
                .call(
                    route.method.clone(),
                    &concrete(route.path),
                    Some(&token),
                    body,
                )
                .await;
            if role.allows(permission) {
                assert!(
                    r.status != StatusCode::FORBIDDEN && r.status != StatusCode::UNAUTHORIZED,
                    "{role} should pass {} {} ({permission}) but got {}: {}",
                    route.method,
                    route.path,
                    r.status,
                    r.body
                );
                if route.path == "/api/v1/auth/logout" {
                    // It worked: that session is over, the walk goes on in a new one.
                    token = app.enrolled_login(&name, &password).await;
                }
            } else {
                assert_eq!(
                    r.status,
                    StatusCode::FORBIDDEN,
                    "{role} on {} {}",
                    route.method,
                    route.path
                );
                assert_eq!(r.code(), "permission_denied");
            }
        }
    }
    app.finish().await;
}
