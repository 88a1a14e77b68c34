//! Numenta Anomaly Benchmark (NAB v1.1) scoring, independent of any file format.
//!
//! A detector emits a score in `[0, 1]` per row. NAB turns rows at or above a threshold
//! into detections and rewards them by *when* they happen:
//!
//! * Each labelled anomaly window counts once. Its earliest detection earns a weight that
//!   falls along a scaled sigmoid from `tp` at the window's left edge to about 0 at its
//!   right edge; a window without detection costs `fn`.
//! * A detection outside every window costs `fp`, scaled by the same sigmoid of its
//!   distance past the preceding window (in units of that window's width), so alarms just
//!   after a window cost little and alarms far from any window cost the full `fp`.
//! * The first 15% of each file (at most 750 rows) is the probationary period: not scored.
//! * One threshold per detector and profile is chosen to maximise the corpus total, and
//!   the total is normalised so that a detector that never fires scores 0 and one that
//!   fires exactly at the start of every window scores 100.
//!
//! Timestamps are plain `i64`s in any unit, as long as windows use the same one.

mod error;
mod profile;
mod score;
mod sweep;

use serde::{Deserialize, Serialize};

pub use error::NabError;
pub use profile::{CostMatrix, Profile};
pub use score::{
    FileScore, NO_DETECTION_THRESHOLD, ProfileScore, Scores, ThresholdScore, optimize_threshold,
    prepare, score_at_threshold, score_corpus, score_file, score_prepared, threshold_curve,
};
pub use sweep::{PROBATION_SHARE, PreparedFile, probationary_length, scaled_sigmoid};

/// An anomaly window, both ends included, in the unit of the file's timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: i64,
    pub end: i64,
}

/// One series as a detector scored it, with its labelled windows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoredFile {
    pub name: String,
    /// In time order (repeated stamps, e.g. at clock changes, are tolerated).
    pub timestamps: Vec<i64>,
    /// One score in `[0, 1]` per timestamp.
    pub scores: Vec<f64>,
    /// Sorted and non-overlapping.
    pub windows: Vec<Window>,
}
