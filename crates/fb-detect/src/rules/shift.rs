//! The statistical detector with adaptive thresholds: has the sensor's level moved away from
//! its own recent baseline, by more than the baseline's usual wobble allows?
//!
//! * **Level**: the median of the last 5 values, so that one wild reading (a spike, which
//!   [`super::faults::SpikeCheck`] calls) does not move it.
//! * **Baseline**: the median of a long window (`window` values).
//! * **Threshold**: the deviation level − baseline is compared with its own typical size
//!   (mean absolute deviation, exponentially weighted over `window` points, learned only while
//!   nothing is anomalous). The threshold therefore adapts to each sensor's noise and
//!   autocorrelation; no unit or absolute figure is involved.
//! * **Adaptation**: while the level is out, the baseline stops learning, so that a fault does
//!   not become the new normal within minutes; after `adapt_after` points out in a row it
//!   learns again, so that a real change of operating point is accepted in the end.

use std::num::NonZeroUsize;

use crate::features::RollingMedian;

/// Mean absolute deviation to standard deviation, for normal data.
const MEAN_ABS_TO_SIGMA: f64 = 1.253_314_137_315_500_3;
const LEVEL_POINTS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShiftConfig {
    /// Values in the baseline, and points learned before the detector judges.
    pub window: usize,
    /// Deviation, in typical deviations, at which the level is out.
    pub threshold: f64,
    /// Points out in a row after which the baseline learns the new level.
    pub adapt_after: usize,
}

impl ShiftConfig {
    pub fn new(warmup: usize) -> Self {
        Self {
            window: warmup.max(2 * LEVEL_POINTS),
            threshold: 6.0,
            adapt_after: 6 * warmup.max(2 * LEVEL_POINTS),
        }
    }
}

/// What the detector makes of one value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShiftVerdict {
    pub level: f64,
    pub baseline: f64,
    /// (level − baseline) / typical deviation.
    pub z: f64,
    pub out: bool,
}

#[derive(Debug, Clone)]
pub struct ShiftDetector {
    cfg: ShiftConfig,
    level: RollingMedian,
    baseline: RollingMedian,
    /// Exponentially weighted mean of |level − baseline| while in control.
    typical: Option<f64>,
    seen: usize,
    out_streak: usize,
    /// `cfg.threshold` times the sensitivity factor (see [`ShiftDetector::set_sensitivity`]),
    /// kept multiplied so that judging a value costs what it did.
    threshold: f64,
}

impl ShiftDetector {
    pub fn new(cfg: ShiftConfig) -> Self {
        let window =
            NonZeroUsize::new(cfg.window.max(2 * LEVEL_POINTS)).unwrap_or(NonZeroUsize::MIN);
        Self {
            cfg,
            level: RollingMedian::new(NonZeroUsize::new(LEVEL_POINTS).unwrap_or(NonZeroUsize::MIN)),
            baseline: RollingMedian::new(window),
            typical: None,
            seen: 0,
            out_streak: 0,
            threshold: cfg.threshold,
        }
    }

    /// Judges with the threshold times `factor` from now on: below 1 the detector is more
    /// sensitive (a smaller shift is out), 1 is the configured threshold. Non-finite or
    /// non-positive factors are ignored; factors above 1 are taken as 1 (monitoring is only
    /// ever increased this way).
    pub fn set_sensitivity(&mut self, factor: f64) {
        if factor.is_finite() && factor > 0.0 {
            self.threshold = self.cfg.threshold * factor.min(1.0);
        }
    }

    /// The median of the long window, once there is one.
    pub fn baseline(&self) -> Option<f64> {
        self.baseline.median()
    }

    /// Robust standard deviation of the raw values in the baseline window.
    pub fn spread(&self) -> Option<f64> {
        self.baseline.mad()
    }

    pub fn is_warm(&self) -> bool {
        self.seen >= self.cfg.window
    }

    /// The level was out on the last value judged.
    pub fn is_out(&self) -> bool {
        self.out_streak > 0
    }

    /// Values judged out in a row, up to the last.
    pub fn out_streak(&self) -> usize {
        self.out_streak
    }

    /// Forgets the baseline: the sensor's operating point changed and the old one says nothing
    /// about the new. The typical deviation (the sensor's noise) is kept; the detector judges
    /// again once a new window is learned.
    pub fn restart(&mut self) {
        let window =
            NonZeroUsize::new(self.cfg.window.max(2 * LEVEL_POINTS)).unwrap_or(NonZeroUsize::MIN);
        self.baseline = RollingMedian::new(window);
        self.seen = 0;
        self.out_streak = 0;
    }

    /// Learns `value` whatever it is: while a change of operating point settles, what the
    /// sensor does is the new normal being learned. Returns the verdict the value would have
    /// had, which says whether the sensor has settled.
    pub fn learn(&mut self, value: f64) -> Option<ShiftVerdict> {
        self.seen += 1;
        self.level.push(value);
        let verdict = self.judge();
        self.baseline.push(value);
        self.out_streak = 0;
        verdict
    }

    /// Deviation, in typical deviations, at which the level is out (with the sensitivity).
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// Judges `value`, then learns from it. `None` while warming up.
    pub fn update(&mut self, value: f64) -> Option<ShiftVerdict> {
        self.seen += 1;
        self.level.push(value);
        let verdict = self.judge();
        let out = verdict.is_some_and(|v| v.out);
        self.out_streak = if out { self.out_streak + 1 } else { 0 };
        if !out || self.out_streak > self.cfg.adapt_after {
            self.baseline.push(value);
        }
        if !out && let (Some(level), Some(base)) = (self.level.median(), self.baseline.median()) {
            let deviation = (level - base).abs();
            let alpha = 1.0 / self.cfg.window as f64;
            self.typical = Some(match self.typical {
                None => deviation,
                Some(t) => t + alpha * (deviation - t),
            });
        }
        verdict
    }

