//! Domain events (issue #7): what happened in the plant and in its agents, as published on the
//! event bus ([`crate::ports::EventBus`]) for the operations agents and anything else that
//! reacts.
//!
//! Every event travels in an [`Envelope`]: a format version, an id (UUIDv7, which consumers
//! and the bus de-duplicate by), when it occurred (UTC, microseconds), the component that
//! published it, the site it belongs to, the subject it is published under, optionally the
//! event it was caused by, and the event itself, one of the closed set [`Event`].
//!
//! The JSON wire format is this module's serde form, e.g.
//!
//! ```json
//! {"version": 1, "id": "0190…", "occurred_at": "2026-11-02T10:15:00.123456Z",
//!  "source": "alerts", "site": "plant-a", "subject": "alerts.opened.plant-a.press-01",
//!  "caused_by": null,
//!  "type": "alert.opened", "data": {"alert": "0190…", "machine": "press-01", …}}
//! ```
//!
//! Versioning: [`ENVELOPE_VERSION`] changes when a field changes meaning or goes away; new
//! optional fields and new event types do not change it. A reader refuses envelopes of a newer
//! version than its own (their meaning is unknown to it), and refuses an envelope whose subject
//! is not the one its event would be published under, whose time is not UTC, or whose source
//! is empty, so that a consumer never acts on a message that lies about itself.
//!
//! The payloads of the events the operations agents will publish (tickets, orders, energy
//! recommendations, agent and gate decisions) are minimal here: what a consumer needs to react
//! and find the full record; the parts of issue #7 that build those agents may add optional
//! fields.

mod payload;
mod subject;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::FieldError;

pub use payload::{
    ActionEvent, AgentDecisionEvent, AlertEvent, AnomalyEvent, CoordinationEvent, DecisionOutcome,
    Directive, EnergyAction, EnergyRecommendationEvent, GateDecisionEvent, GateVerdict, OrderEvent,
    OrderStatus, TicketEvent, TicketPriority, TicketStatus,
};
pub use subject::{
    NO_KEY, NO_SITE, PREFIX_MAX, SubjectFilter, SubjectPrefix, token as subject_token, untoken,
};

/// The envelope format this build writes and the newest it reads.
pub const ENVELOPE_VERSION: u16 = 1;

/// An event's id: a UUIDv7, unique per event; the bus and consumers de-duplicate by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventId(pub Uuid);

impl EventId {
    /// A new id (UUIDv7: time-ordered).
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// The closed set of domain events. Serialized as `"type"` (the event's name, see
/// [`Event::name`]) and `"data"` (its payload).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    /// Detection found an anomaly (its onset) on a machine.
    #[serde(rename = "anomaly.detected")]
    AnomalyDetected(AnomalyEvent),
    /// An alert was opened.
    #[serde(rename = "alert.opened")]
    AlertOpened(AlertEvent),
    /// Someone acknowledged an alert: they are on it.
    #[serde(rename = "alert.acknowledged")]
    AlertAcknowledged(AlertEvent),
    /// An alert was resolved, by a person or because its condition cleared.
    #[serde(rename = "alert.resolved")]
    AlertResolved(AlertEvent),
    /// A maintenance ticket was opened or changed status.
    #[serde(rename = "ticket.changed")]
    Ticket(TicketEvent),
    /// A spare-parts order was created or changed status.
    #[serde(rename = "order.changed")]
    Order(OrderEvent),
    /// The energy optimizer recommends an action.
    #[serde(rename = "energy.recommended")]
    EnergyRecommendation(EnergyRecommendationEvent),
    /// An agent decided something (acted, held it for approval, or let it be).
    #[serde(rename = "agent.decided")]
    AgentDecision(AgentDecisionEvent),
    /// A confidence gate held an action, or a person approved or rejected it, or it timed out.
    #[serde(rename = "gate.decided")]
    GateDecision(GateDecisionEvent),
    /// The plant optimizer asks the other agents for something (a [`Directive`]).
    #[serde(rename = "plant.coordinated")]
    Coordination(CoordinationEvent),
}

