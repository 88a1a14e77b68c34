use super::FeatureError;

/// Exponentially weighted mean and variance: O(1) per update, no window to store.
#[derive(Debug, Clone, Copy)]
pub struct Ewma {
    alpha: f64,
    mean: f64,
    variance: f64,
    seen: bool,
}

impl Ewma {
    /// `alpha` is the weight of the newest value, in (0, 1].
    pub fn new(alpha: f64) -> Result<Self, FeatureError> {
        if !(alpha > 0.0 && alpha <= 1.0) {
            return Err(FeatureError::BadAlpha(alpha));
        }
        Ok(Self {
            alpha,
            mean: 0.0,
            variance: 0.0,
            seen: false,
        })
    }

    /// The weight of a value halves every `points` updates.
    pub fn with_half_life(points: f64) -> Result<Self, FeatureError> {
        if !(points.is_finite() && points > 0.0) {
            return Err(FeatureError::BadHalfLife(points));
        }
        Self::new(1.0 - 0.5_f64.powf(1.0 / points))
    }

    pub fn push(&mut self, value: f64) {
        if !self.seen {
            self.mean = value;
            self.seen = true;
            return;
        }
        // West's incremental form: the variance uses the deviation from the old mean.
        let delta = value - self.mean;
        self.mean += self.alpha * delta;
        self.variance = (1.0 - self.alpha) * (self.variance + self.alpha * delta * delta);
    }

    pub fn mean(&self) -> Option<f64> {
        self.seen.then_some(self.mean)
    }

    pub fn variance(&self) -> Option<f64> {
        self.seen.then_some(self.variance)
    }

    pub fn std_dev(&self) -> Option<f64> {
        self.variance().map(f64::sqrt)
    }

    pub fn alpha(&self) -> f64 {
        self.alpha
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn converges_to_a_constant() {
        let mut e = Ewma::new(0.2).unwrap();
        for _ in 0..200 {
            e.push(4.0);
        }
        assert!((e.mean().unwrap() - 4.0).abs() < 1e-12);
        assert!(e.variance().unwrap() < 1e-12);
    }

    #[test]
    fn half_life_halves_the_weight() {
        let mut e = Ewma::with_half_life(10.0).unwrap();
        e.push(0.0);
        e.push(1.0);
        for _ in 0..10 {
            e.push(0.0);
        }
        // Ten updates after it, the step's weight alpha has halved.
        assert!((e.mean().unwrap() - e.alpha() * 0.5).abs() < 1e-12);
    }

    #[test]
    fn tracks_the_variance_of_alternating_values() {
        let mut e = Ewma::new(0.01).unwrap();
        for i in 0..5000 {
            e.push(if i % 2 == 0 { 1.0 } else { -1.0 });
        }
        assert!((e.std_dev().unwrap() - 1.0).abs() < 0.02);
    }

    #[test]
    fn rejects_bad_parameters() {
        assert!(Ewma::new(0.0).is_err());
        assert!(Ewma::new(1.5).is_err());
        assert!(Ewma::with_half_life(f64::NAN).is_err());
    }
}
