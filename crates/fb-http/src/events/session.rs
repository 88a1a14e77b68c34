//! One event stream: what it listens to, what the client asks of it, and how it ends.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{broadcast, watch};
use tokio::time::Instant;

use fb_app::alerts::AlertEvent;
use fb_app::detection::HealthUpdate;
use fb_core::error::{Coded, ErrorKind};
use fb_core::identity::Principal;
use fb_core::plant::{MachineId, ReadingBatch};

use super::outbox::{self, Outbox};
use super::{MAX_SUBSCRIBED_MACHINES, StreamPermit, may_see};
use crate::api::v1::{
    Alert, MachineHealth, STREAM_PROTOCOL, StreamFieldError, StreamLimits, StreamMessage,
    StreamReading, StreamRequest,
};
use crate::error::ApiError;
use crate::extract::parse_json_within;
use crate::state::AppState;

/// Why a stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ending {
    /// The client closed it, or the connection is gone.
    Gone,
    /// The node is shutting down.
    Shutdown,
    /// More than `events.max_queued_bytes` waited for the client.
    TooSlow,
    /// Nothing heard from the client for two ping intervals.
    Unresponsive,
    /// A client message over `events.max_client_message_bytes`.
    TooLarge,
    /// A binary message: the protocol is JSON text.
    Binary,
    /// The credential stopped being valid (expired, revoked, user disabled).
    Unauthenticated(String),
    /// More client messages than `CLIENT_MESSAGES_BURST` at once or `CLIENT_MESSAGES_PER_SEC`
    /// sustained: each may cost up to a hundred machine lookups, outside the per-principal
    /// request limit.
    TooManyMessages,
}

/// Client messages a stream may send at once, and sustained per second. A dashboard
/// subscribes a handful of times per page; a flood is not a client of ours.
const CLIENT_MESSAGES_BURST: f64 = 20.0;
const CLIENT_MESSAGES_PER_SEC: f64 = 2.0;

/// A token bucket for one stream's client messages (one stream, one task: no sharing).
struct MessageBudget {
    tokens: f64,
    at: std::time::Instant,
}

impl MessageBudget {
    fn new() -> Self {
        Self {
            tokens: CLIENT_MESSAGES_BURST,
            at: std::time::Instant::now(),
        }
    }

    fn take(&mut self) -> bool {
        let now = std::time::Instant::now();
        let refill = now.duration_since(self.at).as_secs_f64() * CLIENT_MESSAGES_PER_SEC;
        self.tokens = (self.tokens + refill).min(CLIENT_MESSAGES_BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl Ending {
    /// The close frame the client gets; none when it cannot read one.
    fn close_frame(&self, limits: &super::EventLimits) -> Option<CloseFrame> {
        let (code, reason) = match self {
            Ending::Gone | Ending::Unresponsive => return None,
            Ending::Shutdown => (1001, "the server is shutting down; reconnect".to_owned()),
            Ending::TooSlow => (
                1013,
                format!(
                    "too slow: over {} bytes waited to be sent; reconnect",
                    limits.max_queued_bytes
                ),
            ),
            Ending::TooLarge => (
                1009,
                format!(
                    "messages are limited to {} bytes",
                    limits.max_client_message_bytes
                ),
            ),
            Ending::Binary => (1003, "send JSON text messages".to_owned()),
            Ending::Unauthenticated(code) => (1008, format!("credential no longer valid: {code}")),
            Ending::TooManyMessages => (
                1008,
                format!(
                    "too many messages: at most {CLIENT_MESSAGES_BURST} at once and \
                     {CLIENT_MESSAGES_PER_SEC} a second"
                ),
            ),
        };
        Some(CloseFrame {
            code,
            reason: reason.into(),
        })
    }

    /// The `reason` label of `fb_ws_dropped_total` when the server ended the stream for cause.
    fn dropped_reason(&self) -> Option<&'static str> {
        match self {
            Ending::Gone | Ending::Shutdown => None,
            Ending::TooSlow => Some("too_slow"),
            Ending::Unresponsive => Some("unresponsive"),
            Ending::TooLarge => Some("message_too_large"),
            Ending::Binary => Some("binary_message"),
            Ending::Unauthenticated(_) => Some("unauthenticated"),
            Ending::TooManyMessages => Some("too_many_messages"),
        }
    }
}

/// What woke the session up.
#[expect(
    clippy::large_enum_variant,
    reason = "one at a time, on the session loop's stack; boxing would allocate per event"
)]
enum Wake {
    Closing,
    WriterStopped,
    Client(Option<Result<Message, axum::Error>>),
    Alert(Result<AlertEvent, broadcast::error::RecvError>),
    Health(Result<Arc<HealthUpdate>, broadcast::error::RecvError>),
    Readings(Result<Arc<ReadingBatch>, broadcast::error::RecvError>),
    Ping,
}

