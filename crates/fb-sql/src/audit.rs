//! The audit store in portable SQL, stamped onto a store by
//! [`sql_audit_store!`](crate::sql_audit_store).
//!
//! `at` is kept as Unix microseconds (an integer) on both backends: it is what the chain hashes,
//! and range filters then compare numbers (SQLite's text timestamps do not sort by time when
//! their fractions differ in length). Details are a JSON object of strings.

use std::collections::BTreeMap;

use fb_core::audit::{AuditEntry, AuditHead, AuditRecord, ChainHash, Outcome, from_micros};
use fb_core::ports::StoreError;

pub const AUDIT_COLUMNS: &str =
    "seq, at_micros, actor, action, target, outcome, op_id, source, details, prev_hash, hash";

pub fn details_to_json(details: &BTreeMap<String, String>) -> Result<String, StoreError> {
    serde_json::to_string(details).map_err(|e| StoreError::Other(Box::new(e)))
}

/// The head from its stored columns.
pub fn decode_head(seq: i64, hash: &[u8]) -> Result<AuditHead, StoreError> {
    Ok(AuditHead {
        seq: u64::try_from(seq)
            .map_err(|_| StoreError::Corrupt(format!("audit head seq {seq}")))?,
        hash: ChainHash::from_slice(hash)
            .ok_or_else(|| StoreError::Corrupt("audit head hash is not 32 bytes".into()))?,
    })
}

/// The columns of one audit row, as read, before they are checked.
pub struct AuditRow {
    pub seq: i64,
    pub at_micros: i64,
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub outcome: String,
    pub op_id: String,
    pub source: String,
    pub details: String,
    pub prev_hash: Vec<u8>,
    pub hash: Vec<u8>,
}

impl AuditRow {
    /// The record, or why the row is not one (a value no append writes).
    pub fn decode(self) -> Result<AuditRecord, String> {
        let seq = u64::try_from(self.seq).map_err(|_| format!("seq {} is negative", self.seq))?;
        let at = from_micros(self.at_micros)
            .ok_or_else(|| format!("time {} is out of range", self.at_micros))?;
        let outcome = Outcome::parse(&self.outcome)
            .ok_or_else(|| format!("outcome {:?} is not one", self.outcome))?;
        let details: BTreeMap<String, String> = serde_json::from_str(&self.details)
            .map_err(|e| format!("details are not a JSON object of strings: {e}"))?;
        let hash = |name: &str, bytes: &[u8]| {
            ChainHash::from_slice(bytes)
                .ok_or_else(|| format!("{name} has {} bytes, not 32", bytes.len()))
        };
        Ok(AuditRecord {
            seq,
            entry: AuditEntry {
                at,
                actor: self.actor,
                action: self.action,
                target: self.target,
                outcome,
                op_id: self.op_id,
                source: self.source,
                details,
            },
            prev_hash: hash("prev_hash", &self.prev_hash)?,
            hash: hash("hash", &self.hash)?,
        })
    }
}

