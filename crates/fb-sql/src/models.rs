//! The model registry in portable SQL, stamped onto a store by
//! [`sql_model_store!`](crate::sql_model_store).
//!
//! Features, metrics and params are JSON text. Metrics are written as strings holding Rust's
//! shortest round-trip form of each number and parsed back with Rust's exact parser: serde_json's
//! default float parsing may be one unit in the last place off, and a registry must return the
//! figures it was given.

use std::collections::BTreeMap;

use time::OffsetDateTime;
use uuid::Uuid;

use fb_core::model::{ActivationAction, ModelActivation, ModelId, ModelKind, StoredModel};
use fb_core::ports::{NewModel, StoreError};

/// A model's metadata with its activation state: `m` is the model, `a` its line's current
/// activation when that is this model (see [`MODEL_FROM`]).
pub const MODEL_COLUMNS: &str = "m.id, m.kind, m.machine_type, m.version, m.format, \
     m.created_at, m.created_by, m.data_hash, m.features, m.metrics, m.params, m.note, \
     m.payload_bytes, m.payload_sha256, a.activated_at AS activated_at";

/// Models joined with their line's current activation, which matches only the active model.
pub const MODEL_FROM: &str = "models m \
     LEFT JOIN model_lines l ON l.kind = m.kind AND l.machine_type = m.machine_type \
     LEFT JOIN model_activations a ON a.id = l.current_activation AND a.model_id = m.id";

pub const MODEL_ACTIVATION_COLUMNS: &str = "a.id, a.kind, a.machine_type, a.seq, a.model_id, \
     m.version, a.action, a.activated_at, a.activated_by";

fn encode(json: serde_json::Result<String>) -> Result<String, StoreError> {
    json.map_err(|e| StoreError::Other(Box::new(e)))
}

/// The draft's features, metrics and params as stored.
pub fn encode_lists(new: &NewModel<'_>) -> Result<[String; 3], StoreError> {
    let d = new.draft;
    let metrics: BTreeMap<&str, String> = d
        .metrics
        .iter()
        .map(|(name, value)| (name.as_str(), value.to_string()))
        .collect();
    Ok([
        encode(serde_json::to_string(&d.features))?,
        encode(serde_json::to_string(&metrics))?,
        encode(serde_json::to_string(&d.params))?,
    ])
}

/// The model just inserted with `version`, as the store now holds it (not active).
pub fn inserted(new: &NewModel<'_>, version: i64) -> Result<StoredModel, StoreError> {
    let version = u32::try_from(version)
        .map_err(|_| StoreError::Corrupt(format!("model version {version}")))?;
    Ok(new.stored(version))
}

/// The columns of one model row, as read, before they are checked.
pub struct ModelRow {
    pub id: Uuid,
    pub kind: String,
    pub machine_type: String,
    pub version: i64,
    pub format: String,
    pub created_at: OffsetDateTime,
    pub created_by: String,
    pub data_hash: String,
    pub features: String,
    pub metrics: String,
    pub params: String,
    pub note: Option<String>,
    pub payload_bytes: i64,
    pub payload_sha256: String,
    pub activated_at: Option<OffsetDateTime>,
}

fn kind(name: &str) -> Result<ModelKind, String> {
    ModelKind::parse(name).ok_or_else(|| format!("kind {name:?} is not one"))
}

impl ModelRow {
    pub fn decode(self) -> Result<StoredModel, StoreError> {
        let id = self.id;
        self.check()
            .map_err(|reason| StoreError::Corrupt(format!("model {id}: {reason}")))
    }

    fn check(self) -> Result<StoredModel, String> {
        let metrics: BTreeMap<String, String> = serde_json::from_str(&self.metrics)
            .map_err(|e| format!("metrics are not a JSON object of strings: {e}"))?;
        let metrics = metrics
            .into_iter()
            .map(|(name, text)| match text.parse::<f64>() {
                Ok(value) => Ok((name, value)),
                Err(_) => Err(format!("metric {name} is {text:?}, not a number")),
            })
            .collect::<Result<_, _>>()?;
        Ok(StoredModel {
            id: ModelId(self.id),
            kind: kind(&self.kind)?,
            machine_type: self.machine_type,
            version: u32::try_from(self.version)
                .map_err(|_| format!("version {}", self.version))?,
            format: self.format,
            created_at: self.created_at,
            created_by: self.created_by,
            data_hash: self.data_hash,
            features: serde_json::from_str(&self.features)
                .map_err(|e| format!("features are not a JSON array of strings: {e}"))?,
            metrics,
            params: serde_json::from_str(&self.params)
                .map_err(|e| format!("params are not a JSON object of strings: {e}"))?,
            note: self.note,
            payload_bytes: u64::try_from(self.payload_bytes)
                .map_err(|_| format!("payload size {}", self.payload_bytes))?,
            payload_sha256: self.payload_sha256,
            active: self.activated_at.is_some(),
            activated_at: self.activated_at,
        })
    }
}

