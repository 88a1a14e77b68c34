//! The session and second-factor ports in portable SQL, stamped onto a store by
//! [`sql_session_store!`](crate::sql_session_store).
//!
//! Times are compared in Rust, not in SQL: SQLite keeps them as text, which does not always
//! sort in time order.

/// Session columns under `s_` names, for queries that also read the user's columns.
pub const SESSION_COLUMNS: &str = "id AS s_id, user_id AS s_user_id, created_at AS s_created_at, \
     refreshed_at AS s_refreshed_at, expires_at AS s_expires_at, mfa AS s_mfa, client AS s_client, \
     source AS s_source, ended_at AS s_ended_at, end_reason AS s_end_reason";

/// The same, qualified by the alias `s` (for joins with `users u`).
pub const SESSION_COLUMNS_OF_S: &str = "s.id AS s_id, s.user_id AS s_user_id, \
     s.created_at AS s_created_at, s.refreshed_at AS s_refreshed_at, s.expires_at AS s_expires_at, \
     s.mfa AS s_mfa, s.client AS s_client, s.source AS s_source, s.ended_at AS s_ended_at, \
     s.end_reason AS s_end_reason";

/// User columns qualified by the alias `u`.
pub const USER_COLUMNS_OF_U: &str = "u.id, u.username, u.role, u.sites, u.password_hash, u.disabled, \
     u.must_change_password, u.password_changed_at, u.created_at, u.updated_at, u.totp_enabled_at";

/// Most sessions listed for one user.
pub const SESSIONS_LISTED_MAX: i64 = 500;

