use std::collections::VecDeque;
use std::num::NonZeroUsize;

use super::Ring;

/// Mean, standard deviation, minimum and maximum over the last `window` values.
///
/// Mean and variance are kept with Welford's update and its inverse for the value that
/// leaves, which stays accurate over long streams where running sums would cancel.
/// Minimum and maximum use monotonic queues: amortised O(1) per update.
#[derive(Debug, Clone)]
pub struct RollingStats {
    ring: Ring,
    mean: f64,
    m2: f64,
    /// Indices and values in increasing order of value; the front is the minimum.
    min_queue: VecDeque<(u64, f64)>,
    /// Indices and values in decreasing order of value; the front is the maximum.
    max_queue: VecDeque<(u64, f64)>,
    count: u64,
}

impl RollingStats {
    pub fn new(window: NonZeroUsize) -> Self {
        Self {
            ring: Ring::new(window),
            mean: 0.0,
            m2: 0.0,
            min_queue: VecDeque::with_capacity(window.get()),
            max_queue: VecDeque::with_capacity(window.get()),
            count: 0,
        }
    }

    pub fn push(&mut self, value: f64) {
        if let Some(old) = self.ring.push(value) {
            let n = self.ring.len() as f64;
            // Swap `old` for `value` in one step: the count stays the same.
            let delta = value - old;
            let old_mean = self.mean;
            self.mean += delta / n;
            self.m2 += delta * (value - self.mean + old - old_mean);
            self.m2 = self.m2.max(0.0);
        } else {
            let n = self.ring.len() as f64;
            let delta = value - self.mean;
            self.mean += delta / n;
            self.m2 += delta * (value - self.mean);
        }

        let index = self.count;
        self.count += 1;
        let window = self.ring.capacity() as u64;
        while self.min_queue.back().is_some_and(|&(_, v)| v >= value) {
            self.min_queue.pop_back();
        }
        self.min_queue.push_back((index, value));
        while self.max_queue.back().is_some_and(|&(_, v)| v <= value) {
            self.max_queue.pop_back();
        }
        self.max_queue.push_back((index, value));
        for queue in [&mut self.min_queue, &mut self.max_queue] {
            while queue.front().is_some_and(|&(i, _)| i + window <= index) {
                queue.pop_front();
            }
        }
    }

    pub fn len(&self) -> usize {
        self.ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.ring.is_full()
    }

    pub fn mean(&self) -> Option<f64> {
        (!self.is_empty()).then_some(self.mean)
    }

    /// Population variance of the window.
    pub fn variance(&self) -> Option<f64> {
        (!self.is_empty()).then(|| self.m2 / self.ring.len() as f64)
    }

    pub fn std_dev(&self) -> Option<f64> {
        self.variance().map(f64::sqrt)
    }

    pub fn min(&self) -> Option<f64> {
        self.min_queue.front().map(|&(_, v)| v)
    }

    pub fn max(&self) -> Option<f64> {
        self.max_queue.front().map(|&(_, v)| v)
    }

    /// Standard score of `value` against the window; `None` while the window is empty or flat.
    pub fn z_score(&self, value: f64) -> Option<f64> {
        let sd = self.std_dev()?;
        (sd > 0.0).then(|| (value - self.mean) / sd)
    }

    pub fn heap_bytes(&self) -> usize {
        self.ring.heap_bytes()
            + (self.min_queue.capacity() + self.max_queue.capacity()) * size_of::<(u64, f64)>()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn naive(values: &[f64]) -> (f64, f64, f64, f64) {
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (mean, var, min, max)
    }

    #[test]
    fn matches_a_naive_window_everywhere() {
        let values: Vec<f64> = (0..500)
            .map(|i| ((i * 7919) % 101) as f64 * 0.5 + 1e6)
            .collect();
        let window = 17;
        let mut stats = RollingStats::new(NonZeroUsize::new(window).unwrap());
        for (i, &v) in values.iter().enumerate() {
            stats.push(v);
            let lo = (i + 1).saturating_sub(window);
            let (mean, var, min, max) = naive(&values[lo..=i]);
            assert!((stats.mean().unwrap() - mean).abs() < 1e-6);
            assert!((stats.variance().unwrap() - var).abs() < 1e-5);
            assert_eq!(stats.min().unwrap(), min);
            assert_eq!(stats.max().unwrap(), max);
        }
    }

    #[test]
    fn empty_and_flat_windows_have_no_z_score() {
        let mut stats = RollingStats::new(NonZeroUsize::new(3).unwrap());
        assert_eq!(stats.z_score(1.0), None);
        stats.push(2.0);
        stats.push(2.0);
        assert_eq!(stats.z_score(5.0), None);
        stats.push(5.0);
        assert!(stats.z_score(5.0).unwrap() > 1.0);
    }
}
