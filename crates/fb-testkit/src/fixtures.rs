use time::OffsetDateTime;
use uuid::Uuid;

use fb_core::identity::{ApiKey, ApiKeyId, Role, User, UserId};

/// A fixed instant with non-zero microseconds, to catch backends that drop precision.
pub fn instant() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_123_456_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub fn user(username: &str, role: Role) -> User {
    User {
        id: UserId(Uuid::now_v7()),
        username: username.to_owned(),
        role,
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$fixture${username}"),
        disabled: false,
        must_change_password: false,
        password_changed_at: instant(),
        created_at: instant(),
        updated_at: instant(),
    }
}

pub fn api_key(prefix: &str, role: Role, created_by: Option<UserId>) -> ApiKey {
    ApiKey {
        id: ApiKeyId(Uuid::now_v7()),
        prefix: prefix.to_owned(),
        secret_hash: vec![0xab; 32],
        name: format!("key {prefix}"),
        role,
        created_by,
        created_at: instant(),
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
    }
}
