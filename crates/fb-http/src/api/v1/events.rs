//! The messages of the live event stream, `GET /api/v1/events` (WebSocket). OpenAPI cannot
//! describe WebSocket messages; the README lists them with examples.
//!
//! Every message is one JSON text message with a `type` field.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::Alert;

/// The subprotocol of this version of the stream, the only one the server selects.
pub const STREAM_PROTOCOL: &str = "fb.v1";

/// Browsers cannot set headers on a WebSocket handshake, so they offer their credential as a
/// second subprotocol, `fb.bearer.<access token or API key>`, next to [`STREAM_PROTOCOL`].
/// The server never echoes it.
pub const BEARER_PROTOCOL_PREFIX: &str = "fb.bearer.";

/// What the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type")]
pub enum StreamMessage {
    /// The first message: the stream is set up; every event from now on is delivered.
    #[serde(rename = "hello")]
    Hello {
        protocol: &'static str,
        /// Who the stream belongs to: `user:<name>` or `api_key:<id>`.
        principal: String,
        limits: StreamLimits,
    },
    #[serde(rename = "alert.opened")]
    AlertOpened { alert: Alert },
    /// Severity rose, or occurrences and last-seen time moved on.
    #[serde(rename = "alert.updated")]
    AlertUpdated { alert: Alert },
    #[serde(rename = "alert.escalated")]
    AlertEscalated { alert: Alert },
    #[serde(rename = "alert.acknowledged")]
    AlertAcknowledged { alert: Alert },
    #[serde(rename = "alert.resolved")]
    AlertResolved { alert: Alert },
    /// Machine health as detection recomputes it (every 5 s), for the machines the caller sees.
    #[serde(rename = "health")]
    Health {
        #[serde(with = "time::serde::rfc3339")]
        at: OffsetDateTime,
        machines: Vec<MachineHealth>,
    },
    /// Readings of a subscribed machine as ingest stored them, one message per machine and
    /// stored batch.
    #[serde(rename = "readings")]
    Readings {
        machine: String,
        readings: Vec<StreamReading>,
    },
    /// The machines whose readings this stream now carries, after a subscribe or unsubscribe.
    #[serde(rename = "subscribed")]
    Subscribed { machines: Vec<String> },
    /// A request of the client was refused; the stream stays open.
    #[serde(rename = "error")]
    Error {
        /// A stable code of the error table (docs/errors.md).
        code: &'static str,
        message: String,
        details: Vec<StreamFieldError>,
    },
}

/// The limits of this stream, announced in `hello`.
#[derive(Debug, Serialize)]
pub struct StreamLimits {
    /// Larger client messages close the stream (1009).
    pub max_client_message_bytes: usize,
    /// Messages waiting for a slow client, in bytes; beyond, the stream is closed (1013).
    pub max_queued_bytes: usize,
    /// The server pings this often; a client silent for two intervals is disconnected.
    pub ping_interval_secs: u64,
    /// Most machines one stream subscribes to.
    pub max_subscribed_machines: usize,
}

#[derive(Debug, Serialize)]
pub struct MachineHealth {
    pub machine: String,
    /// 0 to 100; 100 is nothing unusual.
    pub health: f64,
}

#[derive(Debug, Serialize)]
pub struct StreamReading {
    pub sensor: String,
    #[serde(with = "time::serde::rfc3339")]
    pub ts: OffsetDateTime,
    pub value: f64,
}

#[derive(Debug, Serialize)]
pub struct StreamFieldError {
    /// E.g. `machines[2]`.
    pub field: String,
    pub reason: String,
}

/// What a client may send.
#[derive(Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum StreamRequest {
    /// Adds machines whose readings the stream carries.
    Subscribe { machines: Vec<String> },
    /// Removes machines.
    Unsubscribe { machines: Vec<String> },
}
