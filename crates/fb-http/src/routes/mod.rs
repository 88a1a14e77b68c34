//! The route table: every route, its method, path and access, in one place.

pub(crate) mod alerts;
pub(crate) mod api_keys;
pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod devices;
pub(crate) mod energy;
pub(crate) mod events;
pub(crate) mod gates;
pub(crate) mod kpis;
pub(crate) mod machines;
pub(crate) mod meta;
pub(crate) mod models;
pub(crate) mod procurement;
pub(crate) mod readings;
pub(crate) mod tickets;
pub(crate) mod users;

use axum::Router;
use axum::extract::rejection::RawPathParamsRejection;
use axum::extract::{DefaultBodyLimit, RawPathParams, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;

use fb_core::Code;
use fb_core::identity::Permission;

use crate::api::v1::BEARER_PROTOCOL_PREFIX;
use crate::audit::Pending;
use crate::error::ApiError;
use crate::rate_limit;
use crate::security;
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

/// Which calls of a route the audit log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audited {
    /// Every call: the default of every method that changes state (all but GET and HEAD).
    Always,
    /// Refused calls only (401, 403): reads, and routes whose successes are accounted elsewhere.
    Refusals,
}

pub struct Route {
    pub method: Method,
    /// axum path syntax, e.g. `/api/v1/users/{id}`; identical to the OpenAPI path.
    pub path: &'static str,
    pub access: Access,
    /// The call's stable name in the audit log, `<noun>.<verb>` (e.g. `user.disable`). The noun
    /// also names the target: `user:<the path parameter>`.
    pub action: &'static str,
    pub audited: Audited,
    handler: MethodRouter<AppState>,
}

fn route(
    method: Method,
    path: &'static str,
    access: Access,
    action: &'static str,
    handler: MethodRouter<AppState>,
) -> Route {
    let audited = if method == Method::GET || method == Method::HEAD {
        Audited::Refusals
    } else {
        Audited::Always
    };
    Route {
        method,
        path,
        access,
        action,
        audited,
        handler,
    }
}

impl Route {
    /// Records only refused calls of a route that changes state. For high-volume routes whose
    /// successes are accounted for by other means; the test below lists each one.
    fn audit_refusals_only(mut self) -> Route {
        self.audited = Audited::Refusals;
        self
    }
}

