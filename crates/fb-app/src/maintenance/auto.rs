//! The auto-ticket rule: a critical alert opens a maintenance ticket for its machine and
//! failure type ([`FailureType::of_alert`]) unless one is active (open or in progress), in
//! which case the alert joins that ticket. An alert belongs to one ticket, so the rule is
//! idempotent: an alert seen again (updated, escalated, or after a restart) changes nothing.
//!
//! The reporter is `system`, the priority the failure type's template's
//! ([`fb_core::maintenance::templates`]), the steps the template's. Every ticket the rule opens
//! and every alert it links is recorded in the audit log (`ticket.auto_open`,
//! `ticket.link_alert`, actor `system`).
//!
//! [`follow_alerts`] runs the rule on the alert changes `alerts::Service` announces. It catches
//! up first (critical alerts still active in the store, e.g. opened while no node followed) and
//! again whenever it fell behind the broadcast channel, so no critical alert goes without its
//! ticket.

use std::sync::Arc;

use tokio::sync::{broadcast, watch};

use fb_core::alerts::{Alert, AlertStatus};
use fb_core::audit::AuditEntry;
use fb_core::detection::{EvidenceValue, Severity};
use fb_core::identity::{Principal, SiteScope};
use fb_core::maintenance::{
    DESCRIPTION_MAX, FailureType, NewTicket, TITLE_MAX, Ticket, TicketId, template,
};
use fb_core::ports::{AlertFilter, AlertStore, StoreError};

use super::{Error, RETRIES, Service, TicketEvent};
use crate::alerts::AlertEvent;
use crate::auth::SystemPrincipal;

/// The reporter of tickets the rule opens.
pub const SYSTEM: &str = "system";
/// Most active critical alerts looked at in one catch-up.
const CATCH_UP_MAX: usize = 10_000;

/// What the rule did with an alert.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Opened(Ticket),
    /// The alert joined the machine's active ticket for its failure type.
    Linked(Ticket),
    /// The alert belongs to a ticket already.
    AlreadyLinked(TicketId),
    /// The machine's active ticket for the failure holds as many alerts as a ticket keeps
    /// (`ALERTS_MAX`); the alert is left out.
    TicketFull(TicketId),
    /// Not a critical, active alert: nothing to do.
    Ignored,
    /// The alert's machine does not exist (any more): there is no site to open a ticket in.
    UnknownMachine,
}

