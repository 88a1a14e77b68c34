//! The OpenAPI 3.1 document, generated from the handlers' annotations and the route table.
//!
//! Security and permissions are not annotated by hand: they are added here from
//! [`routes::table`], so the document cannot disagree with what the router enforces.

use std::sync::OnceLock;

use axum::http::Method;
use utoipa::OpenApi;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Object, PathItem, Ref, Type};

use crate::rate_limit;
use crate::routes::{self, Access, Audited};

const SECURITY_SCHEME: &str = "bearer";
/// The shared 429 answer, in `components.responses`.
const RATE_LIMITED: &str = "RateLimited";

/// The refusals that the router gives any route of a kind, whatever its handler does, in
/// `components.responses`: (status, component name, description). An operation that describes
/// a status itself keeps its own description.
const BAD_REQUEST: (&str, &str, &str) = (
    "400",
    "BadRequest",
    "Invalid input: a malformed or invalid parameter (`invalid_parameter`), body \
     (`invalid_json`, `json_too_deep`) or field (`invalid_field`); `details` names each field \
     and the reason",
);
const UNAUTHENTICATED: (&str, &str, &str) = (
    "401",
    "Unauthenticated",
    "No valid credential: none sent (`missing_credentials`), or an access token or API key \
     that is invalid, expired or revoked, or whose session ended (`invalid_token`, \
     `invalid_api_key`)",
);
const FORBIDDEN: (&str, &str, &str) = (
    "403",
    "Forbidden",
    "The caller lacks the route's permission (`permission_denied`), must enrol a second factor \
     first (`mfa_enrolment_required`), or is an API key where a user session is needed \
     (`user_session_required`)",
);
const PAYLOAD_TOO_LARGE: (&str, &str, &str) = (
    "413",
    "PayloadTooLarge",
    "The request body is larger than `server.max_body_bytes` (`payload_too_large`)",
);
const UNSUPPORTED_MEDIA_TYPE: (&str, &str, &str) = (
    "415",
    "UnsupportedMediaType",
    "The body is not sent as `application/json` (`unsupported_media_type`)",
);

