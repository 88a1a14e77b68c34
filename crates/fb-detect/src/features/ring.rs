use std::collections::VecDeque;
use std::num::NonZeroUsize;

/// The last `capacity` values, oldest first. Pushing into a full ring hands back the
/// value that fell out, so that windowed statistics can retract it.
#[derive(Debug, Clone)]
pub struct Ring {
    values: VecDeque<f64>,
    capacity: usize,
}

impl Ring {
    pub fn new(capacity: NonZeroUsize) -> Self {
        Self {
            values: VecDeque::with_capacity(capacity.get()),
            capacity: capacity.get(),
        }
    }

    /// Adds `value`; returns the evicted oldest value when the ring was full.
    pub fn push(&mut self, value: f64) -> Option<f64> {
        let evicted = if self.values.len() == self.capacity {
            self.values.pop_front()
        } else {
            None
        };
        self.values.push_back(value);
        evicted
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn is_full(&self) -> bool {
        self.values.len() == self.capacity
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The value `age` steps back: 0 is the newest.
    pub fn back(&self, age: usize) -> Option<f64> {
        let len = self.values.len();
        if age < len {
            self.values.get(len - 1 - age).copied()
        } else {
            None
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        self.values.iter().copied()
    }

    /// Heap bytes held, for memory accounting.
    pub fn heap_bytes(&self) -> usize {
        self.values.capacity() * size_of::<f64>()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn evicts_oldest_when_full() {
        let mut ring = Ring::new(NonZeroUsize::new(2).unwrap());
        assert_eq!(ring.push(1.0), None);
        assert_eq!(ring.push(2.0), None);
        assert_eq!(ring.push(3.0), Some(1.0));
        assert_eq!(ring.back(0), Some(3.0));
        assert_eq!(ring.back(1), Some(2.0));
        assert_eq!(ring.back(2), None);
    }
}
