//! Energy recommendations in portable SQL, stamped onto a store by
//! [`sql_recommendation_store!`](crate::sql_recommendation_store).
//!
//! One row per recommendation. One proposed recommendation per machine and action is a partial
//! unique index (`energy_recommendations_one_open`); decisions are compare-and-set on
//! `status = 'proposed'`, so a recommendation is decided once, by whoever comes first.

use time::OffsetDateTime;
use uuid::Uuid;

use fb_core::energy::{
    CommandState, EnergyAction, Recommendation, RecommendationId, RecommendationStatus,
};
use fb_core::plant::MachineId;
use fb_core::ports::StoreError;

pub const RECOMMENDATION_COLUMNS: &str = "id, machine_id, site, action, status, \
     expected_kwh_saved, expected_cost_saved, expected_co2_kg_saved, reason, created_at, \
     expires_at, decided_at, decided_by, command_id, command_state";

/// The columns of one row, as read, before they are checked.
pub struct RecommendationRow {
    pub id: Uuid,
    pub machine_id: String,
    pub site: String,
    pub action: String,
    pub status: String,
    pub expected_kwh_saved: f64,
    pub expected_cost_saved: f64,
    pub expected_co2_kg_saved: f64,
    pub reason: String,
    pub created_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    pub decided_at: Option<OffsetDateTime>,
    pub decided_by: Option<String>,
    pub command_id: Option<Uuid>,
    pub command_state: Option<String>,
}

impl RecommendationRow {
    pub fn decode(self) -> Result<Recommendation, StoreError> {
        let id = self.id;
        let bad = |what: &str, v: &str| {
            StoreError::Corrupt(format!("energy recommendation {id}: {what} {v:?}"))
        };
        Ok(Recommendation {
            id: RecommendationId(self.id),
            machine: MachineId(self.machine_id),
            site: self.site,
            action: EnergyAction::parse(&self.action).ok_or_else(|| bad("action", &self.action))?,
            status: RecommendationStatus::parse(&self.status)
                .ok_or_else(|| bad("status", &self.status))?,
            expected_kwh_saved: self.expected_kwh_saved,
            expected_cost_saved: self.expected_cost_saved,
            expected_co2_kg_saved: self.expected_co2_kg_saved,
            reason: self.reason,
            created_at: self.created_at,
            expires_at: self.expires_at,
            decided_at: self.decided_at,
            decided_by: self.decided_by,
            command_id: self.command_id,
            command_state: match self.command_state {
                None => None,
                Some(s) => Some(CommandState::parse(&s).ok_or_else(|| bad("command state", &s))?),
            },
        })
    }
}

