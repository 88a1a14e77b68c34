//! Sensor faults: the measurement, not the process, is wrong. A stuck sensor repeats one value,
//! a spike is one wild reading that returns at once, a silent sensor sends nothing.

/// Flags a sensor that repeats one value for longer than its own history makes plausible.
///
/// The detector learns how often consecutive readings differ (`change_rate`, exponentially
/// weighted). A run of `n` equal readings has probability about `(1 - change_rate)^(n - 1)`
/// for a healthy sensor, so the run that counts as stuck is the one that has probability
/// below `1e-6`, and at least `min_run`: a quantised sensor that often repeats needs a longer
/// run than a noisy one, and a sensor that never moves is never called stuck.
#[derive(Debug, Clone)]
pub struct StuckDetector {
    min_run: u32,
    last: Option<f64>,
    run: u32,
    change_rate: f64,
    seen: u32,
}

/// Readings of history before the detector judges.
const STUCK_LEARN: u32 = 50;
const STUCK_TAIL: f64 = 1e-6;

impl StuckDetector {
    pub fn new(min_run: u32) -> Self {
        Self {
            min_run: min_run.max(2),
            last: None,
            run: 0,
            change_rate: 0.0,
            seen: 0,
        }
    }

    /// Learns from `value`; `Some(run)` when the sensor is stuck (the value repeated `run` times).
    pub fn update(&mut self, value: f64) -> Option<u32> {
        let same = self.last == Some(value);
        self.last = Some(value);
        self.run = if same { self.run + 1 } else { 1 };
        self.seen = self.seen.saturating_add(1);
        let stuck = self.needed_run().is_some_and(|n| self.run >= n);
        // A stuck spell must not teach the detector that repeats are normal.
        if !stuck && self.seen > 1 {
            let alpha = (1.0 / f64::from(self.seen - 1)).max(1.0 / 200.0);
            let changed = if same { 0.0 } else { 1.0 };
            self.change_rate += alpha * (changed - self.change_rate);
        }
        stuck.then_some(self.run)
    }

    /// The run of equal values that counts as stuck; `None` while learning or for a sensor
    /// that moves too rarely to tell.
    pub fn needed_run(&self) -> Option<u32> {
        if self.seen < STUCK_LEARN || self.change_rate < 0.5 {
            return None;
        }
        let repeat = (1.0 - self.change_rate).max(1e-9);
        let run = 1.0 + STUCK_TAIL.ln() / repeat.ln();
        Some((run.ceil() as u32).max(self.min_run))
    }
}

/// A reading that jumps far from the baseline and is followed by one back near it.
///
/// A spike can only be told from a step on the next reading, so the check holds the wild
/// reading as a candidate and confirms or drops it then.
#[derive(Debug, Clone, Copy, Default)]
pub struct SpikeCheck {
    candidate: Option<SpikeCandidate>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SpikeCandidate {
    pub ts_micros: i64,
    pub value: f64,
    pub z: f64,
    pub baseline: f64,
}

/// Robust z at which a reading is a spike candidate.
pub const SPIKE_Z: f64 = 8.0;
/// Robust z under which the next reading counts as back.
pub const SPIKE_BACK_Z: f64 = 4.0;

impl SpikeCheck {
    /// The reading at `ts_micros` has robust z `z` against `baseline`; returns the spike this
    /// reading confirms, if any.
    pub fn update(
        &mut self,
        ts_micros: i64,
        value: f64,
        z: f64,
        baseline: f64,
    ) -> Option<SpikeCandidate> {
        let confirmed = self.candidate.take().filter(|_| z.abs() < SPIKE_BACK_Z);
        if z.abs() >= SPIKE_Z && confirmed.is_none() {
            self.candidate = Some(SpikeCandidate {
                ts_micros,
                value,
                z,
                baseline,
            });
        }
        confirmed
    }

    pub fn pending(&self) -> bool {
        self.candidate.is_some()
    }
}

/// The usual interval between a sensor's readings, and how long it has been silent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cadence {
    last_micros: Option<i64>,
    /// When a reading of the sensor last arrived, if the caller says (server time).
    heard_micros: Option<i64>,
    /// Exponentially weighted interval, microseconds.
    interval: Option<f64>,
}