impl Event {
    /// The event's type name on the wire, e.g. `alert.opened`.
    pub fn name(&self) -> &'static str {
        match self {
            Event::AnomalyDetected(_) => "anomaly.detected",
            Event::AlertOpened(_) => "alert.opened",
            Event::AlertAcknowledged(_) => "alert.acknowledged",
            Event::AlertResolved(_) => "alert.resolved",
            Event::Ticket(_) => "ticket.changed",
            Event::Order(_) => "order.changed",
            Event::EnergyRecommendation(_) => "energy.recommended",
            Event::AgentDecision(_) => "agent.decided",
            Event::GateDecision(_) => "gate.decided",
            Event::Coordination(_) => "plant.coordinated",
        }
    }

    /// The family and action tokens of its subject, and the key (a machine id, an agent's or
    /// a gate's name) its last token encodes, if any.
    fn subject_parts(&self) -> (&'static str, &'static str, Option<&str>) {
        match self {
            Event::AnomalyDetected(e) => ("anomalies", "detected", Some(&e.machine.0)),
            Event::AlertOpened(e) => ("alerts", "opened", Some(&e.machine.0)),
            Event::AlertAcknowledged(e) => ("alerts", "acknowledged", Some(&e.machine.0)),
            Event::AlertResolved(e) => ("alerts", "resolved", Some(&e.machine.0)),
            Event::Ticket(e) => ("tickets", e.status.as_str(), Some(&e.machine.0)),
            Event::Order(e) => (
                "orders",
                e.status.as_str(),
                e.machine.as_ref().map(|m| m.0.as_str()),
            ),
            Event::EnergyRecommendation(e) => ("energy", "recommended", Some(&e.machine.0)),
            Event::AgentDecision(e) => ("agents", "decided", Some(&e.agent)),
            Event::GateDecision(e) => ("gates", e.verdict.as_str(), Some(&e.gate)),
            Event::Coordination(e) => (
                "plant",
                e.directive.as_str(),
                e.machine.as_ref().map(|m| m.0.as_str()),
            ),
        }
    }
}

/// The subject an event about `site` is published under, relative to the deployment's
/// prefix: `{family}.{action}.{site}.{key}`, e.g. `alerts.opened.plant-a.press-01`,
/// `tickets.in_progress.plant-a.press-01`, `agents.decided.plant-a.maintenance`,
/// `gates.approved.plant-a.orders`, `plant.increase_monitoring.plant-a.press-01`. See [`subject`](self::subject) for the token rules.
pub fn subject_of(site: Option<&str>, event: &Event) -> String {
    let (family, action, key) = event.subject_parts();
    let site = site.map_or_else(|| NO_SITE.to_owned(), subject::token);
    let key = key.map_or_else(|| NO_KEY.to_owned(), subject::token);
    format!("{family}.{action}.{site}.{key}")
}

/// An event with what every consumer needs to handle it once: see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "WireEnvelope", into = "WireEnvelope")]
pub struct Envelope {
    id: EventId,
    occurred_at: OffsetDateTime,
    source: String,
    site: Option<String>,
    subject: String,
    caused_by: Option<EventId>,
    event: Event,
}

/// Longest source name, in bytes.
pub const SOURCE_MAX: usize = 100;

impl Envelope {
    /// A new event with a fresh id. `source` names the publishing component (`alerts`,
    /// `detection`, `agent:maintenance`); `site` is the site the event belongs to (`None` only
    /// when it is not known any more, e.g. its machine was deleted); the time is kept in UTC
    /// to the microsecond, so that every bus and store returns what was written.
    pub fn new(
        source: &str,
        site: Option<&str>,
        occurred_at: OffsetDateTime,
        event: Event,
    ) -> Self {
        Self {
            id: EventId::new(),
            occurred_at: utc_micros(occurred_at),
            source: source.to_owned(),
            site: site.map(str::to_owned),
            subject: subject_of(site, &event),
            caused_by: None,
            event,
        }
    }