/// Every route of the API. Adding a route means adding it here, with its access and the name
/// the audit log gives its calls.
pub fn table() -> Vec<Route> {
    use Access::{Public, Requires};
    use Permission as P;
    use axum::routing::{delete, get, patch, post};
    vec![
        route(
            Method::GET,
            "/healthz",
            Public,
            "health.live",
            get(meta::healthz),
        ),
        route(
            Method::GET,
            "/readyz",
            Public,
            "health.ready",
            get(meta::readyz),
        ),
        route(
            Method::GET,
            "/metrics",
            Requires(P::MetricsRead),
            "metrics.scrape",
            get(meta::metrics),
        ),
        route(
            Method::GET,
            "/api/v1/openapi.json",
            Public,
            "openapi.get",
            get(meta::openapi),
        ),
        route(
            Method::POST,
            "/api/v1/auth/login",
            Public,
            "auth.login",
            post(auth::login),
        ),
        route(
            Method::GET,
            "/api/v1/auth/me",
            Requires(P::SelfRead),
            "auth.me",
            get(auth::me),
        ),
        route(
            Method::POST,
            "/api/v1/auth/password",
            Requires(P::SelfPassword),
            "auth.change_password",
            post(auth::change_password),
        ),
        route(
            Method::POST,
            "/api/v1/auth/mfa/verify",
            Public,
            "auth.mfa_verify",
            post(auth::verify_mfa),
        ),
        route(
            Method::POST,
            "/api/v1/auth/refresh",
            Public,
            "auth.refresh",
            post(auth::refresh),
        ),
        route(
            Method::POST,
            "/api/v1/auth/logout",
            Requires(P::SelfRead),
            "auth.logout",
            post(auth::logout),
        ),
        route(
            Method::GET,
            "/api/v1/auth/sessions",
            Requires(P::SelfSecurity),
            "session.list",
            get(auth::my_sessions),
        ),
        route(
            Method::DELETE,
            "/api/v1/auth/sessions/{session}",
            Requires(P::SelfSecurity),
            "session.end",
            delete(auth::end_my_session),
        ),
        route(
            Method::GET,
            "/api/v1/auth/mfa",
            Requires(P::SelfSecurity),
            "mfa.status",
            get(auth::mfa_status),
        ),
        route(
            Method::POST,
            "/api/v1/auth/mfa/totp",
            Requires(P::SelfSecurity),
            "mfa.enrol",
            post(auth::enrol_totp),
        ),
        route(
            Method::DELETE,
            "/api/v1/auth/mfa/totp",
            Requires(P::SelfSecurity),
            "mfa.disable",
            delete(auth::disable_totp),
        ),
        route(
            Method::POST,
            "/api/v1/auth/mfa/totp/confirm",
            Requires(P::SelfSecurity),
            "mfa.confirm",
            post(auth::confirm_totp),
        ),
        route(
            Method::POST,
            "/api/v1/auth/mfa/recovery-codes",
            Requires(P::SelfSecurity),
            "mfa.recovery_codes",
            post(auth::new_recovery_codes),
        ),
        route(
            Method::GET,
            "/api/v1/users",
            Requires(P::UsersRead),
            "user.list",
            get(users::list),
        ),
        route(
            Method::POST,
            "/api/v1/users",
            Requires(P::UsersManage),
            "user.create",
            post(users::create),
        ),
        route(
            Method::PATCH,
            "/api/v1/users/{user}",
            Requires(P::UsersManage),
            "user.update",
            patch(users::update),
        ),
        route(
            Method::POST,
            "/api/v1/users/{user}/disable",
            Requires(P::UsersManage),
            "user.disable",
            post(users::disable),
        ),
        route(
            Method::POST,
            "/api/v1/users/{user}/enable",
            Requires(P::UsersManage),
            "user.enable",
            post(users::enable),
        ),
        route(
            Method::GET,
            "/api/v1/users/{user}/sessions",
            Requires(P::UsersManage),
            "user.sessions",
            get(users::sessions),
        ),
        route(
            Method::POST,
            "/api/v1/users/{user}/sessions/end",
            Requires(P::UsersManage),
            "user.end_sessions",
            post(users::end_sessions),
        ),
        route(
            Method::POST,
            "/api/v1/users/{user}/mfa/reset",
            Requires(P::UsersManage),
            "user.reset_mfa",
            post(users::reset_mfa),
        ),
        route(
            Method::GET,
            "/api/v1/api_keys",
            Requires(P::ApiKeysManage),
            "api_key.list",
            get(api_keys::list),
        ),
        route(
            Method::POST,
            "/api/v1/api_keys",
            Requires(P::ApiKeysManage),
            "api_key.create",
            post(api_keys::create),
        ),
        route(
            Method::POST,
            "/api/v1/api_keys/{key}/revoke",
            Requires(P::ApiKeysManage),
            "api_key.revoke",
            post(api_keys::revoke),
        ),
        route(
            Method::GET,
            "/api/v1/machines",
            Requires(P::PlantRead),
            "machine.list",
            get(machines::list),
        ),
        route(
            Method::POST,
            "/api/v1/machines",
            Requires(P::PlantManage),
            "machine.create",
            post(machines::create),
        ),
        route(
            Method::GET,
            "/api/v1/machines/{machine}",
            Requires(P::PlantRead),
            "machine.get",
            get(machines::get),
        ),
        route(
            Method::PATCH,
            "/api/v1/machines/{machine}",
            Requires(P::ReadingsWrite),
            "machine.update",
            patch(machines::update),
        ),
        route(
            Method::DELETE,
            "/api/v1/machines/{machine}",
            Requires(P::PlantManage),
            "machine.delete",
            delete(machines::delete),
        ),
        route(
            Method::POST,
            "/api/v1/readings",
            Requires(P::ReadingsWrite),
            "reading.ingest",
            post(readings::ingest).layer(DefaultBodyLimit::disable()),
        )
        // Telemetry: up to hundreds of batches a second, with their own provenance (counts,
        // dead letters). Refusals are still recorded.
        .audit_refusals_only(),
        route(
            Method::GET,
            "/api/v1/machines/{machine}/readings",
            Requires(P::PlantRead),
            "machine.readings",
            get(readings::query),
        ),
        route(
            Method::GET,
            "/api/v1/machines/{machine}/latest",
            Requires(P::PlantRead),
            "machine.latest",
            get(readings::latest),
        ),
        route(
            Method::GET,
            "/api/v1/dead-letters",
            Requires(P::ReadingsWrite),
            "dead_letter.list",
            get(readings::dead_letters),
        ),
        route(
            Method::POST,
            "/api/v1/dead-letters/{id}/replay",
            Requires(P::ReadingsWrite),
            "dead_letter.replay",
            post(readings::replay),
        ),
        route(
            Method::GET,
            "/api/v1/machines/{machine}/anomalies",
            Requires(P::PlantRead),
            "machine.anomalies",
            get(alerts::anomalies),
        ),
        route(
            Method::GET,
            "/api/v1/alerts",
            Requires(P::PlantRead),
            "alert.list",
            get(alerts::list),
        ),
        route(
            Method::GET,
            "/api/v1/alerts/{id}",
            Requires(P::PlantRead),
            "alert.get",
            get(alerts::get),
        ),
        route(
            Method::POST,
            "/api/v1/alerts/{id}/acknowledge",
            Requires(P::AlertsManage),
            "alert.acknowledge",
            post(alerts::acknowledge),
        ),
        route(
            Method::POST,
            "/api/v1/alerts/{id}/resolve",
            Requires(P::AlertsManage),
            "alert.resolve",
            post(alerts::resolve),
        ),
        route(
            Method::GET,
            "/api/v1/energy",
            Requires(P::PlantRead),
            "energy.report",
            get(energy::report),
        ),
        route(
            Method::GET,
            "/api/v1/kpis",
            Requires(P::PlantRead),
            "kpi.report",
            get(kpis::report),
        ),
        route(
            Method::GET,
            "/api/v1/kpis/lines",
            Requires(P::PlantRead),
            "kpi.lines",
            get(kpis::lines),
        ),
        route(
            Method::GET,
            "/api/v1/energy/recommendations",
            Requires(P::PlantRead),
            "energy_recommendation.list",
            get(energy::list),
        ),
        route(
            Method::POST,
            "/api/v1/energy/recommendations/{id}/accept",
            Requires(P::EnergyManage),
            "energy_recommendation.accept",
            post(energy::accept),
        ),
        route(
            Method::POST,
            "/api/v1/energy/recommendations/{id}/dismiss",
            Requires(P::EnergyManage),
            "energy_recommendation.dismiss",
            post(energy::dismiss),
        ),
        route(
            Method::GET,
            "/api/v1/procurement/parts",
            Requires(P::PlantRead),
            "part.list",
            get(procurement::parts),
        ),
        route(
            Method::POST,
            "/api/v1/procurement/parts",
            Requires(P::ProcurementManage),
            "part.put",
            post(procurement::put_part),
        ),
        route(
            Method::GET,
            "/api/v1/procurement/suppliers",
            Requires(P::PlantRead),
            "supplier.list",
            get(procurement::suppliers),
        ),
        route(
            Method::POST,
            "/api/v1/procurement/suppliers",
            Requires(P::ProcurementManage),
            "supplier.put",
            post(procurement::put_supplier),
        ),
        route(
            Method::GET,
            "/api/v1/procurement/offers",
            Requires(P::PlantRead),
            "offer.list",
            get(procurement::offers),
        ),
        route(
            Method::POST,
            "/api/v1/procurement/offers",
            Requires(P::ProcurementManage),
            "offer.put",
            post(procurement::put_offer),
        ),
        route(
            Method::GET,
            "/api/v1/procurement/boms",
            Requires(P::PlantRead),
            "bom_line.list",
            get(procurement::boms),
        ),
        route(
            Method::POST,
            "/api/v1/procurement/boms",
            Requires(P::ProcurementManage),
            "bom_line.put",
            post(procurement::put_bom_line),
        ),
        route(
            Method::GET,
            "/api/v1/procurement/stock",
            Requires(P::PlantRead),
            "stock.list",
            get(procurement::stock),
        ),
        route(
            Method::POST,
            "/api/v1/procurement/stock",
            Requires(P::ProcurementManage),
            "stock.put",
            post(procurement::put_stock),
        ),
        route(
            Method::GET,
            "/api/v1/procurement/orders",
            Requires(P::PlantRead),
            "order.list",
            get(procurement::orders),
        ),
        route(
            Method::GET,
            "/api/v1/procurement/orders/{id}",
            Requires(P::PlantRead),
            "order.get",
            get(procurement::order),
        ),
        route(
            Method::POST,
            "/api/v1/procurement/orders/{id}/receive",
            Requires(P::ProcurementManage),
            "order.receive",
            post(procurement::receive),
        ),
        route(
            Method::GET,
            "/api/v1/procurement/savings",
            Requires(P::PlantRead),
            "procurement.savings",
            get(procurement::savings),
        ),
        route(
            Method::GET,
            "/api/v1/tickets",
            Requires(P::TicketsRead),
            "ticket.list",
            get(tickets::list),
        ),
        route(
            Method::POST,
            "/api/v1/tickets",
            Requires(P::TicketsManage),
            "ticket.create",
            post(tickets::create),
        ),
        route(
            Method::GET,
            "/api/v1/tickets/templates",
            Requires(P::TicketsRead),
            "ticket.templates",
            get(tickets::templates),
        ),
        route(
            Method::GET,
            "/api/v1/tickets/{id}",
            Requires(P::TicketsRead),
            "ticket.get",
            get(tickets::get),
        ),
        route(
            Method::PATCH,
            "/api/v1/tickets/{id}",
            Requires(P::TicketsManage),
            "ticket.update",
            patch(tickets::update),
        ),
        route(
            Method::POST,
            "/api/v1/tickets/{id}/start",
            Requires(P::TicketsManage),
            "ticket.start",
            post(tickets::start),
        ),
        route(
            Method::POST,
            "/api/v1/tickets/{id}/resolve",
            Requires(P::TicketsManage),
            "ticket.resolve",
            post(tickets::resolve),
        ),
        route(
            Method::POST,
            "/api/v1/tickets/{id}/close",
            Requires(P::TicketsClose),
            "ticket.close",
            post(tickets::close),
        ),
        route(
            Method::POST,
            "/api/v1/tickets/{id}/reopen",
            Requires(P::TicketsManage),
            "ticket.reopen",
            post(tickets::reopen),
        ),
        route(
            Method::GET,
            "/api/v1/machines/{machine}/reliability",
            Requires(P::TicketsRead),
            "machine.reliability",
            get(tickets::reliability),
        ),
        route(
            Method::GET,
            "/api/v1/approvals",
            Requires(P::PlantRead),
            "approval.list",
            get(gates::list),
        ),
        route(
            Method::GET,
            "/api/v1/approvals/{id}",
            Requires(P::PlantRead),
            "approval.get",
            get(gates::get),
        ),
        route(
            Method::POST,
            "/api/v1/approvals/{id}/approve",
            Requires(P::OrdersApprove),
            "approval.approve",
            post(gates::approve),
        )
        // The gates service records every answer itself, with the item's kind, site and status
        // and the outcome; the guard adds the refusals it makes before the service is asked.
        .audit_refusals_only(),
        route(
            Method::POST,
            "/api/v1/approvals/{id}/reject",
            Requires(P::OrdersApprove),
            "approval.reject",
            post(gates::reject),
        )
        // The gates service records every answer itself, with the item's kind, site and status
        // and the outcome; the guard adds the refusals it makes before the service is asked.
        .audit_refusals_only(),
        route(
            Method::GET,
            "/api/v1/decisions",
            Requires(P::PlantRead),
            "decision.list",
            get(gates::decisions),
        ),
        route(
            Method::GET,
            "/api/v1/devices",
            Requires(P::PlantManage),
            "device.list",
            get(devices::list),
        ),
        route(
            Method::POST,
            "/api/v1/devices",
            Requires(P::PlantManage),
            "device.create",
            post(devices::create),
        ),
        route(
            Method::POST,
            "/api/v1/devices/{device}/revoke",
            Requires(P::PlantManage),
            "device.revoke",
            post(devices::revoke),
        ),
        route(
            Method::GET,
            "/api/v1/models",
            Requires(P::PlantRead),
            "model.list",
            get(models::list),
        ),
        route(
            Method::GET,
            "/api/v1/models/activations",
            Requires(P::PlantRead),
            "model.activations",
            get(models::activations),
        ),
        route(
            Method::GET,
            "/api/v1/models/{id}",
            Requires(P::PlantRead),
            "model.get",
            get(models::get),
        ),
        route(
            Method::POST,
            "/api/v1/models/{id}/promote",
            Requires(P::ModelsManage),
            "model.promote",
            post(models::promote),
        ),
        route(
            Method::POST,
            "/api/v1/models/rollback",
            Requires(P::ModelsManage),
            "model.rollback",
            post(models::rollback),
        ),
        route(
            Method::GET,
            "/api/v1/audit",
            Requires(P::AuditRead),
            "audit.list",
            get(audit::list),
        ),
        route(
            Method::GET,
            "/api/v1/events",
            Requires(P::PlantRead),
            "event.stream",
            get(events::stream),
        ),
    ]
}

