//! Alerts (B3): the tracker's decisions stored and announced, and what people do with alerts.
//!
//! Detection reports conditions; [`fb_core::alerts::AlertTracker`] decides; this service stores
//! each change (optimistically, by version, so a person's acknowledgement and the tracker's
//! update never overwrite each other) and announces it on a broadcast channel that the dashboard
//! and the agents consume. The tracker is resumed from the store at start.
//!
//! People see and change only the alerts of machines in their sites ([`crate::scope`]); any
//! other alert answers `alert_not_found`.

use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::{Mutex, broadcast};

use fb_core::Clock;
use fb_core::alerts::{
    Alert, AlertAction, AlertChange, AlertId, AlertKind, AlertPolicy, AlertStatus, AlertTracker,
    Condition,
};
use fb_core::error::{Code, Coded};
use fb_core::identity::{Permission, Principal, SiteScope};
use fb_core::plant::MachineId;
use fb_core::ports::{AlertFilter, AlertStore, StoreError};

use crate::scope::MachineVisibility;

/// What happened to an alert, for whoever listens.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertEvent {
    Opened(Alert),
    /// Severity rose, or occurrences and last-seen time moved on.
    Updated(Alert),
    Escalated(Alert),
    Acknowledged(Alert),
    Resolved(Alert),
}