    fn judge(&self) -> Option<ShiftVerdict> {
        if !self.is_warm() || self.level.len() < LEVEL_POINTS {
            return None;
        }
        let level = self.level.median()?;
        let baseline = self.baseline.median()?;
        let typical = self.typical? * MEAN_ABS_TO_SIGMA;
        // A sensor that barely moves still needs a scale: one part in a thousand of its level.
        let floor = 1e-3 * baseline.abs() + 1e-9;
        let z = (level - baseline) / typical.max(floor);
        Some(ShiftVerdict {
            level,
            baseline,
            z,
            out: z.abs() >= self.threshold,
        })
    }

    pub fn heap_bytes(&self) -> usize {
        self.level.heap_bytes() + self.baseline.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::math::SplitMix64;

    fn noise(rng: &mut SplitMix64) -> f64 {
        // Sum of uniforms: close enough to normal for a test, and deterministic.
        (0..12).map(|_| rng.next_f64()).sum::<f64>() - 6.0
    }

    #[test]
    fn noise_stays_in_and_a_shift_of_a_few_sigma_comes_out_fast() {
        let mut d = ShiftDetector::new(ShiftConfig::new(300));
        let mut rng = SplitMix64::new(7);
        let mut outs = 0;
        for _ in 0..5000 {
            if d.update(50.0 + 0.2 * noise(&mut rng))
                .is_some_and(|v| v.out)
            {
                outs += 1;
            }
        }
        assert_eq!(outs, 0, "stationary noise must not come out");
        // A step of 5 sigma is out within a few points and stays out.
        let mut first = None;
        for i in 0..200 {
            if d.update(51.0 + 0.2 * noise(&mut rng))
                .is_some_and(|v| v.out)
                && first.is_none()
            {
                first = Some(i);
            }
        }
        assert!(first.is_some_and(|i| i <= 5), "{first:?}");
        assert!(d.update(51.0).is_some_and(|v| v.out && v.z > 0.0));
    }

    #[test]
    fn a_sensitive_detector_calls_a_smaller_shift_and_reverts() {
        let mut d = ShiftDetector::new(ShiftConfig::new(300));
        let mut rng = SplitMix64::new(7);
        for _ in 0..3000 {
            d.update(50.0 + 0.2 * noise(&mut rng));
        }
        let z = d.update(50.0).map(|v| v.z).unwrap_or(0.0);
        assert!(z.abs() < 3.0, "{z}");
        // A level the configured threshold (6) keeps in: out at half of it.
        let typical = d.typical.unwrap() * MEAN_ABS_TO_SIGMA;
        let level = 50.0 + 4.0 * typical;
        let judge =
            |d: &mut ShiftDetector| (0..5).filter_map(|_| d.learn(level)).last().map(|v| v.out);
        let mut normal = d.clone();
        assert_eq!(judge(&mut normal), Some(false));
        d.set_sensitivity(0.5);
        assert_eq!(d.threshold(), 3.0);
        assert_eq!(judge(&mut d.clone()), Some(true));
        d.set_sensitivity(1.0);
        assert_eq!(judge(&mut d), Some(false));
        d.set_sensitivity(f64::NAN);
        d.set_sensitivity(4.0);
        assert_eq!(d.threshold(), 6.0, "never less sensitive than configured");
    }

    #[test]
    fn one_wild_value_does_not_move_the_level() {
        let mut d = ShiftDetector::new(ShiftConfig::new(100));
        let mut rng = SplitMix64::new(3);
        for _ in 0..500 {
            d.update(10.0 + 0.1 * noise(&mut rng));
        }
        let spike = d.update(200.0).expect("warm");
        assert!(!spike.out);
        assert!(!d.update(10.0).expect("warm").out);
    }

    #[test]
    fn a_lasting_new_level_is_learned_in_the_end() {
        let cfg = ShiftConfig {
            window: 50,
            threshold: 6.0,
            adapt_after: 100,
        };
        let mut d = ShiftDetector::new(cfg);
        let mut rng = SplitMix64::new(11);
        for _ in 0..300 {
            d.update(1.0 + 0.01 * noise(&mut rng));
        }
        let outs: Vec<bool> = (0..400)
            .map(|_| {
                d.update(2.0 + 0.01 * noise(&mut rng))
                    .is_some_and(|v| v.out)
            })
            .collect();
        assert!(outs[10] && outs[90], "held out while adaptation waits");
        assert!(!outs[399], "accepted after adapt_after plus half a window");
    }

    #[test]
    fn a_restart_forgets_the_old_level_and_judges_again_after_a_window() {
        let cfg = ShiftConfig {
            window: 50,
            threshold: 6.0,
            adapt_after: 1000,
        };
        let mut d = ShiftDetector::new(cfg);
        let mut rng = SplitMix64::new(5);
        for _ in 0..200 {
            d.update(1.0 + 0.01 * noise(&mut rng));
        }
        assert!(d.update(3.0).is_some() && d.update(3.0).is_some());
        d.restart();
        assert!(!d.is_warm() && !d.is_out());
        for _ in 0..49 {
            d.learn(3.0 + 0.01 * noise(&mut rng));
        }
        assert!(
            d.update(3.0).is_some_and(|v| !v.out),
            "the new level is normal"
        );
        let back = (0..5).map(|_| d.update(1.0)).last().flatten();
        assert!(
            back.is_some_and(|v| v.out),
            "the old level is now a shift: {back:?}"
        );
    }
}