#[derive(OpenApi)]
#[openapi(
    info(
        title = "FactoryBrain API",
        description = "Plant data, detection and operations agents. Errors use one format: \
                       {\"error\": {\"code\", \"message\", \"details\", \"request_id\"}}.",
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        routes::meta::healthz,
        routes::meta::readyz,
        routes::meta::metrics,
        routes::meta::openapi,
        routes::auth::login,
        routes::auth::me,
        routes::auth::change_password,
        routes::auth::verify_mfa,
        routes::auth::refresh,
        routes::auth::logout,
        routes::auth::my_sessions,
        routes::auth::end_my_session,
        routes::auth::mfa_status,
        routes::auth::enrol_totp,
        routes::auth::disable_totp,
        routes::auth::confirm_totp,
        routes::auth::new_recovery_codes,
        routes::users::list,
        routes::users::create,
        routes::users::update,
        routes::users::disable,
        routes::users::enable,
        routes::users::sessions,
        routes::users::end_sessions,
        routes::users::reset_mfa,
        routes::api_keys::list,
        routes::api_keys::create,
        routes::api_keys::revoke,
        routes::machines::list,
        routes::machines::create,
        routes::machines::get,
        routes::machines::update,
        routes::machines::delete,
        routes::readings::ingest,
        routes::readings::query,
        routes::readings::latest,
        routes::readings::dead_letters,
        routes::readings::replay,
        routes::alerts::anomalies,
        routes::alerts::list,
        routes::alerts::get,
        routes::alerts::acknowledge,
        routes::alerts::resolve,
        routes::energy::report,
        routes::energy::list,
        routes::energy::accept,
        routes::energy::dismiss,
        routes::procurement::parts,
        routes::procurement::put_part,
        routes::procurement::suppliers,
        routes::procurement::put_supplier,
        routes::procurement::offers,
        routes::procurement::put_offer,
        routes::procurement::boms,
        routes::procurement::put_bom_line,
        routes::procurement::stock,
        routes::procurement::put_stock,
        routes::procurement::orders,
        routes::procurement::order,
        routes::procurement::receive,
        routes::procurement::savings,
        routes::kpis::report,
        routes::kpis::lines,
        routes::tickets::list,
        routes::tickets::create,
        routes::tickets::templates,
        routes::tickets::get,
        routes::tickets::update,
        routes::tickets::start,
        routes::tickets::resolve,
        routes::tickets::close,
        routes::tickets::reopen,
        routes::tickets::reliability,
        routes::gates::list,
        routes::gates::get,
        routes::gates::approve,
        routes::gates::reject,
        routes::gates::decisions,
        routes::devices::list,
        routes::devices::create,
        routes::devices::revoke,
        routes::models::list,
        routes::models::activations,
        routes::models::get,
        routes::models::promote,
        routes::models::rollback,
        routes::audit::list,
        routes::events::stream,
    ),
    tags(
        (name = "health", description = "Liveness, readiness, metrics, this document"),
        (name = "auth", description = "Login with its second factor, sessions and refresh tokens, the caller's identity and password"),
        (name = "users", description = "User administration"),
        (name = "api_keys", description = "API keys for machines and integrations"),
        (name = "machines", description = "The machines registry: machines, sensors, limits"),
        (name = "readings", description = "Sensor readings in and out, and the dead letters of refused ones"),
        (name = "alerts", description = "Alerts and their lifecycle, and the anomalies detection found"),
        (name = "procurement", description = "Parts, suppliers and their offers, bills of materials, stock per site, purchase orders with the quotes they were chosen from, and savings"),
        (name = "energy", description = "Energy per site and machine (kWh, cost, CO2, baseline, reduction) and the recommendations with their expected savings"),
        (name = "kpis", description = "The plant optimizer's KPIs per site, line and machine: OEE (availability × performance × quality), downtime, health, energy, CO2, savings, MTBF, MTTR"),
        (name = "maintenance", description = "Maintenance tickets (opened by hand or by critical alerts), their lifecycle and repair steps, and machines' reliability (MTBF, MTTR)"),
        (name = "gates", description = "Confidence gates: the approval queue of actions held at their gate (approve, reject, expiry) and the agents' decision log"),
        (name = "devices", description = "Device credentials: the MQTT users of the embedded broker, one per device"),
        (name = "models", description = "The model registry: prediction models' versions, the active one of each kind and machine type, promotion and rollback"),
        (name = "audit", description = "The audit log: who did what, when, from where, and how it ended"),
        (name = "events", description = "The live event stream (WebSocket): alerts, machine health, subscribed readings"),
    )
)]
struct ApiDoc;

/// The document, with security requirements and permissions taken from the route table.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.components
        .get_or_insert_with(Default::default)
        .add_security_scheme(
            SECURITY_SCHEME,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT access token or fbk_ API key")
                    .build(),
            ),
        );
    let components = doc.components.get_or_insert_with(Default::default);
    components
        .responses
        .insert(RATE_LIMITED.to_owned(), rate_limited_response().into());
    for (_, name, description) in [
        BAD_REQUEST,
        UNAUTHENTICATED,
        FORBIDDEN,
        PAYLOAD_TOO_LARGE,
        UNSUPPORTED_MEDIA_TYPE,
    ] {
        components
            .responses
            .insert(name.to_owned(), error_response(description).into());
    }
    for route in routes::table() {
        let Some(operation) = doc
            .paths
            .paths
            .get_mut(route.path)
            .and_then(|item| operation_mut(item, &route.method))
        else {
            continue; // A route without an annotated handler; the drift test reports it.
        };
        if !rate_limit::UNLIMITED_PATHS.contains(&route.path) {
            // A route that refuses with 429 for a reason of its own describes both.
            operation
                .responses
                .responses
                .entry("429".to_owned())
                .or_insert_with(|| {
                    Ref::new(format!("#/components/responses/{RATE_LIMITED}")).into()
                });
        }
        add_router_refusals(operation, route.access);
        match route.access {
            Access::Public => operation.security = Some(Vec::new()),
            Access::Requires(permission) => {
                operation.security = Some(vec![SecurityRequirement::new(
                    SECURITY_SCHEME,
                    Vec::<String>::new(),
                )]);
                append_note(
                    operation,
                    &format!("Requires the permission `{permission}`."),
                );
            }
        }
        let recorded = match route.audited {
            Audited::Always => "every call",
            Audited::Refusals => "refused calls (401, 403)",
        };
        append_note(
            operation,
            &format!("Audit log: `{}`, {recorded}.", route.action),
        );
    }
    doc
}

