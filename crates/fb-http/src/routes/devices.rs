//! Device credentials: the MQTT users of the embedded broker.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use fb_app::devices::{DeviceRef, NewDevice};

use crate::api::v1::{CreateDeviceRequest, CreatedDevice, Device, DeviceList};
use crate::audit::AuditFacts;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{AppJson, AppPath, Caller};
use crate::state::AppState;

/// Every device credential by name, revoked ones included. Passwords are never listed.
#[utoipa::path(get, operation_id = "list_devices", path = "/api/v1/devices", tag = "devices",
    responses((status = 200, description = "Devices", body = DeviceList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<DeviceList>, ApiError> {
    let devices = state.devices.list(&caller).await?;
    Ok(Json(DeviceList {
        devices: devices.into_iter().map(Device::from).collect(),
    }))
}

/// Creates a device credential for the embedded MQTT broker. The password is returned once;
/// only its hash is stored.
#[utoipa::path(post, operation_id = "create_device", path = "/api/v1/devices", tag = "devices",
    request_body = CreateDeviceRequest,
    responses(
        (status = 201, description = "Created", body = CreatedDevice),
        (status = 400, description = "Invalid name, machine or site", body = ErrorBody),
        (status = 409, description = "The name is taken (`device_exists`)", body = ErrorBody),
    ))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppJson(body): AppJson<CreateDeviceRequest>,
) -> Result<(StatusCode, AuditFacts, Json<CreatedDevice>), ApiError> {
    let new = NewDevice {
        name: body.name,
        machine: body.machine,
        site: body.site,
    };
    let (device, password) = state.devices.create(&caller, new).await?;
    let mut facts = AuditFacts::target(format!("device:{}", device.name))
        .detail("device_id", device.id.to_string());
    if let Some(machine) = &device.machine {
        facts = facts.detail("machine", machine.as_str());
    }
    Ok((
        StatusCode::CREATED,
        facts,
        Json(CreatedDevice {
            device: device.into(),
            password,
        }),
    ))
}

/// Revokes a device credential (by name or id): the broker refuses it from now on and drops
/// its current connection. The record and the name are kept.
#[utoipa::path(post, operation_id = "revoke_device", path = "/api/v1/devices/{device}/revoke", tag = "devices",
    params(("device" = String, Path, description = "Device name or id")),
    responses(
        (status = 200, description = "Revoked", body = Device),
        (status = 404, description = "No such device", body = ErrorBody),
        (status = 409, description = "Already revoked", body = ErrorBody),
    ))]
pub(crate) async fn revoke(
    State(state): State<AppState>,
    Caller(caller): Caller,
    AppPath(device): AppPath<String>,
) -> Result<Json<Device>, ApiError> {
    let device = state
        .devices
        .revoke(&caller, &DeviceRef::parse(&device))
        .await?;
    Ok(Json(device.into()))
}
