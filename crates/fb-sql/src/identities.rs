//! The identity and secret ports in portable SQL, stamped onto a store by
//! [`sql_identity_store!`](crate::sql_identity_store).

pub const USER_COLUMNS: &str = "id, username, role, sites, password_hash, disabled, \
     must_change_password, password_changed_at, created_at, updated_at, totp_enabled_at";

pub const API_KEY_COLUMNS: &str = "id, prefix, secret_hash, name, role, sites, created_by, \
     created_at, expires_at, last_used_at, revoked_at";

/// A `WITH` clause naming the active admins of all sites `full_admins`, locked with `lock`
/// where the backend can, for the statements that must never leave the plant without one.
pub fn full_admins_clause(lock: &str) -> String {
    format!(
        "WITH full_admins AS MATERIALIZED (SELECT id FROM users \
         WHERE role = 'admin' AND disabled = FALSE AND sites = 'all' {lock})"
    )
}

/// Holds for a user (row) whose loss as an admin of all sites leaves another one.
pub const NOT_THE_LAST_FULL_ADMIN: &str =
    "(id NOT IN (SELECT id FROM full_admins) OR (SELECT COUNT(*) FROM full_admins) > 1)";

/// Implements `IdentityStore`, `SecretStore` and `StoreHealth` for `$store`, whose rows are
/// `$row` and whose backend is called `$backend` in logs and metrics.
///
/// `$store` must have a `pool` field, an associated function
/// `async fn timed<T>(query: &'static str, future) -> Result<T, StoreError>` that records the
/// latency and classifies errors for its backend, `async fn stop_background_work(&self)`,
/// which `close` awaits before closing the pool, and `async fn write_turn(&self)`, whose
/// result every write (in this and the other `sql_*_store!` macros) holds for its whole
/// transaction: a guard where the backend needs writers of one process to take turns
/// (SQLite), nothing where it does not. A write method takes it first and calls no other
/// write method while holding it. Column lists are compile-time constants
/// formatted into the SQL; every value is a bound parameter.
#[macro_export]
macro_rules! sql_identity_store {
    ($store:ty, $row:ty, $backend:expr, $lock:expr) => {
        #[$crate::__private::async_trait]
        impl $crate::__private::fb_core::ports::StoreHealth for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            async fn ping(&self) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                Self::timed("health.ping", $crate::__private::sqlx::query("SELECT 1").execute(&self.pool)).await.map(drop)
            }

            async fn close(&self) {
                self.stop_background_work().await;
                self.pool.close().await;
            }
        }

        impl $store {
            fn decode_role(row: &$row) -> Result<$crate::__private::fb_core::identity::Role, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::sqlx::Row as _;
                let name: String = row.try_get("role").map_err($crate::corrupt)?;
                $crate::__private::fb_core::identity::Role::parse(&name).ok_or_else(|| {
                    $crate::__private::fb_core::ports::StoreError::Corrupt(format!("unknown role {name:?}"))
                })
            }

            fn decode_sites(row: &$row) -> Result<$crate::__private::fb_core::identity::SiteScope, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::sqlx::Row as _;
                // NULL (a row written without its sites) fails here: corrupt, never "all".
                let text: String = row.try_get("sites").map_err($crate::corrupt)?;
                $crate::sites_from_text(&text)
            }

            fn decode_user(row: &$row) -> Result<$crate::__private::fb_core::identity::User, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::fb_core::identity::{User, UserId};
                use $crate::__private::sqlx::Row as _;
                use $crate::corrupt;
                Ok(User {
                    id: UserId(row.try_get::<$crate::__private::Uuid, _>("id").map_err(corrupt)?),
                    username: row.try_get("username").map_err(corrupt)?,
                    role: Self::decode_role(row)?,
                    sites: Self::decode_sites(row)?,
                    password_hash: row.try_get("password_hash").map_err(corrupt)?,
                    disabled: row.try_get("disabled").map_err(corrupt)?,
                    must_change_password: row.try_get("must_change_password").map_err(corrupt)?,
                    password_changed_at: row.try_get("password_changed_at").map_err(corrupt)?,
                    mfa_enabled: row
                        .try_get::<Option<$crate::__private::OffsetDateTime>, _>("totp_enabled_at")
                        .map_err(corrupt)?
                        .is_some(),
                    created_at: row.try_get("created_at").map_err(corrupt)?,
                    updated_at: row.try_get("updated_at").map_err(corrupt)?,
                })
            }

            fn decode_api_key(row: &$row) -> Result<$crate::__private::fb_core::identity::ApiKey, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::fb_core::identity::{ApiKey, ApiKeyId, UserId};
                use $crate::__private::sqlx::Row as _;
                use $crate::corrupt;
                Ok(ApiKey {
                    id: ApiKeyId(row.try_get::<$crate::__private::Uuid, _>("id").map_err(corrupt)?),
                    prefix: row.try_get("prefix").map_err(corrupt)?,
                    secret_hash: row.try_get("secret_hash").map_err(corrupt)?,
                    name: row.try_get("name").map_err(corrupt)?,
                    role: Self::decode_role(row)?,
                    sites: Self::decode_sites(row)?,
                    created_by: row
                        .try_get::<Option<$crate::__private::Uuid>, _>("created_by")
                        .map_err(corrupt)?
                        .map(UserId),
                    created_at: row.try_get("created_at").map_err(corrupt)?,
                    expires_at: row.try_get("expires_at").map_err(corrupt)?,
                    last_used_at: row.try_get("last_used_at").map_err(corrupt)?,
                    revoked_at: row.try_get("revoked_at").map_err(corrupt)?,
                })
            }
        }

        #[$crate::__private::async_trait]
        impl $crate::__private::fb_core::ports::IdentityStore for $store {
            async fn insert_user(&self, user: &$crate::__private::fb_core::identity::User) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let sql = format!(
                    "INSERT INTO users ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    $crate::USER_COLUMNS
                );
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                .bind(user.id.0)
                .bind(&user.username)
                .bind(user.role.as_str())
                .bind($crate::sites_to_text(&user.sites)?)
                .bind(&user.password_hash)
                .bind(user.disabled)
                .bind(user.must_change_password)
                .bind(user.password_changed_at)
                .bind(user.created_at)
                .bind(user.updated_at)
                // A new user has no second factor yet, whatever `mfa_enabled` says.
                .bind(None::<$crate::__private::OffsetDateTime>)
                .execute(&self.pool);
                Self::timed("identities.insert_user", query).await.map(drop)
            }

            async fn user_by_id(&self, id: $crate::__private::fb_core::identity::UserId) -> Result<Option<$crate::__private::fb_core::identity::User>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!("SELECT {} FROM users WHERE id = $1", $crate::USER_COLUMNS);
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql)).bind(id.0).fetch_optional(&self.pool);
                Self::timed("identities.user_by_id", query).await?.as_ref().map(Self::decode_user).transpose()
            }

            async fn user_by_username(&self, username: &str) -> Result<Option<$crate::__private::fb_core::identity::User>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!("SELECT {} FROM users WHERE username = $1", $crate::USER_COLUMNS);
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql)).bind(username).fetch_optional(&self.pool);
                Self::timed("identities.user_by_username", query).await?.as_ref().map(Self::decode_user).transpose()
            }

            async fn list_users(&self) -> Result<Vec<$crate::__private::fb_core::identity::User>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!("SELECT {} FROM users ORDER BY username", $crate::USER_COLUMNS);
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool);
                Self::timed("identities.list_users", query).await?.iter().map(Self::decode_user).collect()
            }

            async fn count_users(&self) -> Result<u64, $crate::__private::fb_core::ports::StoreError> {
                let query = $crate::__private::sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users").fetch_one(&self.pool);
                Ok(Self::timed("identities.count_users", query).await?.max(0) as u64)
            }

            async fn set_user_disabled(
                &self,
                id: $crate::__private::fb_core::identity::UserId,
                disabled: bool,
                at: $crate::__private::OffsetDateTime,
            ) -> Result<Option<$crate::__private::fb_core::identity::User>, $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                // The active admins of all sites are locked (where the backend can) and counted
                // in the same statement as the update, so concurrent disables cannot both pass
                // the check.
                let sql = format!(
                    "{} UPDATE users SET disabled = $2, updated_at = $3 \
                     WHERE id = $1 AND ($2 = FALSE OR {}) RETURNING {}",
                    $crate::full_admins_clause($lock),
                    $crate::NOT_THE_LAST_FULL_ADMIN,
                    $crate::USER_COLUMNS
                );
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .bind(disabled)
                    .bind(at)
                    .fetch_optional(&self.pool);
                Self::timed("identities.set_user_disabled", query).await?.as_ref().map(Self::decode_user).transpose()
            }

            async fn update_user_access(
                &self,
                id: $crate::__private::fb_core::identity::UserId,
                role: $crate::__private::fb_core::identity::Role,
                sites: &$crate::__private::fb_core::identity::SiteScope,
                at: $crate::__private::OffsetDateTime,
            ) -> Result<Option<$crate::__private::fb_core::identity::User>, $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                // As in set_user_disabled: the change goes through if the user stays an admin
                // of all sites, is not one now, or is not the last one, decided in one statement.
                let sql = format!(
                    "{} UPDATE users SET role = $2, sites = $3, updated_at = $4 \
                     WHERE id = $1 AND (($2 = 'admin' AND $3 = 'all') OR {}) RETURNING {}",
                    $crate::full_admins_clause($lock),
                    $crate::NOT_THE_LAST_FULL_ADMIN,
                    $crate::USER_COLUMNS
                );
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .bind(role.as_str())
                    .bind($crate::sites_to_text(sites)?)
                    .bind(at)
                    .fetch_optional(&self.pool);
                Self::timed("identities.update_user_access", query).await?.as_ref().map(Self::decode_user).transpose()
            }

            async fn set_user_password(
                &self,
                id: $crate::__private::fb_core::identity::UserId,
                password_hash: &str,
                at: $crate::__private::OffsetDateTime,
            ) -> Result<bool, $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let query = $crate::__private::sqlx::query(
                    "UPDATE users SET password_hash = $2, must_change_password = FALSE, \
                     password_changed_at = $3, updated_at = $3 WHERE id = $1",
                )
                .bind(id.0)
                .bind(password_hash)
                .bind(at)
                .execute(&self.pool);
                Ok(Self::timed("identities.set_user_password", query).await?.rows_affected() == 1)
            }

            async fn insert_api_key(&self, key: &$crate::__private::fb_core::identity::ApiKey) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let sql = format!(
                    "INSERT INTO api_keys ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    $crate::API_KEY_COLUMNS
                );
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                .bind(key.id.0)
                .bind(&key.prefix)
                .bind(&key.secret_hash)
                .bind(&key.name)
                .bind(key.role.as_str())
                .bind($crate::sites_to_text(&key.sites)?)
                .bind(key.created_by.map(|u| u.0))
                .bind(key.created_at)
                .bind(key.expires_at)
                .bind(key.last_used_at)
                .bind(key.revoked_at)
                .execute(&self.pool);
                Self::timed("identities.insert_api_key", query).await.map(drop)
            }

            async fn api_key_by_id(&self, id: $crate::__private::fb_core::identity::ApiKeyId) -> Result<Option<$crate::__private::fb_core::identity::ApiKey>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!("SELECT {} FROM api_keys WHERE id = $1", $crate::API_KEY_COLUMNS);
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql)).bind(id.0).fetch_optional(&self.pool);
                Self::timed("identities.api_key_by_id", query).await?.as_ref().map(Self::decode_api_key).transpose()
            }

            async fn api_key_by_prefix(&self, prefix: &str) -> Result<Option<$crate::__private::fb_core::identity::ApiKey>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!("SELECT {} FROM api_keys WHERE prefix = $1", $crate::API_KEY_COLUMNS);
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql)).bind(prefix).fetch_optional(&self.pool);
                Self::timed("identities.api_key_by_prefix", query).await?.as_ref().map(Self::decode_api_key).transpose()
            }

            async fn list_api_keys(&self) -> Result<Vec<$crate::__private::fb_core::identity::ApiKey>, $crate::__private::fb_core::ports::StoreError> {
                // Ids are UUIDv7, so id order is creation order.
                let sql = format!("SELECT {} FROM api_keys ORDER BY id DESC", $crate::API_KEY_COLUMNS);
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql)).fetch_all(&self.pool);
                Self::timed("identities.list_api_keys", query).await?.iter().map(Self::decode_api_key).collect()
            }

            async fn revoke_api_key(
                &self,
                id: $crate::__private::fb_core::identity::ApiKeyId,
                at: $crate::__private::OffsetDateTime,
            ) -> Result<Option<$crate::__private::fb_core::identity::ApiKey>, $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let sql = format!(
                    "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING {}",
                    $crate::API_KEY_COLUMNS
                );
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .bind(at)
                    .fetch_optional(&self.pool);
                Self::timed("identities.revoke_api_key", query).await?.as_ref().map(Self::decode_api_key).transpose()
            }

            async fn touch_api_key(
                &self,
                id: $crate::__private::fb_core::identity::ApiKeyId,
                at: $crate::__private::OffsetDateTime,
            ) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let query = $crate::__private::sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
                    .bind(id.0)
                    .bind(at)
                    .execute(&self.pool);
                Self::timed("identities.touch_api_key", query).await.map(drop)
            }

            async fn revoke_api_keys_created_by(
                &self,
                user: $crate::__private::fb_core::identity::UserId,
                at: $crate::__private::OffsetDateTime,
            ) -> Result<u64, $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let query = $crate::__private::sqlx::query(
                    "UPDATE api_keys SET revoked_at = $2 WHERE created_by = $1 AND revoked_at IS NULL",
                )
                .bind(user.0)
                .bind(at)
                .execute(&self.pool);
                Ok(Self::timed("identities.revoke_api_keys_of", query).await?.rows_affected())
            }
        }

        #[$crate::__private::async_trait]
        impl $crate::__private::fb_core::ports::SecretStore for $store {
            async fn get_or_insert_secret(
                &self,
                name: &str,
                candidate: &[u8],
            ) -> Result<Vec<u8>, $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let insert = $crate::__private::sqlx::query(
                    "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(candidate)
                .bind($crate::__private::OffsetDateTime::now_utc())
                .execute(&self.pool);
                Self::timed("secrets.insert", insert).await?;
                let select = $crate::__private::sqlx::query_scalar::<_, Vec<u8>>("SELECT value FROM secrets WHERE name = $1")
                    .bind(name)
                    .fetch_one(&self.pool);
                Self::timed("secrets.get", select).await
            }

            async fn secret(&self, name: &str) -> Result<Option<Vec<u8>>, $crate::__private::fb_core::ports::StoreError> {
                let select = $crate::__private::sqlx::query_scalar::<_, Vec<u8>>("SELECT value FROM secrets WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool);
                Self::timed("secrets.get", select).await
            }

            async fn put_secrets(&self, secrets: &[(&str, &[u8])]) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let mut tx = Self::timed("secrets.begin", self.pool.begin()).await?;
                let now = $crate::__private::OffsetDateTime::now_utc();
                for (name, value) in secrets {
                    let upsert = $crate::__private::sqlx::query(
                        "INSERT INTO secrets (name, value, created_at) VALUES ($1, $2, $3) \
                         ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, created_at = EXCLUDED.created_at",
                    )
                    .bind(*name)
                    .bind(*value)
                    .bind(now)
                    .execute(&mut *tx);
                    Self::timed("secrets.put", upsert).await?;
                }
                Self::timed("secrets.commit", tx.commit()).await
            }
        }
    };
}
