use async_trait::async_trait;
use sqlx::AssertSqlSafe;
use time::OffsetDateTime;

use fb_core::identity::{ApiKey, ApiKeyId, User, UserId};
use fb_core::ports::{IdentityStore, StoreError};

use crate::rows::{self, API_KEY_COLUMNS, USER_COLUMNS};
use crate::{SqliteStore, timed};

// Column lists are compile-time constants, never user input, so formatting them into SQL is safe;
// every value is a bound parameter.
fn sql(text: String) -> AssertSqlSafe<String> {
    AssertSqlSafe(text)
}

#[async_trait]
impl IdentityStore for SqliteStore {
    async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        let query = sqlx::query(
            "INSERT INTO users (id, username, role, password_hash, disabled, must_change_password, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(user.id.0)
        .bind(&user.username)
        .bind(user.role.as_str())
        .bind(&user.password_hash)
        .bind(user.disabled)
        .bind(user.must_change_password)
        .bind(user.created_at)
        .bind(user.updated_at)
        .execute(&self.pool);
        timed("identities.insert_user", query).await.map(drop)
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        let query = sqlx::query(sql(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE id = $1"
        )))
        .bind(id.0)
        .fetch_optional(&self.pool);
        timed("identities.user_by_id", query)
            .await?
            .as_ref()
            .map(rows::user)
            .transpose()
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        let query = sqlx::query(sql(format!(
            "SELECT {USER_COLUMNS} FROM users WHERE username = $1"
        )))
        .bind(username)
        .fetch_optional(&self.pool);
        timed("identities.user_by_username", query)
            .await?
            .as_ref()
            .map(rows::user)
            .transpose()
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let query = sqlx::query(sql(format!(
            "SELECT {USER_COLUMNS} FROM users ORDER BY username"
        )))
        .fetch_all(&self.pool);
        timed("identities.list_users", query)
            .await?
            .iter()
            .map(rows::user)
            .collect()
    }

    async fn count_users(&self) -> Result<u64, StoreError> {
        let query =
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM users").fetch_one(&self.pool);
        Ok(timed("identities.count_users", query).await?.max(0) as u64)
    }

    async fn set_user_disabled(
        &self,
        id: UserId,
        disabled: bool,
        at: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        let query = sqlx::query(sql(format!(
            "UPDATE users SET disabled = $2, updated_at = $3 WHERE id = $1 RETURNING {USER_COLUMNS}"
        )))
        .bind(id.0)
        .bind(disabled)
        .bind(at)
        .fetch_optional(&self.pool);
        timed("identities.set_user_disabled", query)
            .await?
            .as_ref()
            .map(rows::user)
            .transpose()
    }

    async fn set_user_password(
        &self,
        id: UserId,
        password_hash: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let query = sqlx::query(
            "UPDATE users SET password_hash = $2, must_change_password = FALSE, updated_at = $3 \
             WHERE id = $1",
        )
        .bind(id.0)
        .bind(password_hash)
        .bind(at)
        .execute(&self.pool);
        Ok(timed("identities.set_user_password", query)
            .await?
            .rows_affected()
            == 1)
    }

    async fn insert_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        let query = sqlx::query(
            "INSERT INTO api_keys (id, prefix, secret_hash, name, role, created_by, created_at, \
             expires_at, last_used_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(key.id.0)
        .bind(&key.prefix)
        .bind(&key.secret_hash)
        .bind(&key.name)
        .bind(key.role.as_str())
        .bind(key.created_by.map(|u| u.0))
        .bind(key.created_at)
        .bind(key.expires_at)
        .bind(key.last_used_at)
        .bind(key.revoked_at)
        .execute(&self.pool);
        timed("identities.insert_api_key", query).await.map(drop)
    }

    async fn api_key_by_id(&self, id: ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        let query = sqlx::query(sql(format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE id = $1"
        )))
        .bind(id.0)
        .fetch_optional(&self.pool);
        timed("identities.api_key_by_id", query)
            .await?
            .as_ref()
            .map(rows::api_key)
            .transpose()
    }

    async fn api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKey>, StoreError> {
        let query = sqlx::query(sql(format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE prefix = $1"
        )))
        .bind(prefix)
        .fetch_optional(&self.pool);
        timed("identities.api_key_by_prefix", query)
            .await?
            .as_ref()
            .map(rows::api_key)
            .transpose()
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        // Ids are UUIDv7, so id order is creation order.
        let query = sqlx::query(sql(format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY id DESC"
        )))
        .fetch_all(&self.pool);
        timed("identities.list_api_keys", query)
            .await?
            .iter()
            .map(rows::api_key)
            .collect()
    }

    async fn revoke_api_key(
        &self,
        id: ApiKeyId,
        at: OffsetDateTime,
    ) -> Result<Option<ApiKey>, StoreError> {
        let query = sqlx::query(sql(format!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 \
             RETURNING {API_KEY_COLUMNS}"
        )))
        .bind(id.0)
        .bind(at)
        .fetch_optional(&self.pool);
        timed("identities.revoke_api_key", query)
            .await?
            .as_ref()
            .map(rows::api_key)
            .transpose()
    }

    async fn touch_api_key(&self, id: ApiKeyId, at: OffsetDateTime) -> Result<(), StoreError> {
        let query = sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
            .bind(id.0)
            .bind(at)
            .execute(&self.pool);
        timed("identities.touch_api_key", query).await.map(drop)
    }
}
