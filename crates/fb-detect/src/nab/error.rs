use thiserror::Error;

/// Why a corpus cannot be scored. Every variant names the file so that a caller
/// scoring dozens of series can find the bad one.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum NabError {
    #[error("{file}: {timestamps} timestamps but {scores} scores")]
    LengthMismatch {
        file: String,
        timestamps: usize,
        scores: usize,
    },
    #[error("{file}: score {value} at row {row} is not in [0, 1]")]
    ScoreOutOfRange {
        file: String,
        row: usize,
        value: f64,
    },
    #[error("{file}: window {index} ends before it starts or overlaps the previous window")]
    BadWindow { file: String, index: usize },
    #[error("no profile to score")]
    NoProfiles,
    #[error(
        "profile {profile}: perfect and null detectors score the same, nothing to normalise against"
    )]
    DegenerateProfile { profile: String },
}
