//! Identities and authentication: login, sessions with rotating refresh tokens, the second
//! factor, access tokens, API keys, users (D1–D3).

pub(crate) mod api_key;
mod error;
mod mfa;
pub mod password;
mod sessions;
mod token;
pub mod totp;

use std::sync::{Arc, RwLock};

use rand::RngCore;
use time::OffsetDateTime;
use uuid::Uuid;

use fb_core::Clock;
use fb_core::error::FieldError;
use fb_core::identity::{
    self, ApiKey, ApiKeyId, Permission, Principal, Role, SiteScope, Subject, User, UserId,
};
use fb_core::ports::{IdentityStore, MfaStore, SecretStore, SessionStore, Storage, StoreError};
use fb_core::session::EndReason;

pub use error::Error;
pub use mfa::{MfaProof, MfaStatus, TotpEnrolment};
pub use sessions::{ClientInfo, LoginOutcome, MfaChallenge, SessionTokens};

use crate::scope::require_grantable;
pub(crate) use error::describe_fields;
pub use token::{MIN_SECRET_BYTES, Rejection};

/// Name under which the generated token-signing key is kept in the `SecretStore`.
const SIGNING_KEY_NAME: &str = "auth.jwt_hs256_key";
/// The key before the last rotation, still accepted so that tokens signed with it (for at most
/// their lifetime) keep working.
const PREVIOUS_SIGNING_KEY_NAME: &str = "auth.jwt_hs256_key.previous";
/// How often a node may re-read the stored keys because a token named a key it does not hold
/// (another node rotated): often enough to follow a rotation, rarely enough that a flood of
/// forged `kid`s costs one read every few seconds.
const KEY_RELOAD_MIN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// `last_used_at` of an API key is written at most this often, so that a busy key does not
/// turn every read into a write.
const TOUCH_INTERVAL: time::Duration = time::Duration::seconds(60);
const GENERATED_PASSWORD_LEN: usize = 20;

#[derive(Clone)]
pub struct Options {
    pub access_token_ttl: time::Duration,
    /// How long a refresh token may wait to be used.
    pub refresh_token_ttl: time::Duration,
    /// A session ends this long after its login, however often it is refreshed.
    pub session_max_age: time::Duration,
    /// Roles whose users must verify a second factor; until they enrol one, their sessions
    /// may only manage their own account.
    pub mfa_required_for: Vec<Role>,
    pub issuer: String,
    pub audience: String,
    /// A configured signing secret (at least [`MIN_SECRET_BYTES`]). When `None`, a random key is
    /// generated on first start and kept in the store, so every node shares it.
    pub signing_secret: Option<Vec<u8>>,
    /// The configured secret before the last change: still accepted, never used to sign.
    pub previous_signing_secret: Option<Vec<u8>>,
}

impl Options {
    /// The defaults of the settings file, with a generated key: for tests and tools.
    pub fn with_defaults() -> Self {
        Self {
            access_token_ttl: time::Duration::hours(1),
            refresh_token_ttl: time::Duration::days(14),
            session_max_age: time::Duration::days(30),
            mfa_required_for: vec![Role::Admin],
            issuer: "factorybrain".into(),
            audience: "factorybrain-api".into(),
            signing_secret: None,
            previous_signing_secret: None,
        }
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("access_token_ttl", &self.access_token_ttl)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field(
                "signing_secret",
                &self.signing_secret.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "previous_signing_secret",
                &self.previous_signing_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("session_max_age", &self.session_max_age)
            .field("mfa_required_for", &self.mfa_required_for)
            .finish()
    }
}

/// A freshly issued access token.
#[derive(Clone)]
pub struct AccessToken {
    pub token: String,
    pub expires_at: OffsetDateTime,
    pub expires_in_secs: i64,
}

#[derive(Clone)]
pub struct NewUser {
    pub username: String,
    pub role: Role,
    /// `None`: the creator's own sites (see [`SiteScope`] for why).
    pub sites: Option<SiteScope>,
    /// `None` generates a password, returned once and flagged for change.
    pub password: Option<String>,
}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("username", &self.username)
            .field("role", &self.role)
            .field("sites", &self.sites)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub role: Role,
    /// `None`: the creator's own sites.
    pub sites: Option<SiteScope>,
    pub expires_at: Option<OffsetDateTime>,
}

