//! Storage port of device credentials (the embedded MQTT broker's users).

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::device::{Device, DeviceId};

use super::StoreError;

#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Inserts a new device. `Conflict { constraint: "device_name" }` when the name is taken,
    /// revoked devices included (a name is never reused, so an old secret can never match a new
    /// device of the same name).
    async fn insert_device(&self, device: &Device) -> Result<(), StoreError>;
    async fn device_by_name(&self, name: &str) -> Result<Option<Device>, StoreError>;
    async fn device_by_id(&self, id: DeviceId) -> Result<Option<Device>, StoreError>;
    /// All devices, ordered by name, revoked ones included.
    async fn list_devices(&self) -> Result<Vec<Device>, StoreError>;
    /// Marks the device revoked at `at` unless it already is; returns it as stored afterwards,
    /// or `None` if there is no such device.
    async fn revoke_device(
        &self,
        id: DeviceId,
        at: OffsetDateTime,
    ) -> Result<Option<Device>, StoreError>;
    /// Records that the device connected at `at`.
    async fn touch_device(&self, id: DeviceId, at: OffsetDateTime) -> Result<(), StoreError>;
}