/// Implements `SessionStore` and `MfaStore` for `$store` (see
/// [`sql_identity_store!`](crate::sql_identity_store) for what the store must provide), whose
/// rows are `$row`.
#[macro_export]
macro_rules! sql_session_store {
    ($store:ty, $row:ty) => {
        impl $store {
            fn decode_session(
                row: &$row,
            ) -> Result<$crate::__private::fb_core::session::Session, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::fb_core::identity::UserId;
                use $crate::__private::fb_core::ports::StoreError;
                use $crate::__private::fb_core::session::{EndReason, Session, SessionId};
                use $crate::__private::sqlx::Row as _;
                use $crate::corrupt;
                let reason: Option<String> = row.try_get("s_end_reason").map_err(corrupt)?;
                let end_reason = match reason {
                    Some(text) => Some(
                        EndReason::parse(&text)
                            .ok_or_else(|| StoreError::Corrupt(format!("session end reason {text:?}")))?,
                    ),
                    None => None,
                };
                Ok(Session {
                    id: SessionId(row.try_get::<$crate::__private::Uuid, _>("s_id").map_err(corrupt)?),
                    user: UserId(row.try_get::<$crate::__private::Uuid, _>("s_user_id").map_err(corrupt)?),
                    created_at: row.try_get("s_created_at").map_err(corrupt)?,
                    refreshed_at: row.try_get("s_refreshed_at").map_err(corrupt)?,
                    expires_at: row.try_get("s_expires_at").map_err(corrupt)?,
                    mfa: row.try_get("s_mfa").map_err(corrupt)?,
                    client: row.try_get("s_client").map_err(corrupt)?,
                    source: row.try_get("s_source").map_err(corrupt)?,
                    ended_at: row.try_get("s_ended_at").map_err(corrupt)?,
                    end_reason,
                })
            }

            async fn session_by_id_in<'c, E>(
                executor: E,
                id: $crate::__private::fb_core::session::SessionId,
            ) -> Result<Option<$crate::__private::fb_core::session::Session>, $crate::__private::fb_core::ports::StoreError>
            where
                E: $crate::__private::sqlx::Executor<'c, Database = <$row as $crate::__private::sqlx::Row>::Database>,
            {
                let sql = format!("SELECT {} FROM sessions WHERE id = $1", $crate::sessions::SESSION_COLUMNS);
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .fetch_optional(executor);
                Self::timed("sessions.get", query).await?.as_ref().map(Self::decode_session).transpose()
            }

            async fn insert_refresh_token_in<'c, E>(
                executor: E,
                token: &$crate::__private::fb_core::session::RefreshToken,
            ) -> Result<(), $crate::__private::fb_core::ports::StoreError>
            where
                E: $crate::__private::sqlx::Executor<'c, Database = <$row as $crate::__private::sqlx::Row>::Database>,
            {
                let query = $crate::__private::sqlx::query(
                    "INSERT INTO refresh_tokens (token_hash, session_id, generation, issued_at, expires_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&token.hash)
                .bind(token.session.0)
                .bind(i64::from(token.generation))
                .bind(token.issued_at)
                .bind(token.expires_at)
                .execute(executor);
                Self::timed("refresh_tokens.insert", query).await.map(drop)
            }

            async fn replace_recovery_codes_in(
                tx: &mut $crate::__private::sqlx::Transaction<'_, <$row as $crate::__private::sqlx::Row>::Database>,
                user: $crate::__private::fb_core::identity::UserId,
                hashes: &[Vec<u8>],
                at: $crate::__private::OffsetDateTime,
            ) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let delete = $crate::__private::sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                    .bind(user.0)
                    .execute(&mut **tx);
                Self::timed("recovery_codes.delete", delete).await?;
                for hash in hashes {
                    let insert = $crate::__private::sqlx::query(
                        "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES ($1, $2, $3)",
                    )
                    .bind(user.0)
                    .bind(hash)
                    .bind(at)
                    .execute(&mut **tx);
                    Self::timed("recovery_codes.insert", insert).await?;
                }
                Ok(())
            }
        }

        #[$crate::__private::async_trait]
        impl $crate::__private::fb_core::ports::SessionStore for $store {
            async fn insert_session(
                &self,
                session: &$crate::__private::fb_core::session::Session,
                first: &$crate::__private::fb_core::session::RefreshToken,
            ) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let mut tx = Self::timed("sessions.begin", self.pool.begin()).await?;
                let insert = $crate::__private::sqlx::query(
                    "INSERT INTO sessions (id, user_id, created_at, refreshed_at, expires_at, mfa, client, source, \
                     ended_at, end_reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(session.id.0)
                .bind(session.user.0)
                .bind(session.created_at)
                .bind(session.refreshed_at)
                .bind(session.expires_at)
                .bind(session.mfa)
                .bind(&session.client)
                .bind(&session.source)
                .bind(session.ended_at)
                .bind(session.end_reason.map(|r| r.as_str()))
                .execute(&mut *tx);
                Self::timed("sessions.insert", insert).await?;
                Self::insert_refresh_token_in(&mut *tx, first).await?;
                Self::timed("sessions.commit", tx.commit()).await
            }

            async fn session_with_user(
                &self,
                id: $crate::__private::fb_core::session::SessionId,
            ) -> Result<
                Option<($crate::__private::fb_core::session::Session, $crate::__private::fb_core::identity::User)>,
                $crate::__private::fb_core::ports::StoreError,
            > {
                let sql = format!(
                    "SELECT {}, {} FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = $1",
                    $crate::sessions::SESSION_COLUMNS_OF_S,
                    $crate::sessions::USER_COLUMNS_OF_U
                );
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .fetch_optional(&self.pool);
                match Self::timed("sessions.with_user", query).await? {
                    Some(row) => Ok(Some((Self::decode_session(&row)?, Self::decode_user(&row)?))),
                    None => Ok(None),
                }
            }

            async fn rotate_refresh_token(
                &self,
                presented: &[u8],
                next: &$crate::__private::fb_core::session::RefreshToken,
                now: $crate::__private::OffsetDateTime,
            ) -> Result<$crate::__private::fb_core::session::Rotation, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::fb_core::identity::UserId;
                use $crate::__private::fb_core::session::{EndReason, RefreshToken, Rotation, SessionId};
                use $crate::__private::sqlx::Row as _;
                use $crate::corrupt;
                let _turn = self.write_turn().await;
                let mut tx = Self::timed("refresh_tokens.begin", self.pool.begin()).await?;
                // Using the token first, conditionally, is what makes two presentations of one
                // token race safely: the row lock lets exactly one of them see it unused.
                let used = $crate::__private::sqlx::query(
                    "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL \
                     RETURNING session_id, generation, expires_at",
                )
                .bind(presented)
                .bind(now)
                .fetch_optional(&mut *tx);
                if let Some(row) = Self::timed("refresh_tokens.use", used).await? {
                    let session = SessionId(row.try_get::<$crate::__private::Uuid, _>("session_id").map_err(corrupt)?);
                    let generation: i64 = row.try_get("generation").map_err(corrupt)?;
                    let expires_at: $crate::__private::OffsetDateTime = row.try_get("expires_at").map_err(corrupt)?;
                    let active = match Self::session_by_id_in(&mut *tx, session).await? {
                        Some(s) => s.is_active(now),
                        None => false,
                    };
                    if expires_at <= now || !active {
                        // Leave the token as it was: an expired token stays merely expired.
                        Self::timed("refresh_tokens.rollback", tx.rollback()).await?;
                        return Ok(Rotation::Invalid);
                    }
                    let next = RefreshToken {
                        session,
                        generation: u32::try_from(generation.saturating_add(1)).unwrap_or(u32::MAX),
                        ..next.clone()
                    };
                    Self::insert_refresh_token_in(&mut *tx, &next).await?;
                    let sql = format!(
                        "UPDATE sessions SET refreshed_at = $2 WHERE id = $1 RETURNING {}",
                        $crate::sessions::SESSION_COLUMNS
                    );
                    let touched = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                        .bind(session.0)
                        .bind(now)
                        .fetch_one(&mut *tx);
                    let refreshed = Self::decode_session(&Self::timed("sessions.refresh", touched).await?)?;
                    Self::timed("refresh_tokens.commit", tx.commit()).await?;
                    return Ok(Rotation::Rotated(refreshed));
                }
                let known = $crate::__private::sqlx::query(
                    "SELECT t.session_id, t.used_at, s.user_id FROM refresh_tokens t \
                     JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1",
                )
                .bind(presented)
                .fetch_optional(&mut *tx);
                let Some(row) = Self::timed("refresh_tokens.get", known).await? else {
                    Self::timed("refresh_tokens.rollback", tx.rollback()).await?;
                    return Ok(Rotation::Invalid);
                };
                let used_at: Option<$crate::__private::OffsetDateTime> = row.try_get("used_at").map_err(corrupt)?;
                if used_at.is_none() {
                    Self::timed("refresh_tokens.rollback", tx.rollback()).await?;
                    return Ok(Rotation::Invalid);
                }
                let session = SessionId(row.try_get::<$crate::__private::Uuid, _>("session_id").map_err(corrupt)?);
                let user = UserId(row.try_get::<$crate::__private::Uuid, _>("user_id").map_err(corrupt)?);
                let end = $crate::__private::sqlx::query(
                    "UPDATE sessions SET ended_at = $2, end_reason = $3 WHERE id = $1 AND ended_at IS NULL",
                )
                .bind(session.0)
                .bind(now)
                .bind(EndReason::RefreshTokenReused.as_str())
                .execute(&mut *tx);
                Self::timed("sessions.end", end).await?;
                Self::timed("refresh_tokens.commit", tx.commit()).await?;
                Ok(Rotation::Reused { session, user })
            }

            async fn list_sessions(
                &self,
                user: $crate::__private::fb_core::identity::UserId,
                include_ended: bool,
                now: $crate::__private::OffsetDateTime,
            ) -> Result<Vec<$crate::__private::fb_core::session::Session>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!(
                    "SELECT {} FROM sessions WHERE user_id = $1 ORDER BY id DESC LIMIT $2",
                    $crate::sessions::SESSION_COLUMNS
                );
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(user.0)
                    .bind($crate::sessions::SESSIONS_LISTED_MAX)
                    .fetch_all(&self.pool);
                let mut sessions = Self::timed("sessions.list", query)
                    .await?
                    .iter()
                    .map(Self::decode_session)
                    .collect::<Result<Vec<_>, _>>()?;
                if !include_ended {
                    sessions.retain(|s| s.is_active(now));
                }
                Ok(sessions)
            }

            async fn end_session(
                &self,
                id: $crate::__private::fb_core::session::SessionId,
                reason: $crate::__private::fb_core::session::EndReason,
                at: $crate::__private::OffsetDateTime,
            ) -> Result<Option<$crate::__private::fb_core::session::Session>, $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let sql = format!(
                    "UPDATE sessions SET ended_at = $2, end_reason = $3 WHERE id = $1 AND ended_at IS NULL RETURNING {}",
                    $crate::sessions::SESSION_COLUMNS
                );
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .bind(at)
                    .bind(reason.as_str())
                    .fetch_optional(&self.pool);
                match Self::timed("sessions.end", query).await? {
                    Some(row) => Self::decode_session(&row).map(Some),
                    None => Self::session_by_id_in(&self.pool, id).await,
                }
            }

            async fn end_user_sessions(
                &self,
                user: $crate::__private::fb_core::identity::UserId,
                reason: $crate::__private::fb_core::session::EndReason,
                at: $crate::__private::OffsetDateTime,
            ) -> Result<u64, $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let query = $crate::__private::sqlx::query(
                    "UPDATE sessions SET ended_at = $2, end_reason = $3 WHERE user_id = $1 AND ended_at IS NULL",
                )
                .bind(user.0)
                .bind(at)
                .bind(reason.as_str())
                .execute(&self.pool);
                Ok(Self::timed("sessions.end_all", query).await?.rows_affected())
            }

            async fn set_session_mfa(
                &self,
                id: $crate::__private::fb_core::session::SessionId,
            ) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let query = $crate::__private::sqlx::query("UPDATE sessions SET mfa = TRUE WHERE id = $1")
                    .bind(id.0)
                    .execute(&self.pool);
                Self::timed("sessions.set_mfa", query).await.map(drop)
            }
        }

        #[$crate::__private::async_trait]
        impl $crate::__private::fb_core::ports::MfaStore for $store {
            async fn totp(
                &self,
                user: $crate::__private::fb_core::identity::UserId,
            ) -> Result<$crate::__private::fb_core::session::Totp, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::sqlx::Row as _;
                use $crate::corrupt;
                let query = $crate::__private::sqlx::query(
                    "SELECT totp_secret, totp_enabled_at, totp_last_step FROM users WHERE id = $1",
                )
                .bind(user.0)
                .fetch_optional(&self.pool);
                let Some(row) = Self::timed("mfa.totp", query).await? else {
                    return Ok(Default::default());
                };
                Ok($crate::__private::fb_core::session::Totp {
                    secret: row.try_get("totp_secret").map_err(corrupt)?,
                    enabled_at: row.try_get("totp_enabled_at").map_err(corrupt)?,
                    last_step: row.try_get("totp_last_step").map_err(corrupt)?,
                })
            }

            async fn set_totp_secret(
                &self,
                user: $crate::__private::fb_core::identity::UserId,
                secret: &[u8],
            ) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let query = $crate::__private::sqlx::query(
                    "UPDATE users SET totp_secret = $2, totp_enabled_at = NULL, totp_last_step = 0 WHERE id = $1",
                )
                .bind(user.0)
                .bind(secret)
                .execute(&self.pool);
                Self::timed("mfa.set_secret", query).await.map(drop)
            }

            async fn enable_totp(
                &self,
                user: $crate::__private::fb_core::identity::UserId,
                at: $crate::__private::OffsetDateTime,
                recovery_code_hashes: &[Vec<u8>],
            ) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let mut tx = Self::timed("mfa.begin", self.pool.begin()).await?;
                let enable = $crate::__private::sqlx::query(
                    "UPDATE users SET totp_enabled_at = $2, updated_at = $2 WHERE id = $1 AND totp_secret IS NOT NULL",
                )
                .bind(user.0)
                .bind(at)
                .execute(&mut *tx);
                Self::timed("mfa.enable", enable).await?;
                Self::replace_recovery_codes_in(&mut tx, user, recovery_code_hashes, at).await?;
                Self::timed("mfa.commit", tx.commit()).await
            }

            async fn clear_totp(
                &self,
                user: $crate::__private::fb_core::identity::UserId,
            ) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let mut tx = Self::timed("mfa.begin", self.pool.begin()).await?;
                let clear = $crate::__private::sqlx::query(
                    "UPDATE users SET totp_secret = NULL, totp_enabled_at = NULL, totp_last_step = 0 WHERE id = $1",
                )
                .bind(user.0)
                .execute(&mut *tx);
                Self::timed("mfa.clear", clear).await?;
                let codes = $crate::__private::sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
                    .bind(user.0)
                    .execute(&mut *tx);
                Self::timed("recovery_codes.delete", codes).await?;
                Self::timed("mfa.commit", tx.commit()).await
            }

            async fn accept_totp_step(
                &self,
                user: $crate::__private::fb_core::identity::UserId,
                step: i64,
            ) -> Result<bool, $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let query = $crate::__private::sqlx::query(
                    "UPDATE users SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2",
                )
                .bind(user.0)
                .bind(step)
                .execute(&self.pool);
                Ok(Self::timed("mfa.accept_step", query).await?.rows_affected() == 1)
            }

            async fn replace_recovery_codes(
                &self,
                user: $crate::__private::fb_core::identity::UserId,
                hashes: &[Vec<u8>],
                at: $crate::__private::OffsetDateTime,
            ) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let mut tx = Self::timed("recovery_codes.begin", self.pool.begin()).await?;
                Self::replace_recovery_codes_in(&mut tx, user, hashes, at).await?;
                Self::timed("recovery_codes.commit", tx.commit()).await
            }

            async fn use_recovery_code(
                &self,
                user: $crate::__private::fb_core::identity::UserId,
                hash: &[u8],
                at: $crate::__private::OffsetDateTime,
            ) -> Result<bool, $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let query = $crate::__private::sqlx::query(
                    "UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
                )
                .bind(user.0)
                .bind(hash)
                .bind(at)
                .execute(&self.pool);
                Ok(Self::timed("recovery_codes.use", query).await?.rows_affected() == 1)
            }

            async fn recovery_codes_left(
                &self,
                user: $crate::__private::fb_core::identity::UserId,
            ) -> Result<u64, $crate::__private::fb_core::ports::StoreError> {
                let query = $crate::__private::sqlx::query_scalar::<_, i64>(
                    "SELECT COUNT(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL",
                )
                .bind(user.0)
                .fetch_one(&self.pool);
                Ok(Self::timed("recovery_codes.left", query).await?.max(0) as u64)
            }
        }
    };
}
