//! The HTTP adapter: `/healthz`, `/readyz`, `/metrics` and the versioned API under `/api/v1`.
//!
//! Invariants:
//! - This is the only crate that knows HTTP status codes; it maps `fb_core::ErrorKind` to them in
//!   one match ([`error::status_for`]).
//! - Every route is declared in [`routes::table`] with its [`Access`]: public, or one permission.
//!   There is no other way to add a route, and a test walks the table.
//! - Every response carries `x-request-id`; every error body carries the same id.
//! - Every route passes one middleware (`routes::Guard`) that checks access and records the call
//!   in the audit log: every state change and every refusal.

pub mod api;
mod audit;
mod error;
mod events;
mod extract;
mod formats;
mod openapi;
mod rate_limit;
pub mod routes;
mod security;
mod state;
mod telemetry;

pub use error::{ApiError, error_reference_markdown, status_for};
pub use events::EventLimits;
pub use formats::payload_parsers;
pub use openapi::document as openapi_document;
pub use rate_limit::{Cidr, ClientAddress, RateLimitPolicies, RateLimits, TrustedProxies};
pub use routes::{Access, Audited, Route};
pub use security::{
    API_CONTENT_SECURITY_POLICY, AllowedOrigins, DASHBOARD_CONTENT_SECURITY_POLICY,
    normalize_origin,
};
pub use state::{AppState, Options, Services};
pub use telemetry::{OP_ID_HEADER, metrics_handle};

/// Builds the complete application router.
pub fn router(state: AppState) -> axum::Router {
    routes::build(state)
}
