//! The route table: every route, its method, path and access, in one place.

pub(crate) mod alerts;
pub(crate) mod api_keys;
pub(crate) mod auth;
pub(crate) mod machines;
pub(crate) mod meta;
pub(crate) mod readings;
pub(crate) mod users;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

use fb_core::Code;
use fb_core::identity::Permission;

use crate::error::ApiError;
use crate::rate_limit;
use crate::state::AppState;
use crate::telemetry;

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credentials needed. Only health, readiness, login and the OpenAPI document.
    Public,
    /// A valid access token or API key whose role holds this permission.
    Requires(Permission),
}

pub struct Route {
    pub method: Method,
    /// axum path syntax, e.g. `/api/v1/users/{id}`; identical to the OpenAPI path.
    pub path: &'static str,
    pub access: Access,
    handler: MethodRouter<AppState>,
}

fn route(
    method: Method,
    path: &'static str,
    access: Access,
    handler: MethodRouter<AppState>,
) -> Route {
    Route {
        method,
        path,
        access,
        handler,
    }
}

/// Every route of the API. Adding a route means adding it here, with its access.
pub fn table() -> Vec<Route> {
    use Access::{Public, Requires};
    use Permission as P;
    use axum::routing::{delete, get, patch, post};
    vec![
        route(Method::GET, "/healthz", Public, get(meta::healthz)),
        route(Method::GET, "/readyz", Public, get(meta::readyz)),
        route(
            Method::GET,
            "/metrics",
            Requires(P::MetricsRead),
            get(meta::metrics),
        ),
        route(
            Method::GET,
            "/api/v1/openapi.json",
            Public,
            get(meta::openapi),
        ),
        route(
            Method::POST,
            "/api/v1/auth/login",
            Public,
            post(auth::login),
        ),
        route(
            Method::GET,
            "/api/v1/auth/me",
            Requires(P::SelfRead),
            get(auth::me),
        ),
        route(
            Method::POST,
            "/api/v1/auth/password",
            Requires(P::SelfPassword),
            post(auth::change_password),
        ),
        route(
            Method::GET,
            "/api/v1/users",
            Requires(P::UsersRead),
            get(users::list),
        ),
        route(
            Method::POST,
            "/api/v1/users",
            Requires(P::UsersManage),
            post(users::create),
        ),
        route(
            Method::POST,
            "/api/v1/users/{user}/disable",
            Requires(P::UsersManage),
            post(users::disable),
        ),
        route(
            Method::POST,
            "/api/v1/users/{user}/enable",
            Requires(P::UsersManage),
            post(users::enable),
        ),
        route(
            Method::GET,
            "/api/v1/api_keys",
            Requires(P::ApiKeysManage),
            get(api_keys::list),
        ),
        route(
            Method::POST,
            "/api/v1/api_keys",
            Requires(P::ApiKeysManage),
            post(api_keys::create),
        ),
        route(
            Method::POST,
            "/api/v1/api_keys/{key}/revoke",
            Requires(P::ApiKeysManage),
            post(api_keys::revoke),
        ),
        route(
            Method::GET,
            "/api/v1/machines",
            Requires(P::PlantRead),
            get(machines::list),
        ),
        route(
            Method::POST,
            "/api/v1/machines",
            Requires(P::PlantManage),
            post(machines::create),
        ),
        route(
            Method::GET,
            "/api/v1/machines/{machine}",
            Requires(P::PlantRead),
            get(machines::get),
        ),
        route(
            Method::PATCH,
            "/api/v1/machines/{machine}",
            Requires(P::ReadingsWrite),
            patch(machines::update),
        ),
        route(
            Method::DELETE,
            "/api/v1/machines/{machine}",
            Requires(P::PlantManage),
            delete(machines::delete),
        ),
        route(
            Method::POST,
            "/api/v1/readings",
            Requires(P::ReadingsWrite),
            post(readings::ingest).layer(DefaultBodyLimit::disable()),
        ),
        route(
            Method::GET,
            "/api/v1/machines/{machine}/readings",
            Requires(P::PlantRead),
            get(readings::query),
        ),
        route(
            Method::GET,
            "/api/v1/machines/{machine}/latest",
            Requires(P::PlantRead),
            get(readings::latest),
        ),
        route(
            Method::GET,
            "/api/v1/dead-letters",
            Requires(P::ReadingsWrite),
            get(readings::dead_letters),
        ),
        route(
            Method::POST,
            "/api/v1/dead-letters/{id}/replay",
            Requires(P::ReadingsWrite),
            post(readings::replay),
        ),
        route(
            Method::GET,
            "/api/v1/machines/{machine}/anomalies",
            Requires(P::PlantRead),
            get(alerts::anomalies),
        ),
        route(
            Method::GET,
            "/api/v1/alerts",
            Requires(P::PlantRead),
            get(alerts::list),
        ),
        route(
            Method::GET,
            "/api/v1/alerts/{id}",
            Requires(P::PlantRead),
            get(alerts::get),
        ),
        route(
            Method::POST,
            "/api/v1/alerts/{id}/acknowledge",
            Requires(P::AlertsManage),
            post(alerts::acknowledge),
        ),
        route(
            Method::POST,
            "/api/v1/alerts/{id}/resolve",
            Requires(P::AlertsManage),
            post(alerts::resolve),
        ),
    ]
}

pub(crate) fn build(state: AppState) -> Router {
    let mut router = Router::new();
    for Route {
        path,
        access,
        handler,
        ..
    } in table()
    {
        let handler = match access {
            Access::Public => handler,
            Access::Requires(permission) => handler.route_layer(middleware::from_fn_with_state(
                state.clone(),
                move |state: State<AppState>, request: Request, next: Next| {
                    authorize(state, permission, request, next)
                },
            )),
        };
        router = router.route(path, handler);
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.options.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            rate_limit::per_address,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            telemetry::observe,
        ))
        .with_state(state)
}

/// The access check of a protected route: authenticate, then check the one permission.
async fn authorize(
    State(state): State<AppState>,
    permission: Permission,
    mut request: Request,
    next: Next,
) -> Response {
    let Some(credential) = bearer(&request) else {
        return ApiError::new(
            Code::missing_credentials,
            "send an access token or API key as 'Authorization: Bearer <credential>'",
        )
        .into_response();
    };
    let principal = match state.auth.authenticate(credential).await {
        Ok(principal) => principal,
        Err(e) => return ApiError::from(e).into_response(),
    };
    tracing::Span::current().record("principal", principal.describe());
    // Counted before the permission check: refused calls cost the server too.
    let limits = match state.rate_limits.check_principal(&principal).await {
        Ok(applied) => applied,
        Err(refusal) => return refusal,
    };
    if !principal.can(permission) {
        let denied = ApiError::new(
            Code::permission_denied,
            format!(
                "the role '{}' lacks the permission '{permission}'",
                principal.role
            ),
        );
        return limits.annotate(denied.into_response());
    }
    request.extensions_mut().insert(principal);
    limits.annotate(next.run(request).await)
}

fn bearer(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    let credential = credential.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credential.is_empty()).then_some(credential)
}

async fn not_found() -> ApiError {
    ApiError::new(Code::route_not_found, "no route matches this path")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        Code::method_not_allowed,
        "this route does not accept this HTTP method",
    )
}