impl AlertEvent {
    pub fn alert(&self) -> &Alert {
        match self {
            AlertEvent::Opened(a)
            | AlertEvent::Updated(a)
            | AlertEvent::Escalated(a)
            | AlertEvent::Acknowledged(a)
            | AlertEvent::Resolved(a) => a,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            AlertEvent::Opened(_) => "alert.opened",
            AlertEvent::Updated(_) => "alert.updated",
            AlertEvent::Escalated(_) => "alert.escalated",
            AlertEvent::Acknowledged(_) => "alert.acknowledged",
            AlertEvent::Resolved(_) => "alert.resolved",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("this role lacks the permission {0}")]
    PermissionDenied(Permission),
    #[error("no alert has this id")]
    NotFound,
    #[error("the alert is {0}; it cannot be {1}")]
    InvalidTransition(&'static str, &'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for Error {
    fn code(&self) -> Code {
        match self {
            Error::PermissionDenied(_) => Code::permission_denied,
            Error::NotFound => Code::alert_not_found,
            Error::InvalidTransition(..) => Code::alert_transition_invalid,
            Error::Store(StoreError::Unavailable(_)) => Code::storage_unavailable,
            Error::Store(_) => Code::internal,
        }
    }
}

/// Most comments kept on an acknowledgement or resolution.
pub const COMMENT_MAX: usize = 2000;
/// Attempts at a change that keeps meeting a concurrent one.
const RETRIES: usize = 5;

/// One thing detection saw about a (machine, kind).
#[derive(Debug, Clone, PartialEq)]
pub enum Observation {
    Holds(Condition),
    Clear {
        machine: MachineId,
        kind: AlertKind,
        at: OffsetDateTime,
    },
}

pub struct Service {
    store: Arc<dyn AlertStore>,
    visibility: MachineVisibility,
    clock: Arc<dyn Clock>,
    tracker: Mutex<AlertTracker>,
    events: broadcast::Sender<AlertEvent>,
}

impl Service {
    /// Resumes the tracker with the alerts that are still active in the store.
    pub async fn start(
        store: Arc<dyn AlertStore>,
        visibility: MachineVisibility,
        clock: Arc<dyn Clock>,
        policy: AlertPolicy,
    ) -> Result<Self, Error> {
        let active = store
            .list_alerts(&AlertFilter {
                active_only: true,
                ..AlertFilter::new(SiteScope::All, 100_000)
            })
            .await?;
        let (events, _) = broadcast::channel(1024);
        Ok(Self {
            store,
            visibility,
            clock,
            tracker: Mutex::new(AlertTracker::new(policy, active)),
            events,
        })
    }

    /// Alert changes as they are stored. A listener more than 1024 events behind misses the
    /// oldest (the store keeps them all).
    pub fn subscribe(&self) -> broadcast::Receiver<AlertEvent> {
        self.events.subscribe()
    }

    /// What detection observed, in the order it observed it: a condition seen clear and then
    /// holding again is not recovering.
    pub async fn observe(&self, observations: Vec<Observation>) -> Result<(), Error> {
        if observations.is_empty() {
            return Ok(());
        }
        let mut tracker = self.tracker.lock().await;
        for observation in observations {
            match observation {
                Observation::Holds(condition) => {
                    if let Some(change) = tracker.holds(condition) {
                        self.apply(&mut tracker, change).await?;
                    }
                }
                Observation::Clear { machine, kind, at } => tracker.clear(&machine, kind, at),
            }
        }
        Ok(())
    }

    /// Lets time act: resolves what recovered, escalates what nobody acknowledged.
    pub async fn tick(&self) -> Result<(), Error> {
        let now = self.clock.now();
        let mut tracker = self.tracker.lock().await;
        for change in tracker.tick(now) {
            self.apply(&mut tracker, change).await?;
        }
        Ok(())
    }

    /// Alerts matching `filter` within the caller's sites (the filter's sites narrowed to
    /// them, in the store's query, so that limits and pages count only visible alerts).
    pub async fn list(
        &self,
        caller: &Principal,
        filter: &AlertFilter,
    ) -> Result<Vec<Alert>, Error> {
        require(caller, Permission::PlantRead)?;
        let filter = AlertFilter {
            sites: filter.sites.intersection(&caller.sites),
            ..filter.clone()
        };
        Ok(self.store.list_alerts(&filter).await?)
    }

    pub async fn get(&self, caller: &Principal, id: AlertId) -> Result<Alert, Error> {
        require(caller, Permission::PlantRead)?;
        self.visible(caller, self.store.alert(id).await?).await
    }

    /// The alert if it exists and its machine is within the caller's sites; `NotFound` for
    /// both other cases alike.
    async fn visible(&self, caller: &Principal, alert: Option<Alert>) -> Result<Alert, Error> {
        match alert {
            Some(alert) if self.visibility.owns_visible(caller, &alert.machine).await? => Ok(alert),
            _ => Err(Error::NotFound),
        }
    }

    /// Open → acknowledged: someone is on it (escalation stops).
    pub async fn acknowledge(
        &self,
        caller: &Principal,
        id: AlertId,
        comment: Option<String>,
    ) -> Result<Alert, Error> {
        require(caller, Permission::AlertsManage)?;
        let action = self.action(caller, comment);
        let alert = self
            .change_by_person(caller, id, |a| match a.status {
                AlertStatus::Open => {
                    a.status = AlertStatus::Acknowledged;
                    a.acknowledged = Some(action.clone());
                    Ok(())
                }
                other => Err(Error::InvalidTransition(other.as_str(), "acknowledged")),
            })
            .await?;
        self.announce(AlertEvent::Acknowledged(alert.clone()));
        Ok(alert)
    }

    /// Open or acknowledged → resolved, by a person.
    pub async fn resolve(
        &self,
        caller: &Principal,
        id: AlertId,
        comment: Option<String>,
    ) -> Result<Alert, Error> {
        require(caller, Permission::AlertsManage)?;
        let action = self.action(caller, comment);
        let alert = self
            .change_by_person(caller, id, |a| match a.status {
                AlertStatus::Open | AlertStatus::Acknowledged => {
                    a.status = AlertStatus::Resolved;
                    a.resolved = Some(action.clone());
                    Ok(())
                }
                AlertStatus::Resolved => Err(Error::InvalidTransition("resolved", "resolved")),
            })
            .await?;
        self.announce(AlertEvent::Resolved(alert.clone()));
        Ok(alert)
    }

    fn action(&self, caller: &Principal, comment: Option<String>) -> AlertAction {
        AlertAction {
            by: caller.describe(),
            at: self.clock.now(),
            comment: comment
                .map(|c| c.trim().chars().take(COMMENT_MAX).collect::<String>())
                .filter(|c| !c.is_empty()),
        }
    }

    /// Applies a person's change to the stored alert, retrying on concurrent writes, and tells
    /// the tracker.
    async fn change_by_person(
        &self,
        caller: &Principal,
        id: AlertId,
        change: impl Fn(&mut Alert) -> Result<(), Error>,
    ) -> Result<Alert, Error> {
        let mut tracker = self.tracker.lock().await;
        for _ in 0..RETRIES {
            let mut alert = self.visible(caller, self.store.alert(id).await?).await?;
            let expected = alert.version;
            change(&mut alert)?;
            alert.version = expected + 1;
            alert.updated_at = self.clock.now();
            if self.store.update_alert(&alert, expected).await? {
                tracker.follow(&alert);
                return Ok(alert);
            }
        }
        Err(Error::Store(StoreError::Unavailable(
            "the alert keeps changing; try again".into(),
        )))
    }

    /// Stores one tracker decision and announces it. An alert a person changed meanwhile is
    /// re-read, and the decision applied to what they left.
    async fn apply(&self, tracker: &mut AlertTracker, change: AlertChange) -> Result<(), Error> {
        match change {
            AlertChange::Opened(alert) => match self.store.insert_alert(&alert).await {
                Ok(()) => self.announce(AlertEvent::Opened(alert)),
                // Another node opened one first: follow theirs.
                Err(StoreError::Conflict { .. }) => {
                    let theirs = self
                        .store
                        .list_alerts(&AlertFilter {
                            machine: Some(alert.machine.clone()),
                            kind: Some(alert.kind),
                            active_only: true,
                            ..AlertFilter::new(SiteScope::All, 1)
                        })
                        .await?;
                    tracker.follow(&resolved_copy(&alert));
                    if let Some(theirs) = theirs.into_iter().next() {
                        tracker.follow(&theirs);
                    }
                }
                Err(e) => return Err(e.into()),
            },
            AlertChange::Updated(alert) => {
                if let Some(stored) = self.store_decision(tracker, alert).await? {
                    self.announce(AlertEvent::Updated(stored));
                }
            }
            AlertChange::Escalated(alert) => {
                if let Some(stored) = self.store_decision(tracker, alert).await? {
                    self.announce(AlertEvent::Escalated(stored));
                }
            }
            AlertChange::Resolved(alert) => {
                if let Some(stored) = self.store_decision(tracker, alert).await? {
                    self.announce(AlertEvent::Resolved(stored));
                }
            }
        }
        Ok(())
    }

    /// Writes the tracker's version of an alert. If the stored one moved on (a person
    /// acknowledged or resolved it), the tracker's observations are merged into it; a resolved
    /// alert is left resolved. Returns what was stored, if anything.
    async fn store_decision(
        &self,
        tracker: &mut AlertTracker,
        mut alert: Alert,
    ) -> Result<Option<Alert>, Error> {
        for _ in 0..RETRIES {
            let expected = alert.version;
            alert.version = expected + 1;
            alert.updated_at = self.clock.now().max(alert.updated_at);
            if self.store.update_alert(&alert, expected).await? {
                tracker.follow(&alert);
                return Ok(Some(alert));
            }
            let Some(stored) = self.store.alert(alert.id).await? else {
                return Ok(None);
            };
            if stored.status == AlertStatus::Resolved {
                tracker.follow(&stored);
                return Ok(None);
            }
            alert = merge(stored, &alert);
        }
        Ok(None)
    }

    fn announce(&self, event: AlertEvent) {
        metrics::counter!("fb_alert_events_total", "event" => event.name()).increment(1);
        // Nobody listening is fine.
        let _ = self.events.send(event);
    }

    /// Alerts the tracker holds active (for metrics and tests).
    pub async fn active(&self) -> Vec<Alert> {
        self.tracker.lock().await.active().cloned().collect()
    }
}

/// The stored alert (with a person's acknowledgement) plus the tracker's newer observations.
fn merge(stored: Alert, ours: &Alert) -> Alert {
    Alert {
        severity: stored.severity.max(ours.severity),
        title: if ours.severity > stored.severity {
            ours.title.clone()
        } else {
            stored.title.clone()
        },
        evidence: ours.evidence.clone(),
        last_seen_at: stored.last_seen_at.max(ours.last_seen_at),
        occurrences: stored.occurrences.max(ours.occurrences),
        escalation_level: stored.escalation_level.max(ours.escalation_level),
        escalated_at: ours.escalated_at.or(stored.escalated_at),
        status: if ours.status == AlertStatus::Resolved {
            AlertStatus::Resolved
        } else {
            stored.status
        },
        resolved: ours.resolved.clone().or(stored.resolved.clone()),
        ..stored
    }
}

/// The alert as if resolved, to make the tracker forget an alert that never got stored.
fn resolved_copy(alert: &Alert) -> Alert {
    Alert {
        status: AlertStatus::Resolved,
        ..alert.clone()
    }
}

fn require(caller: &Principal, permission: Permission) -> Result<(), Error> {
    if caller.can(permission) {
        Ok(())
    } else {
        Err(Error::PermissionDenied(permission))
    }
}
