//! The figures a prediction is judged by, and Platt calibration of a classifier's scores.

use serde::{Deserialize, Serialize};

pub fn rmse(predicted: &[f64], truth: &[f64]) -> f64 {
    let n = predicted.len().max(1) as f64;
    (predicted
        .iter()
        .zip(truth)
        .map(|(p, t)| (p - t).powi(2))
        .sum::<f64>()
        / n)
        .sqrt()
}

pub fn mae(predicted: &[f64], truth: &[f64]) -> f64 {
    let n = predicted.len().max(1) as f64;
    predicted
        .iter()
        .zip(truth)
        .map(|(p, t)| (p - t).abs())
        .sum::<f64>()
        / n
}

/// The PHM08 challenge score (Saxena et al. 2008): with d = predicted − true RUL, each unit adds
/// e^(−d/13) − 1 when early (d < 0) and e^(d/10) − 1 when late, so a late prediction, which
/// lets a machine fail, costs more than an early one. Lower is better; 0 is perfect.
pub fn phm08_score(predicted: &[f64], truth: &[f64]) -> f64 {
    predicted
        .iter()
        .zip(truth)
        .map(|(p, t)| {
            let d = p - t;
            if d < 0.0 {
                (-d / 13.0).exp() - 1.0
            } else {
                (d / 10.0).exp() - 1.0
            }
        })
        .sum()
}

/// Counts and rates of a yes/no prediction at one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct BinaryScores {
    pub threshold: f64,
    pub true_positives: usize,
    pub false_positives: usize,
    pub false_negatives: usize,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

/// `probability >= threshold` counts as "fails".
pub fn binary_scores(probabilities: &[f64], labels: &[bool], threshold: f64) -> BinaryScores {
    let (mut tp, mut fp, mut fn_) = (0, 0, 0);
    for (&p, &label) in probabilities.iter().zip(labels) {
        match (p >= threshold, label) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            (false, false) => {}
        }
    }
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fn_);
    let f1 = if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    };
    BinaryScores {
        threshold,
        true_positives: tp,
        false_positives: fp,
        false_negatives: fn_,
        precision,
        recall,
        f1,
    }
}