impl Service {
    /// Applies the auto-ticket rule to an alert as it stands now.
    pub async fn on_alert(&self, alert: &Alert) -> Result<Outcome, Error> {
        if alert.severity != Severity::Critical || alert.status == AlertStatus::Resolved {
            return Ok(Outcome::Ignored);
        }
        if let Some(ticket) = self.store.ticket_for_alert(alert.id).await? {
            return Ok(Outcome::AlreadyLinked(ticket.id));
        }
        let failure_type = FailureType::of_alert(alert.kind);
        let Some(machine) = self
            .visibility
            .machine(&Principal::system(), &alert.machine)
            .await?
        else {
            return Ok(Outcome::UnknownMachine);
        };
        for _ in 0..RETRIES {
            let now = self.clock.now();
            if let Some(mut ticket) = self.active_for(&alert.machine, failure_type).await? {
                let stored = ticket.version;
                // The machine moved to another site since the ticket was opened: the ticket
                // follows it, so that the people of the site that now sees the alerts see the
                // ticket they join.
                if ticket.site != machine.location.site {
                    ticket.site = machine.location.site.clone();
                }
                if !ticket.link_alert(alert.id, now) {
                    // The ticket keeps the alerts that showed the failure first.
                    return Ok(Outcome::TicketFull(ticket.id));
                }
                ticket.version = stored + 1;
                match self.store.update_ticket(&ticket, stored).await {
                    Ok(true) => {
                        self.record(&ticket, "ticket.link_alert", alert).await;
                        self.decided(&ticket, "ticket.link_alert", alert).await;
                        self.announce(TicketEvent::AlertLinked {
                            ticket: ticket.clone(),
                            alert: alert.id,
                        });
                        return Ok(Outcome::Linked(ticket));
                    }
                    // Changed meanwhile (perhaps resolved): look again.
                    Ok(false) => continue,
                    Err(StoreError::Conflict {
                        constraint: "ticket_alert",
                    }) => return self.linked_elsewhere(alert).await,
                    Err(e) => return Err(e.into()),
                }
            }
            let ticket = opening(alert, failure_type).open(
                machine.location.site.clone(),
                SYSTEM.to_owned(),
                now,
            );
            match self.store.insert_ticket(&ticket).await {
                Ok(()) => {
                    self.record(&ticket, "ticket.auto_open", alert).await;
                    self.decided(&ticket, "ticket.auto_open", alert).await;
                    self.announce(TicketEvent::Opened(ticket.clone()));
                    return Ok(Outcome::Opened(ticket));
                }
                // Another alert of the same failure (or another node) opened one first: join it.
                Err(StoreError::Conflict {
                    constraint: "ticket_active",
                }) => continue,
                Err(StoreError::Conflict {
                    constraint: "ticket_alert",
                }) => return self.linked_elsewhere(alert).await,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Store(StoreError::Unavailable(
            "the machine's tickets keep changing; the alert will be looked at again".into(),
        )))
    }

    async fn linked_elsewhere(&self, alert: &Alert) -> Result<Outcome, Error> {
        Ok(match self.store.ticket_for_alert(alert.id).await? {
            Some(ticket) => Outcome::AlreadyLinked(ticket.id),
            None => Outcome::Ignored,
        })
    }

    /// Applies the rule to every critical alert still active in `alerts`; returns how many
    /// got a ticket or joined one.
    pub async fn catch_up(&self, alerts: &dyn AlertStore) -> Result<usize, Error> {
        let filter = AlertFilter {
            active_only: true,
            severity: Some(Severity::Critical),
            ..AlertFilter::new(SiteScope::All, CATCH_UP_MAX)
        };
        let mut acted = 0;
        for alert in alerts.list_alerts(&filter).await?.iter().rev() {
            if matches!(
                self.on_alert(alert).await?,
                Outcome::Opened(_) | Outcome::Linked(_)
            ) {
                acted += 1;
            }
        }
        Ok(acted)
    }

    /// Writes what the rule did to the agents' decision log, when one is attached. The rule
    /// is certain of what it applies (confidence 1): the alert is critical and its failure
    /// type fixed by its kind. A failed write is logged; the ticket and its audit record stand.
    async fn decided(&self, ticket: &Ticket, action: &str, alert: &Alert) {
        let Some(log) = self.decision_log.get() else {
            return;
        };
        let decision = fb_core::gates::AgentDecision {
            id: fb_core::gates::DecisionId::for_key(AGENT, &format!("{action}:{}", alert.id)),
            agent: AGENT.to_owned(),
            site: ticket.site.clone(),
            machine: Some(ticket.machine.clone()),
            inputs: serde_json::json!({
                "alert": alert.id.to_string(),
                "kind": alert.kind.as_str(),
                "severity": "critical",
                "title": alert.title,
            })
            .to_string(),
            action: action.to_owned(),
            reason: format!(
                "critical {} alert: {} failure, {} priority",
                alert.kind.as_str(),
                ticket.failure_type.as_str(),
                ticket.priority.as_str()
            ),
            confidence: 1.0,
            outcome: fb_core::gates::DecisionOutcome::Executed,
            approval: None,
            ticket: Some(ticket.id.0),
            alert: Some(alert.id.0),
            at: self.clock.now(),
        };
        if let Err(e) = log.record_decision(&decision, None).await {
            tracing::warn!(ticket = %ticket.id, alert = %alert.id, error = %e, "Could not write the auto-ticket decision to the decision log.");
        }
    }

    /// Records what the rule did in the audit log.
    async fn record(&self, ticket: &Ticket, action: &str, alert: &Alert) {
        let entry = AuditEntry {
            at: self.clock.now(),
            actor: SYSTEM.to_owned(),
            action: action.to_owned(),
            target: Some(format!("ticket:{}", ticket.id)),
            outcome: fb_core::audit::Outcome::Success,
            op_id: uuid::Uuid::now_v7().to_string(),
            source: "detection".to_owned(),
            details: [
                ("alert".to_owned(), alert.id.to_string()),
                ("alert_kind".to_owned(), alert.kind.as_str().to_owned()),
                ("machine".to_owned(), ticket.machine.0.clone()),
                ("site".to_owned(), ticket.site.clone()),
                (
                    "failure_type".to_owned(),
                    ticket.failure_type.as_str().to_owned(),
                ),
                ("priority".to_owned(), ticket.priority.as_str().to_owned()),
            ]
            .into(),
        };
        self.audit.record(entry).await;
    }
}

/// The ticket a critical alert opens.
fn opening(alert: &Alert, failure_type: FailureType) -> NewTicket {
    let template = template(failure_type);
    let title: String = format!("{}: {}", template.label, alert.title)
        .chars()
        .take(TITLE_MAX)
        .collect();
    let evidence: Vec<String> = alert
        .evidence
        .iter()
        .map(|e| match &e.value {
            EvidenceValue::Number(n) => format!("{} = {n}", e.name),
            EvidenceValue::Text(t) => format!("{} = {t}", e.name),
        })
        .collect();
    let mut description = format!(
        "Opened by the critical {} alert {} on {} at {}.",
        alert.kind.as_str(),
        alert.id,
        alert.machine,
        alert.opened_at,
    );
    if !evidence.is_empty() {
        description.push_str("\nEvidence: ");
        description.push_str(&evidence.join(", "));
    }
    NewTicket {
        machine: alert.machine.clone(),
        title,
        description: description.chars().take(DESCRIPTION_MAX).collect(),
        failure_type,
        priority: template.auto_priority,
        assignee: None,
        steps: None,
        cost_estimate_minor: None,
        alerts: vec![alert.id],
    }
}

/// The agent's name in the decision log.
pub const AGENT: &str = "maintenance";

/// How often [`follow_alerts`] catches up even when it kept up: what a failed attempt (a store
/// hiccup) waits at most before the alert is looked at again.
pub const CATCH_UP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Runs the rule on every alert change `events` announces until `stop` turns true: opened,
/// updated (a warning may rise to critical) and escalated alerts. Catches up at the start,
/// after falling behind and every [`CATCH_UP_EVERY`]; failures are logged, counted
/// (`fb_ticket_auto_failures_total`) and left to the next catch-up.
pub async fn follow_alerts(
    service: Arc<Service>,
    alerts: Arc<dyn AlertStore>,
    mut events: broadcast::Receiver<AlertEvent>,
    mut stop: watch::Receiver<bool>,
) {
    let catch_up = |why: &'static str| {
        let (service, alerts) = (service.clone(), alerts.clone());
        async move {
            match service.catch_up(&*alerts).await {
                Ok(0) => {}
                Ok(acted) => tracing::info!(
                    acted,
                    reason = why,
                    "Caught up: critical alerts got their tickets."
                ),
                Err(e) => {
                    metrics::counter!("fb_ticket_auto_failures_total").increment(1);
                    tracing::warn!(error = %e, reason = why, "Critical alerts could not be looked at for tickets; trying again later.");
                }
            }
        }
    };
    let mut every = tokio::time::interval(CATCH_UP_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // The select ends before anything is awaited: the stop signal's guard is not held
        // across an await.
        let event = tokio::select! {
            // The first tick is at once: the catch-up at the start.
            _ = every.tick() => None,
            event = events.recv() => Some(event),
            _ = stop.wait_for(|s| *s) => break,
        };
        let Some(event) = event else {
            catch_up("interval").await;
            continue;
        };
        match event {
            Ok(
                AlertEvent::Opened(alert)
                | AlertEvent::Updated(alert)
                | AlertEvent::Escalated(alert),
            ) if alert.severity == Severity::Critical => {
                if let Err(e) = service.on_alert(&alert).await {
                    metrics::counter!("fb_ticket_auto_failures_total").increment(1);
                    tracing::warn!(alert = %alert.id, machine = %alert.machine, error = %e, "No ticket for a critical alert yet; the next catch-up retries.");
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "Fell behind the alert changes; catching up.");
                catch_up("lagged").await;
            }
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
}
