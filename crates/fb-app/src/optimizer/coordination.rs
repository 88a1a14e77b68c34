//! The coordination agent: domain events in, directives out.
//!
//! | event | directive |
//! |---|---|
//! | `alert.opened`, failure risk (the failure probability over its threshold) | `increase_monitoring` and `prepare_spare_parts` (failure type `other`: the model does not say which) |
//! | `alert.opened`, critical | `increase_monitoring` |
//! | `anomaly.detected`, the `anomaly_burst`-th of a machine within `burst_window` | `increase_monitoring` |
//! | `energy.recommended`, load reduction or a shift out of the peak tariff | `activate_reduction_mode` (the machine) |
//! | `ticket.changed` to `open` | `prepare_spare_parts` (the ticket's failure type) |
//!
//! `increase_monitoring` is applied here: the machine's detectors get their thresholds
//! multiplied by `monitoring_factor` until the event's time + `monitoring_for` (through the
//! [`Sensitivity`](crate::detection::Sensitivity) handle detection follows). The other two are
//! for the energy and procurement agents, which follow `plant.coordinated` on the bus.
//!
//! **Once per event.** Each directive's decision-log id is derived from the event's id and the
//! directive (SHA-256, keeping the event id's time so that the log stays in time order), and
//! the log refuses a second entry with the same id: an event handled before, on this node or
//! another, before or after a restart, finds its decision logged and yields no directive and
//! no second publish. A bounded set of the last handled ids answers repeats without asking the
//! store. The effect (a sensitivity override) is applied before the decision is logged and is
//! idempotent (its end comes from the event's time, not the clock), so a crash in between
//! re-applies it, never loses it. A decision logged but not published (bus down, crash) is
//! not published later: the log holds it.

use std::collections::{HashMap, HashSet, VecDeque};

use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use fb_core::alerts::AlertKind;
use fb_core::detection::Severity;
use fb_core::events::{
    CoordinationEvent, Directive as Kind, EnergyAction, Envelope, Event, EventId, TicketStatus,
};
use fb_core::gates::{AgentDecision, DecisionId, DecisionOutcome};
use fb_core::maintenance::FailureType;
use fb_core::plant::MachineId;

use super::{AGENT, Error, SOURCE, Service};

/// Event ids remembered as handled (the decision log remembers them all).
const HANDLED_MAX: usize = 10_000;
/// Machines whose recent anomalies are counted at most.
const BURST_MACHINES_MAX: usize = 10_000;

/// A directive the agent issued.
#[derive(Debug, Clone, PartialEq)]
pub struct Directive {
    pub kind: Kind,
    pub site: String,
    pub machine: Option<MachineId>,
    pub reason: String,
    /// Increase monitoring: until when.
    pub until: Option<OffsetDateTime>,
    /// Increase monitoring: the thresholds' factor.
    pub factor: Option<f64>,
    /// Prepare spare parts: for which failure type.
    pub failure_type: Option<String>,
    /// Its entry in the decision log.
    pub decision: DecisionId,
    /// The event it answers.
    pub trigger: EventId,
}

/// What the agent remembers between events.
#[derive(Default)]
pub(super) struct State {
    handled: HashSet<EventId>,
    order: VecDeque<EventId>,
    /// Recent anomaly times per machine.
    anomalies: HashMap<MachineId, VecDeque<OffsetDateTime>>,
}

impl State {
    fn remember(&mut self, id: EventId) {
        if self.handled.insert(id) {
            self.order.push_back(id);
            while self.order.len() > HANDLED_MAX {
                if let Some(old) = self.order.pop_front() {
                    self.handled.remove(&old);
                }
            }
        }
    }

    /// Counts an anomaly; true when it completes a burst (which then starts over).
    fn burst(
        &mut self,
        machine: &MachineId,
        at: OffsetDateTime,
        size: usize,
        window: Duration,
    ) -> bool {
        if !self.anomalies.contains_key(machine) && self.anomalies.len() >= BURST_MACHINES_MAX {
            // Forget the machines without a recent anomaly first; a burst needs recent ones.
            let cutoff = at - window;
            self.anomalies
                .retain(|_, times| times.back().is_some_and(|t| *t > cutoff));
            if self.anomalies.len() >= BURST_MACHINES_MAX {
                return false;
            }
        }
        let times = self.anomalies.entry(machine.clone()).or_default();
        times.push_back(at);
        while times.front().is_some_and(|t| *t <= at - window) {
            times.pop_front();
        }
        if times.len() >= size.max(1) {
            times.clear();
            return true;
        }
        false
    }
}