pub(crate) fn build(state: AppState) -> Router {
    let mut router = Router::new();
    for Route {
        path,
        access,
        action,
        audited,
        handler,
        ..
    } in table()
    {
        let guard = Guard {
            access,
            action,
            audited,
        };
        let handler = handler.route_layer(middleware::from_fn_with_state(
            state.clone(),
            move |state: State<AppState>,
                  params: Result<RawPathParams, RawPathParamsRejection>,
                  request: Request,
                  next: Next| guard.run(state, params.ok(), request, next),
        ));
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
        .layer(middleware::from_fn_with_state(
            state.clone(),
            security::headers,
        ))
        .with_state(state)
}

/// What every route's one middleware needs to know about it.
#[derive(Debug, Clone, Copy)]
struct Guard {
    access: Access,
    action: &'static str,
    audited: Audited,
}

impl Guard {
    /// The access check, the handler, then the audit record: one middleware, so that no route
    /// has either without the other, and a refusal is recorded like any other outcome.
    async fn run(
        self,
        State(state): State<AppState>,
        params: Option<RawPathParams>,
        mut request: Request,
        next: Next,
    ) -> Response {
        let mut pending = Pending::start(
            &state.audit,
            self.action,
            self.audited,
            params.as_ref(),
            &request,
        );
        let response = match self.access {
            Access::Public => next.run(request).await,
            Access::Requires(permission) => {
                match authorize(&state, permission, &mut request, &mut pending).await {
                    Ok(limits) => limits.annotate(next.run(request).await),
                    Err(refusal) => refusal,
                }
            }
        };
        pending.finish(&response).await;
        response
    }
}

/// The access check of a protected route: authenticate, count the call against the caller's
/// rate limit, then check the one permission. The caller goes into the request (for handlers)
/// and into the pending audit record; the limits applied come back to annotate the answer.
async fn authorize(
    state: &AppState,
    permission: Permission,
    request: &mut Request,
    pending: &mut Pending,
) -> Result<rate_limit::Applied, Response> {
    let Some(credential) = credential(request.headers()) else {
        return Err(ApiError::new(
            Code::missing_credentials,
            "send an access token or API key as 'Authorization: Bearer <credential>'",
        )
        .into_response());
    };
    let principal = state
        .auth
        .authenticate(credential)
        .await
        .map_err(|e| ApiError::from(e).into_response())?;
    tracing::Span::current().record("principal", principal.describe());
    pending.caller(&principal);
    // Counted before the permission check: refused calls cost the server too.
    let limits = state.rate_limits.check_principal(&principal).await?;
    if !principal.can(permission) {
        let denied = if principal.mfa_enrolment_pending && principal.role.allows(permission) {
            ApiError::new(
                Code::mfa_enrolment_required,
                format!(
                    "the role '{}' requires a second factor: enrol one (POST \
                     /api/v1/auth/mfa/totp, then /api/v1/auth/mfa/totp/confirm) first",
                    principal.role
                ),
            )
        } else {
            ApiError::new(
                Code::permission_denied,
                format!(
                    "the role '{}' lacks the permission '{permission}'",
                    principal.role
                ),
            )
        };
        return Err(limits.annotate(denied.into_response()));
    }
    request.extensions_mut().insert(principal);
    Ok(limits)
}

/// The credential a request carries: `Authorization: Bearer <credential>`, or, on a WebSocket
/// handshake only, the subprotocol `fb.bearer.<credential>` (browsers cannot set headers on a
/// WebSocket; Kubernetes does the same). Never the query string: URLs end up in logs.
pub(crate) fn credential(headers: &HeaderMap) -> Option<&str> {
    bearer(headers).or_else(|| subprotocol_credential(headers))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    let credential = credential.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !credential.is_empty()).then_some(credential)
}

