//! Operating-condition normalisation. A sensor's reading depends first on how the machine is run
//! (C-MAPSS FD002/FD004: six flight conditions move a temperature by hundreds of degrees) and
//! only then on wear, so each reading is standardised with the mean and spread of its *regime*,
//! learned on training data only.
//!
//! Regimes are found in the operating settings by k-means (k-means++ seeding from an explicit
//! seed, best of several restarts), trying k = 1 … `max_regimes` and keeping the largest k whose
//! clusters are *well separated*: every two centres at least `min_separation` times the largest
//! cluster radius (RMS distance to its centre) apart. Discrete conditions with sensor noise (the
//! C-MAPSS settings: separation in the thousands) pass; k-means cutting one noisy cloud in two
//! (separation below 2 for Gaussian noise) never does, so a single-condition set (FD001, FD003)
//! gets one regime instead of clusters of noise. This is the rounding the C-MAPSS literature
//! does by hand, found from the data, so that a plant's own settings need no per-site rule.
//! Settings that vary continuously give one regime: standardisation is then global.

use serde::{Deserialize, Serialize};

use fb_core::rng::SplitMix64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegimeSpec {
    pub max_regimes: usize,
    pub min_separation: f64,
}

impl Default for RegimeSpec {
    fn default() -> Self {
        Self {
            max_regimes: 10,
            min_separation: 8.0,
        }
    }
}

/// The regimes found: settings are scaled by `scale` (per setting: mean, spread) and a reading
/// belongs to the nearest centre.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegimeModel {
    pub scale: Vec<(f64, f64)>,
    pub centres: Vec<Vec<f64>>,
}

const RESTARTS: u64 = 8;
const MAX_POINTS: usize = 5000;
const MAX_ITERATIONS: usize = 100;
/// A cluster holding fewer rows than this share is an outlier group, not a regime.
const MIN_SHARE: f64 = 0.005;

impl RegimeModel {
    /// One regime: what a schema without settings, or with continuous ones, gets.
    pub fn single(settings: usize) -> Self {
        Self {
            scale: vec![(0.0, 1.0); settings],
            centres: vec![vec![0.0; settings]],
        }
    }

