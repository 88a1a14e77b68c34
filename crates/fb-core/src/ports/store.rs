//! The storage facade: one set of ports that SQLite and PostgreSQL both implement.

use std::sync::Arc;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::identity::{ApiKey, ApiKeyId, Role, SiteScope, User, UserId};

use super::{
    AlertStore, AnomalyStore, ApprovalStore, AuditStore, DeadLetterStore, DecisionStore,
    DeviceStore, MachineStore, MfaStore, ModelStore, ProcurementStore, ReadingStore,
    RecommendationStore, ScoreStore, SessionStore, TicketStore,
};

/// Errors every storage adapter translates its driver errors into.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness constraint was violated; `constraint` names what collided.
    #[error("conflict on {constraint}")]
    Conflict { constraint: &'static str },
    /// The database cannot be reached, or a connection could not be had in time.
    #[error("store unavailable: {0}")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// Stored data cannot be decoded (e.g. an unknown role name).
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("store error: {0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[async_trait]
pub trait IdentityStore: Send + Sync {
    /// Inserts a new user. `Conflict { constraint: "username" }` when the name is taken.
    async fn insert_user(&self, user: &User) -> Result<(), StoreError>;
    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError>;
    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError>;
    /// All users, ordered by username.
    async fn list_users(&self) -> Result<Vec<User>, StoreError>;
    async fn count_users(&self) -> Result<u64, StoreError>;
    /// Sets the disabled flag; returns the updated user, or `None` if there is no such user or
    /// the change would disable the last active admin of all sites (role admin, not disabled,
    /// sites `All`). Atomic: two concurrent calls can never disable the last two admins between
    /// them.
    async fn set_user_disabled(
        &self,
        id: UserId,
        disabled: bool,
        at: OffsetDateTime,
    ) -> Result<Option<User>, StoreError>;
    /// Sets role and sites; returns the updated user, or `None` if there is no such user or the
    /// change would leave no active admin of all sites (the same rule and atomicity as
    /// [`set_user_disabled`](Self::set_user_disabled)).
    async fn update_user_access(
        &self,
        id: UserId,
        role: Role,
        sites: &SiteScope,
        at: OffsetDateTime,
    ) -> Result<Option<User>, StoreError>;
    /// Replaces the password hash, clears `must_change_password` and sets `password_changed_at`
    /// to `at`; `false` if no such user.
    async fn set_user_password(
        &self,
        id: UserId,
        password_hash: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Inserts a new API key. `Conflict { constraint: "api_key_prefix" }` on a prefix collision.
    async fn insert_api_key(&self, key: &ApiKey) -> Result<(), StoreError>;
    async fn api_key_by_id(&self, id: ApiKeyId) -> Result<Option<ApiKey>, StoreError>;
    async fn api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKey>, StoreError>;
    /// All keys, newest first, revoked ones included.
    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError>;
    /// Marks the key revoked at `at` unless it already is; returns the key as stored afterwards.
    async fn revoke_api_key(
        &self,
        id: ApiKeyId,
        at: OffsetDateTime,
    ) -> Result<Option<ApiKey>, StoreError>;
    async fn touch_api_key(&self, id: ApiKeyId, at: OffsetDateTime) -> Result<(), StoreError>;
    /// Revokes every active key the user created; returns how many.
    async fn revoke_api_keys_created_by(
        &self,
        user: UserId,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError>;
}

/// Small named secrets the product generates for itself (e.g. the token signing key).
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// Returns the stored secret called `name`; if there is none, stores `candidate` and returns
    /// it. Atomic, so several nodes starting at once agree on one value.
    async fn get_or_insert_secret(
        &self,
        name: &str,
        candidate: &[u8],
    ) -> Result<Vec<u8>, StoreError>;

    /// The secret called `name`, if there is one.
    async fn secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Replaces the secrets called by the given names, all in one transaction (a key rotation
    /// moves the current key to "previous" and stores a new current one together).
    async fn put_secrets(&self, secrets: &[(&str, &[u8])]) -> Result<(), StoreError>;
}

#[async_trait]
pub trait StoreHealth: Send + Sync {
    /// Short name of the backend, for logs and metrics labels (`sqlite`, `postgres`).
    fn backend(&self) -> &'static str;
    /// A round trip to the database.
    async fn ping(&self) -> Result<(), StoreError>;
    /// Closes the pool after in-flight queries finish.
    async fn close(&self);
}

/// The storage facade handed to the application: every port, backed by one adapter.
#[derive(Clone)]
pub struct Storage {
    pub identities: Arc<dyn IdentityStore>,
    pub secrets: Arc<dyn SecretStore>,
    pub machines: Arc<dyn MachineStore>,
    pub readings: Arc<dyn ReadingStore>,
    pub dead_letters: Arc<dyn DeadLetterStore>,
    pub alerts: Arc<dyn AlertStore>,
    pub anomalies: Arc<dyn AnomalyStore>,
    pub scores: Arc<dyn ScoreStore>,
    pub audit: Arc<dyn AuditStore>,
    pub sessions: Arc<dyn SessionStore>,
    pub mfa: Arc<dyn MfaStore>,
    pub devices: Arc<dyn DeviceStore>,
    pub models: Arc<dyn ModelStore>,
    pub tickets: Arc<dyn TicketStore>,
    pub approvals: Arc<dyn ApprovalStore>,
    pub decisions: Arc<dyn DecisionStore>,
    pub recommendations: Arc<dyn RecommendationStore>,
    pub procurement: Arc<dyn ProcurementStore>,
    pub health: Arc<dyn StoreHealth>,
}

impl Storage {
    /// Builds the facade from one adapter that implements every port.
    pub fn from_backend<B>(backend: Arc<B>) -> Self
    where
        B: IdentityStore
            + SecretStore
            + MachineStore
            + ReadingStore
            + DeadLetterStore
            + AlertStore
            + AnomalyStore
            + ScoreStore
            + AuditStore
            + SessionStore
            + MfaStore
            + DeviceStore
            + ModelStore
            + TicketStore
            + ApprovalStore
            + DecisionStore
            + RecommendationStore
            + ProcurementStore
            + StoreHealth
            + 'static,
    {
        Self {
            identities: backend.clone(),
            secrets: backend.clone(),
            machines: backend.clone(),
            readings: backend.clone(),
            dead_letters: backend.clone(),
            alerts: backend.clone(),
            anomalies: backend.clone(),
            scores: backend.clone(),
            audit: backend.clone(),
            sessions: backend.clone(),
            mfa: backend.clone(),
            devices: backend.clone(),
            models: backend.clone(),
            tickets: backend.clone(),
            approvals: backend.clone(),
            decisions: backend.clone(),
            recommendations: backend.clone(),
            procurement: backend.clone(),
            health: backend,
        }
    }
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage")
            .field("backend", &self.health.backend())
            .finish()
    }
}