/// A change of a user's access; `None` leaves that part as it is.
#[derive(Debug, Clone, Default)]
pub struct AccessChange {
    pub role: Option<Role>,
    pub sites: Option<SiteScope>,
}

/// A user or key addressed by id or by its human name (username, key prefix).
#[derive(Debug, Clone)]
pub enum UserRef {
    Id(UserId),
    Username(String),
}

pub struct Service {
    identities: Arc<dyn IdentityStore>,
    sessions: Arc<dyn SessionStore>,
    mfa: Arc<dyn MfaStore>,
    secrets: Arc<dyn SecretStore>,
    clock: Arc<dyn Clock>,
    /// Swapped whole when the keys are reloaded after a rotation.
    keys: RwLock<Arc<token::TokenKeys>>,
    /// Whether the keys live in the store (generated, rotatable by command) or in settings.
    keys_stored: bool,
    last_key_reload: std::sync::Mutex<Option<std::time::Instant>>,
    options: Options,
}

impl Service {
    /// Loads (or on first start generates and stores) the token signing key.
    pub async fn start(
        storage: &Storage,
        clock: Arc<dyn Clock>,
        options: Options,
    ) -> Result<Self, Error> {
        for (field, secret) in [
            ("auth.jwt_secret", &options.signing_secret),
            ("auth.jwt_previous_secret", &options.previous_signing_secret),
        ] {
            if secret.as_ref().is_some_and(|s| s.len() < MIN_SECRET_BYTES) {
                return Err(Error::Validation(vec![FieldError::new(
                    field,
                    format!("must be at least {MIN_SECRET_BYTES} bytes"),
                )]));
            }
        }
        let keys_stored = options.signing_secret.is_none();
        let keys = match &options.signing_secret {
            Some(secret) => token::TokenKeys::with_previous(
                secret,
                options.previous_signing_secret.as_deref(),
                options.issuer.clone(),
                options.audience.clone(),
            ),
            None => stored_keys(storage.secrets.as_ref(), &options).await?,
        };
        Ok(Self {
            identities: storage.identities.clone(),
            sessions: storage.sessions.clone(),
            mfa: storage.mfa.clone(),
            secrets: storage.secrets.clone(),
            clock,
            keys: RwLock::new(Arc::new(keys)),
            keys_stored,
            last_key_reload: std::sync::Mutex::new(None),
            options,
        })
    }

