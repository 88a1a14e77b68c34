use std::collections::VecDeque;
use std::num::NonZeroUsize;

use super::FeatureError;

/// Counts upward crossings of a threshold within the last `window` points.
///
/// A crossing is counted when the value rises to or above `threshold` after having been
/// below `threshold - hysteresis`, so noise around the limit does not count as many
/// crossings. Chattering sensors and repeated limit violations show up as high counts.
#[derive(Debug, Clone)]
pub struct ThresholdCrossings {
    threshold: f64,
    hysteresis: f64,
    window: u64,
    armed: bool,
    index: u64,
    /// Point indices of the crossings still inside the window.
    crossings: VecDeque<u64>,
}

impl ThresholdCrossings {
    pub fn new(
        threshold: f64,
        hysteresis: f64,
        window: NonZeroUsize,
    ) -> Result<Self, FeatureError> {
        if !(hysteresis.is_finite() && hysteresis >= 0.0) {
            return Err(FeatureError::BadHysteresis(hysteresis));
        }
        Ok(Self {
            threshold,
            hysteresis,
            window: window.get() as u64,
            armed: true,
            index: 0,
            crossings: VecDeque::new(),
        })
    }

    /// Adds a value; returns whether it completed a crossing.
    pub fn push(&mut self, value: f64) -> bool {
        let crossed = self.armed && value >= self.threshold;
        if crossed {
            self.armed = false;
            self.crossings.push_back(self.index);
        } else if value < self.threshold - self.hysteresis {
            self.armed = true;
        }
        while self
            .crossings
            .front()
            .is_some_and(|&i| i + self.window <= self.index)
        {
            self.crossings.pop_front();
        }
        self.index += 1;
        crossed
    }

    /// Crossings among the last `window` points.
    pub fn count(&self) -> usize {
        self.crossings.len()
    }

    /// Whether the value is at or above the threshold and has not yet fallen back
    /// below the hysteresis band.
    pub fn is_above(&self) -> bool {
        !self.armed
    }

    /// At most one crossing per two points fits in a window.
    pub fn heap_bytes(&self) -> usize {
        self.crossings.capacity() * size_of::<u64>()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn counts_crossings_with_hysteresis_inside_the_window() {
        let mut c = ThresholdCrossings::new(10.0, 1.0, NonZeroUsize::new(6).unwrap()).unwrap();
        // 9.5 is inside the hysteresis band, so the second rise is not a new crossing.
        let values = [5.0, 11.0, 9.5, 11.0, 8.0, 12.0];
        let crossed: Vec<bool> = values.iter().map(|&v| c.push(v)).collect();
        assert_eq!(crossed, [false, true, false, false, false, true]);
        assert_eq!(c.count(), 2);
        for _ in 0..5 {
            c.push(0.0);
        }
        // The first crossing (point 1) has left the 6-point window; the second has not.
        assert_eq!(c.count(), 1);
        c.push(0.0);
        assert_eq!(c.count(), 0);
    }

    #[test]
    fn rejects_negative_hysteresis() {
        assert!(ThresholdCrossings::new(1.0, -1.0, NonZeroUsize::new(3).unwrap()).is_err());
    }
}
