//! The multivariate detector: is this machine's sensor vector far from the relation its
//! sensors usually keep? A hot motor at full load is normal; the same temperature at idle is
//! not, though neither value breaks a limit.
//!
//! The model is the mean and covariance of the vector (exponentially weighted, learned from a
//! warm-up of rows and refreshed from in-control rows), and the distance is Mahalanobis':
//! `D² = (x − μ)ᵀ Σ⁻¹ (x − μ)`. For normal data D² follows χ² with p degrees of freedom, so the
//! alarm level is χ²'s (1 − 1e-6) quantile, raised by the ratio of the observed mean D² to its
//! expected value p when the data are heavier-tailed than normal. The inverse is refreshed by
//! Cholesky every `refresh` rows (p is the number of sensors of one machine, a handful: a
//! dense p×p factorisation is a few hundred flops, which is why no linear-algebra crate is
//! pulled in for it).

/// Ridge added to the covariance's diagonal, relative to each variance: keeps Σ invertible
/// when two sensors are (nearly) proportional.
use crate::detector::math::erfc;

const RIDGE: f64 = 1e-3;
/// Tail probability of the alarm level under the χ² model.
const TAIL: f64 = 1e-6;

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MultivariateConfig {
    /// Rows learned before judging.
    pub warmup: usize,
    /// Rows between two refreshes of the inverse.
    pub refresh: usize,
    /// Half-life of the model's memory, in rows: short enough to follow slow drift (ambient
    /// temperature over a day), long enough not to learn a fault that builds up in minutes.
    pub half_life: f64,
    /// Rows out in a row after which the model learns again: a lasting new state (or drift
    /// that built up while a fault froze the model) is accepted in the end.
    pub adapt_after: usize,
}

