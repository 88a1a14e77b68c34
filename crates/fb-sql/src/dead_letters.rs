//! The dead-letter store in portable SQL, stamped onto a store by
//! [`sql_dead_letter_store!`](crate::sql_dead_letter_store).

pub const DEAD_LETTER_COLUMNS: &str =
    "id, received_at, source, code, reason, payload, content_type, replayed_at";

/// Implements `DeadLetterStore` for `$store` (see [`sql_identity_store!`](crate::sql_identity_store)
/// for what the store must provide), whose rows are `$row`.
#[macro_export]
macro_rules! sql_dead_letter_store {
    ($store:ty, $row:ty) => {
        impl $store {
            fn decode_dead_letter(
                row: &$row,
            ) -> Result<$crate::__private::fb_core::ports::DeadLetter, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::fb_core::error::Code;
                use $crate::__private::fb_core::ports::{DeadLetter, StoreError};
                use $crate::__private::sqlx::Row as _;
                use $crate::corrupt;
                let code: String = row.try_get("code").map_err(corrupt)?;
                Ok(DeadLetter {
                    id: row.try_get("id").map_err(corrupt)?,
                    received_at: row.try_get("received_at").map_err(corrupt)?,
                    source: row.try_get("source").map_err(corrupt)?,
                    code: Code::parse(&code).ok_or_else(|| StoreError::Corrupt(format!("code {code:?}")))?,
                    reason: row.try_get("reason").map_err(corrupt)?,
                    payload: row.try_get("payload").map_err(corrupt)?,
                    content_type: row.try_get("content_type").map_err(corrupt)?,
                    replayed_at: row.try_get("replayed_at").map_err(corrupt)?,
                })
            }
        }

        #[$crate::__private::async_trait]
        impl $crate::__private::fb_core::ports::DeadLetterStore for $store {
            async fn insert_dead_letters(
                &self,
                letters: &[$crate::__private::fb_core::ports::DeadLetter],
            ) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                if letters.is_empty() {
                    return Ok(());
                }
                let _turn = self.write_turn().await;
                let mut tx = Self::timed("dead_letters.begin", self.pool.begin()).await?;
                let sql = format!(
                    "INSERT INTO dead_letters ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    $crate::DEAD_LETTER_COLUMNS
                );
                for l in letters {
                    let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql.clone()))
                        .bind(l.id)
                        .bind(l.received_at)
                        .bind(&l.source)
                        .bind(l.code.as_str())
                        .bind(&l.reason)
                        .bind(&l.payload)
                        .bind(&l.content_type)
                        .bind(l.replayed_at)
                        .execute(&mut *tx);
                    Self::timed("dead_letters.insert", query).await?;
                }
                Self::timed("dead_letters.commit", tx.commit()).await
            }

            async fn list_dead_letters(
                &self,
                filter: &$crate::__private::fb_core::ports::DeadLetterFilter,
            ) -> Result<Vec<$crate::__private::fb_core::ports::DeadLetter>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!(
                    "SELECT {} FROM dead_letters WHERE ($1 IS NULL OR code = $1) \
                     AND ($2 = FALSE OR replayed_at IS NULL) AND ($3 IS NULL OR id > $3) ORDER BY id LIMIT $4",
                    $crate::DEAD_LETTER_COLUMNS
                );
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(filter.code.map(|c| c.as_str()))
                    .bind(filter.pending_only)
                    .bind(filter.after)
                    .bind(filter.limit as i64)
                    .fetch_all(&self.pool);
                Self::timed("dead_letters.list", query).await?.iter().map(Self::decode_dead_letter).collect()
            }

            async fn dead_letter(
                &self,
                id: $crate::__private::Uuid,
            ) -> Result<Option<$crate::__private::fb_core::ports::DeadLetter>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!("SELECT {} FROM dead_letters WHERE id = $1", $crate::DEAD_LETTER_COLUMNS);
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(id)
                    .fetch_optional(&self.pool);
                Self::timed("dead_letters.get", query).await?.as_ref().map(Self::decode_dead_letter).transpose()
            }

            async fn mark_replayed(
                &self,
                id: $crate::__private::Uuid,
                at: $crate::__private::OffsetDateTime,
            ) -> Result<bool, $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let query = $crate::__private::sqlx::query("UPDATE dead_letters SET replayed_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(at)
                    .execute(&self.pool);
                Ok(Self::timed("dead_letters.mark_replayed", query).await?.rows_affected() == 1)
            }
        }
    };
}
