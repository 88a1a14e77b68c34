//! A bounded memory of past patterns, searched for the nearest one.

/// The last `capacity` patterns (fixed-length vectors), each with the stream position it
/// was taken at, so that a query can ignore patterns that overlap it in time.
#[derive(Debug, Clone)]
pub struct PatternMemory {
    dim: usize,
    values: Vec<f64>,
    positions: Vec<u64>,
    len: usize,
    next: usize,
}

impl PatternMemory {
    pub fn new(dim: usize, capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            dim,
            values: vec![0.0; dim * capacity],
            positions: vec![0; capacity],
            len: 0,
            next: 0,
        }
    }

    /// Stores `pattern` (of the memory's dimension) taken at `position`, replacing the
    /// oldest when full.
    pub fn store(&mut self, pattern: &[f64], position: u64) {
        let slot = self.next;
        let start = slot * self.dim;
        if let Some(row) = self.values.get_mut(start..start + self.dim) {
            row.copy_from_slice(&pattern[..self.dim.min(pattern.len())]);
        }
        self.positions[slot] = position;
        self.next = (self.next + 1) % self.positions.len();
        self.len = (self.len + 1).min(self.positions.len());
    }

    /// Euclidean distance from `query` to the nearest pattern taken at or before
    /// `latest`; `None` if there is none yet.
    pub fn nearest(&self, query: &[f64], latest: u64) -> Option<f64> {
        let mut best = f64::INFINITY;
        for (row, &position) in self
            .values
            .chunks_exact(self.dim)
            .zip(&self.positions)
            .take(self.len)
        {
            if position > latest {
                continue;
            }
            // Early abandoning: most rows are rejected after a few coordinates.
            let mut d = 0.0;
            for (a, b) in row.iter().zip(query) {
                d += (a - b) * (a - b);
                if d >= best {
                    break;
                }
            }
            best = best.min(d);
        }
        best.is_finite().then(|| best.sqrt())
    }

    pub fn heap_bytes(&self) -> usize {
        self.values.capacity() * size_of::<f64>() + self.positions.capacity() * size_of::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_nearest_and_ignores_recent_patterns() {
        let mut m = PatternMemory::new(2, 3);
        assert_eq!(m.nearest(&[0.0, 0.0], 10), None);
        m.store(&[0.0, 0.0], 1);
        m.store(&[3.0, 4.0], 2);
        m.store(&[1.0, 1.0], 9);
        assert_eq!(m.nearest(&[3.0, 4.0], 10), Some(0.0));
        // Position 9 is too recent for `latest` = 5.
        assert_eq!(m.nearest(&[1.0, 1.0], 5), Some(2.0_f64.sqrt()));
        // A fourth pattern evicts the oldest, (0, 0).
        m.store(&[10.0, 10.0], 11);
        assert_eq!(m.nearest(&[0.0, 0.0], 20), Some(2.0_f64.sqrt()));
    }
}
