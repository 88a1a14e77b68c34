//! The machines registry in portable SQL, stamped onto a store by
//! [`sql_machine_store!`](crate::sql_machine_store). Sensors are kept as a JSON document in the
//! machine row: they are read and written with their machine, never on their own.

use fb_core::plant::SensorSpec;
use fb_core::ports::StoreError;

pub const MACHINE_COLUMNS: &str = "id, name, machine_type, machine_class, site, area, line, cell, \
     status, active, sensors, last_maintenance, next_maintenance, health_score, \
     failure_probability, rul_hours, created_at, updated_at";

pub fn sensors_to_json(sensors: &[SensorSpec]) -> Result<String, StoreError> {
    serde_json::to_string(sensors).map_err(|e| StoreError::Other(Box::new(e)))
}

pub fn sensors_from_json(json: &str) -> Result<Vec<SensorSpec>, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("sensors: {e}")))
}

/// Implements `MachineStore` for `$store` (with a `pool` field and an associated `timed`, as for
/// [`sql_identity_store!`](crate::sql_identity_store)), whose rows are `$row`.
#[macro_export]
macro_rules! sql_machine_store {
    ($store:ty, $row:ty) => {
        impl $store {
            fn decode_machine(
                row: &$row,
            ) -> Result<$crate::__private::fb_core::plant::Machine, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::fb_core::plant::{Location, Machine, MachineClass, MachineId, MachineStatus};
                use $crate::__private::fb_core::ports::StoreError;
                use $crate::__private::sqlx::Row as _;
                use $crate::corrupt;
                let status: String = row.try_get("status").map_err(corrupt)?;
                let class: Option<String> = row.try_get("machine_class").map_err(corrupt)?;
                let sensors: String = row.try_get("sensors").map_err(corrupt)?;
                Ok(Machine {
                    id: MachineId(row.try_get("id").map_err(corrupt)?),
                    name: row.try_get("name").map_err(corrupt)?,
                    machine_type: row.try_get("machine_type").map_err(corrupt)?,
                    machine_class: class
                        .map(|c| MachineClass::parse(&c).ok_or_else(|| StoreError::Corrupt(format!("machine_class {c:?}"))))
                        .transpose()?,
                    location: Location {
                        site: row.try_get("site").map_err(corrupt)?,
                        area: row.try_get("area").map_err(corrupt)?,
                        line: row.try_get("line").map_err(corrupt)?,
                        cell: row.try_get("cell").map_err(corrupt)?,
                    },
                    status: MachineStatus::parse(&status)
                        .ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
                    active: row.try_get("active").map_err(corrupt)?,
                    sensors: $crate::sensors_from_json(&sensors)?,
                    last_maintenance: row.try_get("last_maintenance").map_err(corrupt)?,
                    next_maintenance: row.try_get("next_maintenance").map_err(corrupt)?,
                    health_score: row.try_get("health_score").map_err(corrupt)?,
                    failure_probability: row.try_get("failure_probability").map_err(corrupt)?,
                    rul_hours: row.try_get("rul_hours").map_err(corrupt)?,
                    created_at: row.try_get("created_at").map_err(corrupt)?,
                    updated_at: row.try_get("updated_at").map_err(corrupt)?,
                })
            }
        }

        #[$crate::__private::async_trait]
        impl $crate::__private::fb_core::ports::MachineStore for $store {
            async fn insert_machine(
                &self,
                m: &$crate::__private::fb_core::plant::Machine,
            ) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let sql = format!(
                    "INSERT INTO machines ({}) VALUES \
                     ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)",
                    $crate::MACHINE_COLUMNS
                );
                let sensors = $crate::sensors_to_json(&m.sensors)?;
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(&m.id.0)
                    .bind(&m.name)
                    .bind(&m.machine_type)
                    .bind(m.machine_class.map(|c| c.as_str()))
                    .bind(&m.location.site)
                    .bind(&m.location.area)
                    .bind(&m.location.line)
                    .bind(&m.location.cell)
                    .bind(m.status.as_str())
                    .bind(m.active)
                    .bind(sensors)
                    .bind(m.last_maintenance)
                    .bind(m.next_maintenance)
                    .bind(m.health_score)
                    .bind(m.failure_probability)
                    .bind(m.rul_hours)
                    .bind(m.created_at)
                    .bind(m.updated_at)
                    .execute(&self.pool);
                Self::timed("machines.insert", query).await.map(drop)
            }

            async fn machine(
                &self,
                id: &$crate::__private::fb_core::plant::MachineId,
            ) -> Result<Option<$crate::__private::fb_core::plant::Machine>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!("SELECT {} FROM machines WHERE id = $1", $crate::MACHINE_COLUMNS);
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(&id.0)
                    .fetch_optional(&self.pool);
                Self::timed("machines.get", query).await?.as_ref().map(Self::decode_machine).transpose()
            }

            async fn list_machines(
                &self,
                sites: &$crate::__private::fb_core::identity::SiteScope,
            ) -> Result<Vec<$crate::__private::fb_core::plant::Machine>, $crate::__private::fb_core::ports::StoreError> {
                let (condition, names) = $crate::site_condition(sites, "site", 1)
                    .unwrap_or_else(|| ("1 = 1".to_owned(), Vec::new()));
                let sql = format!(
                    "SELECT {} FROM machines WHERE {condition} ORDER BY id",
                    $crate::MACHINE_COLUMNS
                );
                let mut query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql));
                for name in names {
                    query = query.bind(name);
                }
                Self::timed("machines.list", query.fetch_all(&self.pool)).await?.iter().map(Self::decode_machine).collect()
            }

            async fn update_machine(
                &self,
                m: &$crate::__private::fb_core::plant::Machine,
            ) -> Result<bool, $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let sensors = $crate::sensors_to_json(&m.sensors)?;
                let query = $crate::__private::sqlx::query(
                    "UPDATE machines SET name = $2, machine_type = $3, machine_class = $4, site = $5, \
                     area = $6, line = $7, cell = $8, status = $9, active = $10, sensors = $11, \
                     last_maintenance = $12, next_maintenance = $13, health_score = $14, \
                     failure_probability = $15, rul_hours = $16, updated_at = $17 WHERE id = $1",
                )
                .bind(&m.id.0)
                .bind(&m.name)
                .bind(&m.machine_type)
                .bind(m.machine_class.map(|c| c.as_str()))
                .bind(&m.location.site)
                .bind(&m.location.area)
                .bind(&m.location.line)
                .bind(&m.location.cell)
                .bind(m.status.as_str())
                .bind(m.active)
                .bind(sensors)
                .bind(m.last_maintenance)
                .bind(m.next_maintenance)
                .bind(m.health_score)
                .bind(m.failure_probability)
                .bind(m.rul_hours)
                .bind(m.updated_at)
                .execute(&self.pool);
                Ok(Self::timed("machines.update", query).await?.rows_affected() == 1)
            }

            async fn delete_machine(
                &self,
                id: &$crate::__private::fb_core::plant::MachineId,
            ) -> Result<bool, $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let query = $crate::__private::sqlx::query("DELETE FROM machines WHERE id = $1")
                    .bind(&id.0)
                    .execute(&self.pool);
                Ok(Self::timed("machines.delete", query).await?.rows_affected() == 1)
            }

            async fn set_machine_health(
                &self,
                id: &$crate::__private::fb_core::plant::MachineId,
                health: f64,
                at: $crate::__private::OffsetDateTime,
            ) -> Result<bool, $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let query = $crate::__private::sqlx::query(
                    "UPDATE machines SET health_score = $2, updated_at = $3 WHERE id = $1",
                )
                .bind(&id.0)
                .bind(health)
                .bind(at)
                .execute(&self.pool);
                Ok(Self::timed("machines.set_health", query).await?.rows_affected() == 1)
            }

            async fn set_machine_prediction(
                &self,
                id: &$crate::__private::fb_core::plant::MachineId,
                failure_probability: Option<f64>,
                rul_hours: Option<f64>,
                at: $crate::__private::OffsetDateTime,
            ) -> Result<bool, $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let query = $crate::__private::sqlx::query(
                    "UPDATE machines SET failure_probability = $2, rul_hours = $3, updated_at = $4 \
                     WHERE id = $1",
                )
                .bind(&id.0)
                .bind(failure_probability)
                .bind(rul_hours)
                .bind(at)
                .execute(&self.pool);
                Ok(Self::timed("machines.set_prediction", query).await?.rows_affected() == 1)
            }
        }
    };
}
