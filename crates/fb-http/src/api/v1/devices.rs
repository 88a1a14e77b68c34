//! Device credentials of the embedded MQTT broker.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use fb_core::device;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Device {
    pub id: Uuid,
    /// The device's MQTT user name.
    #[schema(example = "press-01")]
    pub name: String,
    /// The machine it sends for, if one (informational).
    pub machine: Option<String>,
    /// The site it sits at, if given (informational).
    pub site: Option<String>,
    pub created_by: Option<Uuid>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The last successful connect to the embedded broker (recorded at most once a minute).
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_connected_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
}

impl From<device::Device> for Device {
    fn from(d: device::Device) -> Self {
        Self {
            id: d.id.0,
            name: d.name,
            machine: d.machine,
            site: d.site,
            created_by: d.created_by.map(|u| u.0),
            created_at: d.created_at,
            last_connected_at: d.last_connected_at,
            revoked_at: d.revoked_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDeviceRequest {
    /// 1–64 letters, digits, `.`, `_`, `-`; unique, never reused. Name a device after its
    /// machine to use the Mosquitto ACL pattern `factorybrain/+/%u/#`.
    #[schema(example = "press-01")]
    pub name: String,
    /// A machine id.
    #[serde(default)]
    pub machine: Option<String>,
    /// A site as it appears in topics.
    #[serde(default)]
    pub site: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
pub struct CreatedDevice {
    pub device: Device,
    /// The device's MQTT password, shown this once; only its hash is stored.
    pub password: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct DeviceList {
    pub devices: Vec<Device>,
}
