//! Alerts (B3): what a person is told about a machine, and the rules that open, update, escalate
//! and resolve them.
//!
//! [`AlertTracker`] is the whole policy as a pure state machine: detection tells it, for a
//! (machine, kind), that a condition holds or does not hold at an instant; time tells it that
//! time passed. It answers with the changes to make. At most one alert is open per
//! (machine, kind); a warning condition must hold for `raise_after` observations in a row before
//! it opens an alert (a critical one opens at once); an open alert resolves itself only after
//! `clear_after` of uninterrupted recovery, so a signal that flaps around a limit keeps one alert
//! open instead of opening many; an alert nobody acknowledged escalates every `escalate_after`.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::detection::{AnomalyKind, Evidence, Severity};
use crate::plant::MachineId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AlertId(pub Uuid);

impl std::fmt::Display for AlertId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What an alert is about: a kind of anomaly, or a condition of the machine as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    Overheating,
    Vibration,
    Pressure,
    Power,
    Flow,
    Process,
    StuckSensor,
    NoData,
    OutOfRange,
    Spike,
    /// Health score under its threshold.
    LowHealth,
    /// Predicted failure probability over its threshold.
    FailureRisk,
}

impl AlertKind {
    pub const ALL: [AlertKind; 12] = [
        AlertKind::Overheating,
        AlertKind::Vibration,
        AlertKind::Pressure,
        AlertKind::Power,
        AlertKind::Flow,
        AlertKind::Process,
        AlertKind::StuckSensor,
        AlertKind::NoData,
        AlertKind::OutOfRange,
        AlertKind::Spike,
        AlertKind::LowHealth,
        AlertKind::FailureRisk,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Overheating => "overheating",
            AlertKind::Vibration => "vibration",
            AlertKind::Pressure => "pressure",
            AlertKind::Power => "power",
            AlertKind::Flow => "flow",
            AlertKind::Process => "process",
            AlertKind::StuckSensor => "stuck_sensor",
            AlertKind::NoData => "no_data",
            AlertKind::OutOfRange => "out_of_range",
            AlertKind::Spike => "spike",
            AlertKind::LowHealth => "low_health",
            AlertKind::FailureRisk => "failure_risk",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl From<AnomalyKind> for AlertKind {
    fn from(kind: AnomalyKind) -> Self {
        match kind {
            AnomalyKind::Overheating => AlertKind::Overheating,
            AnomalyKind::Vibration => AlertKind::Vibration,
            AnomalyKind::Pressure => AlertKind::Pressure,
            AnomalyKind::Power => AlertKind::Power,
            AnomalyKind::Flow => AlertKind::Flow,
            AnomalyKind::Process => AlertKind::Process,
            AnomalyKind::StuckSensor => AlertKind::StuckSensor,
            AnomalyKind::NoData => AlertKind::NoData,
            AnomalyKind::OutOfRange => AlertKind::OutOfRange,
            AnomalyKind::Spike => AlertKind::Spike,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Open,
    Acknowledged,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "open" => Some(AlertStatus::Open),
            "acknowledged" => Some(AlertStatus::Acknowledged),
            "resolved" => Some(AlertStatus::Resolved),
            _ => None,
        }
    }

    /// Open or acknowledged: still being dealt with.
    pub fn is_active(self) -> bool {
        self != AlertStatus::Resolved
    }
}

/// Who did something to an alert, when, and what they said.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertAction {
    /// `user:<name>`, `key:<prefix>`, or `system` for automatic actions.
    pub by: String,
    pub at: OffsetDateTime,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub id: AlertId,
    pub machine: MachineId,
    pub kind: AlertKind,
    pub severity: Severity,
    pub status: AlertStatus,
    /// One line for people: what, where, how far.
    pub title: String,
    /// What led to it, as of the latest observation.
    pub evidence: Vec<Evidence>,
    pub opened_at: OffsetDateTime,
    pub last_seen_at: OffsetDateTime,
    /// Observations of the condition while the alert was open.
    pub occurrences: u64,
    pub acknowledged: Option<AlertAction>,
    pub resolved: Option<AlertAction>,
    /// 0 until it escalates; then how many times it did.
    pub escalation_level: u32,
    pub escalated_at: Option<OffsetDateTime>,
    /// Increases with every stored change, for optimistic concurrency.
    pub version: u64,
    pub updated_at: OffsetDateTime,
}

/// A condition detection observed on a machine.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub machine: MachineId,
    pub kind: AlertKind,
    pub severity: Severity,
    pub at: OffsetDateTime,
    pub title: String,
    pub evidence: Vec<Evidence>,
    /// The detector confirmed the condition itself (a spike is over when it is found): it
    /// opens an alert at once, like a critical one.
    pub confirmed: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlertPolicy {
    /// Observations in a row before a warning condition opens an alert (critical: at once).
    pub raise_after: u32,
    /// Uninterrupted recovery after which an open alert resolves itself.
    pub clear_after: Duration,
    /// An alert nobody acknowledged escalates after this long, and again each time it passes.
    pub escalate_after: Duration,
    /// An open alert's last-seen time and count are stored at most this often (the tracker keeps
    /// them exact in memory); severity changes are stored at once.
    pub store_every: Duration,
}

impl Default for AlertPolicy {
    fn default() -> Self {
        Self {
            raise_after: 3,
            clear_after: Duration::minutes(5),
            escalate_after: Duration::minutes(15),
            store_every: Duration::seconds(30),
        }
    }
}

/// What the tracker decided; the caller stores it and tells whoever listens.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertChange {
    Opened(Alert),
    /// Severity rose, or the count and last-seen time moved on.
    Updated(Alert),
    Escalated(Alert),
    Resolved(Alert),
}