/// Implements `AuditStore` for `$store` (see [`sql_identity_store!`](crate::sql_identity_store)
/// for what the store must provide), whose rows are `$row`.
///
/// An append first updates the one-row `audit_head` table (a no-op change that returns the head):
/// on PostgreSQL that locks the row until commit, on SQLite it takes the database's write lock,
/// so appenders on every node queue there and the chain never forks. Locking by a write rather
/// than `SELECT … FOR UPDATE` also keeps SQLite from starting with a read snapshot that a
/// concurrent writer could make stale (which SQLite answers with an immediate busy error).
#[macro_export]
macro_rules! sql_audit_store {
    ($store:ty, $row:ty) => {
        impl $store {
            fn audit_row(row: &$row) -> Result<$crate::audit::AuditRow, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::sqlx::Row as _;
                use $crate::corrupt;
                Ok($crate::audit::AuditRow {
                    seq: row.try_get("seq").map_err(corrupt)?,
                    at_micros: row.try_get("at_micros").map_err(corrupt)?,
                    actor: row.try_get("actor").map_err(corrupt)?,
                    action: row.try_get("action").map_err(corrupt)?,
                    target: row.try_get("target").map_err(corrupt)?,
                    outcome: row.try_get("outcome").map_err(corrupt)?,
                    op_id: row.try_get("op_id").map_err(corrupt)?,
                    source: row.try_get("source").map_err(corrupt)?,
                    details: row.try_get("details").map_err(corrupt)?,
                    prev_hash: row.try_get("prev_hash").map_err(corrupt)?,
                    hash: row.try_get("hash").map_err(corrupt)?,
                })
            }

            fn decode_audit(row: &$row) -> Result<$crate::__private::fb_core::audit::AuditRecord, $crate::__private::fb_core::ports::StoreError> {
                let raw = Self::audit_row(row)?;
                let seq = raw.seq;
                raw.decode().map_err(|reason| {
                    $crate::__private::fb_core::ports::StoreError::Corrupt(format!("audit record {seq}: {reason}"))
                })
            }
        }

        #[$crate::__private::async_trait]
        impl $crate::__private::fb_core::ports::AuditStore for $store {
            async fn append_audit(
                &self,
                entry: &$crate::__private::fb_core::audit::AuditEntry,
            ) -> Result<$crate::__private::fb_core::audit::AuditRecord, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::fb_core::audit::AuditRecord;
                use $crate::__private::fb_core::ports::StoreError;
                use $crate::__private::sqlx::Row as _;
                let _turn = self.write_turn().await;
                let mut tx = Self::timed("audit.begin", self.pool.begin()).await?;
                let lock = $crate::__private::sqlx::query(
                    "UPDATE audit_head SET seq = seq WHERE id = 1 RETURNING seq, hash",
                )
                .fetch_optional(&mut *tx);
                let Some(row) = Self::timed("audit.lock_head", lock).await? else {
                    return Err(StoreError::Corrupt(
                        "the audit head row is missing; run `factorybrain audit verify`".into(),
                    ));
                };
                let head = $crate::audit::decode_head(
                    row.try_get("seq").map_err($crate::corrupt)?,
                    &row.try_get::<Vec<u8>, _>("hash").map_err($crate::corrupt)?,
                )?;
                let record = AuditRecord::next(&head, entry.clone());
                let e = &record.entry;
                let sql = format!(
                    "INSERT INTO audit_log ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    $crate::AUDIT_COLUMNS
                );
                let insert = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(record.seq as i64)
                    .bind(e.at_micros())
                    .bind(&e.actor)
                    .bind(&e.action)
                    .bind(e.target.as_deref())
                    .bind(e.outcome.as_str())
                    .bind(&e.op_id)
                    .bind(&e.source)
                    .bind($crate::audit::details_to_json(&e.details)?)
                    .bind(&record.prev_hash.0[..])
                    .bind(&record.hash.0[..])
                    .execute(&mut *tx);
                Self::timed("audit.insert", insert).await?;
                let advance = $crate::__private::sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
                    .bind(record.seq as i64)
                    .bind(&record.hash.0[..])
                    .execute(&mut *tx);
                Self::timed("audit.advance_head", advance).await?;
                Self::timed("audit.commit", tx.commit()).await?;
                Ok(record)
            }

            async fn list_audit(
                &self,
                f: &$crate::__private::fb_core::ports::AuditFilter,
            ) -> Result<Vec<$crate::__private::fb_core::audit::AuditRecord>, $crate::__private::fb_core::ports::StoreError> {
                let order = if f.newest_first { "DESC" } else { "ASC" };
                let sql = format!(
                    "SELECT {} FROM audit_log WHERE (CAST($1 AS TEXT) IS NULL OR actor = $1) \
                     AND (CAST($2 AS TEXT) IS NULL OR action = $2) \
                     AND (CAST($3 AS TEXT) IS NULL OR target = $3) \
                     AND (CAST($4 AS TEXT) IS NULL OR outcome = $4) \
                     AND ($5 IS NULL OR at_micros >= $5) AND ($6 IS NULL OR at_micros < $6) \
                     AND ($7 IS NULL OR seq > $7) AND ($8 IS NULL OR seq < $8) \
                     ORDER BY seq {order} LIMIT $9",
                    $crate::AUDIT_COLUMNS
                );
                let micros = |t: Option<$crate::__private::OffsetDateTime>| {
                    t.map(|t| i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000)).unwrap_or(i64::MAX))
                };
                let seq = |s: Option<u64>| s.map(|s| i64::try_from(s).unwrap_or(i64::MAX));
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(f.actor.as_deref())
                    .bind(f.action.as_deref())
                    .bind(f.target.as_deref())
                    .bind(f.outcome.map(|o| o.as_str()))
                    .bind(micros(f.from))
                    .bind(micros(f.to))
                    .bind(seq(f.after))
                    .bind(seq(f.before))
                    .bind(i64::try_from(f.limit).unwrap_or(i64::MAX))
                    .fetch_all(&self.pool);
                Self::timed("audit.list", query).await?.iter().map(Self::decode_audit).collect()
            }

            async fn scan_audit(
                &self,
                after: u64,
                limit: usize,
            ) -> Result<Vec<$crate::__private::fb_core::audit::ScannedRecord>, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::fb_core::audit::UnreadableRecord;
                let sql = format!("SELECT {} FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2", $crate::AUDIT_COLUMNS);
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(i64::try_from(after).unwrap_or(i64::MAX))
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .fetch_all(&self.pool);
                let rows = Self::timed("audit.scan", query).await?;
                let mut scanned = Vec::with_capacity(rows.len());
                for row in &rows {
                    let raw = Self::audit_row(row)?;
                    let seq = raw.seq.max(0) as u64;
                    scanned.push(raw.decode().map_err(|reason| UnreadableRecord { seq, reason }));
                }
                Ok(scanned)
            }

            async fn audit_head(
                &self,
            ) -> Result<Option<$crate::__private::fb_core::audit::AuditHead>, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::sqlx::Row as _;
                let query = $crate::__private::sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1").fetch_optional(&self.pool);
                let Some(row) = Self::timed("audit.head", query).await? else {
                    return Ok(None);
                };
                $crate::audit::decode_head(
                    row.try_get("seq").map_err($crate::corrupt)?,
                    &row.try_get::<Vec<u8>, _>("hash").map_err($crate::corrupt)?,
                )
                .map(Some)
            }
        }
    };
}