/// An admitted stream, subscribed to the alerts and health before its handshake is answered,
/// so that nothing announced after the client sees the handshake is missed.
pub(crate) struct Session {
    state: AppState,
    principal: Principal,
    /// Checked again at every ping; never logged.
    credential: String,
    _permit: StreamPermit,
    closing: watch::Receiver<bool>,
    alerts: broadcast::Receiver<AlertEvent>,
    health: broadcast::Receiver<Arc<HealthUpdate>>,
    /// Stored readings, while at least one machine is subscribed.
    readings: Option<broadcast::Receiver<Arc<ReadingBatch>>>,
    machines: BTreeSet<MachineId>,
    budget: MessageBudget,
}

impl Session {
    pub(crate) fn new(
        state: AppState,
        principal: Principal,
        credential: String,
        permit: StreamPermit,
    ) -> Self {
        Self {
            closing: state.events.closing(),
            alerts: state.alerts.subscribe(),
            health: state.health_feed.subscribe(),
            readings: None,
            budget: MessageBudget::new(),
            machines: BTreeSet::new(),
            state,
            principal,
            credential,
            _permit: permit,
        }
    }

    /// Serves the stream until it ends; the writer runs beside it on the same task.
    pub(crate) async fn run(self, socket: WebSocket) {
        let (sink, stream) = socket.split();
        let max_queued = self.state.events.limits().max_queued_bytes;
        let (outbox, writer) = outbox::channel(sink, max_queued);
        tokio::join!(self.serve(stream, outbox), writer.run());
    }