/// A directive before it is logged.
struct Draft {
    kind: Kind,
    machine: MachineId,
    reason: String,
    until: Option<OffsetDateTime>,
    factor: Option<f64>,
    failure_type: Option<String>,
    ticket: Option<Uuid>,
    alert: Option<Uuid>,
}

/// The decision id of `kind` answering `event`: the event id's first 48 bits (its time) and
/// a hash of both for the rest, with the UUIDv7 version and variant bits.
fn decision_id(event: EventId, kind: Kind) -> DecisionId {
    let mut hash = Sha256::new();
    hash.update(event.0.as_bytes());
    hash.update(kind.as_str().as_bytes());
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&event.0.as_bytes()[..6]);
    bytes[6..].copy_from_slice(&digest[..10]);
    bytes[6] = (bytes[6] & 0x0f) | 0x70;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    DecisionId(Uuid::from_bytes(bytes))
}

impl Service {
    /// Reacts to one domain event: the directives it issued (empty when the event asks for
    /// none, or was handled before). Errors (the decision log unavailable) leave the event
    /// unhandled, so that a redelivery tries again.
    pub async fn handle(&self, envelope: &Envelope) -> Result<Vec<Directive>, Error> {
        if self.lock().handled.contains(&envelope.id()) {
            return Ok(Vec::new());
        }
        let drafts = self.drafts(envelope);
        let mut issued = Vec::new();
        for draft in drafts {
            let Some(site) = self.site_of(envelope, &draft.machine).await? else {
                tracing::warn!(event = %envelope.id(), machine = %draft.machine, "No site known for a directive's machine; it is not issued.");
                continue;
            };
            if let Some(d) = self.issue(envelope, site, draft).await? {
                issued.push(d);
            }
        }
        self.lock().remember(envelope.id());
        Ok(issued)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.agent.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn site_of(
        &self,
        envelope: &Envelope,
        machine: &MachineId,
    ) -> Result<Option<String>, Error> {
        if let Some(site) = envelope.site() {
            return Ok(Some(site.to_owned()));
        }
        Ok(self
            .machines
            .machine(machine)
            .await?
            .map(|m| m.location.site))
    }

    /// The directives an event asks for (see the module's table).
    fn drafts(&self, envelope: &Envelope) -> Vec<Draft> {
        let c = &self.config;
        let until = envelope.occurred_at() + c.monitoring_for;
        let monitor = |machine: &MachineId, reason: String, alert: Option<Uuid>| Draft {
            kind: Kind::IncreaseMonitoring,
            machine: machine.clone(),
            reason,
            until: Some(until),
            factor: Some(c.monitoring_factor),
            failure_type: None,
            ticket: None,
            alert,
        };
        let parts = |machine: &MachineId, failure: &str, reason: String, ticket, alert| Draft {
            kind: Kind::PrepareSpareParts,
            machine: machine.clone(),
            reason,
            until: None,
            factor: None,
            failure_type: Some(failure.to_owned()),
            ticket,
            alert,
        };
        match envelope.event() {
            Event::AlertOpened(a) if a.kind == AlertKind::FailureRisk => vec![
                monitor(
                    &a.machine,
                    format!("high failure probability: {}", a.title),
                    Some(a.alert.0),
                ),
                parts(
                    &a.machine,
                    FailureType::of_alert(a.kind).as_str(),
                    format!("high failure probability: {}", a.title),
                    None,
                    Some(a.alert.0),
                ),
            ],
            Event::AlertOpened(a) if a.severity == Severity::Critical => vec![monitor(
                &a.machine,
                format!("critical alert: {}", a.title),
                Some(a.alert.0),
            )],
            Event::AnomalyDetected(an) => {
                let burst = self
                    .lock()
                    .burst(&an.machine, an.at, c.anomaly_burst, c.burst_window);
                if burst {
                    vec![monitor(
                        &an.machine,
                        format!(
                            "{} anomalies within {} minutes",
                            c.anomaly_burst,
                            c.burst_window.whole_minutes()
                        ),
                        None,
                    )]
                } else {
                    Vec::new()
                }
            }
            Event::EnergyRecommendation(e)
                if matches!(
                    e.action,
                    EnergyAction::LoadReduction | EnergyAction::ShiftOffPeak
                ) =>
            {
                vec![Draft {
                    kind: Kind::ActivateReductionMode,
                    machine: e.machine.clone(),
                    reason: format!("energy recommends {}: {}", e.action.as_str(), e.reason),
                    until: None,
                    factor: None,
                    failure_type: None,
                    ticket: None,
                    alert: None,
                }]
            }
            Event::Ticket(t) if t.status == TicketStatus::Open => {
                let failure = t
                    .failure_type
                    .as_deref()
                    .unwrap_or(FailureType::Other.as_str());
                vec![parts(
                    &t.machine,
                    failure,
                    format!("maintenance ticket opened: {}", t.title),
                    Some(t.ticket),
                    t.alert.map(|a| a.0),
                )]
            }
            _ => Vec::new(),
        }
    }

    /// Applies, logs and publishes one directive; `None` when it was logged before.
    async fn issue(
        &self,
        envelope: &Envelope,
        site: String,
        d: Draft,
    ) -> Result<Option<Directive>, Error> {
        if d.kind == Kind::IncreaseMonitoring
            && let (Some(factor), Some(until)) = (d.factor, d.until)
        {
            self.sensitivity
                .increase(&d.machine, factor, self.clock.now(), until);
        }
        let id = decision_id(envelope.id(), d.kind);
        let inputs = serde_json::json!({
            "event": envelope.event().name(),
            "event_id": envelope.id().to_string(),
            "subject": envelope.subject(),
        })
        .to_string();
        let decision = AgentDecision {
            id,
            agent: AGENT.to_owned(),
            site: site.clone(),
            machine: Some(d.machine.clone()),
            inputs,
            action: d.kind.as_str().to_owned(),
            reason: d.reason.clone(),
            // A rule, not an estimate: it holds or it does not.
            confidence: 1.0,
            outcome: DecisionOutcome::Executed,
            approval: None,
            ticket: d.ticket,
            alert: d.alert,
            at: fb_core::clock::truncate_to_micros(self.clock.now()),
        };
        if !self
            .gates
            .record_decision(&decision, Some(envelope.id()))
            .await?
        {
            return Ok(None);
        }
        let directive = Directive {
            kind: d.kind,
            site,
            machine: Some(d.machine),
            reason: d.reason,
            until: d.until,
            factor: d.factor,
            failure_type: d.failure_type,
            decision: id,
            trigger: envelope.id(),
        };
        self.publish(&directive, decision.at).await;
        Ok(Some(directive))
    }

    async fn publish(&self, d: &Directive, at: OffsetDateTime) {
        let Some(bus) = self.bus.get() else { return };
        let event = Event::Coordination(CoordinationEvent {
            directive: d.kind,
            machine: d.machine.clone(),
            reason: d.reason.clone(),
            until: d.until,
            factor: d.factor,
            failure_type: d.failure_type.clone(),
            decision: Some(d.decision.0),
        });
        // The event's id is the decision's: a repeated publish is one event to the bus.
        let envelope = Envelope::new(SOURCE, Some(&d.site), at, event)
            .with_id(EventId(d.decision.0))
            .caused_by(d.trigger);
        let outcome = match bus.publish(&envelope).await {
            Ok(_) => "published",
            Err(e) => {
                tracing::warn!(decision = %d.decision.0, error = %e, "Could not publish a coordination directive on the bus; the decision log keeps it.");
                "failed"
            }
        };
        metrics::counter!(
            "fb_bus_published_total",
            "event" => "plant.coordinated",
            "outcome" => outcome,
            "backend" => bus.backend()
        )
        .increment(1);
    }
}
