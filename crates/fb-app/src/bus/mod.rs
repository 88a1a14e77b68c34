//! The event bus in the application (issue #7): the in-process bus, and the publisher that
//! puts the alert lifecycle and detection's anomalies on whichever bus the server wires.
//!
//! [`EventPublisher`] follows the alerts' broadcast ([`crate::alerts::Service::subscribe`])
//! and detection's [`AnomalyFeed`](crate::detection::AnomalyFeed), both announced after the
//! store has the change, and publishes `alert.opened`, `alert.acknowledged`, `alert.resolved`
//! and `anomaly.detected` events under their machine's site. Updates and escalations stay on
//! the in-process broadcast (the dashboard's), not the bus: agents react to lifecycle steps.
//!
//! What is and is not guaranteed: a change is published after it is stored, with a fresh
//! event id, retried by the adapter within its bounds (NATS: `fb-outbound`'s time-out, retries
//! and breaker, de-duplicated by id). A change this node stored but could not publish (the
//! bus down past its retries, a full bus, the node stopping between the store and the
//! publish, or the publisher more than 1024 changes behind) is counted in
//! `fb_bus_published_total{outcome="failed"|"missed"}` and logged; the store still holds it.
//! A transactional outbox that would close that gap belongs to the agents' part of issue #7.

mod memory;

use std::sync::Arc;

use tokio::sync::{broadcast, watch};

use fb_core::detection::Anomaly;
use fb_core::events::{AlertEvent as AlertPayload, AnomalyEvent, Envelope, Event};
use fb_core::plant::MachineId;
use fb_core::ports::{EventBus, MachineStore, Published};

use crate::alerts::AlertEvent;
use crate::maintenance::TicketEvent;

pub use memory::InProcessBus;

/// The `source` of the events this node publishes for alerts and detection.
pub const ALERTS_SOURCE: &str = "alerts";
pub const DETECTION_SOURCE: &str = "detection";
pub const MAINTENANCE_SOURCE: &str = "maintenance";

/// What became of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Published,
    Duplicate,
    Failed,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Published => "published",
            Outcome::Duplicate => "duplicate",
            Outcome::Failed => "failed",
        }
    }
}

/// Publishes the alert lifecycle and anomalies on the bus (see the module docs).
pub struct EventPublisher {
    bus: Arc<dyn EventBus>,
    machines: Arc<dyn MachineStore>,
}

impl EventPublisher {
    /// `machines` tells each event's site (a cached store: every event looks one up).
    pub fn new(bus: Arc<dyn EventBus>, machines: Arc<dyn MachineStore>) -> Self {
        Self { bus, machines }
    }

    /// Publishes what the receivers announce until `stop` turns true, then what they still
    /// hold.
    pub async fn run(
        self,
        mut alerts: broadcast::Receiver<AlertEvent>,
        mut anomalies: broadcast::Receiver<Arc<Vec<Anomaly>>>,
        mut tickets: broadcast::Receiver<TicketEvent>,
        mut stop: watch::Receiver<bool>,
    ) {
        enum Next {
            Stop,
            Alert(Result<AlertEvent, broadcast::error::RecvError>),
            Anomalies(Result<Arc<Vec<Anomaly>>, broadcast::error::RecvError>),
            Ticket(Result<TicketEvent, broadcast::error::RecvError>),
        }
        loop {
            // The arms only pick what happened; the work runs after the select, so that no
            // borrow of the stop signal lives across it.
            let next = tokio::select! {
                _ = stop.wait_for(|s| *s) => Next::Stop,
                event = alerts.recv() => Next::Alert(event),
                batch = anomalies.recv() => Next::Anomalies(batch),
                ticket = tickets.recv() => Next::Ticket(ticket),
            };
            match next {
                Next::Alert(Ok(event)) => {
                    self.alert(&event).await;
                }
                Next::Anomalies(Ok(batch)) => {
                    self.anomalies(&batch).await;
                }
                Next::Ticket(Ok(event)) => {
                    self.ticket(&event).await;
                }
                Next::Alert(Err(broadcast::error::RecvError::Lagged(n))) => self.missed("alert", n),
                Next::Ticket(Err(broadcast::error::RecvError::Lagged(n))) => {
                    self.missed("ticket.changed", n)
                }
                Next::Anomalies(Err(broadcast::error::RecvError::Lagged(n))) => {
                    self.missed("anomaly.detected", n)
                }
                Next::Stop
                | Next::Alert(Err(broadcast::error::RecvError::Closed))
                | Next::Anomalies(Err(broadcast::error::RecvError::Closed))
                | Next::Ticket(Err(broadcast::error::RecvError::Closed)) => break,
            }
        }
        // Whatever was announced before the stop is published before the task ends.
        while let Ok(event) = alerts.try_recv() {
            self.alert(&event).await;
        }
        while let Ok(batch) = anomalies.try_recv() {
            self.anomalies(&batch).await;
        }
        while let Ok(event) = tickets.try_recv() {
            self.ticket(&event).await;
        }
    }