    async fn serve(mut self, mut stream: futures::stream::SplitStream<WebSocket>, outbox: Outbox) {
        let limits = self.state.events.limits().clone();
        let started = Instant::now();
        let mut ping =
            tokio::time::interval_at(Instant::now() + limits.ping_interval, limits.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_heard = Instant::now();
        let mut result = self.send(&outbox, &self.hello(&limits));
        while result.is_ok() {
            // The arms only pick what happened; the work runs after the select, so that no
            // borrow of a receiver lives across it.
            let wake = tokio::select! {
                biased;
                _ = self.closing.wait_for(|closing| *closing) => Wake::Closing,
                () = outbox.writer_stopped() => Wake::WriterStopped,
                incoming = stream.next() => Wake::Client(incoming),
                event = self.alerts.recv() => Wake::Alert(event),
                batch = next_batch(&mut self.readings) => Wake::Readings(batch),
                update = self.health.recv() => Wake::Health(update),
                _ = ping.tick() => Wake::Ping,
            };
            result = match wake {
                Wake::Closing => Err(Ending::Shutdown),
                Wake::WriterStopped => Err(Ending::Gone),
                Wake::Client(incoming) => {
                    last_heard = Instant::now();
                    self.on_client(incoming, &outbox).await
                }
                Wake::Alert(event) => match received(event) {
                    Ok(e) => self.on_alert(&e, &outbox).await,
                    Err(ending) => Err(ending),
                },
                Wake::Readings(batch) => match received(batch) {
                    Ok(b) => self.on_readings(&b, &outbox).await,
                    Err(ending) => Err(ending),
                },
                Wake::Health(update) => match received(update) {
                    Ok(u) => self.on_health(&u, &outbox).await,
                    Err(ending) => Err(ending),
                },
                Wake::Ping => {
                    if last_heard.elapsed() > 2 * limits.ping_interval {
                        Err(Ending::Unresponsive)
                    } else {
                        self.on_ping(&outbox).await
                    }
                }
            };
        }
        let ending = result.err().unwrap_or(Ending::Gone);
        if let Some(reason) = ending.dropped_reason() {
            metrics::counter!("fb_ws_dropped_total", "reason" => reason).increment(1);
        }
        tracing::info!(
            principal = %self.principal.describe(),
            ending = ?ending,
            open_secs = started.elapsed().as_secs(),
            "Event stream closed."
        );
        outbox.close(ending.close_frame(&limits));
    }

    fn hello(&self, limits: &super::EventLimits) -> StreamMessage {
        StreamMessage::Hello {
            protocol: STREAM_PROTOCOL,
            principal: self.principal.describe(),
            limits: StreamLimits {
                max_client_message_bytes: limits.max_client_message_bytes,
                max_queued_bytes: limits.max_queued_bytes,
                ping_interval_secs: limits.ping_interval.as_secs(),
                max_subscribed_machines: MAX_SUBSCRIBED_MACHINES,
            },
        }
    }

    fn send(&self, outbox: &Outbox, message: &StreamMessage) -> Result<(), Ending> {
        let text = serde_json::to_string(message).map_err(|e| {
            tracing::error!(error = %e, "An event could not be serialized; closing the stream.");
            Ending::Gone
        })?;
        outbox
            .push(Message::Text(text.into()))
            .map_err(|_| Ending::TooSlow)
    }

    async fn on_client(
        &mut self,
        incoming: Option<Result<Message, axum::Error>>,
        outbox: &Outbox,
    ) -> Result<(), Ending> {
        match incoming {
            None => Err(Ending::Gone),
            Some(Err(error)) if is_too_large(&error) => Err(Ending::TooLarge),
            Some(Err(_)) | Some(Ok(Message::Close(_))) => Err(Ending::Gone),
            Some(Ok(Message::Binary(_))) => Err(Ending::Binary),
            // Pings are answered by the socket itself; both only show the client is there.
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
            Some(Ok(Message::Text(_))) if !self.budget.take() => Err(Ending::TooManyMessages),
            Some(Ok(Message::Text(text))) => {
                let depth = self.state.options.max_json_depth;
                let reply = match parse_json_within::<StreamRequest>(text.as_bytes(), depth) {
                    Ok(request) => self.on_request(request).await,
                    Err(refused) => refusal(&refused),
                };
                self.send(outbox, &reply)
            }
        }
    }

    async fn on_request(&mut self, request: StreamRequest) -> StreamMessage {
        match request {
            StreamRequest::Subscribe { machines } => match self.subscribe(&machines).await {
                Ok(()) => self.subscribed(),
                Err(refused) => refusal(&refused),
            },
            StreamRequest::Unsubscribe { machines } => {
                for id in machines {
                    self.machines.remove(&MachineId(id));
                }
                if self.machines.is_empty() {
                    self.readings = None;
                }
                self.subscribed()
            }
        }
    }

    /// Adds `ids` to the subscribed machines, all or none: each must be a machine the caller
    /// can read.
    async fn subscribe(&mut self, ids: &[String]) -> Result<(), ApiError> {
        let field = |i: usize| format!("machines[{i}]");
        if ids.is_empty() {
            return Err(ApiError::invalid_field(
                "machines",
                "list at least one machine",
            ));
        }
        let new: BTreeSet<MachineId> = ids.iter().map(|id| MachineId(id.clone())).collect();
        let total = self.machines.union(&new).count();
        if total > MAX_SUBSCRIBED_MACHINES {
            return Err(ApiError::invalid_field(
                "machines",
                &format!(
                    "at most {MAX_SUBSCRIBED_MACHINES} machines per stream; this would make {total}"
                ),
            ));
        }
        for (i, id) in ids.iter().enumerate() {
            if let Err(e) = self.state.plant.get(&self.principal, id).await {
                let e = ApiError::from(e);
                let reason = e.message().to_owned();
                return Err(e.with_details(vec![fb_core::error::FieldError::new(field(i), reason)]));
            }
        }
        self.machines.extend(new);
        if self.readings.is_none() {
            self.readings = Some(self.state.ingest.subscribe());
        }
        Ok(())
    }

    fn subscribed(&self) -> StreamMessage {
        StreamMessage::Subscribed {
            machines: self.machines.iter().map(|m| m.0.clone()).collect(),
        }
    }

    /// The site of a machine, as far as the caller may know it: `None` when the machine is
    /// gone or outside the caller's sites. Only asked for callers scoped to some sites; it goes
    /// through the registry's cache, so it costs a map lookup, not a query, per event.
    async fn site_of(&self, machine: &MachineId) -> Option<String> {
        if self.principal.sites.is_all() {
            return None;
        }
        self.state
            .plant
            .get(&self.principal, &machine.0)
            .await
            .ok()
            .map(|m| m.location.site)
    }

    async fn on_alert(&self, event: &AlertEvent, outbox: &Outbox) -> Result<(), Ending> {
        let site = self.site_of(&event.alert().machine).await;
        if !may_see(&self.principal, site.as_deref()) {
            return Ok(());
        }
        let alert = Alert::from(event.alert().clone());
        let message = match event {
            AlertEvent::Opened(_) => StreamMessage::AlertOpened { alert },
            AlertEvent::Updated(_) => StreamMessage::AlertUpdated { alert },
            AlertEvent::Escalated(_) => StreamMessage::AlertEscalated { alert },
            AlertEvent::Acknowledged(_) => StreamMessage::AlertAcknowledged { alert },
            AlertEvent::Resolved(_) => StreamMessage::AlertResolved { alert },
        };
        self.send(outbox, &message)
    }

    async fn on_health(&self, update: &HealthUpdate, outbox: &Outbox) -> Result<(), Ending> {
        let mut machines = Vec::with_capacity(update.machines.len());
        for (machine, health) in &update.machines {
            let site = self.site_of(machine).await;
            if may_see(&self.principal, site.as_deref()) {
                machines.push(MachineHealth {
                    machine: machine.0.clone(),
                    health: *health,
                });
            }
        }
        if machines.is_empty() {
            return Ok(());
        }
        self.send(
            outbox,
            &StreamMessage::Health {
                at: update.at,
                machines,
            },
        )
    }

    /// The subscribed machines' readings of a stored batch, one message per machine.
    async fn on_readings(&self, batch: &ReadingBatch, outbox: &Outbox) -> Result<(), Ending> {
        // Which series to pass on, decided once per series rather than per reading.
        let mut wanted = Vec::with_capacity(batch.series().len());
        for series in batch.series() {
            let subscribed = self.machines.contains(&series.machine);
            wanted.push(
                subscribed
                    && may_see(
                        &self.principal,
                        self.site_of(&series.machine).await.as_deref(),
                    ),
            );
        }
        let mut per_machine: BTreeMap<&MachineId, Vec<StreamReading>> = BTreeMap::new();
        for sample in batch.samples() {
            let index = sample.series.get();
            if !wanted.get(index).copied().unwrap_or(false) {
                continue;
            }
            let series = &batch.series()[index];
            per_machine
                .entry(&series.machine)
                .or_default()
                .push(StreamReading {
                    sensor: series.sensor.0.clone(),
                    ts: sample.ts(),
                    value: sample.value,
                });
        }
        for (machine, readings) in per_machine {
            self.send(
                outbox,
                &StreamMessage::Readings {
                    machine: machine.0.clone(),
                    readings,
                },
            )?;
        }
        Ok(())
    }

    /// Pings, and checks the credential again: a revoked key, a disabled user or an expired
    /// token ends the stream, as it would refuse the next request.
    async fn on_ping(&mut self, outbox: &Outbox) -> Result<(), Ending> {
        match self.state.auth.authenticate(&self.credential).await {
            Ok(principal) => self.principal = principal,
            Err(e) if e.code().kind() == ErrorKind::Unauthenticated => {
                return Err(Ending::Unauthenticated(e.code().as_str().to_owned()));
            }
            // The store is unavailable: that says nothing about the credential.
            Err(e) => tracing::warn!(error = %e, "Could not check an event stream's credential."),
        }
        outbox
            .push(Message::Ping(Bytes::new()))
            .map_err(|_| Ending::TooSlow)
    }
}

/// The next stored batch while readings are subscribed; otherwise never.
async fn next_batch(
    readings: &mut Option<broadcast::Receiver<Arc<ReadingBatch>>>,
) -> Result<Arc<ReadingBatch>, broadcast::error::RecvError> {
    match readings {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

/// An event from a channel, or why the stream cannot go on: a stream that missed events (it
/// fell behind the channel) is closed like one whose queue overflowed, so that the client
/// reconnects and reads the current state rather than going on with a gap.
fn received<T>(event: Result<T, broadcast::error::RecvError>) -> Result<T, Ending> {
    event.map_err(|e| match e {
        broadcast::error::RecvError::Lagged(_) => Ending::TooSlow,
        broadcast::error::RecvError::Closed => Ending::Shutdown,
    })
}

fn refusal(error: &ApiError) -> StreamMessage {
    StreamMessage::Error {
        code: error.code().as_str(),
        message: error.message().to_owned(),
        details: error
            .details()
            .iter()
            .map(|d| StreamFieldError {
                field: d.field.clone(),
                reason: d.reason.clone(),
            })
            .collect(),
    }
}

/// Whether the socket refused a client message for its size (`events.max_client_message_bytes`).
fn is_too_large(error: &axum::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<tungstenite::Error>())
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_gets_a_burst_of_messages_then_a_trickle() {
        let mut budget = MessageBudget::new();
        for i in 0..CLIENT_MESSAGES_BURST as usize {
            assert!(budget.take(), "message {i} of the burst");
        }
        assert!(!budget.take(), "past the burst");
        budget.at -= std::time::Duration::from_secs(1);
        assert!(budget.take() && budget.take(), "two a second come back");
        assert!(!budget.take());
    }
}
