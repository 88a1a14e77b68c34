//! Trained models in the registry (issue #6): failure-probability and remaining-useful-life
//! models, one line of versions per kind and machine type, at most one of them active.
//!
//! The registry does not read a model: its payload (the trainer's document: trees, regime
//! model, scalers, feature spec) is opaque bytes here, described by a `format` such as
//! `factorybrain.predict.model/1` (fb-predict's) so that a server can tell whether it reads it before trying. What the
//! registry understands is the metadata below, each field validated with its name.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::FieldError;
use crate::plant::validate_machine_type;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModelId(pub Uuid);

impl std::fmt::Display for ModelId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModelKind {
    /// Remaining useful life.
    Rul,
    /// Probability of failure within a horizon.
    Failure,
}

impl ModelKind {
    pub const ALL: [ModelKind; 2] = [ModelKind::Rul, ModelKind::Failure];

    pub fn as_str(self) -> &'static str {
        match self {
            ModelKind::Rul => "rul",
            ModelKind::Failure => "failure",
        }
    }

    pub fn parse(s: &str) -> Option<ModelKind> {
        ModelKind::ALL.into_iter().find(|k| k.as_str() == s.trim())
    }

    /// The field error for a kind that is not one.
    pub fn invalid(field: &str) -> FieldError {
        FieldError::new(field, "must be rul or failure")
    }
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a trainer hands the registry besides the payload: everything but what the registry
/// assigns (id, version, creation, activation).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDraft {
    pub kind: ModelKind,
    /// The machines the model serves: a machine type such as `centrifugal_pump`
    /// (`Machine.machine_type`).
    pub machine_type: String,
    /// `<name>/<version>` of the payload's format, e.g. `factorybrain.predict.model/1`.
    pub format: String,
    /// A hash of the training data, so that a model can be traced to what it learnt from.
    pub data_hash: String,
    /// The feature names, in the order the model reads them.
    pub features: Vec<String>,
    /// Training and validation figures, e.g. `rmse` → 11.9.
    pub metrics: BTreeMap<String, f64>,
    /// Hyper-parameters and other settings of the training, as text.
    pub params: BTreeMap<String, String>,
    pub note: Option<String>,
}

/// A model as the registry keeps it (without its payload, which is read on its own).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredModel {
    pub id: ModelId,
    pub kind: ModelKind,
    pub machine_type: String,
    /// 1, 2, 3… per kind and machine type, assigned by the store in insertion order.
    pub version: u32,
    pub format: String,
    pub created_at: OffsetDateTime,
    /// Who registered it (`Principal::describe`, e.g. `user:ana` or `system`).
    pub created_by: String,
    pub data_hash: String,
    pub features: Vec<String>,
    pub metrics: BTreeMap<String, f64>,
    pub params: BTreeMap<String, String>,
    pub note: Option<String>,
    /// Size of the payload in bytes.
    pub payload_bytes: u64,
    /// SHA-256 of the payload (hex): names exactly the artifact that was registered.
    pub payload_sha256: String,
    /// The active model of its kind and machine type.
    pub active: bool,
    /// When it became active, while it is.
    pub activated_at: Option<OffsetDateTime>,
}

impl StoredModel {
    /// The model's line: its kind and machine type.
    pub fn line(&self) -> (ModelKind, &str) {
        (self.kind, &self.machine_type)
    }
}

/// Why a model became active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivationAction {
    Promote,
    Rollback,
}

impl ActivationAction {
    pub fn as_str(self) -> &'static str {
        match self {
            ActivationAction::Promote => "promote",
            ActivationAction::Rollback => "rollback",
        }
    }

    pub fn parse(s: &str) -> Option<ActivationAction> {
        [ActivationAction::Promote, ActivationAction::Rollback]
            .into_iter()
            .find(|a| a.as_str() == s)
    }
}

/// One entry of a line's activation history: who made which model active, when, and how.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelActivation {
    pub id: Uuid,
    pub kind: ModelKind,
    pub machine_type: String,
    /// 1, 2, 3… per line, in the order of activation.
    pub seq: u64,
    pub model_id: ModelId,
    pub version: u32,
    pub action: ActivationAction,
    pub activated_at: OffsetDateTime,
    pub activated_by: String,
}