    pub fn fit(rows: &[&[f64]], spec: &RegimeSpec, seed: u64) -> Self {
        let dims = rows.first().map_or(0, |r| r.len());
        if dims == 0 || rows.len() < 2 {
            return Self::single(dims);
        }
        let n = rows.len() as f64;
        let scale: Vec<(f64, f64)> = (0..dims)
            .map(|d| {
                let mean = rows.iter().map(|r| r[d]).sum::<f64>() / n;
                let var = rows.iter().map(|r| (r[d] - mean).powi(2)).sum::<f64>() / n;
                let spread = var.sqrt();
                (mean, if spread > 0.0 { spread } else { 1.0 })
            })
            .collect();
        // Clustering a regular subsample finds the same discrete conditions at a fraction of
        // the cost (C-MAPSS FD004 has 61,249 rows).
        let stride = rows.len().div_ceil(MAX_POINTS);
        let points: Vec<Vec<f64>> = rows
            .iter()
            .step_by(stride)
            .map(|r| scale_point(&scale, r))
            .collect();
        let mut chosen = vec![vec![0.0; dims]];
        for k in 2..=spec.max_regimes.max(1) {
            let Some(centres) = best_kmeans(&points, k, seed) else {
                break;
            };
            if well_separated(&points, &centres, spec.min_separation) {
                chosen = centres;
            }
        }
        let mut model = Self {
            scale,
            centres: chosen,
        };
        // A stable order (by the first coordinates) so that regime numbers do not depend on
        // which restart won.
        model.centres.sort_by(|a, b| {
            a.iter()
                .zip(b)
                .map(|(x, y)| x.total_cmp(y))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        model
    }

    pub fn regimes(&self) -> usize {
        self.centres.len()
    }

    pub fn assign(&self, settings: &[f64]) -> usize {
        if self.centres.len() == 1 {
            return 0;
        }
        let mut best = (f64::INFINITY, 0);
        for (i, centre) in self.centres.iter().enumerate() {
            let d: f64 = settings
                .iter()
                .zip(&self.scale)
                .zip(centre)
                .map(|((v, (mean, spread)), c)| ((v - mean) / spread - c).powi(2))
                .sum();
            if d < best.0 {
                best = (d, i);
            }
        }
        best.1
    }
}

fn scale_point(scale: &[(f64, f64)], row: &[f64]) -> Vec<f64> {
    row.iter()
        .zip(scale)
        .map(|(v, (mean, spread))| (v - mean) / spread)
        .collect()
}

fn distance2(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum()
}

fn nearest(centres: &[Vec<f64>], p: &[f64]) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (i, c) in centres.iter().enumerate() {
        let d = distance2(c, p);
        if d < best.1 {
            best = (i, d);
        }
    }
    best
}

/// The lowest-inertia k-means of several seeded restarts, or `None` when the points have
/// fewer than `k` distinct positions.
fn best_kmeans(points: &[Vec<f64>], k: usize, seed: u64) -> Option<Vec<Vec<f64>>> {
    let mut best: Option<(f64, Vec<Vec<f64>>)> = None;
    for restart in 0..RESTARTS {
        let mut rng = SplitMix64::derive(seed, (k as u64) << 8 | restart);
        let centres = kmeans(points, k, &mut rng)?;
        let inertia: f64 = points.iter().map(|p| nearest(&centres, p).1).sum();
        if best.as_ref().is_none_or(|(b, _)| inertia < *b) {
            best = Some((inertia, centres));
        }
    }
    best.map(|(_, c)| c)
}

fn kmeans(points: &[Vec<f64>], k: usize, rng: &mut SplitMix64) -> Option<Vec<Vec<f64>>> {
    // k-means++ (Arthur & Vassilvitskii 2007): each next centre drawn with probability
    // proportional to its squared distance from the chosen ones.
    let mut centres = vec![points[rng.below(points.len())].clone()];
    let mut d2: Vec<f64> = points.iter().map(|p| distance2(p, &centres[0])).collect();
    while centres.len() < k {
        let total: f64 = d2.iter().sum();
        if total <= 0.0 {
            return None;
        }
        let mut target = rng.next_f64() * total;
        let mut pick = points.len() - 1;
        for (i, d) in d2.iter().enumerate() {
            target -= d;
            if target < 0.0 {
                pick = i;
                break;
            }
        }
        centres.push(points[pick].clone());
        for (p, d) in points.iter().zip(d2.iter_mut()) {
            *d = d.min(distance2(p, &points[pick]));
        }
    }
    let dims = points[0].len();
    let mut assignment = vec![usize::MAX; points.len()];
    for _ in 0..MAX_ITERATIONS {
        let mut changed = false;
        for (p, a) in points.iter().zip(assignment.iter_mut()) {
            let (i, _) = nearest(&centres, p);
            changed |= *a != i;
            *a = i;
        }
        if !changed {
            break;
        }
        let mut sums = vec![vec![0.0; dims]; k];
        let mut counts = vec![0usize; k];
        for (p, &a) in points.iter().zip(&assignment) {
            counts[a] += 1;
            for (s, v) in sums[a].iter_mut().zip(p) {
                *s += v;
            }
        }
        for ((centre, sum), count) in centres.iter_mut().zip(sums).zip(counts) {
            if count > 0 {
                *centre = sum.into_iter().map(|s| s / count as f64).collect();
            }
        }
    }
    Some(centres)
}

fn well_separated(points: &[Vec<f64>], centres: &[Vec<f64>], min_separation: f64) -> bool {
    let k = centres.len();
    let mut sq = vec![0.0; k];
    let mut counts = vec![0usize; k];
    for p in points {
        let (i, d) = nearest(centres, p);
        sq[i] += d;
        counts[i] += 1;
    }
    let min_rows = (points.len() as f64 * MIN_SHARE).max(2.0) as usize;
    if counts.iter().any(|&c| c < min_rows) {
        return false;
    }
    let radius = sq
        .iter()
        .zip(&counts)
        .map(|(s, &c)| (s / c as f64).sqrt())
        .fold(0.0, f64::max);
    let mut closest = f64::INFINITY;
    for i in 0..k {
        for j in i + 1..k {
            closest = closest.min(distance2(&centres[i], &centres[j]).sqrt());
        }
    }
    closest >= min_separation * radius.max(1e-12)
}

/// Per regime and sensor: the mean and spread of the training readings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scalers {
    /// `[regime][sensor]`
    pub mean: Vec<Vec<f64>>,
    pub spread: Vec<Vec<f64>>,
}

