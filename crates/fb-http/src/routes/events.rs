//! The live event stream: alerts, machine health and, on request, readings, over a WebSocket.

use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::HeaderMap;
use axum::response::Response;

use fb_core::Code;

use crate::api::v1::STREAM_PROTOCOL;
use crate::error::{ApiError, ErrorBody};
use crate::events::Session;
use crate::extract::Caller;
use crate::security::check_origin;
use crate::state::AppState;

/// The live event stream (WebSocket): alerts, machine health, subscribed readings.
///
/// The messages are listed in the README ("Event stream"). Send the credential as
/// `Authorization: Bearer`, or from a browser as the subprotocol `fb.bearer.<credential>` next
/// to `fb.v1`; the server selects `fb.v1`. Pages of origins other than the server's own and
/// `server.allowed_origins` are refused.
#[utoipa::path(get, operation_id = "event_stream", path = "/api/v1/events", tag = "events",
    responses(
        (status = 101, description = "Switching to the WebSocket protocol fb.v1"),
        (status = 400, description = "Not a WebSocket handshake (websocket_required), or subprotocols offered without fb.v1 (invalid_parameter)", body = ErrorBody),
        (status = 403, description = "The page's origin may not open the stream (origin_not_allowed), or the role lacks the permission", body = ErrorBody),
        (status = 429, description = "rate_limited, or too_many_connections: the caller or the server has the most streams open (events.max_connections_per_principal, events.max_connections)", body = ErrorBody),
    ))]
pub(crate) async fn stream(
    State(state): State<AppState>,
    Caller(principal): Caller,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    check_origin(
        &headers,
        &state.options.allowed_origins,
        state.options.own_scheme(),
    )?;
    let upgrade = upgrade.map_err(|_| {
        ApiError::new(
            Code::websocket_required,
            "this route is a WebSocket: send a WebSocket handshake (GET with Upgrade: websocket)",
        )
    })?;
    let offered: Vec<&str> = upgrade
        .requested_protocols()
        .filter_map(|p| p.to_str().ok())
        .collect();
    if !offered.is_empty() && !offered.contains(&STREAM_PROTOCOL) {
        return Err(ApiError::invalid_parameter(
            "Sec-WebSocket-Protocol",
            "offer the subprotocol fb.v1 (next to fb.bearer.<credential> if you send one)",
        ));
    }
    // The access check found it; the stream checks it again at every ping.
    let credential = super::credential(&headers)
        .ok_or_else(|| ApiError::new(Code::internal, Code::internal.description()))?
        .to_owned();
    let permit = state.events.admit(&principal)?;
    let max_message = state.events.limits().max_client_message_bytes;
    let session = Session::new(state, principal, credential, permit);
    Ok(upgrade
        .protocols([STREAM_PROTOCOL])
        .max_message_size(max_message)
        .max_frame_size(max_message)
        .on_upgrade(move |socket| session.run(socket)))
}
