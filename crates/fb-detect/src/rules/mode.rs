//! Changes of operating point: the plant starts a shift, a batch or a recipe, and every sensor
//! that follows the load (power, flow, pressure, vibration) moves at once. That is the machine
//! doing what it was told, not a fault; the statistical and multivariate detectors, which learn
//! "normal" from the recent past, would call every such change an anomaly.
//!
//! A change is recognised when at least half of a machine's sensors, and at least three,
//! leave their baselines within a few rows of each other. Faults rarely look like that: a leak,
//! a worn bearing or an overheating winding moves one or two sensors, and a wear fault that
//! moves several does so over minutes, one sensor after another, not in the same few rows.
//! Then those learning detectors only learn while the machine settles: the new operating point
//! becomes their baseline, and slow followers (a motor's temperature takes tens of minutes to
//! reach its new level) finish moving before they are judged again. Settling ends when every
//! sensor's level is back within half the statistical threshold of its new baseline, or when
//! the settling time (an upper bound) runs out, whichever comes first. Limits, vibration zones,
//! sensor faults and silence are judged throughout: a change of operating point never hides a
//! reading past a limit.

/// Rows within which the departures of several sensors count as one movement.
const ONSET_ROWS: u64 = 10;
/// Fewest sensors that must move together; fewer cannot be told apart from a fault.
const MIN_SENSORS: usize = 3;

/// Recognises changes of operating point on one machine's rows.
#[derive(Debug, Clone)]
pub struct ModeWatch {
    settle_micros: i64,
    /// Sensors that must leave their baseline together; `usize::MAX` when the machine has too
    /// few sensors (or recognition is off).
    needed: usize,
    rows: u64,
    /// Row at which each sensor left its baseline, while it stays away.
    away_since: Vec<Option<u64>>,
    settling_until: Option<i64>,
    changes: u64,
}

impl ModeWatch {
    /// `settle_secs` 0 turns recognition off.
    pub fn new(sensors: usize, settle_secs: u64) -> Self {
        let needed = if settle_secs == 0 || sensors < MIN_SENSORS {
            usize::MAX
        } else {
            MIN_SENSORS.max(sensors.div_ceil(2))
        };
        Self {
            settle_micros: i64::try_from(settle_secs)
                .unwrap_or(i64::MAX / 1_000_000)
                .saturating_mul(1_000_000),
            needed,
            rows: 0,
            away_since: vec![None; sensors],
            settling_until: None,
            changes: 0,
        }
    }

    /// The learning detectors only learn at `ts_micros`.
    pub fn settling(&self, ts_micros: i64) -> bool {
        self.settling_until.is_some_and(|until| ts_micros < until)
    }

    /// Every sensor settled before the time ran out.
    pub fn end_settling(&mut self) {
        self.settling_until = None;
    }

    /// Changes recognised so far.
    pub fn changes(&self) -> u64 {
        self.changes
    }

    /// One complete row: `away[i]` says whether sensor `i` is away from its baseline (`None`
    /// while it cannot tell). Returns the sensors that moved together when this row completes
    /// a change of operating point; settling starts (or starts over) at `ts_micros`.
    pub fn observe_row(
        &mut self,
        ts_micros: i64,
        away: impl IntoIterator<Item = Option<bool>>,
    ) -> Option<Vec<usize>> {
        self.rows += 1;
        let row = self.rows;
        for (since, away) in self.away_since.iter_mut().zip(away) {
            *since = match away {
                Some(true) => Some(since.unwrap_or(row)),
                Some(false) | None => None,
            };
        }
        let recent = |since: &Option<u64>| since.is_some_and(|s| row - s < ONSET_ROWS);
        // Counted first: this runs on every row, and a change is rare.
        if self.away_since.iter().filter(|s| recent(s)).count() < self.needed {
            return None;
        }
        let moved: Vec<usize> = self
            .away_since
            .iter()
            .enumerate()
            .filter(|(_, since)| recent(since))
            .map(|(i, _)| i)
            .collect();
        self.away_since.iter_mut().for_each(|s| *s = None);
        self.settling_until = Some(ts_micros.saturating_add(self.settle_micros));
        self.changes += 1;
        Some(moved)
    }

    pub fn heap_bytes(&self) -> usize {
        self.away_since.capacity() * size_of::<Option<u64>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: i64 = 1_000_000;

    #[test]
    fn sensors_leaving_together_are_a_change_and_settle_for_the_set_time() {
        let mut w = ModeWatch::new(5, 600);
        assert!(w.observe_row(0, [Some(false); 5]).is_none());
        let moved = w.observe_row(SEC, [Some(true), Some(true), Some(false), Some(true), None]);
        assert_eq!(moved, Some(vec![0, 1, 3]));
        assert!(w.settling(2 * SEC) && w.settling(600 * SEC));
        assert!(!w.settling(601 * SEC));
        assert_eq!(w.changes(), 1);
    }

    #[test]
    fn departures_spread_over_many_rows_are_not_a_change() {
        // A wear fault: vibration leaves first, power later, temperature later still.
        let mut w = ModeWatch::new(5, 600);
        let mut away = [Some(false); 5];
        for (row, sensor) in [(0, 1), (20, 4), (40, 0)] {
            away[sensor] = Some(true);
            for r in row..row + 20 {
                assert!(w.observe_row(r * SEC, away).is_none(), "row {r}");
            }
        }
        assert!(!w.settling(60 * SEC));
    }

    #[test]
    fn two_sensors_are_never_enough_and_small_machines_never_change() {
        let mut w = ModeWatch::new(5, 600);
        assert!(
            w.observe_row(0, [Some(true), Some(true), None, None, None])
                .is_none()
        );
        let mut small = ModeWatch::new(2, 600);
        assert!(small.observe_row(0, [Some(true); 2]).is_none());
        let mut off = ModeWatch::new(5, 0);
        assert!(off.observe_row(0, [Some(true); 5]).is_none());
        // Ten sensors need five.
        let mut big = ModeWatch::new(10, 600);
        let mut away = [Some(false); 10];
        away[..4].fill(Some(true));
        assert!(big.observe_row(0, away).is_none());
        away[4] = Some(true);
        assert!(big.observe_row(SEC, away).is_some());
    }
}
