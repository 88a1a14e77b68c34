//! Row → domain decoding. Column lists live next to the decoders so they cannot drift apart.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use fb_core::identity::{ApiKey, ApiKeyId, Role, User, UserId};
use fb_core::ports::StoreError;

pub(crate) const USER_COLUMNS: &str =
    "id, username, role, password_hash, disabled, must_change_password, created_at, updated_at";

pub(crate) const API_KEY_COLUMNS: &str = "id, prefix, secret_hash, name, role, created_by, \
     created_at, expires_at, last_used_at, revoked_at";

fn role(row: &SqliteRow) -> Result<Role, StoreError> {
    let name: String = row.try_get("role").map_err(corrupt)?;
    Role::parse(&name).ok_or_else(|| StoreError::Corrupt(format!("unknown role {name:?}")))
}

pub(crate) fn user(row: &SqliteRow) -> Result<User, StoreError> {
    Ok(User {
        id: UserId(row.try_get::<Uuid, _>("id").map_err(corrupt)?),
        username: row.try_get("username").map_err(corrupt)?,
        role: role(row)?,
        password_hash: row.try_get("password_hash").map_err(corrupt)?,
        disabled: row.try_get("disabled").map_err(corrupt)?,
        must_change_password: row.try_get("must_change_password").map_err(corrupt)?,
        created_at: row.try_get("created_at").map_err(corrupt)?,
        updated_at: row.try_get("updated_at").map_err(corrupt)?,
    })
}

pub(crate) fn api_key(row: &SqliteRow) -> Result<ApiKey, StoreError> {
    Ok(ApiKey {
        id: ApiKeyId(row.try_get::<Uuid, _>("id").map_err(corrupt)?),
        prefix: row.try_get("prefix").map_err(corrupt)?,
        secret_hash: row.try_get("secret_hash").map_err(corrupt)?,
        name: row.try_get("name").map_err(corrupt)?,
        role: role(row)?,
        created_by: row
            .try_get::<Option<Uuid>, _>("created_by")
            .map_err(corrupt)?
            .map(UserId),
        created_at: row.try_get("created_at").map_err(corrupt)?,
        expires_at: row.try_get("expires_at").map_err(corrupt)?,
        last_used_at: row.try_get("last_used_at").map_err(corrupt)?,
        revoked_at: row.try_get("revoked_at").map_err(corrupt)?,
    })
}

fn corrupt(e: sqlx::Error) -> StoreError {
    StoreError::Corrupt(e.to_string())
}
