//! Per-machine sensitivity overrides ("increase monitoring", C4): the plant optimizer makes a
//! machine's detectors more sensitive for a while; detection applies it.
//!
//! The handle is shared (`Arc<Sensitivity>`): the optimizer writes, detection reads. Detection
//! looks at it once per batch and tick, never per reading: an atomic version number tells it
//! whether anything changed, and it re-reads the map only then or when the earliest override
//! runs out. A machine's detector is told its factor when it changes
//! ([`fb_detect::pipeline::MachineDetector::set_sensitivity`]), so judging a reading costs
//! what it did.
//!
//! Overrides live in this node's memory: they are short-lived by design (an hour by default)
//! and every node that runs detection must get them from the coordination events (the agent
//! runs where detection runs). A restart forgets them, which is the safe direction: detection
//! falls back to its configured sensitivity.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

use time::OffsetDateTime;

use fb_core::plant::MachineId;

/// The most sensitive factor accepted: thresholds at a tenth are as far as "more sensitive"
/// goes before every reading is an alarm.
pub const MIN_FACTOR: f64 = 0.1;

#[derive(Debug, Clone, Copy, PartialEq)]
struct Override {
    factor: f64,
    until: OffsetDateTime,
}

/// Sensitivity overrides per machine, each with its expiry.
#[derive(Debug, Default)]
pub struct Sensitivity {
    version: AtomicU64,
    overrides: RwLock<HashMap<MachineId, Override>>,
}

impl Sensitivity {
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `machine`'s detectors more sensitive (thresholds × `factor`, clamped to
    /// [`MIN_FACTOR`, 1]) until `until`. Requests overlapping one in force at `now` combine to
    /// the more sensitive factor and the later end, so that one request never weakens
    /// another. Returns the override in force afterwards: (factor, until).
    pub fn increase(
        &self,
        machine: &MachineId,
        factor: f64,
        now: OffsetDateTime,
        until: OffsetDateTime,
    ) -> (f64, OffsetDateTime) {
        let factor = if factor.is_finite() {
            factor.clamp(MIN_FACTOR, 1.0)
        } else {
            1.0
        };
        let mut map = self.overrides.write().unwrap_or_else(|p| p.into_inner());
        let entry = map
            .entry(machine.clone())
            .or_insert(Override { factor, until });
        if entry.until <= now {
            // An ended override says nothing about this one.
            *entry = Override { factor, until };
        }
        entry.factor = entry.factor.min(factor);
        entry.until = entry.until.max(until);
        let now = (entry.factor, entry.until);
        drop(map);
        self.version.fetch_add(1, Ordering::Release);
        now
    }

    /// The factor for `machine` at `now` (1 without an override in force).
    pub fn factor(&self, machine: &MachineId, now: OffsetDateTime) -> f64 {
        self.overrides
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(machine)
            .filter(|o| o.until > now)
            .map_or(1.0, |o| o.factor)
    }

    /// Changes so far: a reader that saw this number has seen every override.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// The overrides in force at `now` and the earliest time one of them ends, with the
    /// version they belong to; expired ones are dropped.
    pub(crate) fn active(
        &self,
        now: OffsetDateTime,
    ) -> (u64, Vec<(MachineId, f64)>, Option<OffsetDateTime>) {
        let mut map = self.overrides.write().unwrap_or_else(|p| p.into_inner());
        // Read under the lock: an increase after this waits, then bumps past it.
        let version = self.version.load(Ordering::Acquire);
        map.retain(|_, o| o.until > now);
        let next = map.values().map(|o| o.until).min();
        let active = map.iter().map(|(m, o)| (m.clone(), o.factor)).collect();
        (version, active, next)
    }
}

#[cfg(test)]
mod tests {
    use time::Duration;
    use time::macros::datetime;

    use super::*;

    #[test]
    fn overrides_combine_to_the_more_sensitive_and_expire() {
        let s = Sensitivity::new();
        let m = MachineId("press-01".into());
        let t = datetime!(2026-11-02 10:00 UTC);
        assert_eq!(s.factor(&m, t), 1.0);
        let v0 = s.version();
        assert_eq!(
            s.increase(&m, 0.5, t, t + Duration::HOUR),
            (0.5, t + Duration::HOUR)
        );
        assert!(s.version() > v0);
        // A milder, shorter request weakens nothing.
        assert_eq!(
            s.increase(&m, 0.8, t, t + Duration::minutes(10)),
            (0.5, t + Duration::HOUR)
        );
        assert_eq!(s.factor(&m, t + Duration::minutes(59)), 0.5);
        assert_eq!(s.factor(&m, t + Duration::HOUR), 1.0, "ended");
        // Out-of-range factors are clamped.
        let other = MachineId("pump-01".into());
        assert_eq!(s.increase(&other, 0.0, t, t + Duration::HOUR).0, MIN_FACTOR);
        let (_, active, next) = s.active(t + Duration::minutes(5));
        assert_eq!(active.len(), 2);
        assert_eq!(next, Some(t + Duration::HOUR));
        let (_, active, next) = s.active(t + Duration::HOUR);
        assert!(
            active.is_empty() && next.is_none(),
            "expired ones are dropped"
        );
        // After the end, a milder request is not combined with the ended stricter one.
        let later = t + Duration::hours(2);
        assert_eq!(
            s.increase(&m, 0.8, later, later + Duration::HOUR),
            (0.8, later + Duration::HOUR)
        );
    }
}