    /// The event this one reacts to (an agent's decision names the alert event it handled).
    pub fn caused_by(mut self, cause: EventId) -> Self {
        self.caused_by = Some(cause);
        self
    }

    /// The same event with a given id: for a publisher that derives ids itself.
    pub fn with_id(mut self, id: EventId) -> Self {
        self.id = id;
        self
    }

    pub fn id(&self) -> EventId {
        self.id
    }

    pub fn occurred_at(&self) -> OffsetDateTime {
        self.occurred_at
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn site(&self) -> Option<&str> {
        self.site.as_deref()
    }

    /// The subject relative to the deployment's prefix.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    pub fn cause(&self) -> Option<EventId> {
        self.caused_by
    }

    pub fn event(&self) -> &Event {
        &self.event
    }

    pub fn into_event(self) -> Event {
        self.event
    }
}

fn utc_micros(at: OffsetDateTime) -> OffsetDateTime {
    let at = at.to_offset(time::UtcOffset::UTC);
    let micros = at.nanosecond() / 1_000 * 1_000;
    at.replace_nanosecond(micros).unwrap_or(at)
}

/// The envelope as it is written: checked into an [`Envelope`] when read.
#[derive(Serialize, Deserialize)]
struct WireEnvelope {
    version: u16,
    id: EventId,
    #[serde(with = "time::serde::rfc3339")]
    occurred_at: OffsetDateTime,
    source: String,
    site: Option<String>,
    subject: String,
    #[serde(default)]
    caused_by: Option<EventId>,
    #[serde(flatten)]
    event: Event,
}

impl From<Envelope> for WireEnvelope {
    fn from(e: Envelope) -> Self {
        Self {
            version: ENVELOPE_VERSION,
            id: e.id,
            occurred_at: e.occurred_at,
            source: e.source,
            site: e.site,
            subject: e.subject,
            caused_by: e.caused_by,
            event: e.event,
        }
    }
}

impl TryFrom<WireEnvelope> for Envelope {
    type Error = EnvelopeError;

    fn try_from(w: WireEnvelope) -> Result<Self, Self::Error> {
        let mut problems = Vec::new();
        if w.version == 0 || w.version > ENVELOPE_VERSION {
            problems.push(FieldError::new(
                "version",
                format!(
                    "{} is not a version this build reads (1 to {ENVELOPE_VERSION})",
                    w.version
                ),
            ));
        }
        if w.occurred_at.offset() != time::UtcOffset::UTC {
            problems.push(FieldError::new("occurred_at", "must be in UTC (Z)"));
        }
        if w.source.trim().is_empty() || w.source.len() > SOURCE_MAX {
            problems.push(FieldError::new(
                "source",
                format!("must be 1 to {SOURCE_MAX} bytes"),
            ));
        }
        let expected = subject_of(w.site.as_deref(), &w.event);
        if w.subject != expected {
            problems.push(FieldError::new(
                "subject",
                format!(
                    "is '{}' but the event belongs under '{expected}'",
                    w.subject
                ),
            ));
        }
        if !problems.is_empty() {
            return Err(EnvelopeError(problems));
        }
        Ok(Self {
            id: w.id,
            occurred_at: utc_micros(w.occurred_at),
            source: w.source,
            site: w.site,
            subject: w.subject,
            caused_by: w.caused_by,
            event: w.event,
        })
    }
}

/// An envelope that does not hold together: every problem, with its field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvelopeError(pub Vec<FieldError>);

impl std::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid event envelope: ")?;
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{} {}", p.field, p.reason)?;
        }
        Ok(())
    }
}

impl std::error::Error for EnvelopeError {}

#[cfg(test)]
mod tests;