/// Largest payload. A gradient-boosted ensemble of 5 folds × 500 trees of depth 6 written as
/// JSON is about 20 MB; 64 MiB leaves room for that three times over while keeping what every
/// node holds in memory per active model, and one database row, bounded (PostgreSQL reads a
/// `bytea` whole; 64 MiB is far below its 1 GB limit and SQLite's default blob limit).
pub const PAYLOAD_MAX: usize = 64 * 1024 * 1024;
/// Most features a model may list, and the longest feature name.
pub const FEATURES_MAX: usize = 10_000;
pub const FEATURE_NAME_MAX: usize = 200;
/// Most metrics and params, and the longest name and param value.
pub const ENTRIES_MAX: usize = 200;
pub const ENTRY_NAME_MAX: usize = 64;
pub const PARAM_VALUE_MAX: usize = 1_000;
pub const NOTE_MAX: usize = 2_000;
pub const FORMAT_MAX: usize = 64;
pub const DATA_HASH_MAX: usize = 128;

/// Every problem with a draft and its payload size, each under its field's name.
pub fn validate_draft(draft: &ModelDraft, payload_len: usize) -> Vec<FieldError> {
    let mut errors = validate_machine_type("machine_type", &draft.machine_type);
    if let Err(e) = validate_format("format", &draft.format) {
        errors.push(e);
    }
    let hash = &draft.data_hash;
    if hash.is_empty()
        || hash.len() > DATA_HASH_MAX
        || !hash
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":_-".contains(c))
    {
        errors.push(FieldError::new(
            "data_hash",
            format!("must be 1 to {DATA_HASH_MAX} letters, digits, ':', '_' or '-'"),
        ));
    }
    validate_features(&draft.features, &mut errors);
    if draft.metrics.len() > ENTRIES_MAX {
        errors.push(FieldError::new(
            "metrics",
            format!("must have at most {ENTRIES_MAX} entries"),
        ));
    }
    for (name, value) in &draft.metrics {
        check_entry_name("metrics", name, &mut errors);
        if !value.is_finite() {
            errors.push(FieldError::new(
                format!("metrics.{name}"),
                "must be a finite number",
            ));
        }
    }
    if draft.params.len() > ENTRIES_MAX {
        errors.push(FieldError::new(
            "params",
            format!("must have at most {ENTRIES_MAX} entries"),
        ));
    }
    for (name, value) in &draft.params {
        check_entry_name("params", name, &mut errors);
        if value.chars().count() > PARAM_VALUE_MAX || value.chars().any(char::is_control) {
            errors.push(FieldError::new(
                format!("params.{name}"),
                format!("must be at most {PARAM_VALUE_MAX} characters, without control characters"),
            ));
        }
    }
    if let Some(note) = &draft.note
        && (note.chars().count() > NOTE_MAX || note.chars().any(|c| c.is_control() && c != '\n'))
    {
        errors.push(FieldError::new(
            "note",
            format!(
                "must be at most {NOTE_MAX} characters, without control characters but newlines"
            ),
        ));
    }
    if payload_len == 0 || payload_len > PAYLOAD_MAX {
        errors.push(FieldError::new(
            "payload",
            format!("must be 1 byte to {} MiB", PAYLOAD_MAX / (1024 * 1024)),
        ));
    }
    errors
}

/// A payload format: `<name>/<version>`, the name of lowercase letters, digits, `.`, `_`, `-`
/// and the version a positive number, at most 64 characters in all.
pub fn validate_format(field: &str, format: &str) -> Result<(), FieldError> {
    let valid = format.len() <= FORMAT_MAX
        && format.split_once('/').is_some_and(|(name, version)| {
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                && version.parse::<u32>().is_ok_and(|v| v > 0)
                && version.chars().all(|c| c.is_ascii_digit())
        });
    if valid {
        Ok(())
    } else {
        Err(FieldError::new(
            field,
            format!(
                "must be <name>/<version>, e.g. factorybrain.predict.model/1: a name of lowercase letters, digits, '.', '_' or '-' and a positive version, at most {FORMAT_MAX} characters"
            ),
        ))
    }
}