impl MultivariateConfig {
    pub fn new(warmup: usize) -> Self {
        let warmup = warmup.max(10);
        Self {
            warmup,
            refresh: warmup,
            half_life: 2.0 * warmup as f64,
            adapt_after: 6 * warmup,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MultivariateVerdict {
    pub d2: f64,
    pub threshold: f64,
    /// The coordinate that contributes most to D² (its share of it in `top_share`).
    pub top: usize,
    pub top_share: f64,
    pub out: bool,
}

#[derive(Debug, Clone)]
pub struct Mahalanobis {
    cfg: MultivariateConfig,
    p: usize,
    rows: usize,
    mean: Vec<f64>,
    /// Row-major p×p covariance.
    cov: Vec<f64>,
    /// Lower Cholesky factor of the regularised covariance, once there is one.
    chol: Option<Vec<f64>>,
    since_refresh: usize,
    /// Exponentially weighted mean of in-control D².
    mean_d2: f64,
    out_streak: usize,
    scratch: Vec<f64>,
    /// Multiplies the alarm level (see [`Mahalanobis::set_sensitivity`]).
    scale: f64,
}

impl Mahalanobis {
    pub fn new(p: usize, cfg: MultivariateConfig) -> Self {
        Self {
            cfg,
            p,
            rows: 0,
            mean: vec![0.0; p],
            cov: vec![0.0; p * p],
            chol: None,
            since_refresh: 0,
            mean_d2: p as f64,
            out_streak: 0,
            scratch: vec![0.0; 2 * p],
            scale: 1.0,
        }
    }

    /// Judges with the distance threshold times `factor` from now on (D² is a squared
    /// distance, so `factor` here is the square of the per-sensor one): below 1 more
    /// sensitive. Non-finite or non-positive factors are ignored; above 1 is taken as 1.
    pub fn set_sensitivity(&mut self, factor: f64) {
        if factor.is_finite() && factor > 0.0 {
            self.scale = factor.min(1.0);
        }
    }

    pub fn dimension(&self) -> usize {
        self.p
    }

    /// Forgets the model: the machine's operating point changed. It warms up again on the
    /// rows that follow.
    pub fn restart(&mut self) {
        self.rows = 0;
        self.mean.iter_mut().for_each(|m| *m = 0.0);
        self.cov.iter_mut().for_each(|c| *c = 0.0);
        self.chol = None;
        self.since_refresh = 0;
        self.mean_d2 = self.p as f64;
        self.out_streak = 0;
    }

    /// Rows judged out in a row, up to the last.
    pub fn out_streak(&self) -> usize {
        self.out_streak
    }

    /// Learns the row without judging it (the machine is settling into a new operating point).
    pub fn learn_only(&mut self, row: &[f64]) {
        if row.len() == self.p && row.iter().all(|v| v.is_finite()) {
            self.out_streak = 0;
            self.learn(row);
        }
    }

    /// Judges the row, then learns from it unless it is out. `None` while warming up.
    pub fn update(&mut self, row: &[f64]) -> Option<MultivariateVerdict> {
        if row.len() != self.p || self.p < 2 || row.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let verdict = if self.rows >= self.cfg.warmup {
            if self.chol.is_none() || self.since_refresh >= self.cfg.refresh {
                self.refresh();
            }
            self.judge(row)
        } else {
            None
        };
        let out = verdict.as_ref().is_some_and(|v| v.out);
        self.out_streak = if out { self.out_streak + 1 } else { 0 };
        if !out || self.out_streak > self.cfg.adapt_after {
            self.learn(row);
        }
        if !out && let Some(v) = &verdict {
            let alpha = 1.0 / self.cfg.half_life;
            self.mean_d2 += alpha * (v.d2.min(10.0 * v.threshold) - self.mean_d2);
        }
        verdict
    }

    fn learn(&mut self, row: &[f64]) {
        self.rows += 1;
        self.since_refresh += 1;
        // Running mean and covariance at first, exponentially weighted once warm.
        let alpha = (1.0 / self.rows as f64).max(std::f64::consts::LN_2 / self.cfg.half_life);
        let p = self.p;
        let delta = &mut self.scratch[..p];
        for i in 0..p {
            delta[i] = row[i] - self.mean[i];
            self.mean[i] += alpha * delta[i];
        }
        for i in 0..p {
            for j in 0..=i {
                let c = &mut self.cov[i * p + j];
                *c = (1.0 - alpha) * (*c + alpha * delta[i] * delta[j]);
                self.cov[j * p + i] = self.cov[i * p + j];
            }
        }
    }

    fn refresh(&mut self) {
        self.since_refresh = 0;
        let p = self.p;
        let mut a = self.cov.clone();
        for i in 0..p {
            let var = a[i * p + i];
            // A constant sensor still needs a scale: a relative one, or an absolute floor.
            let floor = (1e-6 * self.mean[i].abs()).powi(2) + 1e-12;
            a[i * p + i] = var * (1.0 + RIDGE) + floor;
        }
        self.chol = cholesky(&mut a, p).then_some(a);
    }

    fn judge(&mut self, row: &[f64]) -> Option<MultivariateVerdict> {
        let p = self.p;
        let l = self.chol.as_ref()?;
        let (diff, y) = self.scratch.split_at_mut(p);
        for i in 0..p {
            diff[i] = row[i] - self.mean[i];
        }
        // Solve L y = diff; D² = |y|².
        for i in 0..p {
            let mut s = diff[i];
            for k in 0..i {
                s -= l[i * p + k] * y[k];
            }
            y[i] = s / l[i * p + i];
        }
        let d2: f64 = y.iter().map(|v| v * v).sum();
        // Contribution of coordinate i: diff_i × (Σ⁻¹ diff)_i; solve Lᵀ w = y in place.
        for i in (0..p).rev() {
            let mut s = y[i];
            for k in i + 1..p {
                s -= l[k * p + i] * y[k];
            }
            y[i] = s / l[i * p + i];
        }
        let (top, top_c) = (0..p)
            .map(|i| (i, diff[i] * y[i]))
            .max_by(|a, b| a.1.total_cmp(&b.1))?;
        let threshold = chi2_quantile(p as f64) * (self.mean_d2 / p as f64).max(1.0) * self.scale;
        Some(MultivariateVerdict {
            d2,
            threshold,
            top,
            top_share: if d2 > 0.0 {
                (top_c / d2).clamp(0.0, 1.0)
            } else {
                0.0
            },
            out: d2 > threshold,
        })
    }

    pub fn heap_bytes(&self) -> usize {
        let f = size_of::<f64>();
        (self.mean.capacity() + self.cov.capacity() + self.scratch.capacity()) * f
            + self.chol.as_ref().map_or(0, |c| c.capacity() * f)
    }
}

/// In-place lower Cholesky factorisation of a symmetric positive definite row-major matrix;
/// `false` if it is not positive definite.
fn cholesky(a: &mut [f64], p: usize) -> bool {
    for j in 0..p {
        let mut d = a[j * p + j];
        for k in 0..j {
            d -= a[j * p + k] * a[j * p + k];
        }
        if d.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return false;
        }
        let d = d.sqrt();
        a[j * p + j] = d;
        for i in j + 1..p {
            let mut s = a[i * p + j];
            for k in 0..j {
                s -= a[i * p + k] * a[j * p + k];
            }
            a[i * p + j] = s / d;
        }
        for i in 0..j {
            a[i * p + j] = 0.0;
        }
    }
    true
}

/// χ²(k) quantile at 1 − 1e-6, by bisection on the exact survival function.
fn chi2_quantile(k: f64) -> f64 {
    let k = k.round().max(1.0) as u32;
    let (mut lo, mut hi) = (0.0, 10.0 * f64::from(k) + 100.0);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if chi2_survival(mid, k) > TAIL {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

/// P(χ²(k) > x), closed forms for integer k.
fn chi2_survival(x: f64, k: u32) -> f64 {
    let half = 0.5 * x;
    if k.is_multiple_of(2) {
        // e^{-x/2} Σ_{i<k/2} (x/2)^i / i!
        let mut term = 1.0;
        let mut sum = 1.0;
        for i in 1..k / 2 {
            term *= half / f64::from(i);
            sum += term;
        }
        (-half).exp() * sum
    } else {
        // erfc(√(x/2)) + √(2x/π) e^{-x/2} Σ_{i=1}^{(k-1)/2} x^{i-1} / (1·3·…·(2i−1))
        let mut term = 1.0;
        let mut sum = 0.0;
        for i in 1..=(k - 1) / 2 {
            if i > 1 {
                term *= x / f64::from(2 * i - 1);
            }
            sum += term;
        }
        erfc(half.sqrt()) + (2.0 * x / std::f64::consts::PI).sqrt() * (-half).exp() * sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detector::math::SplitMix64;

    fn normal(rng: &mut SplitMix64) -> f64 {
        (0..12).map(|_| rng.next_f64()).sum::<f64>() - 6.0
    }

    /// A machine whose three sensors follow one load: temperature, power, flow.
    fn row(load: f64, rng: &mut SplitMix64) -> [f64; 3] {
        [
            20.0 + 30.0 * load + 0.3 * normal(rng),
            100.0 * load + 1.0 * normal(rng),
            50.0 * load + 0.5 * normal(rng),
        ]
    }

    #[test]
    fn rows_that_keep_the_relation_pass_and_a_broken_relation_is_out() {
        let mut m = Mahalanobis::new(3, MultivariateConfig::new(200));
        let mut rng = SplitMix64::new(5);
        let mut outs = 0;
        for i in 0..5000 {
            let load = 0.5 + 0.3 * ((i as f64) / 300.0).sin();
            if m.update(&row(load, &mut rng)).is_some_and(|v| v.out) {
                outs += 1;
            }
        }
        assert!(outs <= 2, "{outs} false alarms in 5000 rows");
        // Hot at low load: each value is within its usual range, the relation is not.
        let mut hot = row(0.3, &mut rng);
        hot[0] = 20.0 + 30.0 * 0.75;
        let v = m.update(&hot).expect("warm");
        assert!(v.out, "{v:?}");
        assert_eq!(v.top, 0, "temperature is the odd one out");
        assert!(m.heap_bytes() > 0);
    }

    #[test]
    fn cholesky_solves_a_known_matrix() {
        let mut a = vec![4.0, 2.0, 2.0, 3.0];
        assert!(cholesky(&mut a, 2));
        assert_eq!(a, vec![2.0, 0.0, 1.0, 2f64.sqrt()]);
        let mut singular = vec![1.0, 1.0, 1.0, 1.0];
        assert!(!cholesky(&mut singular, 2));
        assert!((chi2_quantile(2.0) - 27.631).abs() < 0.01);
        assert!((chi2_quantile(1.0) - 23.928).abs() < 0.01);
        assert!(
            (chi2_quantile(5.0) - 35.888).abs() < 0.01,
            "{}",
            chi2_quantile(5.0)
        );
    }
}