    fn keys(&self) -> Arc<token::TokenKeys> {
        self.keys.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Re-reads the stored signing keys (after a rotation by another process). A no-op when the
    /// key comes from settings.
    pub async fn reload_keys(&self) -> Result<(), Error> {
        if !self.keys_stored {
            return Ok(());
        }
        let keys = stored_keys(self.secrets.as_ref(), &self.options).await?;
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(keys);
        Ok(())
    }

    /// Replaces the stored signing key with a new random one; the old one stays accepted as
    /// "previous" (for the access tokens it signed, at most `access_token_ttl`). Sessions go on:
    /// their next refresh gets a token signed with the new key. Returns the new key's
    /// fingerprint. Refused when the key comes from settings (change `auth.jwt_secret` there).
    pub async fn rotate_signing_key(&self) -> Result<String, Error> {
        if !self.keys_stored {
            return Err(Error::Validation(vec![FieldError::new(
                "auth.jwt_secret",
                "the signing key comes from settings: set a new auth.jwt_secret and move the old \
                 one to auth.jwt_previous_secret",
            )]));
        }
        let current = self
            .secrets
            .secret(SIGNING_KEY_NAME)
            .await?
            .ok_or_else(|| Error::Internal("no stored signing key to rotate".into()))?;
        let mut next = vec![0u8; 32];
        rand::rng().fill_bytes(&mut next);
        self.secrets
            .put_secrets(&[
                (SIGNING_KEY_NAME, &next),
                (PREVIOUS_SIGNING_KEY_NAME, &current),
            ])
            .await?;
        self.reload_keys().await?;
        tracing::info!(kid = %token::fingerprint(&next), "Token signing key rotated.");
        Ok(token::fingerprint(&next))
    }

    /// Fingerprint (`kid`) of the key new tokens are signed with.
    pub fn signing_key_id(&self) -> String {
        self.keys().current_kid().to_owned()
    }

    /// Verifies an access token; a token naming a key this node does not hold makes it re-read
    /// the stored keys once (at most every few seconds) in case another node rotated them.
    async fn verify_access_token(
        &self,
        credential: &str,
        now: OffsetDateTime,
    ) -> Result<token::Verified, Rejection> {
        match self.keys().verify(credential, now) {
            Err(Rejection::UnknownKey) if self.keys_stored && self.may_reload_keys() => {
                if let Err(e) = self.reload_keys().await {
                    tracing::warn!(error = %e, "Could not re-read the signing keys.");
                }
                self.keys().verify(credential, now)
            }
            other => other,
        }
    }

    fn may_reload_keys(&self) -> bool {
        let mut last = self
            .last_key_reload
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let due = last.is_none_or(|at| at.elapsed() >= KEY_RELOAD_MIN_INTERVAL);
        if due {
            *last = Some(std::time::Instant::now());
        }
        due
    }

    /// Resolves a bearer credential (an access token or an API key) to a principal.
    /// The role and the session always come from the store, so a role change, a disabled
    /// account or an ended session takes effect at once, not when the token expires.
    pub async fn authenticate(&self, credential: &str) -> Result<Principal, Error> {
        let now = self.clock.now();
        if let Some((prefix, secret)) = api_key::parse(credential) {
            return self.authenticate_api_key(prefix, secret, now).await;
        }
        if credential.starts_with(api_key::SCHEME) {
            return Err(Error::InvalidApiKey);
        }
        let verified = self
            .verify_access_token(credential, now)
            .await
            .map_err(Error::InvalidToken)?;
        let Some((session, user)) = self.sessions.session_with_user(verified.session).await? else {
            return Err(Error::InvalidToken(Rejection::SessionEnded));
        };
        if session.user != verified.user || user.disabled {
            return Err(Error::InvalidToken(Rejection::Claims));
        }
        if !session.is_active(now) {
            return Err(Error::InvalidToken(Rejection::SessionEnded));
        }
        if verified.issued_at < user.password_changed_at.unix_timestamp() {
            return Err(Error::InvalidToken(Rejection::Superseded));
        }
        Ok(Principal {
            mfa_enrolment_pending: self.requires_mfa(user.role) && !session.mfa,
            role: user.role,
            sites: user.sites,
            subject: Subject::User {
                id: user.id,
                username: user.username,
                session: Some(session.id),
            },
        })
    }

    /// Whether users of this role must verify a second factor.
    pub fn requires_mfa(&self, role: Role) -> bool {
        self.options.mfa_required_for.contains(&role)
    }

    async fn authenticate_api_key(
        &self,
        prefix: &str,
        secret: &str,
        now: OffsetDateTime,
    ) -> Result<Principal, Error> {
        let key = self.identities.api_key_by_prefix(prefix).await?;
        let Some(key) = key.filter(|k| api_key::secret_matches(secret, &k.secret_hash)) else {
            return Err(Error::InvalidApiKey);
        };
        if !key.is_active(now) {
            return Err(Error::InvalidApiKey);
        }
        if key.last_used_at.is_none_or(|t| now - t >= TOUCH_INTERVAL) {
            // Losing one last-used update is harmless; failing the request for it is not.
            if let Err(e) = self.identities.touch_api_key(key.id, now).await {
                tracing::warn!(api_key_id = %key.id, error = %e, "Could not record API key use.");
            }
        }
        Ok(Principal {
            role: key.role,
            sites: key.sites,
            subject: Subject::ApiKey {
                id: key.id,
                name: key.name,
            },
            mfa_enrolment_pending: false,
        })
    }

    /// Creates the first admin when there are no users at all. Returns the user and its
    /// generated password, which the caller shows once; `None` when users already exist.
    pub async fn bootstrap_admin(&self, username: &str) -> Result<Option<(User, String)>, Error> {
        if self.identities.count_users().await? > 0 {
            return Ok(None);
        }
        let new = NewUser {
            username: username.to_owned(),
            role: Role::Admin,
            sites: Some(SiteScope::All),
            password: None,
        };
        match self.create_user(&Principal::system(), new).await {
            Ok((user, password)) => Ok(password.map(|p| (user, p))),
            // Another node created it first.
            Err(Error::UsernameTaken) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a user. Returns the generated password when none was given.
    pub async fn create_user(
        &self,
        caller: &Principal,
        new: NewUser,
    ) -> Result<(User, Option<String>), Error> {
        require(caller, Permission::UsersManage)?;
        if !caller.role.can_grant(new.role) {
            return Err(Error::PermissionDenied(Permission::UsersManage));
        }
        let sites = new.sites.unwrap_or_else(|| caller.sites.clone());
        require_grantable(caller, "sites", &sites)?;
        let mut problems = Vec::new();
        let username = new.username.trim().to_owned();
        if let Err(e) = identity::validate_username("username", &username) {
            problems.push(e);
        }
        if let Some(p) = &new.password
            && let Err(e) = identity::validate_password("password", p)
        {
            problems.push(e);
        }
        if !problems.is_empty() {
            return Err(Error::Validation(problems));
        }
        let generated = new
            .password
            .is_none()
            .then(|| password::generate(GENERATED_PASSWORD_LEN));
        let plain = new
            .password
            .or_else(|| generated.clone())
            .unwrap_or_default();
        let now = self.clock.now();
        let user = User {
            id: UserId(Uuid::now_v7()),
            username,
            role: new.role,
            sites,
            password_hash: password::hash(plain).await?,
            disabled: false,
            must_change_password: generated.is_some(),
            password_changed_at: now,
            mfa_enabled: false,
            created_at: now,
            updated_at: now,
        };
        self.identities
            .insert_user(&user)
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => Error::UsernameTaken,
                other => other.into(),
            })?;
        tracing::info!(user_id = %user.id, username = %user.username, role = %user.role, sites = %user.sites, "User created.");
        Ok((user, generated))
    }

    /// All users within the caller's sites (all users for a caller with every site).
    pub async fn list_users(&self, caller: &Principal) -> Result<Vec<User>, Error> {
        require(caller, Permission::UsersRead)?;
        let mut users = self.identities.list_users().await?;
        users.retain(|u| caller.sites.covers(&u.sites));
        Ok(users)
    }

    pub async fn current_user(&self, caller: &Principal) -> Result<Option<User>, Error> {
        match caller.user_id() {
            Some(id) => Ok(self.identities.user_by_id(id).await?),
            None => Ok(None),
        }
    }

    /// The user, if the caller's sites cover the user's: a caller limited to some sites
    /// neither sees nor changes users who reach further (answered as unknown).
    async fn find_user(&self, caller: &Principal, user: &UserRef) -> Result<User, Error> {
        let found = match user {
            UserRef::Id(id) => self.identities.user_by_id(*id).await?,
            UserRef::Username(name) => self.identities.user_by_username(name.trim()).await?,
        };
        found
            .filter(|u| caller.sites.covers(&u.sites))
            .ok_or(Error::UserNotFound)
    }

    /// Changes a user's role and sites. Nobody changes their own; the new access must be one
    /// the caller could grant, the user must be within the caller's sites, and the last active
    /// admin of all sites keeps that (checked atomically by the store).
    pub async fn update_user_access(
        &self,
        caller: &Principal,
        user: &UserRef,
        change: AccessChange,
    ) -> Result<User, Error> {
        require(caller, Permission::UsersManage)?;
        let target = self.find_user(caller, user).await?;
        if caller.user_id() == Some(target.id) {
            return Err(Error::OwnAccessChange);
        }
        let role = change.role.unwrap_or(target.role);
        let sites = change.sites.unwrap_or_else(|| target.sites.clone());
        if !caller.role.can_grant(target.role) || !caller.role.can_grant(role) {
            return Err(Error::PermissionDenied(Permission::UsersManage));
        }
        require_grantable(caller, "sites", &sites)?;
        let Some(updated) = self
            .identities
            .update_user_access(target.id, role, &sites, self.clock.now())
            .await?
        else {
            return Err(self.why_refused(target.id).await?);
        };
        // Keys the user made stay within what the user may hand out now: a demoted admin's
        // admin key, or a key beyond the user's narrowed sites, is revoked with the change.
        let now = self.clock.now();
        let mut revoked = 0;
        for key in self.identities.list_api_keys().await? {
            let beyond = !updated.role.can_grant(key.role) || !updated.sites.covers(&key.sites);
            if key.created_by == Some(updated.id) && key.revoked_at.is_none() && beyond {
                self.identities.revoke_api_key(key.id, now).await?;
                revoked += 1;
            }
        }
        tracing::info!(user_id = %updated.id, role = %updated.role, sites = %updated.sites, revoked_api_keys = revoked, "User access changed.");
        Ok(updated)
    }

    /// The user a credential acts for: the caller itself, or the user who created the calling
    /// API key (so that keys made by keys still belong to a person, and go when that person's
    /// keys go).
    async fn acting_user(&self, caller: &Principal) -> Result<Option<UserId>, Error> {
        match &caller.subject {
            Subject::User { id, .. } => Ok(Some(*id)),
            Subject::ApiKey { id, .. } => Ok(self
                .identities
                .api_key_by_id(*id)
                .await?
                .and_then(|k| k.created_by)),
            Subject::System => Ok(None),
        }
    }

    /// Disables or re-enables a user. A disabled user cannot log in, and its tokens stop working
    /// at once. The last active admin cannot be disabled, so the plant is never locked out.
    pub async fn set_user_disabled(
        &self,
        caller: &Principal,
        user: &UserRef,
        disabled: bool,
    ) -> Result<User, Error> {
        require(caller, Permission::UsersManage)?;
        let target = self.find_user(caller, user).await?;
        // The store refuses to disable the last active admin, atomically.
        let Some(updated) = self
            .identities
            .set_user_disabled(target.id, disabled, self.clock.now())
            .await?
        else {
            return Err(self.why_refused(target.id).await?);
        };
        if disabled {
            // Everything the user could still act with ends with it.
            let now = self.clock.now();
            let sessions = self
                .sessions
                .end_user_sessions(updated.id, EndReason::UserDisabled, now)
                .await?;
            let keys = self
                .identities
                .revoke_api_keys_created_by(updated.id, now)
                .await?;
            tracing::info!(user_id = %updated.id, sessions, api_keys = keys, "User disabled; their sessions ended and API keys revoked.");
        } else {
            tracing::info!(user_id = %updated.id, "User enabled.");
        }
        Ok(updated)
    }

    /// Why the store refused a change of a user that was there a moment ago: it still is (so it
    /// is the last admin of all sites), or it was deleted meanwhile.
    async fn why_refused(&self, id: UserId) -> Result<Error, Error> {
        Ok(match self.identities.user_by_id(id).await? {
            Some(_) => Error::LastAdmin,
            None => Error::UserNotFound,
        })
    }

    /// Changes the caller's own password after checking the current one.
    pub async fn change_password(
        &self,
        caller: &Principal,
        current: &str,
        new: &str,
    ) -> Result<(), Error> {
        require(caller, Permission::SelfPassword)?;
        let id = caller.user_id().ok_or(Error::UserSessionRequired)?;
        identity::validate_password("new_password", new).map_err(|e| Error::Validation(vec![e]))?;
        let user = self
            .identities
            .user_by_id(id)
            .await?
            .ok_or(Error::UserNotFound)?;
        if !password::verify(current.to_owned(), Some(user.password_hash)).await? {
            return Err(Error::InvalidCredentials);
        }
        let hash = password::hash(new.to_owned()).await?;
        if !self
            .identities
            .set_user_password(id, &hash, self.clock.now())
            .await?
        {
            return Err(Error::UserNotFound);
        }
        // Every session, this one included, must log in with the new password.
        self.sessions
            .end_user_sessions(id, EndReason::PasswordChanged, self.clock.now())
            .await?;
        tracing::info!(user_id = %id, "Password changed; the user's sessions ended.");
        Ok(())
    }

    /// Creates an API key. Returns the stored record and the key string, shown only this once.
    pub async fn create_api_key(
        &self,
        caller: &Principal,
        new: NewApiKey,
    ) -> Result<(ApiKey, String), Error> {
        require(caller, Permission::ApiKeysManage)?;
        if !caller.role.can_grant(new.role) {
            return Err(Error::PermissionDenied(Permission::ApiKeysManage));
        }
        let sites = new.sites.unwrap_or_else(|| caller.sites.clone());
        require_grantable(caller, "sites", &sites)?;
        let now = self.clock.now();
        let mut problems = Vec::new();
        if let Err(e) = identity::validate_api_key_name("name", &new.name) {
            problems.push(e);
        }
        if new.expires_at.is_some_and(|e| e <= now) {
            problems.push(FieldError::new("expires_at", "must be in the future"));
        }
        if !problems.is_empty() {
            return Err(Error::Validation(problems));
        }
        let created_by = self.acting_user(caller).await?;
        // A 48-bit prefix collides about once in 10^7 keys; one retry makes it practically never.
        for _ in 0..2 {
            let generated = api_key::generate();
            let key = ApiKey {
                id: ApiKeyId(Uuid::now_v7()),
                prefix: generated.prefix,
                secret_hash: generated.secret_hash,
                name: new.name.trim().to_owned(),
                role: new.role,
                sites: sites.clone(),
                created_by,
                created_at: now,
                expires_at: new.expires_at,
                last_used_at: None,
                revoked_at: None,
            };
            match self.identities.insert_api_key(&key).await {
                Ok(()) => {
                    tracing::info!(api_key_id = %key.id, prefix = %key.prefix, role = %key.role, sites = %key.sites, "API key created.");
                    return Ok((key, generated.token));
                }
                Err(StoreError::Conflict { .. }) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Internal(
            "could not allocate a unique API key prefix".into(),
        ))
    }

    /// All keys within the caller's sites (every key for a caller with every site).
    pub async fn list_api_keys(&self, caller: &Principal) -> Result<Vec<ApiKey>, Error> {
        require(caller, Permission::ApiKeysManage)?;
        let mut keys = self.identities.list_api_keys().await?;
        keys.retain(|k| caller.sites.covers(&k.sites));
        Ok(keys)
    }

    /// Revokes a key by id or prefix. Revoking is final; the record stays for the audit trail.
    pub async fn revoke_api_key(
        &self,
        caller: &Principal,
        key: &ApiKeyRef,
    ) -> Result<ApiKey, Error> {
        require(caller, Permission::ApiKeysManage)?;
        let found = match key {
            ApiKeyRef::Id(id) => self.identities.api_key_by_id(*id).await?,
            ApiKeyRef::Prefix(p) => self.identities.api_key_by_prefix(p.trim()).await?,
        }
        .filter(|k| caller.sites.covers(&k.sites))
        .ok_or(Error::ApiKeyNotFound)?;
        if found.revoked_at.is_some() {
            return Err(Error::ApiKeyRevoked);
        }
        let revoked = self
            .identities
            .revoke_api_key(found.id, self.clock.now())
            .await?
            .ok_or(Error::ApiKeyNotFound)?;
        tracing::info!(api_key_id = %revoked.id, prefix = %revoked.prefix, "API key revoked.");
        Ok(revoked)
    }
}

#[derive(Debug, Clone)]
pub enum ApiKeyRef {
    Id(ApiKeyId),
    Prefix(String),
}

impl ApiKeyRef {
    /// Parses a uuid as an id and anything else as a prefix.
    pub fn parse(s: &str) -> Self {
        match Uuid::parse_str(s.trim()) {
            Ok(id) => ApiKeyRef::Id(ApiKeyId(id)),
            Err(_) => ApiKeyRef::Prefix(s.trim().to_owned()),
        }
    }
}

impl UserRef {
    /// Parses a uuid as an id and anything else as a username.
    pub fn parse(s: &str) -> Self {
        match Uuid::parse_str(s.trim()) {
            Ok(id) => UserRef::Id(UserId(id)),
            Err(_) => UserRef::Username(s.trim().to_owned()),
        }
    }
}

pub(crate) fn require(caller: &Principal, permission: Permission) -> Result<(), Error> {
    if caller.can(permission) {
        Ok(())
    } else if caller.mfa_enrolment_pending && caller.role.allows(permission) {
        Err(Error::MfaEnrolmentRequired)
    } else {
        Err(Error::PermissionDenied(permission))
    }
}

/// The stored keys: the current one (generated on first start) and the one before the last
/// rotation.
async fn stored_keys(
    secrets: &dyn SecretStore,
    options: &Options,
) -> Result<token::TokenKeys, Error> {
    let mut candidate = vec![0u8; 32];
    rand::rng().fill_bytes(&mut candidate);
    let current = secrets
        .get_or_insert_secret(SIGNING_KEY_NAME, &candidate)
        .await?;
    let previous = secrets.secret(PREVIOUS_SIGNING_KEY_NAME).await?;
    Ok(token::TokenKeys::with_previous(
        &current,
        previous.as_deref(),
        options.issuer.clone(),
        options.audience.clone(),
    ))
}

/// The identity used by local administration (the CLI and first-start bootstrap): whoever can
/// run the binary against the data directory already controls the plant's store.
pub trait SystemPrincipal {
    fn system() -> Principal;
}

impl SystemPrincipal for Principal {
    fn system() -> Principal {
        Principal {
            role: Role::Admin,
            sites: SiteScope::All,
            subject: Subject::System,
            mfa_enrolment_pending: false,
        }
    }
}
