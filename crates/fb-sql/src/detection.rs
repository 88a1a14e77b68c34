//! The alert and anomaly stores in portable SQL, stamped onto a store by
//! [`sql_detection_store!`](crate::sql_detection_store). Evidence is kept as JSON text.

pub const ALERT_COLUMNS: &str = "id, machine_id, kind, severity, status, title, evidence, \
     opened_at, last_seen_at, occurrences, ack_by, ack_at, ack_comment, resolved_by, resolved_at, \
     resolved_comment, escalation_level, escalated_at, version, updated_at";

pub const ANOMALY_COLUMNS: &str =
    "id, machine_id, sensor_key, kind, detector, severity, at, score, evidence";

use fb_core::detection::Evidence;
use fb_core::ports::StoreError;

pub fn evidence_to_json(evidence: &[Evidence]) -> Result<String, StoreError> {
    serde_json::to_string(evidence).map_err(|e| StoreError::Other(Box::new(e)))
}

pub fn evidence_from_json(text: &str) -> Result<Vec<Evidence>, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("evidence: {e}")))
}

/// Implements `AlertStore` and `AnomalyStore` for `$store` (see
/// [`sql_identity_store!`](crate::sql_identity_store) for what the store must provide), whose rows
/// are `$row`. `$unique_active` names the partial unique index that keeps one active alert per
/// machine and kind, as the backend reports it in a violation.
#[macro_export]
macro_rules! sql_detection_store {
    ($store:ty, $row:ty) => {
        impl $store {
            fn decode_alert(
                row: &$row,
            ) -> Result<$crate::__private::fb_core::alerts::Alert, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::fb_core::alerts::{Alert, AlertAction, AlertId, AlertKind, AlertStatus};
                use $crate::__private::fb_core::detection::Severity;
                use $crate::__private::fb_core::plant::MachineId;
                use $crate::__private::fb_core::ports::StoreError;
                use $crate::__private::sqlx::Row as _;
                use $crate::corrupt;
                let text = |name: &str| -> Result<String, StoreError> { row.try_get(name).map_err(corrupt) };
                let kind = text("kind")?;
                let severity = text("severity")?;
                let status = text("status")?;
                let action = |by: &str, at: &str, comment: &str| -> Result<Option<AlertAction>, StoreError> {
                    let by: Option<String> = row.try_get(by).map_err(corrupt)?;
                    let at: Option<$crate::__private::OffsetDateTime> = row.try_get(at).map_err(corrupt)?;
                    let comment: Option<String> = row.try_get(comment).map_err(corrupt)?;
                    Ok(match (by, at) {
                        (Some(by), Some(at)) => Some(AlertAction { by, at, comment }),
                        _ => None,
                    })
                };
                Ok(Alert {
                    id: AlertId(row.try_get("id").map_err(corrupt)?),
                    machine: MachineId(text("machine_id")?),
                    kind: AlertKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("alert kind {kind:?}")))?,
                    severity: Severity::parse(&severity).ok_or_else(|| StoreError::Corrupt(format!("severity {severity:?}")))?,
                    status: AlertStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("status {status:?}")))?,
                    title: text("title")?,
                    evidence: $crate::detection::evidence_from_json(&text("evidence")?)?,
                    opened_at: row.try_get("opened_at").map_err(corrupt)?,
                    last_seen_at: row.try_get("last_seen_at").map_err(corrupt)?,
                    occurrences: row.try_get::<i64, _>("occurrences").map_err(corrupt)?.max(0) as u64,
                    acknowledged: action("ack_by", "ack_at", "ack_comment")?,
                    resolved: action("resolved_by", "resolved_at", "resolved_comment")?,
                    escalation_level: row.try_get::<i64, _>("escalation_level").map_err(corrupt)?.max(0) as u32,
                    escalated_at: row.try_get("escalated_at").map_err(corrupt)?,
                    version: row.try_get::<i64, _>("version").map_err(corrupt)?.max(0) as u64,
                    updated_at: row.try_get("updated_at").map_err(corrupt)?,
                })
            }

            fn decode_anomaly(
                row: &$row,
            ) -> Result<$crate::__private::fb_core::detection::Anomaly, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::fb_core::detection::{Anomaly, AnomalyKind, DetectorKind, Severity};
                use $crate::__private::fb_core::plant::{MachineId, SensorKey};
                use $crate::__private::fb_core::ports::StoreError;
                use $crate::__private::sqlx::Row as _;
                use $crate::corrupt;
                let text = |name: &str| -> Result<String, StoreError> { row.try_get(name).map_err(corrupt) };
                let (kind, detector, severity) = (text("kind")?, text("detector")?, text("severity")?);
                let sensor: Option<String> = row.try_get("sensor_key").map_err(corrupt)?;
                Ok(Anomaly {
                    id: row.try_get("id").map_err(corrupt)?,
                    machine: MachineId(text("machine_id")?),
                    sensor: sensor.map(SensorKey),
                    kind: AnomalyKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("anomaly kind {kind:?}")))?,
                    detector: DetectorKind::parse(&detector).ok_or_else(|| StoreError::Corrupt(format!("detector {detector:?}")))?,
                    severity: Severity::parse(&severity).ok_or_else(|| StoreError::Corrupt(format!("severity {severity:?}")))?,
                    at: row.try_get("at").map_err(corrupt)?,
                    score: row.try_get("score").map_err(corrupt)?,
                    evidence: $crate::detection::evidence_from_json(&text("evidence")?)?,
                })
            }

            fn bind_alert<'q>(
                query: $crate::__private::sqlx::query::Query<'q, <$row as $crate::__private::sqlx::Row>::Database, <<$row as $crate::__private::sqlx::Row>::Database as $crate::__private::sqlx::Database>::Arguments>,
                a: &'q $crate::__private::fb_core::alerts::Alert,
                evidence: String,
            ) -> $crate::__private::sqlx::query::Query<'q, <$row as $crate::__private::sqlx::Row>::Database, <<$row as $crate::__private::sqlx::Row>::Database as $crate::__private::sqlx::Database>::Arguments> {
                query
                    .bind(a.id.0)
                    .bind(&a.machine.0)
                    .bind(a.kind.as_str())
                    .bind(a.severity.as_str())
                    .bind(a.status.as_str())
                    .bind(&a.title)
                    .bind(evidence)
                    .bind(a.opened_at)
                    .bind(a.last_seen_at)
                    .bind(a.occurrences as i64)
                    .bind(a.acknowledged.as_ref().map(|x| x.by.as_str()))
                    .bind(a.acknowledged.as_ref().map(|x| x.at))
                    .bind(a.acknowledged.as_ref().and_then(|x| x.comment.as_deref()))
                    .bind(a.resolved.as_ref().map(|x| x.by.as_str()))
                    .bind(a.resolved.as_ref().map(|x| x.at))
                    .bind(a.resolved.as_ref().and_then(|x| x.comment.as_deref()))
                    .bind(i64::from(a.escalation_level))
                    .bind(a.escalated_at)
                    .bind(a.version as i64)
                    .bind(a.updated_at)
            }
        }

        #[$crate::__private::async_trait]
        impl $crate::__private::fb_core::ports::AlertStore for $store {
            async fn insert_alert(
                &self,
                alert: &$crate::__private::fb_core::alerts::Alert,
            ) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let sql = format!(
                    "INSERT INTO alerts ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
                    $crate::ALERT_COLUMNS
                );
                let evidence = $crate::detection::evidence_to_json(&alert.evidence)?;
                let query = Self::bind_alert($crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql)), alert, evidence)
                    .execute(&self.pool);
                Self::timed("alerts.insert", query).await.map(drop)
            }

            async fn update_alert(
                &self,
                alert: &$crate::__private::fb_core::alerts::Alert,
                expected_version: u64,
            ) -> Result<bool, $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let sql = "UPDATE alerts SET machine_id = $2, kind = $3, severity = $4, status = $5, title = $6, \
                     evidence = $7, opened_at = $8, last_seen_at = $9, occurrences = $10, ack_by = $11, ack_at = $12, \
                     ack_comment = $13, resolved_by = $14, resolved_at = $15, resolved_comment = $16, \
                     escalation_level = $17, escalated_at = $18, version = $19, updated_at = $20 \
                     WHERE id = $1 AND version = $21";
                let evidence = $crate::detection::evidence_to_json(&alert.evidence)?;
                let query = Self::bind_alert($crate::__private::sqlx::query(sql), alert, evidence)
                    .bind(expected_version as i64)
                    .execute(&self.pool);
                Ok(Self::timed("alerts.update", query).await?.rows_affected() == 1)
            }

            async fn alert(
                &self,
                id: $crate::__private::fb_core::alerts::AlertId,
            ) -> Result<Option<$crate::__private::fb_core::alerts::Alert>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!("SELECT {} FROM alerts WHERE id = $1", $crate::ALERT_COLUMNS);
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .fetch_optional(&self.pool);
                Self::timed("alerts.get", query).await?.as_ref().map(Self::decode_alert).transpose()
            }

            async fn list_alerts(
                &self,
                f: &$crate::__private::fb_core::ports::AlertFilter,
            ) -> Result<Vec<$crate::__private::fb_core::alerts::Alert>, $crate::__private::fb_core::ports::StoreError> {
                // Sites are those of the alerts' machines, looked up in the same query so that
                // the limit counts only alerts the caller may see.
                let (site_sql, site_names) = match $crate::site_condition(&f.sites, "site", 8) {
                    Some((condition, names)) => (
                        format!(" AND machine_id IN (SELECT id FROM machines WHERE {condition})"),
                        names,
                    ),
                    None => (String::new(), Vec::new()),
                };
                let sql = format!(
                    "SELECT {} FROM alerts WHERE (CAST($1 AS TEXT) IS NULL OR machine_id = $1) \
                     AND (CAST($2 AS TEXT) IS NULL OR status = $2) \
                     AND ($3 = FALSE OR status <> 'resolved') \
                     AND (CAST($4 AS TEXT) IS NULL OR severity = $4) \
                     AND (CAST($5 AS TEXT) IS NULL OR kind = $5) \
                     AND ($6 IS NULL OR id < $6){site_sql} ORDER BY id DESC LIMIT $7",
                    $crate::ALERT_COLUMNS
                );
                let mut query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(f.machine.as_ref().map(|m| m.0.as_str()))
                    .bind(f.status.map(|s| s.as_str()))
                    .bind(f.active_only && f.status.is_none())
                    .bind(f.severity.map(|s| s.as_str()))
                    .bind(f.kind.map(|k| k.as_str()))
                    .bind(f.before.map(|b| b.0))
                    .bind(f.limit as i64);
                for name in site_names {
                    query = query.bind(name);
                }
                Self::timed("alerts.list", query.fetch_all(&self.pool)).await?.iter().map(Self::decode_alert).collect()
            }
        }

        #[$crate::__private::async_trait]
        impl $crate::__private::fb_core::ports::AnomalyStore for $store {
            async fn insert_anomalies(
                &self,
                anomalies: &[$crate::__private::fb_core::detection::Anomaly],
            ) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                if anomalies.is_empty() {
                    return Ok(());
                }
                let _turn = self.write_turn().await;
                let mut tx = Self::timed("anomalies.begin", self.pool.begin()).await?;
                let sql = format!(
                    "INSERT INTO anomalies ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    $crate::ANOMALY_COLUMNS
                );
                for a in anomalies {
                    let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql.clone()))
                        .bind(a.id)
                        .bind(&a.machine.0)
                        .bind(a.sensor.as_ref().map(|s| s.0.as_str()))
                        .bind(a.kind.as_str())
                        .bind(a.detector.as_str())
                        .bind(a.severity.as_str())
                        .bind(a.at)
                        .bind(a.score)
                        .bind($crate::detection::evidence_to_json(&a.evidence)?)
                        .execute(&mut *tx);
                    Self::timed("anomalies.insert", query).await?;
                }
                Self::timed("anomalies.commit", tx.commit()).await
            }

            async fn list_anomalies(
                &self,
                f: &$crate::__private::fb_core::ports::AnomalyFilter,
            ) -> Result<Vec<$crate::__private::fb_core::detection::Anomaly>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!(
                    "SELECT {} FROM anomalies WHERE machine_id = $1 AND at >= $2 AND at < $3 \
                     AND ($4 IS NULL OR id > $4) ORDER BY at, id LIMIT $5",
                    $crate::ANOMALY_COLUMNS
                );
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(&f.machine.0)
                    .bind(f.from)
                    .bind(f.to)
                    .bind(f.after)
                    .bind(f.limit as i64)
                    .fetch_all(&self.pool);
                Self::timed("anomalies.list", query).await?.iter().map(Self::decode_anomaly).collect()
            }
        }
    };
}