impl Cadence {
    pub fn update(&mut self, ts_micros: i64) {
        if let Some(last) = self.last_micros {
            let gap = (ts_micros - last) as f64;
            if gap > 0.0 {
                self.interval = Some(match self.interval {
                    None => gap,
                    // Long silences (dropouts) must not teach the cadence that they are usual.
                    Some(i) if gap > 10.0 * i => i,
                    Some(i) => i + 0.05 * (gap - i),
                });
            }
        }
        self.last_micros = Some(self.last_micros.map_or(ts_micros, |l| l.max(ts_micros)));
    }

    pub fn last_micros(&self) -> Option<i64> {
        self.last_micros
    }

    /// A reading of the sensor arrived at `at_micros` (server time). Silence counts from the
    /// later of the newest reading's time and its arrival: history replayed or uploaded late
    /// (a gateway's buffer, a restart's backfill) is not a silence while it keeps arriving.
    pub fn heard(&mut self, at_micros: i64) {
        self.heard_micros = Some(self.heard_micros.map_or(at_micros, |h| h.max(at_micros)));
    }

    pub fn interval_micros(&self) -> Option<f64> {
        self.interval
    }

    /// Silent longer than `min_silence` and than five usual intervals at `now`: the silence.
    pub fn silence(&self, now_micros: i64, min_silence_micros: i64) -> Option<i64> {
        let last = self.last_micros?.max(self.heard_micros.unwrap_or(i64::MIN));
        let silence = now_micros - last;
        let usual = self.interval.unwrap_or(0.0) * 5.0;
        (silence as f64 > usual && silence > min_silence_micros).then_some(silence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moving_sensor_that_freezes_is_stuck_and_a_quantised_one_needs_longer() {
        let mut d = StuckDetector::new(10);
        for i in 0..300 {
            assert_eq!(d.update(f64::from(i % 17) * 0.1), None);
        }
        let stuck: Vec<Option<u32>> = (0..12).map(|_| d.update(0.55)).collect();
        assert_eq!(stuck[8], None);
        assert_eq!(stuck[9], Some(10));
        assert_eq!(d.update(0.6), None, "moving again");

        // Moves on three readings out of four: a run of 10 happens, so it needs more.
        let mut q = StuckDetector::new(10);
        for i in 0..2000 {
            q.update(f64::from((i / 4) * 3 + (i % 4).min(2)));
        }
        assert!(
            q.needed_run().is_some_and(|n| n > 10),
            "{:?}",
            q.needed_run()
        );
        // Never moves: never stuck.
        let mut flat = StuckDetector::new(10);
        assert!((0..500).all(|_| flat.update(1.0).is_none()));
    }

    #[test]
    fn a_spike_needs_the_next_reading_back_and_a_step_is_no_spike() {
        let mut s = SpikeCheck::default();
        assert_eq!(s.update(1, 10.0, 0.5, 10.0), None);
        assert_eq!(s.update(2, 90.0, 40.0, 10.0), None);
        assert!(s.pending());
        let spike = s.update(3, 10.1, 0.3, 10.0).expect("back at once");
        assert_eq!(spike.ts_micros, 2);
        assert_eq!(spike.value, 90.0);
        // A step stays out: no spike.
        assert_eq!(s.update(4, 90.0, 40.0, 10.0), None);
        assert_eq!(s.update(5, 90.0, 40.0, 10.0), None);
    }

    #[test]
    fn silence_counts_from_the_last_reading_against_the_usual_interval() {
        let mut c = Cadence::default();
        for t in 0..100 {
            c.update(t * 1_000_000);
        }
        let last = 99 * 1_000_000;
        assert_eq!(
            c.silence(last + 3_000_000, 1_000_000),
            None,
            "within 5 intervals"
        );
        assert_eq!(c.silence(last + 31_000_000, 30_000_000), Some(31_000_000));
        // A long dropout does not make long silences usual.
        c.update(last + 200_000_000);
        assert!(c.interval_micros().is_some_and(|i| i < 2_000_000.0));
    }

    #[test]
    fn replayed_history_that_keeps_arriving_is_not_a_silence() {
        const SEC: i64 = 1_000_000;
        let mut c = Cadence::default();
        // Readings from ten minutes ago, replayed now, one a second.
        let now = 10_000 * SEC;
        for i in 0..60 {
            c.update(now - 600 * SEC + i * SEC);
        }
        assert!(
            c.silence(now, 30 * SEC).is_some(),
            "by reading time alone: silent"
        );
        c.heard(now);
        assert_eq!(
            c.silence(now + SEC, 30 * SEC),
            None,
            "it arrived a second ago"
        );
        assert!(
            c.silence(now + 60 * SEC, 30 * SEC).is_some(),
            "then nothing came"
        );
    }
}
