//! The model registry: list, look at, promote and roll back prediction models. Models are
//! registered by the trainer (`factorybrain model train`), not over the API, and their payloads
//! never leave the server.

use axum::Json;
use axum::extract::State;

use fb_core::model::{ModelId, ModelKind, StoredModel};
use fb_core::ports::ModelFilter;

use crate::api::v1::{
    Model, ModelActivation, ModelActivationList, ModelLine, ModelLineParams, ModelList,
    ModelsParams,
};
use crate::audit::AuditFacts;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppJson, AppPath, AppQuery, Caller};
use crate::state::AppState;

fn kind_param(raw: &str) -> Result<ModelKind, ApiError> {
    ModelKind::parse(raw)
        .ok_or_else(|| ApiError::invalid_parameter("kind", "must be rul or failure"))
}

/// What the audit log keeps of an activation: the model, its line and version.
fn activation_facts(model: &StoredModel) -> AuditFacts {
    AuditFacts::target(format!("model:{}", model.id))
        .detail("kind", model.kind.as_str())
        .detail("machine_type", model.machine_type.as_str())
        .detail("version", model.version.to_string())
}

/// Registered models without their payloads, by kind, machine type and newest version first,
/// with the payload formats this server reads.
#[utoipa::path(get, operation_id = "list_models", path = "/api/v1/models", tag = "models",
    params(ModelsParams),
    responses(
        (status = 200, description = "Models", body = ModelList),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppQuery(params): AppQuery<ModelsParams>,
) -> Result<Json<ModelList>, ApiError> {
    let filter = ModelFilter {
        kind: params.kind.as_deref().map(kind_param).transpose()?,
        machine_type: params.machine_type.map(|t| t.trim().to_owned()),
    };
    let models = state.models.list(&caller, &filter).await?;
    Ok(Json(ModelList {
        models: models.into_iter().map(Model::from).collect(),
        readable_formats: state.models.formats(),
    }))
}

/// Who made which model of a kind and machine type active, when, and how; newest first.
#[utoipa::path(get, operation_id = "list_model_activations", path = "/api/v1/models/activations", tag = "models",
    params(ModelLineParams),
    responses(
        (status = 200, description = "Activations", body = ModelActivationList),
        (status = 400, description = "Invalid parameter", body = ErrorBody),
    ))]
pub(crate) async fn activations(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppQuery(params): AppQuery<ModelLineParams>,
) -> Result<Json<ModelActivationList>, ApiError> {
    let kind = kind_param(&params.kind)?;
    let activations = state
        .models
        .activations(&caller, kind, &params.machine_type)
        .await?;
    Ok(Json(ModelActivationList {
        activations: activations.into_iter().map(ModelActivation::from).collect(),
    }))
}

/// One model's metadata (never its payload).
#[utoipa::path(get, operation_id = "get_model", path = "/api/v1/models/{id}", tag = "models",
    params(("id" = uuid::Uuid, Path, description = "Model id")),
    responses(
        (status = 200, description = "The model", body = Model),
        (status = 404, description = "No such model (`model_not_found`)", body = ErrorBody),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(id): AppPath<uuid::Uuid>,
) -> Result<Json<Model>, ApiError> {
    Ok(Json(state.models.get(&caller, ModelId(id)).await?.into()))
}

/// Makes the model the active one of its kind and machine type. This server loads it first: a
/// model it cannot load is not made active. Other servers load it within a few seconds.
#[utoipa::path(post, operation_id = "promote_model", path = "/api/v1/models/{id}/promote", tag = "models",
    params(("id" = uuid::Uuid, Path, description = "Model id")),
    responses(
        (status = 200, description = "The model, now active", body = Model),
        (status = 404, description = "No such model (`model_not_found`)", body = ErrorBody),
        (status = 409, description = "This server cannot read the model's format (`model_format_unsupported`) or load its payload (`model_payload_invalid`); the active model is unchanged", body = ErrorBody),
    ))]
pub(crate) async fn promote(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(id): AppPath<uuid::Uuid>,
) -> Result<(AuditFacts, Json<Model>), ApiError> {
    let model = state.models.promote(&caller, ModelId(id)).await?;
    Ok((activation_facts(&model), Json(model.into())))
}

/// Makes the model that was active before the current one active again; a second rollback goes
/// one promotion further back.
#[utoipa::path(post, operation_id = "rollback_model", path = "/api/v1/models/rollback", tag = "models",
    request_body = ModelLine,
    responses(
        (status = 200, description = "The model now active again", body = Model),
        (status = 400, description = "Invalid kind or machine type", body = ErrorBody),
        (status = 409, description = "Nothing to roll back to (`no_previous_model`), the earlier model cannot be loaded here (`model_format_unsupported`, `model_payload_invalid`), or the line changed meanwhile (`model_activation_conflict`)", body = ErrorBody),
    ))]
pub(crate) async fn rollback(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppJson(line): AppJson<ModelLine>,
) -> Result<(AuditFacts, Json<Model>), ApiError> {
    let model = state
        .models
        .rollback(&caller, line.kind.into(), &line.machine_type)
        .await?;
    Ok((activation_facts(&model), Json(model.into())))
}