/// Describes the refusals the router and the extractors give before or around the handler:
/// 401 and 403 on every protected route, 400 wherever there are parameters or a body, 413
/// and 415 wherever there is a body.
fn add_router_refusals(operation: &mut Operation, access: Access) {
    let mut refusals = Vec::new();
    if matches!(access, Access::Requires(_)) {
        refusals.extend([UNAUTHENTICATED, FORBIDDEN]);
    }
    let has_parameters = operation
        .parameters
        .as_ref()
        .is_some_and(|parameters| !parameters.is_empty());
    let has_body = operation.request_body.is_some();
    if has_parameters || has_body {
        refusals.push(BAD_REQUEST);
    }
    if has_body {
        refusals.extend([PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE]);
    }
    for (status, name, _) in refusals {
        operation
            .responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| Ref::new(format!("#/components/responses/{name}")).into());
    }
}

/// A shared error answer in the one error format.
fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        )
        .build()
}

/// The answer of every rate-limited route when a limit is reached.
fn rate_limited_response() -> Response {
    let header = |description: &str| {
        HeaderBuilder::new()
            .schema(Some(Object::with_type(Type::String)))
            .description(Some(description))
            .build()
    };
    ResponseBuilder::new()
        .description(
            "Rate limited (`rate_limited`): too many requests from this address, user or API key, \
             or too many login attempts",
        )
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
        )
        .header(
            "Retry-After",
            header("Whole seconds until the request can succeed."),
        )
        .header(
            "RateLimit",
            header(
                "Per policy: remaining requests (r) and seconds until the quota is whole (t), \
                 e.g. \"per_ip\";r=0;t=2 (draft-ietf-httpapi-ratelimit-headers-10).",
            ),
        )
        .header(
            "RateLimit-Policy",
            header(
                "Per policy: the quota (q) per window in seconds (w), e.g. \"per_ip\";q=2000;w=1.",
            ),
        )
        .build()
}

/// Adds a paragraph to an operation's description.
fn append_note(operation: &mut Operation, note: &str) {
    operation.description = Some(match operation.description.take() {
        Some(text) if !text.is_empty() => format!("{text}\n\n{note}"),
        _ => note.to_owned(),
    });
}

fn operation_mut<'a>(item: &'a mut PathItem, method: &Method) -> Option<&'a mut Operation> {
    match *method {
        Method::GET => item.get.as_mut(),
        Method::POST => item.post.as_mut(),
        Method::PUT => item.put.as_mut(),
        Method::DELETE => item.delete.as_mut(),
        Method::PATCH => item.patch.as_mut(),
        _ => None,
    }
}

