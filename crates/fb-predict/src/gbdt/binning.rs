//! Histogram bins: each feature's values are cut once, before boosting, into at most 256 bins
//! at quantiles of the training data, so that finding a split scans bins instead of sorting
//! rows (LightGBM's and XGBoost `hist`'s method).

use serde::{Deserialize, Serialize};

/// The cut points of one feature. Bin `b` holds the values `v` with
/// `bounds[b - 1] < v <= bounds[b]`; the last bin has no upper bound. A value that is not a
/// number falls in bin 0, and a split sends it left, at training and at prediction alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BinMapper {
    pub bounds: Vec<f64>,
}

impl BinMapper {
    /// Cuts at midpoints between neighbouring distinct values: every distinct value its own
    /// bin when there are at most `max_bins`, otherwise at quantiles (ties never straddle a
    /// cut, so a bin may hold more than its share).
    pub fn fit(values: impl Iterator<Item = f64>, max_bins: usize) -> Self {
        let mut sorted: Vec<f64> = values.filter(|v| !v.is_nan()).collect();
        sorted.sort_by(f64::total_cmp);
        let mut distinct = sorted.clone();
        distinct.dedup();
        let max_bins = max_bins.clamp(2, 256);
        if distinct.len() <= max_bins {
            let bounds = distinct.windows(2).map(|w| midpoint(w[0], w[1])).collect();
            return Self { bounds };
        }
        let n = sorted.len();
        let mut bounds: Vec<f64> = Vec::with_capacity(max_bins - 1);
        for q in 1..max_bins {
            let at = sorted[q * n / max_bins];
            // The next distinct value above `at`: the cut lies between them.
            let next = distinct.partition_point(|d| *d <= at);
            if next >= distinct.len() {
                break;
            }
            let bound = midpoint(at, distinct[next]);
            if bounds.last().is_none_or(|last| *last < bound) {
                bounds.push(bound);
            }
        }
        Self { bounds }
    }

    pub fn bins(&self) -> usize {
        self.bounds.len() + 1
    }

    pub fn bin(&self, value: f64) -> u8 {
        // `b < NaN` is false, so NaN lands in bin 0 (see the type's docs).
        self.bounds.partition_point(|b| *b < value) as u8
    }

    /// The raw-value threshold equivalent to "bin <= `bin`": values above it go right.
    pub fn threshold(&self, bin: usize) -> f64 {
        self.bounds[bin]
    }
}

fn midpoint(a: f64, b: f64) -> f64 {
    let m = a + (b - a) / 2.0;
    // Rounding can land the midpoint on `b` for neighbouring floats; the cut must keep `b` above.
    if m < b { m } else { a }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_distinct_values_get_a_bin_each_and_thresholds_agree_with_bins() {
        let mapper = BinMapper::fit([3.0, 1.0, 2.0, 2.0, 1.0].into_iter(), 255);
        assert_eq!(mapper.bounds, vec![1.5, 2.5]);
        assert_eq!(
            [1.0, 2.0, 3.0, 0.0, 9.0].map(|v| mapper.bin(v)),
            [0, 1, 2, 0, 2]
        );
        assert_eq!(mapper.bin(f64::NAN), 0);
        for v in [0.5, 1.0, 1.5, 2.0, 2.7, 3.0] {
            for bin in 0..mapper.bins() - 1 {
                assert_eq!(
                    usize::from(mapper.bin(v)) <= bin,
                    v <= mapper.threshold(bin),
                    "{v} {bin}"
                );
            }
        }
    }

    #[test]
    fn many_values_are_cut_at_quantiles() {
        let mapper = BinMapper::fit((0..10_000).map(f64::from), 16);
        assert_eq!(mapper.bins(), 16);
        let mut counts = [0usize; 16];
        for v in 0..10_000 {
            counts[usize::from(mapper.bin(f64::from(v)))] += 1;
        }
        assert!(counts.iter().all(|c| (600..=650).contains(c)), "{counts:?}");
    }
}