impl AlertChange {
    pub fn alert(&self) -> &Alert {
        match self {
            AlertChange::Opened(a)
            | AlertChange::Updated(a)
            | AlertChange::Escalated(a)
            | AlertChange::Resolved(a) => a,
        }
    }
}

type Key = (MachineId, AlertKind);

struct Tracked {
    alert: Alert,
    /// When the condition was last seen clear after holding; `None` while it holds.
    recovering_since: Option<OffsetDateTime>,
    stored_at: OffsetDateTime,
}

struct Pending {
    count: u32,
    severity: Severity,
}

pub struct AlertTracker {
    policy: AlertPolicy,
    open: HashMap<Key, Tracked>,
    pending: HashMap<Key, Pending>,
}

impl AlertTracker {
    /// Resumes with the alerts still active in the store (at most one per machine and kind).
    pub fn new(policy: AlertPolicy, active: Vec<Alert>) -> Self {
        let open = active
            .into_iter()
            .filter(|a| a.status.is_active())
            .map(|alert| {
                let key = (alert.machine.clone(), alert.kind);
                let stored_at = alert.updated_at;
                (
                    key,
                    Tracked {
                        alert,
                        recovering_since: None,
                        stored_at,
                    },
                )
            })
            .collect();
        Self {
            policy,
            open,
            pending: HashMap::new(),
        }
    }

    pub fn policy(&self) -> &AlertPolicy {
        &self.policy
    }

    /// The active alert of a machine and kind, if any.
    pub fn active_alert(&self, machine: &MachineId, kind: AlertKind) -> Option<&Alert> {
        self.open.get(&(machine.clone(), kind)).map(|t| &t.alert)
    }

    /// The condition holds at `c.at`.
    pub fn holds(&mut self, c: Condition) -> Option<AlertChange> {
        let key = (c.machine.clone(), c.kind);
        if let Some(tracked) = self.open.get_mut(&key) {
            tracked.recovering_since = None;
            let alert = &mut tracked.alert;
            alert.occurrences += 1;
            alert.last_seen_at = alert.last_seen_at.max(c.at);
            alert.evidence = c.evidence;
            let worse = c.severity > alert.severity;
            if worse {
                alert.severity = c.severity;
                alert.title = c.title;
            }
            if worse || c.at - tracked.stored_at >= self.policy.store_every {
                tracked.stored_at = c.at;
                return Some(AlertChange::Updated(alert.clone()));
            }
            return None;
        }
        let pending = self.pending.entry(key.clone()).or_insert(Pending {
            count: 0,
            severity: c.severity,
        });
        pending.count += 1;
        pending.severity = pending.severity.max(c.severity);
        let due = c.confirmed
            || c.severity == Severity::Critical
            || pending.count >= self.policy.raise_after;
        if !due {
            return None;
        }
        let count = u64::from(pending.count);
        let severity = pending.severity;
        self.pending.remove(&key);
        let alert = Alert {
            id: AlertId(Uuid::now_v7()),
            machine: c.machine,
            kind: c.kind,
            severity,
            status: AlertStatus::Open,
            title: c.title,
            evidence: c.evidence,
            opened_at: c.at,
            last_seen_at: c.at,
            occurrences: count,
            acknowledged: None,
            resolved: None,
            escalation_level: 0,
            escalated_at: None,
            version: 1,
            updated_at: c.at,
        };
        self.open.insert(
            key,
            Tracked {
                alert: alert.clone(),
                recovering_since: None,
                stored_at: c.at,
            },
        );
        Some(AlertChange::Opened(alert))
    }