/// The pretty-printed JSON served at `/api/v1/openapi.json` and committed as
/// `schema/openapi.json`.
pub(crate) fn document_json() -> &'static str {
    static JSON: OnceLock<String> = OnceLock::new();
    JSON.get_or_init(|| {
        let mut text = document().to_pretty_json().unwrap_or_else(|e| {
            tracing::error!(error = %e, "OpenAPI document could not be serialised.");
            String::from("{}")
        });
        text.push('\n');
        text
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schema/openapi.json");

    /// The committed document is what clients and reviewers read; it must match the code.
    /// Regenerate with `FB_UPDATE_SCHEMA=1 cargo test -p fb-http openapi`.
    #[test]
    fn committed_openapi_matches_the_code() {
        let generated = document_json();
        if std::env::var_os("FB_UPDATE_SCHEMA").is_some() {
            std::fs::write(COMMITTED, generated).unwrap();
        }
        let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
        assert!(
            committed == generated,
            "schema/openapi.json is out of date: run FB_UPDATE_SCHEMA=1 cargo test -p fb-http openapi"
        );
    }

    #[test]
    fn document_is_openapi_3_1() {
        let value: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        assert_eq!(value["openapi"], "3.1.0");
    }

    #[test]
    fn every_route_is_documented_and_nothing_else() {
        let doc = document();
        let mut documented = BTreeSet::new();
        for (path, item) in &doc.paths.paths {
            for (method, op) in [
                (Method::GET, &item.get),
                (Method::POST, &item.post),
                (Method::PUT, &item.put),
                (Method::DELETE, &item.delete),
                (Method::PATCH, &item.patch),
            ] {
                if op.is_some() {
                    documented.insert((method.to_string(), path.clone()));
                }
            }
        }
        let routed: BTreeSet<_> = routes::table()
            .iter()
            .map(|r| (r.method.to_string(), r.path.to_owned()))
            .collect();
        assert_eq!(documented, routed);
    }

    #[test]
    fn operation_ids_are_unique() {
        let value: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        let mut ids = BTreeSet::new();
        for item in value["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                let id = op["operationId"].as_str().unwrap().to_owned();
                assert!(ids.insert(id.clone()), "duplicate operationId {id}");
            }
        }
    }

    #[test]
    fn operations_declare_security_permission_and_audit_action() {
        let doc = document();
        for route in routes::table() {
            let item = doc.paths.paths.get(route.path).unwrap();
            let op = match route.method {
                Method::GET => item.get.as_ref(),
                Method::PATCH => item.patch.as_ref(),
                Method::DELETE => item.delete.as_ref(),
                _ => item.post.as_ref(),
            }
            .unwrap();
            let security = op.security.as_ref().unwrap();
            match route.access {
                Access::Public => assert!(security.is_empty(), "{} should be public", route.path),
                Access::Requires(p) => {
                    assert_eq!(security.len(), 1, "{}", route.path);
                    assert!(op.description.as_deref().unwrap().contains(p.as_str()));
                }
            }
            let action = format!("Audit log: `{}`", route.action);
            assert!(op.description.as_deref().unwrap().contains(&action));
        }
    }

    /// Every object a client sends refuses fields it does not know, so that nobody can slip a
    /// field they may not write (`role`, `sites`) into a body they may send: serde's
    /// `deny_unknown_fields` shows in the document as `additionalProperties: false`. Walks
    /// each request body's schema and every object schema it reaches.
    #[test]
    fn every_request_body_refuses_unknown_fields() {
        let value: serde_json::Value = serde_json::from_str(document_json()).unwrap();
        let schemas = &value["components"]["schemas"];
        let mut pending: Vec<String> = Vec::new();
        for item in value["paths"].as_object().unwrap().values() {
            for op in item.as_object().unwrap().values() {
                for media in op["requestBody"]["content"]
                    .as_object()
                    .into_iter()
                    .flatten()
                {
                    if let Some(name) = media.1["schema"]["$ref"].as_str() {
                        pending.push(name.trim_start_matches("#/components/schemas/").to_owned());
                    }
                }
            }
        }
        assert!(pending.len() >= 8, "request bodies found: {pending:?}");
        let mut seen = BTreeSet::new();
        while let Some(name) = pending.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let schema = &schemas[&name];
            if schema["type"] == "object" {
                assert_eq!(
                    schema["additionalProperties"],
                    serde_json::Value::Bool(false),
                    "request schema {name} accepts unknown fields: add #[serde(deny_unknown_fields)]"
                );
            }
            collect_refs(schema, &mut pending);
        }
        assert!(seen.contains("UpdateUserRequest") && seen.contains("Location"));
    }

    fn collect_refs(value: &serde_json::Value, into: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v.as_str()) {
                        ("$ref", Some(r)) => {
                            into.push(r.trim_start_matches("#/components/schemas/").to_owned())
                        }
                        _ => collect_refs(v, into),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, into)),
            _ => {}
        }
    }
}