    /// Publishes an alert's lifecycle step; `None` for changes that are not one (updates,
    /// escalations).
    pub async fn alert(&self, event: &AlertEvent) -> Option<Outcome> {
        let alert = event.alert();
        let payload = AlertPayload::from(alert);
        let (bus_event, at) = match event {
            AlertEvent::Opened(a) => (Event::AlertOpened(payload), a.opened_at),
            AlertEvent::Acknowledged(a) => (
                Event::AlertAcknowledged(payload),
                a.acknowledged.as_ref().map_or(a.updated_at, |x| x.at),
            ),
            AlertEvent::Resolved(a) => (
                Event::AlertResolved(payload),
                a.resolved.as_ref().map_or(a.updated_at, |x| x.at),
            ),
            AlertEvent::Updated(_) | AlertEvent::Escalated(_) => return None,
        };
        Some(
            self.publish(ALERTS_SOURCE, &alert.machine, at, bus_event)
                .await,
        )
    }

    /// Publishes a ticket's opening and each change of its status as `ticket.changed` (the
    /// subject's action token is the new status); `None` for edits and linked alerts, which
    /// do not move it. The ticket's own site is the event's.
    pub async fn ticket(&self, event: &TicketEvent) -> Option<Outcome> {
        let ticket = event.ticket();
        let at = match event {
            TicketEvent::Opened(t) => t.created_at,
            TicketEvent::Moved { ticket, .. } => ticket.updated_at,
            TicketEvent::Updated(_) | TicketEvent::AlertLinked { .. } => return None,
        };
        let envelope = Envelope::new(
            MAINTENANCE_SOURCE,
            Some(&ticket.site),
            at,
            Event::Ticket(fb_core::events::TicketEvent::from(ticket)),
        );
        Some(self.send(&envelope, &ticket.machine).await)
    }

    /// Publishes one `anomaly.detected` event per anomaly.
    pub async fn anomalies(&self, anomalies: &[Anomaly]) -> Vec<Outcome> {
        let mut outcomes = Vec::with_capacity(anomalies.len());
        for a in anomalies {
            let event = Event::AnomalyDetected(AnomalyEvent::from(a));
            outcomes.push(
                self.publish(DETECTION_SOURCE, &a.machine, a.at, event)
                    .await,
            );
        }
        outcomes
    }

    async fn publish(
        &self,
        source: &str,
        machine: &MachineId,
        at: time::OffsetDateTime,
        event: Event,
    ) -> Outcome {
        let name = event.name();
        let outcome = match self.machines.machine(machine).await {
            Ok(found) => {
                // A machine deleted since has no site any more; the event still goes out.
                let site = found.map(|m| m.location.site);
                let envelope = Envelope::new(source, site.as_deref(), at, event);
                return self.send(&envelope, machine).await;
            }
            Err(e) => {
                tracing::warn!(event = name, machine = %machine, error = %e, "Could not look up the site of an event's machine; the event was not published.");
                Outcome::Failed
            }
        };
        self.count(name, outcome);
        outcome
    }

    async fn send(&self, envelope: &Envelope, machine: &MachineId) -> Outcome {
        let name = envelope.event().name();
        let outcome = match self.bus.publish(envelope).await {
            Ok(Published::New) => Outcome::Published,
            Ok(Published::Duplicate) => Outcome::Duplicate,
            Err(e) => {
                tracing::warn!(event = name, id = %envelope.id(), machine = %machine, error = %e, "Could not publish an event on the bus; the store keeps the change.");
                Outcome::Failed
            }
        };
        self.count(name, outcome);
        outcome
    }

    fn count(&self, name: &'static str, outcome: Outcome) {
        metrics::counter!(
            "fb_bus_published_total",
            "event" => name,
            "outcome" => outcome.as_str(),
            "backend" => self.bus.backend()
        )
        .increment(1);
    }

    fn missed(&self, event: &'static str, n: u64) {
        metrics::counter!(
            "fb_bus_published_total",
            "event" => event,
            "outcome" => "missed",
            "backend" => self.bus.backend()
        )
        .increment(n);
        tracing::warn!(
            event,
            missed = n,
            "The bus publisher fell behind; changes were stored but not published."
        );
    }
}

#[cfg(test)]
mod tests;
