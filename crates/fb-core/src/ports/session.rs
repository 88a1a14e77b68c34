//! Where login sessions, refresh tokens and second factors are kept.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::identity::{User, UserId};
use crate::session::{EndReason, RefreshToken, Rotation, Session, SessionId, Totp};

use super::StoreError;

#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Stores a new session with its first refresh token, atomically.
    async fn insert_session(
        &self,
        session: &Session,
        first: &RefreshToken,
    ) -> Result<(), StoreError>;

    /// A session and its user, read together: what every request with an access token needs.
    async fn session_with_user(&self, id: SessionId)
    -> Result<Option<(Session, User)>, StoreError>;

    /// Uses the refresh token whose hash is `presented` and stores `next` in its place, all in
    /// one transaction, if the token is unused, unexpired at `now` and its session active.
    /// A token that was used before ends its session (`EndReason::RefreshTokenReused`) and
    /// is reported as `Reused`; `next.session` and `next.generation` are the store's to set.
    async fn rotate_refresh_token(
        &self,
        presented: &[u8],
        next: &RefreshToken,
        now: OffsetDateTime,
    ) -> Result<Rotation, StoreError>;

    /// A user's sessions, newest first; ended and aged-out ones too when `include_ended`.
    async fn list_sessions(
        &self,
        user: UserId,
        include_ended: bool,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError>;

    /// Ends one session if it is still active; returns it as stored afterwards (`None` if
    /// there is no such session).
    async fn end_session(
        &self,
        id: SessionId,
        reason: EndReason,
        at: OffsetDateTime,
    ) -> Result<Option<Session>, StoreError>;

    /// Ends every active session of a user; returns how many.
    async fn end_user_sessions(
        &self,
        user: UserId,
        reason: EndReason,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError>;

    /// Marks a session as having verified the second factor (after enrolment).
    async fn set_session_mfa(&self, id: SessionId) -> Result<(), StoreError>;
}

#[async_trait]
pub trait MfaStore: Send + Sync {
    async fn totp(&self, user: UserId) -> Result<Totp, StoreError>;

    /// Starts (or restarts) enrolment with a new secret; the factor is not enabled yet.
    async fn set_totp_secret(&self, user: UserId, secret: &[u8]) -> Result<(), StoreError>;

    /// Enables the enrolled secret and replaces the recovery codes, atomically.
    async fn enable_totp(
        &self,
        user: UserId,
        at: OffsetDateTime,
        recovery_code_hashes: &[Vec<u8>],
    ) -> Result<(), StoreError>;

    /// Removes the secret and the recovery codes.
    async fn clear_totp(&self, user: UserId) -> Result<(), StoreError>;

    /// Records that the code of time step `step` was accepted, if `step` is later than the
    /// last accepted one; `false` when it is not (a replayed code). Atomic across nodes.
    async fn accept_totp_step(&self, user: UserId, step: i64) -> Result<bool, StoreError>;

    /// Replaces the recovery codes.
    async fn replace_recovery_codes(
        &self,
        user: UserId,
        hashes: &[Vec<u8>],
        at: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// Uses the unused recovery code with this hash; `false` if there is none.
    async fn use_recovery_code(
        &self,
        user: UserId,
        hash: &[u8],
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Unused recovery codes left.
    async fn recovery_codes_left(&self, user: UserId) -> Result<u64, StoreError>;
}
