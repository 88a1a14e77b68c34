//! The machines registry.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use crate::api::v1::{CreateMachineRequest, Machine, MachineList, UpdateMachineRequest};
use crate::audit::AuditFacts;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppJson, AppPath, Caller};
use crate::state::AppState;

/// All machines, ordered by id.
#[utoipa::path(get, operation_id = "list_machines", path = "/api/v1/machines", tag = "machines",
    responses((status = 200, description = "Machines", body = MachineList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<MachineList>, ApiError> {
    let machines = state.plant.list(&caller).await?;
    Ok(Json(MachineList {
        machines: machines.into_iter().map(Machine::from).collect(),
    }))
}

/// Registers a machine with its sensors.
#[utoipa::path(post, operation_id = "create_machine", path = "/api/v1/machines", tag = "machines",
    request_body = CreateMachineRequest,
    responses(
        (status = 201, description = "Created", body = Machine),
        (status = 400, description = "Invalid fields; details name each", body = ErrorBody),
        (status = 409, description = "The id is taken", body = ErrorBody),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppJson(body): AppJson<CreateMachineRequest>,
) -> (AuditFacts, Result<(StatusCode, Json<Machine>), ApiError>) {
    // The id comes from the body; failed attempts name it too.
    let facts = AuditFacts::target(format!("machine:{}", body.id));
    let created = state.plant.create(&caller, body.into()).await;
    (
        facts,
        created
            .map(|machine| (StatusCode::CREATED, Json(machine.into())))
            .map_err(ApiError::from),
    )
}

/// One machine.
#[utoipa::path(get, operation_id = "get_machine", path = "/api/v1/machines/{machine}", tag = "machines",
    params(("machine" = String, Path, description = "Machine id")),
    responses(
        (status = 200, description = "The machine", body = Machine),
        (status = 404, description = "No such machine", body = ErrorBody),
    ))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(id): AppPath<String>,
) -> Result<Json<Machine>, ApiError> {
    Ok(Json(state.plant.get(&caller, &id).await?.into()))
}

/// Changes some fields of a machine. Status, the active flag, sensors and maintenance dates
/// need `readings.write` (operators); name, type, class and location need `plant.manage`.
#[utoipa::path(patch, operation_id = "update_machine", path = "/api/v1/machines/{machine}", tag = "machines",
    params(("machine" = String, Path, description = "Machine id")),
    request_body = UpdateMachineRequest,
    responses(
        (status = 200, description = "Updated", body = Machine),
        (status = 400, description = "Invalid fields", body = ErrorBody),
        (status = 403, description = "The change needs plant.manage", body = ErrorBody),
        (status = 404, description = "No such machine", body = ErrorBody),
    ))]
pub(crate) async fn update(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(id): AppPath<String>,
    AppJson(body): AppJson<UpdateMachineRequest>,
) -> Result<Json<Machine>, ApiError> {
    Ok(Json(
        state.plant.update(&caller, &id, body.into()).await?.into(),
    ))
}

/// Removes a machine from the registry. Its stored readings stay until retention removes them.
#[utoipa::path(delete, operation_id = "delete_machine", path = "/api/v1/machines/{machine}", tag = "machines",
    params(("machine" = String, Path, description = "Machine id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such machine", body = ErrorBody),
    ))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(id): AppPath<String>,
) -> Result<StatusCode, ApiError> {
    state.plant.delete(&caller, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
