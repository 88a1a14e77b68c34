//! The one error-code table of the product.
//!
//! Every error that reaches a user (HTTP body, CLI message, later MQTT dead letters and MCP
//! errors) carries a stable snake_case [`Code`]. Each code belongs to an [`ErrorKind`]; only the
//! edge adapters translate kinds into protocol statuses. Codes are part of the public API: never
//! rename one, add a new one instead.

use serde::Serialize;

/// What kind of failure a code is, independent of any protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    InvalidInput,
    Unauthenticated,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited,
    Unavailable,
    Timeout,
    Internal,
}

macro_rules! error_codes {
    ($( $(#[doc = $doc:literal])+ $code:ident => $kind:ident; )+) => {
        /// A stable, documented error code.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[allow(non_camel_case_types)]
        pub enum Code {
            $( $(#[doc = $doc])+ $code, )+
        }

        impl Code {
            /// Every code, in table order.
            pub const ALL: &'static [Code] = &[$(Code::$code,)+];

            pub fn kind(self) -> ErrorKind {
                match self { $(Code::$code => ErrorKind::$kind,)+ }
            }

            pub fn as_str(self) -> &'static str {
                match self { $(Code::$code => stringify!($code),)+ }
            }

            pub fn parse(s: &str) -> Option<Code> {
                Code::ALL.iter().copied().find(|c| c.as_str() == s)
            }

            /// The one-line description shown in the error reference.
            pub fn description(self) -> &'static str {
                match self { $(Code::$code => concat!($($doc),+).trim_ascii(),)+ }
            }
        }
    };
}

error_codes! {
    /// The request body is not valid JSON or does not match the expected shape.
    invalid_json => InvalidInput;
    /// The JSON body nests arrays and objects deeper than `server.max_json_depth`; it was refused before parsing.
    json_too_deep => InvalidInput;
    /// One or more fields are invalid; `details` lists each field and the reason.
    invalid_field => InvalidInput;
    /// A path or query parameter is malformed.
    invalid_parameter => InvalidInput;
    /// The request body is larger than `server.max_body_bytes`.
    payload_too_large => PayloadTooLarge;
    /// The request's Content-Type is not one the endpoint accepts.
    unsupported_media_type => UnsupportedMediaType;
    /// No route matches the path.
    route_not_found => NotFound;
    /// The route exists but not for this HTTP method.
    method_not_allowed => MethodNotAllowed;
    /// No credentials were sent (Authorization: Bearer <token or API key>).
    missing_credentials => Unauthenticated;
    /// Username or password is wrong, or the account is disabled.
    invalid_credentials => Unauthenticated;
    /// The access token is malformed, expired, not yet valid or signed with another key or algorithm.
    invalid_token => Unauthenticated;
    /// The API key is unknown, revoked or expired.
    invalid_api_key => Unauthenticated;
    /// The caller is authenticated but its role lacks the permission the route declares.
    permission_denied => Forbidden;
    /// The request's Origin (a web page on another site) is neither the server's own nor listed in `server.allowed_origins`.
    origin_not_allowed => Forbidden;
    /// The action needs a user session; API keys cannot perform it.
    user_session_required => Forbidden;
    /// No user has this id or username.
    user_not_found => NotFound;
    /// No API key has this id.
    api_key_not_found => NotFound;
    /// Another user already has this username.
    username_taken => Conflict;
    /// The API key is already revoked.
    api_key_revoked => Conflict;
    /// The last active admin of all sites cannot be disabled, demoted or limited to some sites.
    last_admin => Conflict;
    /// The request names a site outside the caller's own sites (`details` names the field, e.g. `location.site` or `sites`): nobody can put a machine into, or grant a user or API key, a site they cannot reach themselves. Also answered to callers limited to some sites for dead letters, which may hold readings of any site.
    site_out_of_scope => Forbidden;
    /// Nobody can change their own role or sites; another admin must.
    own_access_change => Forbidden;
    /// Too many password checks are running; retry after the time in Retry-After.
    auth_busy => RateLimited;
    /// The refresh token is unknown, expired, or of a session that has ended; log in again.
    refresh_token_invalid => Unauthenticated;
    /// The refresh token had been used already: two parties held it, so its session has been ended; log in again.
    refresh_token_reused => Unauthenticated;
    /// The one-time code or recovery code is wrong, expired or was used before, or the login's MFA step has expired.
    mfa_code_invalid => Unauthenticated;
    /// The role requires a second factor that this session has not verified: enrol one (POST /api/v1/auth/mfa/totp) before using other routes.
    mfa_enrolment_required => Forbidden;
    /// A second factor is enabled already; disable it before enrolling a new one.
    mfa_already_enabled => Conflict;
    /// No second factor is enrolled (or enrolment was not started).
    mfa_not_enrolled => Conflict;
    /// The role requires a second factor; it cannot be turned off.
    mfa_required_for_role => Forbidden;
    /// No session of this user has this id.
    session_not_found => NotFound;
    /// Too many requests from this client address, user or API key, or too many login attempts; retry after the time in Retry-After (the RateLimit and RateLimit-Policy headers name the limit).
    rate_limited => RateLimited;
    /// This user or API key, or the whole server, has as many event streams open as `events.max_connections_per_principal` or `events.max_connections` allow; close one first.
    too_many_connections => RateLimited;
    /// The route is a WebSocket endpoint: send a WebSocket handshake (GET with Upgrade: websocket).
    websocket_required => InvalidInput;
    /// No machine has this id (and auto-registration is off).
    unknown_machine => InvalidInput;
    /// The machine has no sensor with this key (and auto-registration is off).
    unknown_sensor => InvalidInput;
    /// The machine is marked inactive; its readings are refused.
    machine_inactive => InvalidInput;
    /// A reading's value is not a number.
    non_numeric_value => InvalidInput;
    /// A reading's value is NaN or infinite.
    non_finite_value => InvalidInput;
    /// A reading's value lies outside the sensor's physical range (a sensor fault, not a process value).
    value_out_of_range => InvalidInput;
    /// A timestamp is neither RFC 3339 nor a Unix time in seconds or milliseconds.
    invalid_timestamp => InvalidInput;
    /// A reading's timestamp is further in the future than the tolerated clock skew.
    timestamp_in_future => InvalidInput;
    /// A reading's timestamp is older than the raw-data retention.
    timestamp_too_old => InvalidInput;
    /// A reading's unit differs from its sensor's unit.
    unit_mismatch => InvalidInput;
    /// The CSV body is malformed (header, column count or quoting).
    invalid_csv => InvalidInput;
    /// No machine has this id.
    machine_not_found => NotFound;
    /// Another machine already has this id.
    machine_exists => Conflict;
    /// The ingest queue is full; retry after the time in Retry-After.
    ingest_overloaded => Unavailable;
    /// No dead letter has this id.
    dead_letter_not_found => NotFound;
    /// A dead letter's payload is still refused as a whole (unreadable, of a content type no
    /// parser reads, or cut off at its size limit), so replaying it cannot store anything; the
    /// message names the refusal's own code.
    dead_letter_unreadable => Conflict;
    /// The body's Content-Encoding is unsupported or the compressed data is corrupt.
    invalid_encoding => InvalidInput;
    /// A query asks for too long a range or too many points; narrow it or use buckets.
    query_too_large => InvalidInput;
    /// No alert has this id.
    alert_not_found => NotFound;
    /// The alert cannot make this change from its current status (e.g. acknowledge a resolved alert).
    alert_transition_invalid => Conflict;
    /// No device credential has this name or id.
    device_not_found => NotFound;
    /// Another device (revoked ones included) already has this name.
    device_exists => Conflict;
    /// The device credential is already revoked.
    device_revoked => Conflict;
    /// No maintenance ticket has this id (or its site is outside the caller's sites).
    ticket_not_found => NotFound;
    /// The ticket's lifecycle does not allow this change from its current status (e.g. close a ticket that is not resolved); the lifecycle table is in the README's Maintenance section.
    ticket_transition_invalid => Conflict;
    /// The ticket is closed: it changes no more.
    ticket_closed => Conflict;
    /// The machine already has an open or in-progress ticket for this failure type (the message names it); work on that one, or resolve it first.
    ticket_already_open => Conflict;
    /// The ticket changed since the `version` the request names; read it again and retry.
    ticket_version_conflict => Conflict;
    /// No approval item has this id (or its site is outside the caller's sites).
    approval_not_found => NotFound;
    /// The approval item was answered already (approved, rejected or expired); an item is answered once.
    approval_already_decided => Conflict;
    /// The approval item's time to answer ran out; it expires and its action does not run.
    approval_expired => Conflict;
    /// No energy recommendation has this id (or its site is outside the caller's sites).
    recommendation_not_found => NotFound;
    /// The energy recommendation is not proposed any more (accepted, dismissed or expired): it is decided once.
    recommendation_not_open => Conflict;
    /// No purchase order has this id (or its site is outside the caller's sites).
    order_not_found => NotFound;
    /// The purchase order's lifecycle does not allow this change from its current status (e.g. receive an order that is not placed); the lifecycle is in the README's Procurement section.
    order_transition_invalid => Conflict;
    /// The request names a part (sku) the catalogue does not have; add the part first.
    part_not_found => NotFound;
    /// The request names a supplier the catalogue does not have; add the supplier first.
    supplier_not_found => NotFound;
    /// The offer's supplier quotes in another currency than the part is priced in; FactoryBrain does not convert currencies.
    currency_mismatch => InvalidInput;
    /// No model in the registry has this id.
    model_not_found => NotFound;
    /// The model's payload format is not one this server reads (the message lists those it does); it cannot be made active here.
    model_format_unsupported => Conflict;
    /// This server could not load the model's payload (the message says why), so it was not made active; the active model is unchanged.
    model_payload_invalid => Conflict;
    /// Nothing to roll back to: no model of this kind and machine type was active before the current one (or none is active).
    no_previous_model => Conflict;
    /// The active model of this kind and machine type changed while the request was handled; look again and retry.
    model_activation_conflict => Conflict;
    /// The store (database) cannot be reached or timed out.
    storage_unavailable => Unavailable;
    /// The service is starting or shutting down, or a dependency is not ready.
    not_ready => Unavailable;
    /// The request took longer than `server.request_timeout_secs`.
    request_timeout => Timeout;
    /// An unexpected error; details are in the server log under the request id.
    internal => Internal;
}

/// A field-level validation failure: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Dotted path of the field, e.g. `password` or `sensors[2].unit`.
    pub field: String,
    /// Human-readable reason.
    pub reason: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The fields named, for an error message: `field 'a'` or `fields 'a', 'b'` (the reasons
    /// travel in the details).
    pub fn names(fields: &[FieldError]) -> String {
        let names: Vec<&str> = fields.iter().map(|f| f.field.as_str()).collect();
        match names.as_slice() {
            [one] => format!("field '{one}'"),
            many => format!("fields '{}'", many.join("', '")),
        }
    }
}

/// Implemented by every area error so the edges can render it uniformly.
pub trait Coded: std::error::Error {
    fn code(&self) -> Code;

    /// Field-level details, if any.
    fn field_errors(&self) -> &[FieldError] {
        &[]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn field_names_read_as_a_phrase() {
        let one = [FieldError::new("unit", "empty")];
        assert_eq!(FieldError::names(&one), "field 'unit'");
        let two = [FieldError::new("a", "x"), FieldError::new("b.c", "y")];
        assert_eq!(FieldError::names(&two), "fields 'a', 'b.c'");
    }

    #[test]
    fn codes_are_unique_snake_case_and_documented() {
        let mut seen = HashSet::new();
        for code in Code::ALL {
            let name = code.as_str();
            assert!(seen.insert(name), "duplicate code {name}");
            assert!(
                name.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{name} is not snake_case"
            );
            assert!(!code.description().is_empty(), "{name} has no description");
        }
    }

    #[test]
    fn description_is_the_doc_comment() {
        assert_eq!(
            Code::username_taken.description(),
            "Another user already has this username."
        );
        assert_eq!(Code::username_taken.kind(), ErrorKind::Conflict);
    }
}