    /// The condition does not hold at `at`: a pending one starts over; an open alert starts (or
    /// continues) its recovery, which [`tick`](Self::tick) turns into a resolution in time.
    pub fn clear(&mut self, machine: &MachineId, kind: AlertKind, at: OffsetDateTime) {
        let key = (machine.clone(), kind);
        self.pending.remove(&key);
        if let Some(tracked) = self.open.get_mut(&key)
            && tracked.recovering_since.is_none()
        {
            tracked.recovering_since = Some(at);
        }
    }

    /// Time passed: resolves alerts that recovered for `clear_after` and escalates alerts nobody
    /// acknowledged for `escalate_after`.
    pub fn tick(&mut self, now: OffsetDateTime) -> Vec<AlertChange> {
        let mut changes = Vec::new();
        let mut recovered = Vec::new();
        for (key, tracked) in &mut self.open {
            if tracked
                .recovering_since
                .is_some_and(|since| now - since >= self.policy.clear_after)
            {
                recovered.push(key.clone());
                continue;
            }
            let alert = &mut tracked.alert;
            if alert.status != AlertStatus::Open {
                continue;
            }
            let since = alert.escalated_at.unwrap_or(alert.opened_at);
            if now - since >= self.policy.escalate_after {
                alert.escalation_level += 1;
                alert.escalated_at = Some(now);
                alert.updated_at = now;
                tracked.stored_at = now;
                changes.push(AlertChange::Escalated(alert.clone()));
            }
        }
        for key in recovered {
            if let Some(mut tracked) = self.open.remove(&key) {
                let minutes = self.policy.clear_after.whole_minutes();
                let alert = &mut tracked.alert;
                alert.status = AlertStatus::Resolved;
                alert.resolved = Some(AlertAction {
                    by: "system".into(),
                    at: now,
                    comment: Some(format!("recovered: condition clear for {minutes} min")),
                });
                alert.updated_at = now;
                changes.push(AlertChange::Resolved(tracked.alert));
            }
        }
        changes
    }

    /// The store holds this version of an alert: a person acknowledged or resolved it, a write
    /// of the tracker's was stored, or another node opened it. The tracker follows, so that it
    /// neither escalates an acknowledged alert nor keeps a resolved one open, and it takes the
    /// stored version as the base of its next write.
    pub fn follow(&mut self, alert: &Alert) {
        let key = (alert.machine.clone(), alert.kind);
        if !alert.status.is_active() {
            if self.open.get(&key).is_some_and(|t| t.alert.id == alert.id) {
                self.open.remove(&key);
            }
            return;
        }
        match self.open.get_mut(&key) {
            Some(tracked) if tracked.alert.id == alert.id => {
                let (occurrences, last_seen) =
                    (tracked.alert.occurrences, tracked.alert.last_seen_at);
                tracked.alert = alert.clone();
                tracked.alert.occurrences = occurrences.max(alert.occurrences);
                tracked.alert.last_seen_at = last_seen.max(alert.last_seen_at);
            }
            _ => {
                self.pending.remove(&key);
                self.open.insert(
                    key,
                    Tracked {
                        alert: alert.clone(),
                        recovering_since: None,
                        stored_at: alert.updated_at,
                    },
                );
            }
        }
    }

