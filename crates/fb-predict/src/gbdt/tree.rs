//! A regression tree as a flat array of internal nodes (LightGBM's layout, one node per
//! 24 bytes so that a test touches one cache line): a child index below zero names a leaf
//! (`!child`).

use serde::{Deserialize, Serialize};

/// An internal node: values of `feature` above `threshold` go right; anything else (including
/// NaN) goes left. Serialized as `[feature, threshold, left, right]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Node(pub u32, pub f64, pub i32, pub i32);

impl Node {
    pub fn feature(&self) -> usize {
        self.0 as usize
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tree {
    pub nodes: Vec<Node>,
    /// Leaf outputs, shrinkage already applied.
    pub leaf: Vec<f64>,
}

impl Tree {
    pub fn single_leaf(value: f64) -> Self {
        Self {
            nodes: Vec::new(),
            leaf: vec![value],
        }
    }

    pub fn predict(&self, row: &[f64]) -> f64 {
        if self.nodes.is_empty() {
            return self.leaf[0];
        }
        let mut node = 0usize;
        loop {
            let Node(feature, threshold, left, right) = self.nodes[node];
            let child = if row[feature as usize] > threshold {
                right
            } else {
                left
            };
            if child < 0 {
                return self.leaf[!child as usize];
            }
            node = child as usize;
        }
    }

    /// Whether the arrays describe a tree whose indices are all in range and whose features
    /// exist: checked when a model is loaded, so that prediction cannot index out of bounds.
    pub fn is_well_formed(&self, features: usize) -> bool {
        let internal = self.nodes.len();
        // Children point forward (a node's children are made after it), so no walk can loop.
        let child_ok = |c: i32, node: usize| {
            if c < 0 {
                (!c as usize) < self.leaf.len()
            } else {
                (c as usize) < internal && c as usize > node
            }
        };
        !self.leaf.is_empty()
            && self.leaf.len() == internal + 1
            && self.nodes.iter().enumerate().all(|(i, n)| {
                n.feature() < features && n.1.is_finite() && child_ok(n.2, i) && child_ok(n.3, i)
            })
            && self.leaf.iter().all(|v| v.is_finite())
    }
}
