//! The production detector: pattern novelty against the stream's own past, gated by the
//! operating range and backed by a likelihood layer for sustained change.

use std::collections::VecDeque;
use std::num::NonZeroUsize;

use serde::{Deserialize, Serialize};

use super::StreamingDetector;
use super::error::DetectorError;
use super::likelihood::{Likelihood, Refractory, log_surprise};
use super::memory::PatternMemory;
use crate::features::{Ewma, RollingMedian};

/// Settings of [`NoveltyDetector`]. Time scales are shares of `warmup`, so one setting
/// fits streams sampled every second or every hour alike; the defaults are the ones
/// measured on NAB (see the module docs of [`crate::detector`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoveltyConfig {
    /// Points the detector learns from before it scores (NAB: the probationary period).
    pub warmup: usize,
    /// Coordinates of a pattern: the newest value, then means of earlier blocks.
    pub embed: usize,
    /// Time covered by a pattern, as a share of `warmup`.
    pub span_share: f64,
    /// Patterns remembered.
    pub memory: usize,
    /// Novelty (distance over its typical value) at which a point is an alarm.
    pub alarm_ratio: f64,
    /// A novelty only counts in full once the distance reaches this share of the
    /// operating range: deviations that are noise-sized against the range are muted.
    pub range_share: f64,
    /// The operating range spans quantiles `q` to `1 - q` of a sample of past values.
    pub range_quantile: f64,
    /// Values kept in that sample (one every block).
    pub range_sample: usize,
    /// Window over which a sustained rise in novelty is averaged, as a share of `warmup`.
    pub sustain_share: f64,
    /// Half-life of the novelty's long-run distribution, as a multiple of `warmup`.
    pub history_share: f64,
    /// Tail probability of the sustained novelty that counts as an alarm.
    pub sustain_alarm_tail: f64,
    /// Points muted after an alarm, as a share of `warmup`.
    pub refractory_share: f64,
    /// Novelty mapped to score 1; the score is linear in novelty below it.
    pub max_ratio: f64,
}

impl NoveltyConfig {
    /// The measured defaults for a warm-up of `warmup` points.
    pub fn new(warmup: usize) -> Self {
        Self {
            warmup,
            embed: 8,
            span_share: 0.05,
            memory: 1024,
            alarm_ratio: 4.0,
            range_share: 0.3,
            range_quantile: 0.01,
            range_sample: 512,
            sustain_share: 0.05,
            history_share: 10.0,
            sustain_alarm_tail: 3e-5,
            refractory_share: 0.2,
            max_ratio: 50.0,
        }
    }

    /// The score at and above which the detector itself treats a point as an alarm.
    pub fn alarm_score(&self) -> f64 {
        self.alarm_ratio / self.max_ratio
    }

    fn validate(&self) -> Result<(), DetectorError> {
        let bad = |field: &'static str, reason: &'static str| {
            Err(DetectorError::InvalidConfig { field, reason })
        };
        let positive = |x: f64| x.is_finite() && x > 0.0;
        if self.warmup == 0 {
            return bad("warmup", "must be at least one point");
        }
        if !(2..=64).contains(&self.embed) {
            return bad("embed", "must be between 2 and 64");
        }
        if self.memory == 0 || self.range_sample == 0 {
            return bad(
                "memory",
                "memory and range_sample must hold at least one item",
            );
        }
        for (field, value) in [
            ("span_share", self.span_share),
            ("alarm_ratio", self.alarm_ratio),
            ("range_share", self.range_share),
            ("sustain_share", self.sustain_share),
            ("history_share", self.history_share),
            ("max_ratio", self.max_ratio),
        ] {
            if !positive(value) {
                return bad(field, "must be a positive, finite number");
            }
        }
        if !(self.refractory_share.is_finite() && self.refractory_share >= 0.0) {
            return bad("refractory_share", "must be finite and not negative");
        }
        if !(self.range_quantile > 0.0 && self.range_quantile < 0.5) {
            return bad("range_quantile", "must be in (0, 0.5)");
        }
        if !(self.sustain_alarm_tail > 0.0 && self.sustain_alarm_tail < 1.0) {
            return bad("sustain_alarm_tail", "must be in (0, 1)");
        }
        if self.alarm_ratio > self.max_ratio {
            return bad("alarm_ratio", "must not exceed max_ratio");
        }
        Ok(())
    }
}