impl Scalers {
    /// `rows` are (regime, sensor values). A regime or sensor with no spread keeps spread 1,
    /// so that its values are centred and never divided by zero.
    pub fn fit(regimes: usize, sensors: usize, rows: &[(usize, &[f64])]) -> Self {
        let mut sum = vec![vec![0.0; sensors]; regimes];
        let mut counts = vec![0usize; regimes];
        for (r, values) in rows {
            counts[*r] += 1;
            for (s, v) in sum[*r].iter_mut().zip(values.iter()) {
                *s += v;
            }
        }
        let mean: Vec<Vec<f64>> = sum
            .into_iter()
            .zip(&counts)
            .map(|(s, &c)| s.into_iter().map(|v| v / c.max(1) as f64).collect())
            .collect();
        let mut sq = vec![vec![0.0; sensors]; regimes];
        for (r, values) in rows {
            for ((s, v), m) in sq[*r].iter_mut().zip(values.iter()).zip(&mean[*r]) {
                *s += (v - m).powi(2);
            }
        }
        let spread = sq
            .into_iter()
            .zip(&counts)
            .map(|(s, &c)| {
                s.into_iter()
                    .map(|v| {
                        let sd = (v / c.max(1) as f64).sqrt();
                        if sd > 1e-12 { sd } else { 1.0 }
                    })
                    .collect()
            })
            .collect();
        Self { mean, spread }
    }

    pub fn normalise(&self, regime: usize, sensor: usize, value: f64) -> f64 {
        (value - self.mean[regime][sensor]) / self.spread[regime][sensor]
    }
}