/// The columns of one activation row (with its model's version), as read.
pub struct ActivationRow {
    pub id: Uuid,
    pub kind: String,
    pub machine_type: String,
    pub seq: i64,
    pub model_id: Uuid,
    pub version: i64,
    pub action: String,
    pub activated_at: OffsetDateTime,
    pub activated_by: String,
}

impl ActivationRow {
    pub fn decode(self) -> Result<ModelActivation, StoreError> {
        let corrupt =
            |reason: String| StoreError::Corrupt(format!("model activation {}: {reason}", self.id));
        Ok(ModelActivation {
            id: self.id,
            kind: kind(&self.kind).map_err(corrupt)?,
            machine_type: self.machine_type.clone(),
            seq: u64::try_from(self.seq).map_err(|_| corrupt(format!("seq {}", self.seq)))?,
            model_id: ModelId(self.model_id),
            version: u32::try_from(self.version)
                .map_err(|_| corrupt(format!("version {}", self.version)))?,
            action: ActivationAction::parse(&self.action)
                .ok_or_else(|| corrupt(format!("action {:?} is not one", self.action)))?,
            activated_at: self.activated_at,
            activated_by: self.activated_by.clone(),
        })
    }
}

/// Implements `ModelStore` for `$store` (see [`sql_identity_store!`](crate::sql_identity_store)
/// for what the store must provide), whose rows are `$row`.
///
/// Every write holds the store's write turn and, inside its transaction, first updates its
/// line's row in `model_lines` (an insert's upsert bumps the version counter; an activation's
/// no-op update returns the counter and the current activation). On PostgreSQL that locks the
/// row until commit; on SQLite it takes the database's write lock before anything is read, so
/// no read snapshot can go stale. Either way writers of one line, on any node, go one at a
/// time: versions are consecutive and the line's one current activation is decided in order.
#[macro_export]
macro_rules! sql_model_store {
    ($store:ty, $row:ty) => {
        impl $store {
            fn decode_model(row: &$row) -> Result<$crate::__private::fb_core::model::StoredModel, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::sqlx::Row as _;
                use $crate::corrupt;
                $crate::models::ModelRow {
                    id: row.try_get("id").map_err(corrupt)?,
                    kind: row.try_get("kind").map_err(corrupt)?,
                    machine_type: row.try_get("machine_type").map_err(corrupt)?,
                    version: row.try_get("version").map_err(corrupt)?,
                    format: row.try_get("format").map_err(corrupt)?,
                    created_at: row.try_get("created_at").map_err(corrupt)?,
                    created_by: row.try_get("created_by").map_err(corrupt)?,
                    data_hash: row.try_get("data_hash").map_err(corrupt)?,
                    features: row.try_get("features").map_err(corrupt)?,
                    metrics: row.try_get("metrics").map_err(corrupt)?,
                    params: row.try_get("params").map_err(corrupt)?,
                    note: row.try_get("note").map_err(corrupt)?,
                    payload_bytes: row.try_get("payload_bytes").map_err(corrupt)?,
                    payload_sha256: row.try_get("payload_sha256").map_err(corrupt)?,
                    activated_at: row.try_get("activated_at").map_err(corrupt)?,
                }
                .decode()
            }

            fn decode_model_activation(row: &$row) -> Result<$crate::__private::fb_core::model::ModelActivation, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::sqlx::Row as _;
                use $crate::corrupt;
                $crate::models::ActivationRow {
                    id: row.try_get("id").map_err(corrupt)?,
                    kind: row.try_get("kind").map_err(corrupt)?,
                    machine_type: row.try_get("machine_type").map_err(corrupt)?,
                    seq: row.try_get("seq").map_err(corrupt)?,
                    model_id: row.try_get("model_id").map_err(corrupt)?,
                    version: row.try_get("version").map_err(corrupt)?,
                    action: row.try_get("action").map_err(corrupt)?,
                    activated_at: row.try_get("activated_at").map_err(corrupt)?,
                    activated_by: row.try_get("activated_by").map_err(corrupt)?,
                }
                .decode()
            }

            /// The model by id, read through `executor` (the pool, or a transaction to read
            /// what it wrote).
            async fn read_model<'e, E>(
                executor: E,
                id: $crate::__private::fb_core::model::ModelId,
            ) -> Result<Option<$crate::__private::fb_core::model::StoredModel>, $crate::__private::fb_core::ports::StoreError>
            where
                E: $crate::__private::sqlx::Executor<'e, Database = <$row as $crate::__private::sqlx::Row>::Database>,
            {
                let sql = format!(
                    "SELECT {} FROM {} WHERE m.id = $1",
                    $crate::MODEL_COLUMNS,
                    $crate::MODEL_FROM
                );
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .fetch_optional(executor);
                Self::timed("models.get", query).await?.as_ref().map(Self::decode_model).transpose()
            }

            /// Takes the line's row for this transaction; returns its activation count and
            /// current activation, or `None` when the line has no model yet.
            async fn lock_model_line(
                tx: &mut $crate::__private::sqlx::Transaction<'static, <$row as $crate::__private::sqlx::Row>::Database>,
                kind: $crate::__private::fb_core::model::ModelKind,
                machine_type: &str,
            ) -> Result<Option<(i64, Option<$crate::__private::Uuid>)>, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::sqlx::Row as _;
                let lock = $crate::__private::sqlx::query(
                    "UPDATE model_lines SET activations = activations \
                     WHERE kind = $1 AND machine_type = $2 RETURNING activations, current_activation",
                )
                .bind(kind.as_str())
                .bind(machine_type)
                .fetch_optional(&mut **tx);
                let Some(row) = Self::timed("models.lock_line", lock).await? else {
                    return Ok(None);
                };
                Ok(Some((
                    row.try_get("activations").map_err($crate::corrupt)?,
                    row.try_get("current_activation").map_err($crate::corrupt)?,
                )))
            }

            /// Records activation number `seq` of the line and makes it the current one.
            #[allow(clippy::too_many_arguments)] // One row's columns.
            async fn record_model_activation(
                tx: &mut $crate::__private::sqlx::Transaction<'static, <$row as $crate::__private::sqlx::Row>::Database>,
                kind: $crate::__private::fb_core::model::ModelKind,
                machine_type: &str,
                seq: i64,
                model: $crate::__private::Uuid,
                action: $crate::__private::fb_core::model::ActivationAction,
                rollback_to: Option<$crate::__private::Uuid>,
                activator: $crate::__private::fb_core::ports::Activator<'_>,
            ) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let id = $crate::__private::Uuid::now_v7();
                let insert = $crate::__private::sqlx::query(
                    "INSERT INTO model_activations (id, kind, machine_type, seq, model_id, action, \
                     activated_at, activated_by, rollback_to) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(id)
                .bind(kind.as_str())
                .bind(machine_type)
                .bind(seq)
                .bind(model)
                .bind(action.as_str())
                .bind(activator.at)
                .bind(activator.by)
                .bind(rollback_to)
                .execute(&mut **tx);
                Self::timed("models.record_activation", insert).await?;
                let current = $crate::__private::sqlx::query(
                    "UPDATE model_lines SET activations = $3, current_activation = $4 \
                     WHERE kind = $1 AND machine_type = $2",
                )
                .bind(kind.as_str())
                .bind(machine_type)
                .bind(seq)
                .bind(id)
                .execute(&mut **tx);
                Self::timed("models.set_current", current).await.map(drop)
            }

            /// The line's rollback target as (activation, model, that activation's own rollback
            /// target), read through `executor`.
            async fn model_rollback_target<'e, E>(
                executor: E,
                kind: $crate::__private::fb_core::model::ModelKind,
                machine_type: &str,
            ) -> Result<Option<($crate::__private::Uuid, Option<$crate::__private::Uuid>)>, $crate::__private::fb_core::ports::StoreError>
            where
                E: $crate::__private::sqlx::Executor<'e, Database = <$row as $crate::__private::sqlx::Row>::Database>,
            {
                use $crate::__private::sqlx::Row as _;
                let query = $crate::__private::sqlx::query(
                    "SELECT t.model_id, t.rollback_to FROM model_lines l \
                     JOIN model_activations c ON c.id = l.current_activation \
                     JOIN model_activations t ON t.id = c.rollback_to \
                     WHERE l.kind = $1 AND l.machine_type = $2",
                )
                .bind(kind.as_str())
                .bind(machine_type)
                .fetch_optional(executor);
                let Some(row) = Self::timed("models.rollback_target", query).await? else {
                    return Ok(None);
                };
                Ok(Some((
                    row.try_get("model_id").map_err($crate::corrupt)?,
                    row.try_get("rollback_to").map_err($crate::corrupt)?,
                )))
            }
        }

        #[$crate::__private::async_trait]
        impl $crate::__private::fb_core::ports::ModelStore for $store {
            async fn insert_model(
                &self,
                new: $crate::__private::fb_core::ports::NewModel<'_>,
            ) -> Result<$crate::__private::fb_core::model::StoredModel, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::sqlx::Row as _;
                let [features, metrics, params] = $crate::models::encode_lists(&new)?;
                let d = new.draft;
                let _turn = self.write_turn().await;
                let mut tx = Self::timed("models.begin", self.pool.begin()).await?;
                let bump = $crate::__private::sqlx::query(
                    "INSERT INTO model_lines (kind, machine_type, last_version, activations) \
                     VALUES ($1, $2, 1, 0) ON CONFLICT (kind, machine_type) \
                     DO UPDATE SET last_version = model_lines.last_version + 1 RETURNING last_version",
                )
                .bind(d.kind.as_str())
                .bind(&d.machine_type)
                .fetch_one(&mut *tx);
                let version: i64 = Self::timed("models.next_version", bump)
                    .await?
                    .try_get("last_version")
                    .map_err($crate::corrupt)?;
                let insert = $crate::__private::sqlx::query(
                    "INSERT INTO models (id, kind, machine_type, version, format, created_at, \
                     created_by, data_hash, features, metrics, params, note, payload_bytes, \
                     payload_sha256, payload) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                )
                .bind(new.id.0)
                .bind(d.kind.as_str())
                .bind(&d.machine_type)
                .bind(version)
                .bind(&d.format)
                .bind(new.created_at)
                .bind(new.created_by)
                .bind(&d.data_hash)
                .bind(features)
                .bind(metrics)
                .bind(params)
                .bind(d.note.as_deref())
                .bind(i64::try_from(new.payload.len()).unwrap_or(i64::MAX))
                .bind(new.payload_sha256)
                .bind(new.payload)
                .execute(&mut *tx);
                Self::timed("models.insert", insert).await?;
                Self::timed("models.commit", tx.commit()).await?;
                $crate::models::inserted(&new, version)
            }

            async fn list_models(
                &self,
                filter: &$crate::__private::fb_core::ports::ModelFilter,
            ) -> Result<Vec<$crate::__private::fb_core::model::StoredModel>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!(
                    "SELECT {} FROM {} WHERE (CAST($1 AS TEXT) IS NULL OR m.kind = $1) \
                     AND (CAST($2 AS TEXT) IS NULL OR m.machine_type = $2) \
                     ORDER BY m.kind, m.machine_type, m.version DESC",
                    $crate::MODEL_COLUMNS,
                    $crate::MODEL_FROM
                );
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(filter.kind.map(|k| k.as_str()))
                    .bind(filter.machine_type.as_deref())
                    .fetch_all(&self.pool);
                Self::timed("models.list", query).await?.iter().map(Self::decode_model).collect()
            }

            async fn model(
                &self,
                id: $crate::__private::fb_core::model::ModelId,
            ) -> Result<Option<$crate::__private::fb_core::model::StoredModel>, $crate::__private::fb_core::ports::StoreError> {
                Self::read_model(&self.pool, id).await
            }

            async fn model_payload(
                &self,
                id: $crate::__private::fb_core::model::ModelId,
            ) -> Result<Option<Vec<u8>>, $crate::__private::fb_core::ports::StoreError> {
                let query = $crate::__private::sqlx::query_scalar::<_, Vec<u8>>("SELECT payload FROM models WHERE id = $1")
                    .bind(id.0)
                    .fetch_optional(&self.pool);
                Self::timed("models.payload", query).await
            }

            async fn promote_model(
                &self,
                id: $crate::__private::fb_core::model::ModelId,
                activator: $crate::__private::fb_core::ports::Activator<'_>,
            ) -> Result<Option<$crate::__private::fb_core::model::StoredModel>, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::fb_core::model::ActivationAction;
                use $crate::__private::fb_core::ports::StoreError;
                // A model's line never changes, so it can be read before the transaction.
                let Some(model) = Self::read_model(&self.pool, id).await? else {
                    return Ok(None);
                };
                let (kind, machine_type) = model.line();
                let _turn = self.write_turn().await;
                let mut tx = Self::timed("models.begin", self.pool.begin()).await?;
                let Some((seq, current)) = Self::lock_model_line(&mut tx, kind, machine_type).await? else {
                    return Err(StoreError::Corrupt(format!("model {id} has no line")));
                };
                let current_model = match current {
                    Some(activation) => {
                        let query = $crate::__private::sqlx::query_scalar::<_, $crate::__private::Uuid>(
                            "SELECT model_id FROM model_activations WHERE id = $1",
                        )
                        .bind(activation)
                        .fetch_optional(&mut *tx);
                        Self::timed("models.current", query).await?
                    }
                    None => None,
                };
                if current_model != Some(id.0) {
                    Self::record_model_activation(
                        &mut tx, kind, machine_type, seq + 1, id.0, ActivationAction::Promote, current, activator,
                    )
                    .await?;
                }
                let promoted = Self::read_model(&mut *tx, id).await?;
                Self::timed("models.commit", tx.commit()).await?;
                Ok(promoted)
            }

            async fn rollback_target(
                &self,
                kind: $crate::__private::fb_core::model::ModelKind,
                machine_type: &str,
            ) -> Result<Option<$crate::__private::fb_core::model::StoredModel>, $crate::__private::fb_core::ports::StoreError> {
                match Self::model_rollback_target(&self.pool, kind, machine_type).await? {
                    Some((model, _)) => Self::read_model(&self.pool, $crate::__private::fb_core::model::ModelId(model)).await,
                    None => Ok(None),
                }
            }

            async fn roll_back_model(
                &self,
                kind: $crate::__private::fb_core::model::ModelKind,
                machine_type: &str,
                expected: $crate::__private::fb_core::model::ModelId,
                activator: $crate::__private::fb_core::ports::Activator<'_>,
            ) -> Result<Option<$crate::__private::fb_core::model::StoredModel>, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::fb_core::model::ActivationAction;
                let _turn = self.write_turn().await;
                let mut tx = Self::timed("models.begin", self.pool.begin()).await?;
                let Some((seq, _)) = Self::lock_model_line(&mut tx, kind, machine_type).await? else {
                    return Ok(None);
                };
                let target = Self::model_rollback_target(&mut *tx, kind, machine_type).await?;
                let Some((model, rollback_to)) = target.filter(|(model, _)| *model == expected.0) else {
                    return Ok(None);
                };
                Self::record_model_activation(
                    &mut tx, kind, machine_type, seq + 1, model, ActivationAction::Rollback, rollback_to, activator,
                )
                .await?;
                let rolled_back = Self::read_model(&mut *tx, expected).await?;
                Self::timed("models.commit", tx.commit()).await?;
                Ok(rolled_back)
            }

            async fn model_activations(
                &self,
                kind: $crate::__private::fb_core::model::ModelKind,
                machine_type: &str,
                limit: usize,
            ) -> Result<Vec<$crate::__private::fb_core::model::ModelActivation>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!(
                    "SELECT {} FROM model_activations a JOIN models m ON m.id = a.model_id \
                     WHERE a.kind = $1 AND a.machine_type = $2 ORDER BY a.seq DESC LIMIT $3",
                    $crate::MODEL_ACTIVATION_COLUMNS
                );
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(kind.as_str())
                    .bind(machine_type)
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .fetch_all(&self.pool);
                Self::timed("models.activations", query).await?.iter().map(Self::decode_model_activation).collect()
            }

            async fn active_models(
                &self,
            ) -> Result<Vec<$crate::__private::fb_core::model::StoredModel>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!(
                    "SELECT {} FROM {} WHERE a.id IS NOT NULL ORDER BY m.kind, m.machine_type",
                    $crate::MODEL_COLUMNS,
                    $crate::MODEL_FROM
                );
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .fetch_all(&self.pool);
                Self::timed("models.active", query).await?.iter().map(Self::decode_model).collect()
            }
        }
    };
}