/// Streaming novelty detector; see the module docs of [`crate::detector`] for the method.
#[derive(Debug, Clone)]
pub struct NoveltyDetector {
    cfg: NoveltyConfig,
    /// Points per block of the pattern.
    step: usize,
    /// Points covered by one pattern.
    span: usize,
    recent: VecDeque<f64>,
    pattern: Vec<f64>,
    memory: PatternMemory,
    /// Typical nearest-pattern distance.
    typical: Ewma,
    range_sample: RollingMedian,
    likelihood: Likelihood,
    refractory: Refractory,
    /// Points seen (finite values only).
    seen: u64,
    lo: f64,
    hi: f64,
}

fn non_zero(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

impl NoveltyDetector {
    pub fn new(cfg: NoveltyConfig) -> Result<Self, DetectorError> {
        cfg.validate()?;
        let warmup = cfg.warmup as f64;
        let m = cfg.embed;
        let span_target = (cfg.span_share * warmup).max(m as f64);
        let step = ((span_target / m as f64).round() as usize).max(1);
        let span = step * (m - 1) + 1;
        let typical = Ewma::with_half_life(warmup.max(1.0))?;
        let history = Ewma::with_half_life((cfg.history_share * warmup).max(1.0))?;
        let sustain = non_zero(((cfg.sustain_share * warmup) as usize).max(1));
        Ok(Self {
            step,
            span,
            recent: VecDeque::with_capacity(span),
            pattern: vec![0.0; m],
            memory: PatternMemory::new(m, cfg.memory),
            typical,
            range_sample: RollingMedian::new(non_zero(cfg.range_sample)),
            // The long-run distribution needs half a warm-up of history before it judges;
            // a deviation floor of 0.05 novelty units keeps flat histories from over-reacting.
            likelihood: Likelihood::new(history, sustain, cfg.warmup / 2, 0.05),
            refractory: Refractory::new(
                cfg.alarm_score(),
                (cfg.refractory_share * warmup) as usize,
            ),
            seen: 0,
            lo: f64::INFINITY,
            hi: f64::NEG_INFINITY,
            cfg,
        })
    }

    pub fn config(&self) -> &NoveltyConfig {
        &self.cfg
    }

    /// The newest value, then the means of the `embed - 1` blocks of `step` points before it.
    fn build_pattern(&mut self) {
        let len = self.recent.len();
        self.pattern[0] = self.recent[len - 1];
        for j in 1..self.cfg.embed {
            let last = len - 1 - (j - 1) * self.step;
            let first = last + 1 - self.step;
            let sum: f64 = self.recent.range(first..=last).sum();
            self.pattern[j] = sum / self.step as f64;
        }
    }

    /// Spread of the bulk of past values; a single old outlier does not widen it.
    fn operating_range(&self, floor: f64) -> f64 {
        let q = self.cfg.range_quantile;
        match (
            self.range_sample.quantile(1.0 - q),
            self.range_sample.quantile(q),
        ) {
            (Some(high), Some(low)) => (high - low).max(floor),
            _ => (self.hi - self.lo).max(floor),
        }
    }

    /// Novelty of the newest point in alarm-ratio units, or `None` before a comparison exists.
    fn novelty(&mut self, value: f64) -> Option<f64> {
        self.seen += 1;
        self.lo = self.lo.min(value);
        self.hi = self.hi.max(value);
        let on_block = self.seen.is_multiple_of(self.step as u64);
        if on_block || self.range_sample.len() < 8 {
            self.range_sample.push(value);
        }
        if self.recent.len() == self.span {
            self.recent.pop_front();
        }
        self.recent.push_back(value);
        if self.recent.len() < self.span {
            return None;
        }
        self.build_pattern();
        // Patterns taken within the last `span` points share values with this one.
        let latest = self.seen.saturating_sub(self.span as u64);
        let distance = self.memory.nearest(&self.pattern, latest);
        let floor = 1e-9 * (self.hi - self.lo).max(1e-12);
        let typical = self.typical.mean().or(distance).unwrap_or(floor).max(floor);
        // Remember a regular sample of patterns, plus every novel one, so that a pattern
        // that recurs (a daily spike, a new operating level) is known the next time.
        let novel = distance.is_some_and(|d| d > self.cfg.alarm_ratio * typical);
        if on_block || novel {
            self.memory.store(&self.pattern, self.seen);
        }
        let distance = distance?;
        self.typical.push(distance);
        let ratio = distance / typical;
        let against_range = distance / self.operating_range(floor);
        Some(ratio.min(self.cfg.alarm_ratio * against_range / self.cfg.range_share))
    }
}

impl StreamingDetector for NoveltyDetector {
    fn update(&mut self, _timestamp: i64, value: f64) -> f64 {
        if !value.is_finite() {
            return 0.0;
        }
        let novelty = self.novelty(value);
        let sustained_tail = novelty.map_or(1.0, |n| self.likelihood.update(n));
        // The first `warmup` points only train.
        if self.seen <= self.cfg.warmup as u64 {
            return self.refractory.apply(0.0);
        }
        let Some(novelty) = novelty else {
            return self.refractory.apply(0.0);
        };
        // A sustained rise reaches the alarm when its tail reaches `sustain_alarm_tail`.
        let sustained = self.cfg.alarm_ratio * log_surprise(sustained_tail)
            / log_surprise(self.cfg.sustain_alarm_tail);
        let combined = novelty.max(sustained).min(self.cfg.max_ratio);
        self.refractory.apply(combined / self.cfg.max_ratio)
    }

    fn memory_bytes(&self) -> usize {
        size_of::<Self>()
            + self.recent.capacity() * size_of::<f64>()
            + self.pattern.capacity() * size_of::<f64>()
            + self.memory.heap_bytes()
            + self.range_sample.heap_bytes()
            + self.likelihood.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::detector::math::SplitMix64;

    fn run(values: &[f64], warmup: usize) -> Vec<f64> {
        let mut d = NoveltyDetector::new(NoveltyConfig::new(warmup)).unwrap();
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| d.update(i as i64, v))
            .collect()
    }

    fn noisy_daily(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = SplitMix64::new(seed);
        (0..n)
            .map(|i| {
                let phase = (i % 288) as f64 / 288.0 * std::f64::consts::TAU;
                50.0 + 20.0 * phase.sin() + 2.0 * (rng.next_f64() - 0.5)
            })
            .collect()
    }

    #[test]
    fn scores_are_in_unit_interval_and_zero_during_warmup() {
        let values = noisy_daily(3000, 1);
        let scores = run(&values, 450);
        assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)));
        assert!(scores[..450].iter().all(|&s| s == 0.0));
    }

    #[test]
    fn a_spike_raises_an_alarm_where_it_happens() {
        let mut values = noisy_daily(3000, 2);
        values[2000] += 200.0;
        let scores = run(&values, 450);
        let alarm = NoveltyConfig::new(450).alarm_score();
        assert!(scores[2000] >= alarm, "spike scored {}", scores[2000]);
        let quiet_before = scores[600..1990].iter().filter(|&&s| s >= alarm).count();
        assert!(
            quiet_before <= 2,
            "{quiet_before} false alarms on clean data"
        );
    }

    #[test]
    fn a_level_shift_alarms_once_and_is_then_learned() {
        let mut values = noisy_daily(4000, 3);
        for v in &mut values[2000..] {
            *v += 60.0;
        }
        let scores = run(&values, 450);
        let alarm = NoveltyConfig::new(450).alarm_score();
        let alarms: Vec<usize> = (1990..4000).filter(|&i| scores[i] >= alarm).collect();
        assert!(alarms.first().is_some_and(|&i| i < 2030), "{alarms:?}");
        assert!(alarms.iter().all(|&i| i < 3000), "not learned: {alarms:?}");
    }

    #[test]
    fn a_flat_line_never_alarms() {
        let scores = run(&vec![3.5; 3000], 450);
        let alarm = NoveltyConfig::new(450).alarm_score();
        assert!(scores.iter().all(|&s| s < alarm / 10.0));
    }

    #[test]
    fn deterministic_and_ignores_non_finite_values() {
        let mut values = noisy_daily(1500, 4);
        values[900] = f64::NAN;
        assert_eq!(run(&values, 200), run(&values, 200));
        assert_eq!(run(&values, 200)[900], 0.0);
    }

    #[test]
    fn invalid_settings_are_refused() {
        let mut cfg = NoveltyConfig::new(0);
        assert!(NoveltyDetector::new(cfg.clone()).is_err());
        cfg.warmup = 100;
        cfg.embed = 1;
        assert!(NoveltyDetector::new(cfg.clone()).is_err());
        cfg.embed = 8;
        cfg.range_quantile = 0.7;
        assert!(NoveltyDetector::new(cfg).is_err());
    }

    #[test]
    fn memory_is_bounded_by_the_configuration() {
        let mut d = NoveltyDetector::new(NoveltyConfig::new(750)).unwrap();
        let before = d.memory_bytes();
        for (i, v) in noisy_daily(20_000, 5).into_iter().enumerate() {
            d.update(i as i64, v);
        }
        assert_eq!(d.memory_bytes(), before);
        assert!(before < 128 * 1024);
    }
}