    /// Alerts the tracker holds open or acknowledged.
    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.open.values().map(|t| &t.alert)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + secs)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    fn hot(secs: i64, severity: Severity) -> Condition {
        Condition {
            machine: MachineId("m1".into()),
            kind: AlertKind::Overheating,
            severity,
            at: t(secs),
            title: "temperature high".into(),
            evidence: vec![Evidence::number("value", 95.0)],
            confirmed: false,
        }
    }

    fn tracker() -> AlertTracker {
        AlertTracker::new(AlertPolicy::default(), Vec::new())
    }

    #[test]
    fn a_warning_opens_after_three_observations_a_critical_at_once() {
        let mut tr = tracker();
        assert_eq!(tr.holds(hot(0, Severity::Warning)), None);
        assert_eq!(tr.holds(hot(1, Severity::Warning)), None);
        let Some(AlertChange::Opened(alert)) = tr.holds(hot(2, Severity::Warning)) else {
            panic!("third observation opens")
        };
        assert_eq!((alert.severity, alert.occurrences), (Severity::Warning, 3));

        let mut tr = tracker();
        assert!(matches!(
            tr.holds(hot(0, Severity::Critical)),
            Some(AlertChange::Opened(_))
        ));
    }

    #[test]
    fn a_broken_run_does_not_open() {
        let mut tr = tracker();
        let m = MachineId("m1".into());
        tr.holds(hot(0, Severity::Warning));
        tr.holds(hot(1, Severity::Warning));
        tr.clear(&m, AlertKind::Overheating, t(2));
        assert_eq!(tr.holds(hot(3, Severity::Warning)), None);
        assert_eq!(tr.holds(hot(4, Severity::Warning)), None);
        assert!(tr.holds(hot(5, Severity::Warning)).is_some());
    }

    #[test]
    fn one_alert_per_machine_and_kind_and_severity_only_rises() {
        let mut tr = tracker();
        tr.holds(hot(0, Severity::Critical));
        assert_eq!(tr.holds(hot(1, Severity::Critical)), None, "stored lazily");
        let Some(AlertChange::Updated(a)) = tr.holds(hot(40, Severity::Warning)) else {
            panic!("stored after store_every")
        };
        assert_eq!((a.severity, a.occurrences), (Severity::Critical, 3));
        assert_eq!(tr.active().count(), 1);
    }

    #[test]
    fn a_flapping_signal_keeps_one_alert_and_recovery_resolves_it() {
        let mut tr = tracker();
        let m = MachineId("m1".into());
        tr.holds(hot(0, Severity::Critical));
        // Flaps every 30 s for ten minutes: never five minutes clear.
        for i in 1..20 {
            let at = i * 30;
            if i % 2 == 0 {
                assert!(!matches!(
                    tr.holds(hot(at, Severity::Critical)),
                    Some(AlertChange::Opened(_))
                ));
            } else {
                tr.clear(&m, AlertKind::Overheating, t(at));
            }
            assert!(
                tr.tick(t(at))
                    .iter()
                    .all(|c| !matches!(c, AlertChange::Resolved(_)))
            );
        }
        assert_eq!(tr.active().count(), 1);
        // Then clear for good: resolved five minutes later, not before.
        tr.holds(hot(600, Severity::Critical));
        tr.clear(&m, AlertKind::Overheating, t(610));
        assert!(
            tr.tick(t(610 + 299))
                .iter()
                .all(|c| !matches!(c, AlertChange::Resolved(_)))
        );
        let changes = tr.tick(t(910));
        let Some(AlertChange::Resolved(a)) = changes.last() else {
            panic!("{changes:?}")
        };
        assert_eq!(a.resolved.as_ref().map(|r| r.by.as_str()), Some("system"));
        assert_eq!(tr.active().count(), 0);
    }

    #[test]
    fn unacknowledged_alerts_escalate_and_acknowledged_ones_do_not() {
        let mut tr = tracker();
        tr.holds(hot(0, Severity::Critical));
        assert!(tr.tick(t(14 * 60)).is_empty());
        let changes = tr.tick(t(15 * 60));
        assert!(matches!(&changes[..], [AlertChange::Escalated(a)] if a.escalation_level == 1));
        assert!(
            tr.tick(t(20 * 60)).is_empty(),
            "the next one is due 15 min later"
        );
        assert!(
            matches!(&tr.tick(t(30 * 60))[..], [AlertChange::Escalated(a)] if a.escalation_level == 2)
        );

        let mut acked = tr
            .active()
            .next()
            .cloned()
            .unwrap_or_else(|| panic!("open"));
        acked.status = AlertStatus::Acknowledged;
        tr.follow(&acked);
        assert!(tr.tick(t(60 * 60)).is_empty());
    }

    #[test]
    fn a_person_resolving_lets_a_new_alert_open() {
        let mut tr = tracker();
        let Some(AlertChange::Opened(mut a)) = tr.holds(hot(0, Severity::Critical)) else {
            panic!()
        };
        a.status = AlertStatus::Resolved;
        tr.follow(&a);
        let Some(AlertChange::Opened(b)) = tr.holds(hot(10, Severity::Critical)) else {
            panic!("a new one")
        };
        assert_ne!(a.id, b.id);
    }

    #[test]
    fn resumes_with_the_stored_active_alerts() {
        let mut tr = tracker();
        let Some(AlertChange::Opened(a)) = tr.holds(hot(0, Severity::Critical)) else {
            panic!()
        };
        let mut resumed = AlertTracker::new(AlertPolicy::default(), vec![a.clone()]);
        assert_eq!(
            resumed
                .holds(hot(100, Severity::Critical))
                .map(|c| c.alert().id),
            Some(a.id)
        );
    }
}
