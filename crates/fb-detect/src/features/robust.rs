use std::num::NonZeroUsize;

use super::Ring;

/// Scale factor that makes the MAD estimate the standard deviation of normal data.
const MAD_TO_SIGMA: f64 = 1.482_602_218_505_602;

/// Median and median absolute deviation over the last `window` values, exact.
///
/// A sorted copy of the window is kept beside the ring, so an update costs one binary
/// search and a shift of at most `window` values, and the MAD a walk of half the window.
/// Meant for windows up to a few thousand points; outliers barely move either estimate,
/// which is why robust z-scores flag spikes that inflate a plain standard deviation.
#[derive(Debug, Clone)]
pub struct RollingMedian {
    ring: Ring,
    sorted: Vec<f64>,
}

impl RollingMedian {
    pub fn new(window: NonZeroUsize) -> Self {
        Self {
            ring: Ring::new(window),
            sorted: Vec::with_capacity(window.get()),
        }
    }

    pub fn push(&mut self, value: f64) {
        if let Some(old) = self.ring.push(value) {
            let at = self.sorted.partition_point(|v| v.total_cmp(&old).is_lt());
            if at < self.sorted.len() {
                self.sorted.remove(at);
            }
        }
        let at = self.sorted.partition_point(|v| v.total_cmp(&value).is_lt());
        self.sorted.insert(at, value);
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.ring.is_full()
    }

    pub fn median(&self) -> Option<f64> {
        self.quantile(0.5)
    }

    /// Linear-interpolated quantile of the window, `q` clamped to [0, 1].
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let n = self.sorted.len();
        if n == 0 {
            return None;
        }
        let pos = q.clamp(0.0, 1.0) * (n - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = (lo + 1).min(n - 1);
        let frac = pos - lo as f64;
        Some(self.sorted[lo] * (1.0 - frac) + self.sorted[hi] * frac)
    }

    /// Median absolute deviation from the median (unscaled).
    pub fn mad(&self) -> Option<f64> {
        let median = self.median()?;
        let n = self.sorted.len();
        // Deviations grow outwards from the median on both sides of the sorted window,
        // so the k-th smallest deviation is found by merging the two sides.
        let split = self.sorted.partition_point(|v| *v < median);
        let mut left = split; // next candidate is left - 1
        let mut right = split; // next candidate is right
        let mut deviations = Vec::with_capacity(n / 2 + 2);
        let needed = n / 2 + 1;
        while deviations.len() < needed && (left > 0 || right < n) {
            let take_left = match (left > 0, right < n) {
                (true, true) => median - self.sorted[left - 1] <= self.sorted[right] - median,
                (true, false) => true,
                _ => false,
            };
            if take_left {
                left -= 1;
                deviations.push(median - self.sorted[left]);
            } else {
                deviations.push(self.sorted[right] - median);
                right += 1;
            }
        }
        // `deviations` is sorted; take its median the same way as the window's.
        let mid = (n - 1) as f64 / 2.0;
        let lo = mid.floor() as usize;
        let hi = mid.ceil() as usize;
        Some((deviations.get(lo)? + deviations.get(hi)?) / 2.0)
    }

    /// `(value - median) / (1.4826 * MAD)`: a z-score that outliers in the window do not
    /// dilute. `None` while empty or when more than half the window is one value.
    pub fn robust_z(&self, value: f64) -> Option<f64> {
        let scale = self.mad()? * MAD_TO_SIGMA;
        let median = self.median()?;
        (scale > 0.0).then(|| (value - median) / scale)
    }

    pub fn heap_bytes(&self) -> usize {
        self.ring.heap_bytes() + self.sorted.capacity() * size_of::<f64>()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn naive_median(values: &[f64]) -> f64 {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }

    #[test]
    fn median_and_mad_match_a_naive_window() {
        let values: Vec<f64> = (0..300).map(|i| ((i * 37) % 23) as f64 - 5.0).collect();
        for window in [1, 2, 5, 8, 31] {
            let mut m = RollingMedian::new(NonZeroUsize::new(window).unwrap());
            for (i, &v) in values.iter().enumerate() {
                m.push(v);
                let slice = &values[(i + 1).saturating_sub(window)..=i];
                let median = naive_median(slice);
                let deviations: Vec<f64> = slice.iter().map(|x| (x - median).abs()).collect();
                assert_eq!(m.median().unwrap(), median, "window {window} at {i}");
                assert_eq!(m.mad().unwrap(), naive_median(&deviations));
            }
        }
    }

    #[test]
    fn robust_z_ignores_a_single_outlier() {
        let mut m = RollingMedian::new(NonZeroUsize::new(9).unwrap());
        for v in [1.0, 2.0, 3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1000.0] {
            m.push(v);
        }
        assert_eq!(m.median().unwrap(), 2.0);
        assert!(m.robust_z(1000.0).unwrap() > 100.0);
    }
}