/// Sensors worth keeping: those that take more than two distinct values within some regime.
/// A sensor fixed within every regime (C-MAPSS FD001: sensors 1, 5, 10, 16, 18, 19) carries the
/// regime only, which normalisation removes; one flipping between two values is a continuous
/// quantity at its display resolution (FD001's sensor 6: 21.60 or 21.61), quantisation noise.
pub fn informative_sensors(sensors: usize, rows: &[(usize, &[f64])]) -> Vec<usize> {
    (0..sensors)
        .filter(|&s| {
            let mut per_regime: std::collections::BTreeMap<usize, Vec<u64>> = Default::default();
            for (r, values) in rows {
                let seen = per_regime.entry(*r).or_default();
                let bits = values[s].to_bits();
                if seen.len() < 3 && !seen.contains(&bits) {
                    seen.push(bits);
                }
            }
            per_regime.values().any(|seen| seen.len() >= 3)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Six discrete conditions like C-MAPSS FD002, with small noise on each setting.
    pub(crate) fn six_conditions(rows: usize, seed: u64) -> Vec<Vec<f64>> {
        const CONDITIONS: [[f64; 3]; 6] = [
            [0.0, 0.0, 100.0],
            [10.0, 0.25, 100.0],
            [20.0, 0.70, 100.0],
            [25.0, 0.62, 60.0],
            [35.0, 0.84, 100.0],
            [42.0, 0.84, 100.0],
        ];
        let mut rng = SplitMix64::new(seed);
        (0..rows)
            .map(|_| {
                let c = CONDITIONS[rng.below(6)];
                vec![
                    c[0] + (rng.next_f64() - 0.5) * 0.01,
                    c[1] + (rng.next_f64() - 0.5) * 0.001,
                    c[2],
                ]
            })
            .collect()
    }

    #[test]
    fn finds_six_discrete_conditions_and_one_in_noise() {
        let rows = six_conditions(3000, 1);
        let refs: Vec<&[f64]> = rows.iter().map(Vec::as_slice).collect();
        let model = RegimeModel::fit(&refs, &RegimeSpec::default(), 7);
        assert_eq!(model.regimes(), 6);
        // Readings of one condition share a regime; different conditions never do.
        let a = model.assign(&[10.003, 0.2501, 100.0]);
        assert_eq!(a, model.assign(&[9.997, 0.2499, 100.0]));
        assert_ne!(a, model.assign(&[20.0, 0.70, 100.0]));

        let mut rng = SplitMix64::new(3);
        let noise: Vec<Vec<f64>> = (0..3000)
            .map(|_| {
                vec![
                    rng.next_f64() * 0.004 - 0.002,
                    rng.next_f64() * 0.0006,
                    100.0,
                ]
            })
            .collect();
        let refs: Vec<&[f64]> = noise.iter().map(Vec::as_slice).collect();
        assert_eq!(
            RegimeModel::fit(&refs, &RegimeSpec::default(), 7).regimes(),
            1
        );
    }

    #[test]
    fn per_regime_scaling_removes_a_regime_offset() {
        let settings = six_conditions(3000, 2);
        let refs: Vec<&[f64]> = settings.iter().map(Vec::as_slice).collect();
        let model = RegimeModel::fit(&refs, &RegimeSpec::default(), 7);
        // The sensor reads 500 + 40·altitude-ish offset per condition, plus unit noise.
        let mut rng = SplitMix64::new(4);
        let sensors: Vec<Vec<f64>> = settings
            .iter()
            .map(|s| vec![500.0 + 40.0 * s[0] - 90.0 * s[1] + rng.next_f64() - 0.5])
            .collect();
        let rows: Vec<(usize, &[f64])> = settings
            .iter()
            .zip(&sensors)
            .map(|(s, v)| (model.assign(s), v.as_slice()))
            .collect();
        let scalers = Scalers::fit(model.regimes(), 1, &rows);
        let normalised: Vec<f64> = rows
            .iter()
            .map(|(r, v)| scalers.normalise(*r, 0, v[0]))
            .collect();
        let raw_sd = spread(&sensors.iter().map(|v| v[0]).collect::<Vec<_>>());
        let norm_sd = spread(&normalised);
        assert!(raw_sd > 100.0, "{raw_sd}");
        assert!((norm_sd - 1.0).abs() < 0.01, "{norm_sd}");
        for r in 0..model.regimes() {
            let mean = rows
                .iter()
                .zip(&normalised)
                .filter(|((regime, _), _)| *regime == r)
                .map(|(_, v)| *v)
                .sum::<f64>();
            assert!(mean.abs() < 1e-6, "regime {r} keeps an offset: {mean}");
        }
    }

    fn spread(v: &[f64]) -> f64 {
        let m = v.iter().sum::<f64>() / v.len() as f64;
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / v.len() as f64).sqrt()
    }

    #[test]
    fn constant_and_two_valued_sensors_are_dropped() {
        let rows: Vec<Vec<f64>> = (0..50)
            .map(|i| vec![5.0, if i % 2 == 0 { 21.6 } else { 21.61 }, f64::from(i)])
            .collect();
        let tagged: Vec<(usize, &[f64])> = rows.iter().map(|r| (0, r.as_slice())).collect();
        assert_eq!(informative_sensors(3, &tagged), vec![2]);
    }
}
