use std::num::NonZeroUsize;

use super::Ring;

/// Least-squares slope of the last `window` values against their position (units of the
/// value per point), in O(1) per update.
///
/// Positions are measured from the newest point, so sums never grow with stream length:
/// when every value ages by one step, `Σ x·y` changes by `Σ y`, which is known.
#[derive(Debug, Clone)]
pub struct RollingSlope {
    ring: Ring,
    sum_y: f64,
    /// Σ age·y, where the newest value has age 0.
    sum_age_y: f64,
}

impl RollingSlope {
    pub fn new(window: NonZeroUsize) -> Self {
        Self {
            ring: Ring::new(window),
            sum_y: 0.0,
            sum_age_y: 0.0,
        }
    }

    pub fn push(&mut self, value: f64) {
        // Every stored value ages by one.
        self.sum_age_y += self.sum_y;
        if let Some(old) = self.ring.push(value) {
            let oldest_age = self.ring.capacity() as f64;
            self.sum_y -= old;
            self.sum_age_y -= oldest_age * old;
        }
        self.sum_y += value;
    }

    /// `None` until two values are in.
    pub fn slope(&self) -> Option<f64> {
        let n = self.ring.len() as f64;
        if n < 2.0 {
            return None;
        }
        // Ages are 0..n-1; time runs opposite to age, hence the sign.
        let sum_age = n * (n - 1.0) / 2.0;
        let sum_age2 = (n - 1.0) * n * (2.0 * n - 1.0) / 6.0;
        let denominator = n * sum_age2 - sum_age * sum_age;
        Some(-(n * self.sum_age_y - sum_age * self.sum_y) / denominator)
    }

    pub fn len(&self) -> usize {
        self.ring.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }

    pub fn heap_bytes(&self) -> usize {
        self.ring.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn recovers_the_slope_of_a_line() {
        let mut s = RollingSlope::new(NonZeroUsize::new(10).unwrap());
        assert_eq!(s.slope(), None);
        for i in 0..100 {
            s.push(3.0 + 0.5 * i as f64);
            if i >= 1 {
                assert!((s.slope().unwrap() - 0.5).abs() < 1e-9, "at {i}");
            }
        }
    }

    #[test]
    fn follows_a_change_of_direction() {
        let mut s = RollingSlope::new(NonZeroUsize::new(5).unwrap());
        for i in 0..20 {
            s.push(i as f64);
        }
        for i in 0..5 {
            s.push(20.0 - 2.0 * i as f64);
        }
        assert!((s.slope().unwrap() + 2.0).abs() < 1e-9);
    }
}