fn subprotocol_credential(headers: &HeaderMap) -> Option<&str> {
    let handshake = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("websocket"));
    if !handshake {
        return None;
    }
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|protocol| protocol.trim().strip_prefix(BEARER_PROTOCOL_PREFIX))
        .filter(|credential| !credential.is_empty())
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn every_route_has_a_unique_dotted_action() {
        let mut seen = BTreeSet::new();
        for route in table() {
            let (noun, verb) = route.action.split_once('.').unwrap_or_default();
            let word =
                |w: &str| !w.is_empty() && w.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            assert!(
                word(noun) && word(verb),
                "{} {}: action {:?} is not <noun>.<verb>",
                route.method,
                route.path,
                route.action
            );
            assert!(seen.insert(route.action), "action {} twice", route.action);
        }
    }

    #[test]
    fn every_state_change_is_recorded_except_the_listed_ones() {
        // Changing this list is a decision to leave a state change out of the audit log.
        let refusals_only: BTreeSet<(String, &str)> = [
            ("POST".to_owned(), "/api/v1/readings"),
            ("POST".to_owned(), "/api/v1/approvals/{id}/approve"),
            ("POST".to_owned(), "/api/v1/approvals/{id}/reject"),
        ]
        .into_iter()
        .collect();
        for route in table() {
            let reads = route.method == Method::GET || route.method == Method::HEAD;
            let expected =
                if reads || refusals_only.contains(&(route.method.to_string(), route.path)) {
                    Audited::Refusals
                } else {
                    Audited::Always
                };
            assert_eq!(route.audited, expected, "{} {}", route.method, route.path);
        }
    }
}