fn validate_features(features: &[String], errors: &mut Vec<FieldError>) {
    if features.is_empty() || features.len() > FEATURES_MAX {
        errors.push(FieldError::new(
            "features",
            format!("must list 1 to {FEATURES_MAX} feature names"),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, name) in features.iter().enumerate() {
        let len = name.chars().count();
        if len == 0 || len > FEATURE_NAME_MAX || name.chars().any(char::is_control) {
            errors.push(FieldError::new(
                format!("features[{i}]"),
                format!("must be 1 to {FEATURE_NAME_MAX} characters, without control characters"),
            ));
        } else if !seen.insert(name.as_str()) {
            errors.push(FieldError::new(
                format!("features[{i}]"),
                format!("{name:?} is listed twice"),
            ));
        }
    }
}

/// Metric and param names: 1 to 64 letters, digits, `.`, `_`, `-` (they name figures such as
/// `rmse` or `cv.folds`).
fn check_entry_name(area: &str, name: &str, errors: &mut Vec<FieldError>) {
    let valid = !name.is_empty()
        && name.len() <= ENTRY_NAME_MAX
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !valid {
        errors.push(FieldError::new(
            format!("{area}.{name}"),
            format!("the name must be 1 to {ENTRY_NAME_MAX} letters, digits, '.', '_' or '-'"),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> ModelDraft {
        ModelDraft {
            kind: ModelKind::Rul,
            machine_type: "centrifugal_pump".into(),
            format: "fb-predict/1".into(),
            data_hash: "a".repeat(64),
            features: vec!["vibration.mean_30".into(), "temperature.slope".into()],
            metrics: BTreeMap::from([("rmse".to_owned(), 11.9)]),
            params: BTreeMap::from([("trees".to_owned(), "400".to_owned())]),
            note: Some("first model\nfrom FD001".into()),
        }
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_complete_draft_is_valid() {
        assert_eq!(validate_draft(&draft(), 1_000), []);
        assert!(validate_draft(&draft(), PAYLOAD_MAX).is_empty());
    }

    #[test]
    fn every_bad_field_is_named() {
        let bad = ModelDraft {
            kind: ModelKind::Failure,
            machine_type: " ".into(),
            format: "fb-predict".into(),
            data_hash: "not a hash".into(),
            features: vec!["x".into(), "x".into(), String::new()],
            metrics: BTreeMap::from([("rmse".to_owned(), f64::NAN), ("bad name".to_owned(), 1.0)]),
            params: BTreeMap::from([("depth".to_owned(), "a\u{0}b".to_owned())]),
            note: Some("x".repeat(NOTE_MAX + 1)),
        };
        let errors = validate_draft(&bad, PAYLOAD_MAX + 1);
        assert_eq!(
            fields(&errors),
            [
                "machine_type",
                "format",
                "data_hash",
                "features[1]",
                "features[2]",
                "metrics.bad name",
                "metrics.rmse",
                "params.depth",
                "note",
                "payload"
            ]
        );
        assert!(errors[3].reason.contains("twice"), "{}", errors[3].reason);
        assert_eq!(fields(&validate_draft(&draft(), 0)), ["payload"]);
    }

    #[test]
    fn formats_are_a_name_and_a_positive_version() {
        for good in ["fb-predict/1", "factorybrain.predict.model/12", "x/3"] {
            assert!(validate_format("format", good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "fb-predict",
            "fb-predict/0",
            "fb-predict/v1",
            "/1",
            "FB/1",
            "fb predict/1",
            "a/1/2",
            "fb-predict/+1",
        ] {
            assert!(validate_format("format", bad).is_err(), "{bad}");
        }
        let long = format!("{}/1", "a".repeat(FORMAT_MAX));
        assert!(validate_format("format", &long).is_err());
    }

    #[test]
    fn kinds_parse_from_their_names_only() {
        for kind in ModelKind::ALL {
            assert_eq!(ModelKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(ModelKind::parse("RUL"), None);
        assert_eq!(ModelKind::parse("anomaly"), None);
    }
}
