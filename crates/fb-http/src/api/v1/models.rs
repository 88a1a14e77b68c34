//! `/api/v1/models` bodies: the model registry's metadata. Payloads never travel over the API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use fb_core::model;

wire_enum!(
    /// What a model predicts: `rul` (remaining useful life) or `failure` (the probability of a
    /// failure within a horizon).
    ModelKind <=> model::ModelKind { Rul, Failure }
);
wire_enum!(
    /// How a model became active: promoted, or restored by a rollback.
    ActivationAction <=> model::ActivationAction { Promote, Rollback }
);

/// A registered model, without its payload.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Model {
    pub id: Uuid,
    pub kind: ModelKind,
    /// The machines it serves (`machine_type` of a machine).
    #[schema(example = "centrifugal_pump")]
    pub machine_type: String,
    /// 1, 2, 3… per kind and machine type, in registration order.
    pub version: u32,
    /// The payload's format, `<name>/<version>`.
    #[schema(example = "fb-predict/1")]
    pub format: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Who registered it: `user:<name>`, `api_key:<id>` or `system`.
    pub created_by: String,
    /// Hash of the training data.
    pub data_hash: String,
    /// Feature names, in the order the model reads them.
    pub features: Vec<String>,
    /// Training and validation figures, e.g. `rmse`.
    pub metrics: BTreeMap<String, f64>,
    /// Training settings.
    pub params: BTreeMap<String, String>,
    pub note: Option<String>,
    pub payload_bytes: u64,
    /// SHA-256 of the payload, hex.
    pub payload_sha256: String,
    /// The active model of its kind and machine type.
    pub active: bool,
    /// When it became active, while it is.
    #[serde(with = "time::serde::rfc3339::option")]
    pub activated_at: Option<OffsetDateTime>,
}

impl From<model::StoredModel> for Model {
    fn from(m: model::StoredModel) -> Self {
        Self {
            id: m.id.0,
            kind: m.kind.into(),
            machine_type: m.machine_type,
            version: m.version,
            format: m.format,
            created_at: m.created_at,
            created_by: m.created_by,
            data_hash: m.data_hash,
            features: m.features,
            metrics: m.metrics,
            params: m.params,
            note: m.note,
            payload_bytes: m.payload_bytes,
            payload_sha256: m.payload_sha256,
            active: m.active,
            activated_at: m.activated_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ModelList {
    pub models: Vec<Model>,
    /// The payload formats this server reads: only models of these can be made active here.
    pub readable_formats: Vec<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ModelsParams {
    /// `rul` or `failure`.
    pub kind: Option<String>,
    pub machine_type: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ModelLineParams {
    /// `rul` or `failure`.
    pub kind: String,
    pub machine_type: String,
}

/// A kind and machine type: one line of model versions.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ModelLine {
    pub kind: ModelKind,
    #[schema(example = "centrifugal_pump")]
    pub machine_type: String,
}

/// One activation of a line: who made which model active, when, and how.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ModelActivation {
    pub id: Uuid,
    /// 1, 2, 3… per kind and machine type.
    pub seq: u64,
    pub model_id: Uuid,
    pub version: u32,
    pub action: ActivationAction,
    #[serde(with = "time::serde::rfc3339")]
    pub activated_at: OffsetDateTime,
    pub activated_by: String,
}

impl From<model::ModelActivation> for ModelActivation {
    fn from(a: model::ModelActivation) -> Self {
        Self {
            id: a.id,
            seq: a.seq,
            model_id: a.model_id.0,
            version: a.version,
            action: a.action.into(),
            activated_at: a.activated_at,
            activated_by: a.activated_by,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ModelActivationList {
    /// Newest first, at most 100.
    pub activations: Vec<ModelActivation>,
}