/// Implements `RecommendationStore` for `$store` (see
/// [`sql_identity_store!`](crate::sql_identity_store) for what the store must provide), whose
/// rows are `$row`. The backend reports a violation of `energy_recommendations_one_open` as
/// `Conflict { constraint: "recommendation_open" }`.
#[macro_export]
macro_rules! sql_recommendation_store {
    ($store:ty, $row:ty) => {
        impl $store {
            fn decode_recommendation(row: &$row) -> Result<$crate::__private::fb_core::energy::Recommendation, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::sqlx::Row as _;
                use $crate::corrupt;
                $crate::energy::RecommendationRow {
                    id: row.try_get("id").map_err(corrupt)?,
                    machine_id: row.try_get("machine_id").map_err(corrupt)?,
                    site: row.try_get("site").map_err(corrupt)?,
                    action: row.try_get("action").map_err(corrupt)?,
                    status: row.try_get("status").map_err(corrupt)?,
                    expected_kwh_saved: row.try_get("expected_kwh_saved").map_err(corrupt)?,
                    expected_cost_saved: row.try_get("expected_cost_saved").map_err(corrupt)?,
                    expected_co2_kg_saved: row.try_get("expected_co2_kg_saved").map_err(corrupt)?,
                    reason: row.try_get("reason").map_err(corrupt)?,
                    created_at: row.try_get("created_at").map_err(corrupt)?,
                    expires_at: row.try_get("expires_at").map_err(corrupt)?,
                    decided_at: row.try_get("decided_at").map_err(corrupt)?,
                    decided_by: row.try_get("decided_by").map_err(corrupt)?,
                    command_id: row.try_get("command_id").map_err(corrupt)?,
                    command_state: row.try_get("command_state").map_err(corrupt)?,
                }
                .decode()
            }
        }

        #[$crate::__private::async_trait]
        impl $crate::__private::fb_core::ports::RecommendationStore for $store {
            async fn insert_recommendation(
                &self,
                r: &$crate::__private::fb_core::energy::Recommendation,
            ) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let sql = format!(
                    "INSERT INTO energy_recommendations ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, \
                     $8, $9, $10, $11, $12, $13, $14, $15)",
                    $crate::RECOMMENDATION_COLUMNS
                );
                let insert = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(r.id.0)
                    .bind(&r.machine.0)
                    .bind(&r.site)
                    .bind(r.action.as_str())
                    .bind(r.status.as_str())
                    .bind(r.expected_kwh_saved)
                    .bind(r.expected_cost_saved)
                    .bind(r.expected_co2_kg_saved)
                    .bind(&r.reason)
                    .bind(r.created_at)
                    .bind(r.expires_at)
                    .bind(r.decided_at)
                    .bind(r.decided_by.as_deref())
                    .bind(r.command_id)
                    .bind(r.command_state.map(|s| s.as_str()))
                    .execute(&self.pool);
                Self::timed("recommendations.insert", insert).await.map(|_| ())
            }

            async fn recommendation(
                &self,
                id: $crate::__private::fb_core::energy::RecommendationId,
            ) -> Result<Option<$crate::__private::fb_core::energy::Recommendation>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!("SELECT {} FROM energy_recommendations WHERE id = $1", $crate::RECOMMENDATION_COLUMNS);
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .fetch_optional(&self.pool);
                Self::timed("recommendations.get", query).await?.as_ref().map(Self::decode_recommendation).transpose()
            }

            async fn list_recommendations(
                &self,
                f: &$crate::__private::fb_core::ports::RecommendationFilter,
            ) -> Result<Vec<$crate::__private::fb_core::energy::Recommendation>, $crate::__private::fb_core::ports::StoreError> {
                let (site_sql, site_names) = match $crate::site_condition(&f.sites, "site", 4) {
                    Some((condition, names)) => (format!(" AND {condition}"), names),
                    None => (String::new(), Vec::new()),
                };
                let sql = format!(
                    "SELECT {} FROM energy_recommendations WHERE (CAST($1 AS TEXT) IS NULL OR status = $1) \
                     AND (CAST($2 AS TEXT) IS NULL OR machine_id = $2){site_sql} ORDER BY id DESC LIMIT $3",
                    $crate::RECOMMENDATION_COLUMNS
                );
                let mut query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(f.status.map(|s| s.as_str()))
                    .bind(f.machine.as_ref().map(|m| m.0.as_str()))
                    .bind(i64::try_from(f.limit).unwrap_or(i64::MAX));
                for name in site_names {
                    query = query.bind(name);
                }
                Self::timed("recommendations.list", query.fetch_all(&self.pool)).await?.iter().map(Self::decode_recommendation).collect()
            }

            async fn open_recommendation(
                &self,
                machine: &$crate::__private::fb_core::plant::MachineId,
                action: $crate::__private::fb_core::energy::EnergyAction,
            ) -> Result<Option<$crate::__private::fb_core::energy::Recommendation>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!(
                    "SELECT {} FROM energy_recommendations WHERE machine_id = $1 AND action = $2 \
                     AND status = 'proposed'",
                    $crate::RECOMMENDATION_COLUMNS
                );
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(&machine.0)
                    .bind(action.as_str())
                    .fetch_optional(&self.pool);
                Self::timed("recommendations.open", query).await?.as_ref().map(Self::decode_recommendation).transpose()
            }

            async fn decide_recommendation(
                &self,
                id: $crate::__private::fb_core::energy::RecommendationId,
                to: $crate::__private::fb_core::energy::RecommendationStatus,
                by: &str,
                at: $crate::__private::OffsetDateTime,
                command: Option<$crate::__private::Uuid>,
            ) -> Result<bool, $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let update = $crate::__private::sqlx::query(
                    "UPDATE energy_recommendations SET status = $2, decided_by = $3, decided_at = $4, \
                     command_id = $5, command_state = $6 WHERE id = $1 AND status = 'proposed'",
                )
                .bind(id.0)
                .bind(to.as_str())
                .bind(by)
                .bind(at)
                .bind(command)
                .bind(command.map(|_| $crate::__private::fb_core::energy::CommandState::Pending.as_str()))
                .execute(&self.pool);
                Ok(Self::timed("recommendations.decide", update).await?.rows_affected() == 1)
            }

            async fn mark_command_sent(
                &self,
                id: $crate::__private::fb_core::energy::RecommendationId,
            ) -> Result<bool, $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let update = $crate::__private::sqlx::query(
                    "UPDATE energy_recommendations SET command_state = 'sent' \
                     WHERE id = $1 AND command_state = 'pending'",
                )
                .bind(id.0)
                .execute(&self.pool);
                Ok(Self::timed("recommendations.sent", update).await?.rows_affected() == 1)
            }

            async fn expire_recommendations(
                &self,
                now: $crate::__private::OffsetDateTime,
            ) -> Result<u64, $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let update = $crate::__private::sqlx::query(
                    "UPDATE energy_recommendations SET status = 'expired' \
                     WHERE status = 'proposed' AND expires_at <= $1",
                )
                .bind(now)
                .execute(&self.pool);
                Ok(Self::timed("recommendations.expire", update).await?.rows_affected())
            }
        }
    };
}