/// The threshold with the best F1 among the distinct predicted probabilities (ties: the
/// higher threshold, fewer alarms). Chosen on training or validation predictions only.
pub fn best_f1_threshold(probabilities: &[f64], labels: &[bool]) -> BinaryScores {
    let mut best = binary_scores(probabilities, labels, f64::INFINITY);
    // Sweep from high to low so that a tie keeps the higher threshold; O(n log n) overall.
    let mut order: Vec<usize> = (0..probabilities.len()).collect();
    order.sort_by(|&a, &b| probabilities[b].total_cmp(&probabilities[a]));
    let positives = labels.iter().filter(|&&l| l).count();
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut i = 0;
    while i < order.len() {
        let threshold = probabilities[order[i]];
        while i < order.len() && probabilities[order[i]] == threshold {
            if labels[order[i]] {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        let f1 = 2.0 * tp as f64 / (2 * tp + fp + (positives - tp)) as f64;
        if f1 > best.f1 || best.threshold == f64::INFINITY {
            best = binary_scores(probabilities, labels, threshold);
        }
    }
    best
}

/// Platt scaling (Platt 1999, with Lin, Lin & Weng's 2007 targets): p = σ(a·score + b) fitted
/// by Newton's method on held-out scores, so that a probability of 0.7 fails about 70 % of the
/// time even where boosting over- or under-states its confidence.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Platt {
    pub a: f64,
    pub b: f64,
}

impl Platt {
    pub const IDENTITY: Platt = Platt { a: 1.0, b: 0.0 };

    pub fn probability(&self, score: f64) -> f64 {
        crate::gbdt::sigmoid(self.a * score + self.b)
    }

    pub fn fit(scores: &[f64], labels: &[bool]) -> Self {
        let positives = labels.iter().filter(|&&l| l).count() as f64;
        let negatives = labels.len() as f64 - positives;
        if positives == 0.0 || negatives == 0.0 {
            return Self::IDENTITY;
        }
        let high = (positives + 1.0) / (positives + 2.0);
        let low = 1.0 / (negatives + 2.0);
        let target = |l: bool| if l { high } else { low };
        let objective = |a: f64, b: f64| -> f64 {
            scores
                .iter()
                .zip(labels)
                .map(|(&s, &l)| {
                    let f = a * s + b;
                    let t = target(l);
                    // −[t·log σ(f) + (1 − t)·log(1 − σ(f))], stably.
                    f.max(0.0) - t * f + (-f.abs()).exp().ln_1p()
                })
                .sum()
        };
        let (mut a, mut b) = (1.0, 0.0);
        let mut current = objective(a, b);
        for _ in 0..100 {
            let (mut ga, mut gb, mut haa, mut hab, mut hbb) = (0.0, 0.0, 1e-12, 0.0, 1e-12);
            for (&s, &l) in scores.iter().zip(labels) {
                let p = crate::gbdt::sigmoid(a * s + b);
                let w = p * (1.0 - p);
                ga += (p - target(l)) * s;
                gb += p - target(l);
                haa += w * s * s;
                hab += w * s;
                hbb += w;
            }
            let det = haa * hbb - hab * hab;
            // A singular Hessian (all scores equal) or NaN: nothing more to learn.
            if det.is_nan() || det <= 0.0 {
                break;
            }
            let da = (hbb * ga - hab * gb) / det;
            let db = (haa * gb - hab * ga) / det;
            // Newton's step, halved until the loss goes down (Lin, Lin & Weng's safeguard).
            let mut step = 1.0;
            let mut moved = false;
            while step > 1e-10 {
                let (na, nb) = (a - step * da, b - step * db);
                let candidate = objective(na, nb);
                if candidate < current - 1e-4 * step * (ga * da + gb * db) {
                    (a, b, current, moved) = (na, nb, candidate, true);
                    break;
                }
                step /= 2.0;
            }
            if !moved || (step * da).abs() + (step * db).abs() < 1e-9 {
                break;
            }
        }
        if a.is_finite() && b.is_finite() {
            Self { a, b }
        } else {
            Self::IDENTITY
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phm08_score_matches_a_hand_computed_example() {
        // d = −13 (early): e^1 − 1; d = +10 (late): e^1 − 1; d = 0: 0; d = −26: e^2 − 1.
        let score = phm08_score(&[87.0, 60.0, 5.0, 0.0], &[100.0, 50.0, 5.0, 26.0]);
        let want = 2.0 * (1f64.exp() - 1.0) + (2f64.exp() - 1.0);
        assert!((score - want).abs() < 1e-12, "{score} vs {want}");
        assert!((rmse(&[1.0, 3.0], &[0.0, 0.0]) - 5f64.sqrt()).abs() < 1e-12);
    }

    #[test]
    fn binary_scores_and_the_best_threshold() {
        let p = [0.9, 0.8, 0.7, 0.2, 0.1];
        let y = [true, false, true, false, false];
        let at = binary_scores(&p, &y, 0.75);
        assert_eq!(
            (at.true_positives, at.false_positives, at.false_negatives),
            (1, 1, 1)
        );
        assert!((at.f1 - 0.5).abs() < 1e-12);
        let best = best_f1_threshold(&p, &y);
        assert_eq!(best.threshold, 0.7);
        assert!((best.f1 - 0.8).abs() < 1e-12);
    }

    #[test]
    fn platt_recovers_a_known_scale() {
        // Scores whose true probability is σ(0.5·s − 1).
        let mut rng = fb_core::rng::SplitMix64::new(1);
        let (mut s, mut y) = (Vec::new(), Vec::new());
        for _ in 0..20_000 {
            let score = rng.next_f64() * 12.0 - 6.0;
            s.push(score);
            y.push(rng.next_f64() < crate::gbdt::sigmoid(0.5 * score - 1.0));
        }
        let platt = Platt::fit(&s, &y);
        assert!(
            (platt.a - 0.5).abs() < 0.05 && (platt.b + 1.0).abs() < 0.1,
            "{platt:?}"
        );
    }
}
