//! Application profiles: how much a detection, a miss and a false alarm are worth.

use serde::{Deserialize, Serialize};

/// The weights NAB applies to each outcome. `tn` is carried for completeness; NAB's
/// score never uses it because a quiet point outside a window is simply not counted.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CostMatrix {
    pub tp: f64,
    pub fp: f64,
    pub fn_: f64,
    pub tn: f64,
}

/// A named cost matrix, e.g. NAB's "standard".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    pub costs: CostMatrix,
}

impl Profile {
    pub fn new(name: impl Into<String>, costs: CostMatrix) -> Self {
        Self {
            name: name.into(),
            costs,
        }
    }

    /// NAB's default profile: a false alarm costs 0.11 of a detection.
    pub fn standard() -> Self {
        Self::new(
            "standard",
            CostMatrix {
                tp: 1.0,
                fp: 0.11,
                fn_: 1.0,
                tn: 1.0,
            },
        )
    }

    /// False alarms cost twice as much as in the standard profile.
    pub fn reward_low_fp_rate() -> Self {
        Self::new(
            "reward_low_FP_rate",
            CostMatrix {
                tp: 1.0,
                fp: 0.22,
                fn_: 1.0,
                tn: 1.0,
            },
        )
    }

    /// A missed window costs twice as much as in the standard profile.
    pub fn reward_low_fn_rate() -> Self {
        Self::new(
            "reward_low_FN_rate",
            CostMatrix {
                tp: 1.0,
                fp: 0.11,
                fn_: 2.0,
                tn: 1.0,
            },
        )
    }

    /// The three profiles of NAB v1.1, in the order of its scoreboard.
    pub fn nab_v1_1() -> Vec<Profile> {
        vec![
            Self::standard(),
            Self::reward_low_fp_rate(),
            Self::reward_low_fn_rate(),
        ]
    }
}
