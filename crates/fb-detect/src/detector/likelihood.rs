//! Turning raw anomaly signals into comparable surprise scores, and keeping one event
//! from raising a burst of alarms.

use std::num::NonZeroUsize;

use super::math::normal_tail;
use crate::features::{Ewma, Ring};

/// Floor of the tail probability, so that the log score saturates at exactly 1.
const MIN_TAIL: f64 = 1e-10;

/// Maps a tail probability to [0, 1] on a log scale: 0.5 means one in 100 000.
pub fn log_surprise(tail: f64) -> f64 {
    (tail.clamp(MIN_TAIL, 1.0).ln() / MIN_TAIL.ln()).clamp(0.0, 1.0)
}

/// How unusual the recent level of a raw signal is against its own long-run distribution
/// (the idea behind Numenta's "anomaly likelihood").
///
/// A raw signal means different things on different streams; its own history says what is
/// normal for this one. The short average rewards a sustained rise over one jittery value.
/// The long-run distribution is summarised by an exponentially weighted mean and deviation
/// (O(1) memory) and its tail taken as Gaussian, which extrapolates past what was seen.
#[derive(Debug, Clone)]
pub struct Likelihood {
    long: Ewma,
    short: Ring,
    short_sum: f64,
    seen: usize,
    /// Raw values to see before scoring at all.
    min_history: usize,
    /// Lower bound on the deviation, so that a flat history does not make every wiggle
    /// infinitely surprising.
    min_std: f64,
}

impl Likelihood {
    /// `long` is the half-life of the long-run summary, `short` the averaging window.
    pub fn new(long: Ewma, short: NonZeroUsize, min_history: usize, min_std: f64) -> Self {
        Self {
            long,
            short: Ring::new(short),
            short_sum: 0.0,
            seen: 0,
            min_history,
            min_std,
        }
    }

    /// Adds a raw value; returns the tail probability of the recent average (1 = ordinary).
    pub fn update(&mut self, raw: f64) -> f64 {
        if let Some(old) = self.short.push(raw) {
            self.short_sum -= old;
        }
        self.short_sum += raw;
        let recent = self.short_sum / self.short.len() as f64;
        let tail = match (self.long.mean(), self.long.std_dev()) {
            (Some(mean), Some(sd)) if self.seen >= self.min_history => {
                normal_tail((recent - mean) / sd.max(self.min_std))
            }
            _ => 1.0,
        };
        self.long.push(raw);
        self.seen = self.seen.saturating_add(1);
        tail
    }

    pub fn heap_bytes(&self) -> usize {
        self.short.heap_bytes()
    }
}

/// After an alarm, stays quiet for a while: one event should raise one alarm, not a burst.
/// (NAB counts only the first detection in a window and charges every later one that
/// falls outside it; operators feel the same way about repeated pages.)
#[derive(Debug, Clone, Copy)]
pub struct Refractory {
    level: f64,
    length: usize,
    remaining: usize,
}

impl Refractory {
    /// Scores at or above `level` are alarms; the `length` points after one are muted.
    pub fn new(level: f64, length: usize) -> Self {
        Self {
            level,
            length,
            remaining: 0,
        }
    }

    pub fn apply(&mut self, score: f64) -> f64 {
        if self.remaining > 0 {
            self.remaining -= 1;
            return 0.0;
        }
        if score >= self.level {
            self.remaining = self.length;
        }
        score
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn log_surprise_is_monotone_and_bounded() {
        assert_eq!(log_surprise(1.0), 0.0);
        assert!((log_surprise(1e-5) - 0.5).abs() < 1e-12);
        assert_eq!(log_surprise(0.0), 1.0);
        assert!(log_surprise(1e-3) < log_surprise(1e-4));
    }

    #[test]
    fn a_sustained_rise_is_unlikely_a_single_blip_less_so() {
        let make = || {
            Likelihood::new(
                Ewma::with_half_life(200.0).unwrap(),
                NonZeroUsize::new(5).unwrap(),
                50,
                1e-3,
            )
        };
        let mut blip = make();
        let mut rise = make();
        for i in 0..500 {
            let noise = if i % 2 == 0 { 0.9 } else { 1.1 };
            blip.update(noise);
            rise.update(noise);
        }
        let blip_tail = blip.update(3.0);
        let mut rise_tail = 1.0;
        for _ in 0..5 {
            rise_tail = rise.update(3.0);
        }
        assert!(rise_tail < blip_tail);
        assert!(rise_tail < 1e-6);
    }

    #[test]
    fn refractory_mutes_after_an_alarm() {
        let mut r = Refractory::new(0.5, 2);
        let out: Vec<f64> = [0.9, 0.9, 0.9, 0.9, 0.1]
            .iter()
            .map(|&s| r.apply(s))
            .collect();
        assert_eq!(out, [0.9, 0.0, 0.0, 0.9, 0.0]);
    }
}
