//! `factorybrain eval`: the product's detectors scored on public benchmarks and on users' own
//! labelled histories. This crate reads the files (the detectors themselves, in `fb-detect`,
//! do no I/O) and computes the figures the commands print.

pub mod ai4i;
pub mod cmapss;
pub mod csv;
pub mod history;
pub mod nab;

use std::path::{Path, PathBuf};

/// What went wrong reading or scoring a data set, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Format { path: PathBuf, message: String },
    #[error("{0}")]
    Detector(String),
    /// The options do not fit the data (a train-row count out of range, an unknown column).
    #[error("{0}")]
    Options(String),
}

impl EvalError {
    fn io(path: &Path, source: std::io::Error) -> Self {
        EvalError::Io {
            path: path.to_owned(),
            source,
        }
    }

    fn format(path: &Path, message: impl std::fmt::Display) -> Self {
        EvalError::Format {
            path: path.to_owned(),
            message: message.to_string(),
        }
    }
}
