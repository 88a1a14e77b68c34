//! Device credentials in portable SQL, stamped onto a store by
//! [`sql_device_store!`](crate::sql_device_store).

pub const DEVICE_COLUMNS: &str = "id, name, machine, site, secret_hash, created_by, created_at, \
     last_connected_at, revoked_at";

/// Implements `DeviceStore` for `$store` (see [`sql_identity_store!`](crate::sql_identity_store)
/// for what the store must provide), whose rows are `$row`.
#[macro_export]
macro_rules! sql_device_store {
    ($store:ty, $row:ty) => {
        impl $store {
            fn decode_device(
                row: &$row,
            ) -> Result<$crate::__private::fb_core::device::Device, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::fb_core::device::{Device, DeviceId};
                use $crate::__private::fb_core::identity::UserId;
                use $crate::__private::sqlx::Row as _;
                use $crate::corrupt;
                Ok(Device {
                    id: DeviceId(row.try_get::<$crate::__private::Uuid, _>("id").map_err(corrupt)?),
                    name: row.try_get("name").map_err(corrupt)?,
                    machine: row.try_get("machine").map_err(corrupt)?,
                    site: row.try_get("site").map_err(corrupt)?,
                    secret_hash: row.try_get("secret_hash").map_err(corrupt)?,
                    created_by: row
                        .try_get::<Option<$crate::__private::Uuid>, _>("created_by")
                        .map_err(corrupt)?
                        .map(UserId),
                    created_at: row.try_get("created_at").map_err(corrupt)?,
                    last_connected_at: row.try_get("last_connected_at").map_err(corrupt)?,
                    revoked_at: row.try_get("revoked_at").map_err(corrupt)?,
                })
            }
        }

        #[$crate::__private::async_trait]
        impl $crate::__private::fb_core::ports::DeviceStore for $store {
            async fn insert_device(
                &self,
                device: &$crate::__private::fb_core::device::Device,
            ) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let sql = format!(
                    "INSERT INTO devices ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    $crate::DEVICE_COLUMNS
                );
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(device.id.0)
                    .bind(&device.name)
                    .bind(&device.machine)
                    .bind(&device.site)
                    .bind(&device.secret_hash)
                    .bind(device.created_by.map(|u| u.0))
                    .bind(device.created_at)
                    .bind(device.last_connected_at)
                    .bind(device.revoked_at)
                    .execute(&self.pool);
                Self::timed("devices.insert", query).await.map(drop)
            }

            async fn device_by_name(
                &self,
                name: &str,
            ) -> Result<Option<$crate::__private::fb_core::device::Device>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!("SELECT {} FROM devices WHERE name = $1", $crate::DEVICE_COLUMNS);
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql)).bind(name).fetch_optional(&self.pool);
                Self::timed("devices.by_name", query).await?.as_ref().map(Self::decode_device).transpose()
            }

            async fn device_by_id(
                &self,
                id: $crate::__private::fb_core::device::DeviceId,
            ) -> Result<Option<$crate::__private::fb_core::device::Device>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!("SELECT {} FROM devices WHERE id = $1", $crate::DEVICE_COLUMNS);
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql)).bind(id.0).fetch_optional(&self.pool);
                Self::timed("devices.by_id", query).await?.as_ref().map(Self::decode_device).transpose()
            }

            async fn list_devices(
                &self,
            ) -> Result<Vec<$crate::__private::fb_core::device::Device>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!("SELECT {} FROM devices ORDER BY name", $crate::DEVICE_COLUMNS);
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool);
                Self::timed("devices.list", query).await?.iter().map(Self::decode_device).collect()
            }

            async fn revoke_device(
                &self,
                id: $crate::__private::fb_core::device::DeviceId,
                at: $crate::__private::OffsetDateTime,
            ) -> Result<Option<$crate::__private::fb_core::device::Device>, $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let sql = format!(
                    "UPDATE devices SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING {}",
                    $crate::DEVICE_COLUMNS
                );
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .bind(at)
                    .fetch_optional(&self.pool);
                Self::timed("devices.revoke", query).await?.as_ref().map(Self::decode_device).transpose()
            }

            async fn touch_device(
                &self,
                id: $crate::__private::fb_core::device::DeviceId,
                at: $crate::__private::OffsetDateTime,
            ) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let query = $crate::__private::sqlx::query("UPDATE devices SET last_connected_at = $2 WHERE id = $1")
                    .bind(id.0)
                    .bind(at)
                    .execute(&self.pool);
                Self::timed("devices.touch", query).await.map(drop)
            }
        }
    };
}
