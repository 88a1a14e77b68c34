//! Identities and authentication: login, access tokens, API keys, users (D1–D3 basics).

pub(crate) mod api_key;
mod error;
pub mod password;
mod token;

use std::sync::Arc;

use rand::RngCore;
use time::OffsetDateTime;
use uuid::Uuid;

use fb_core::Clock;
use fb_core::error::FieldError;
use fb_core::identity::{
    self, ApiKey, ApiKeyId, Permission, Principal, Role, Subject, User, UserId,
};
use fb_core::ports::{IdentityStore, Storage, StoreError};

pub use error::Error;
pub(crate) use error::describe_fields;
pub use token::{MIN_SECRET_BYTES, Rejection};

/// Name under which the generated token-signing key is kept in the `SecretStore`.
const SIGNING_KEY_NAME: &str = "auth.jwt_hs256_key";
/// `last_used_at` of an API key is written at most this often, so that a busy key does not
/// turn every read into a write.
const TOUCH_INTERVAL: time::Duration = time::Duration::seconds(60);
const GENERATED_PASSWORD_LEN: usize = 20;

#[derive(Clone)]
pub struct Options {
    pub access_token_ttl: time::Duration,
    pub issuer: String,
    pub audience: String,
    /// A configured signing secret (at least [`MIN_SECRET_BYTES`]). When `None`, a random key is
    /// generated on first start and kept in the store, so every node shares it.
    pub signing_secret: Option<Vec<u8>>,
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
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub role: Role,
    pub expires_at: Option<OffsetDateTime>,
}

/// A user or key addressed by id or by its human name (username, key prefix).
#[derive(Debug, Clone)]
pub enum UserRef {
    Id(UserId),
    Username(String),
}

pub struct Service {
    identities: Arc<dyn IdentityStore>,
    clock: Arc<dyn Clock>,
    keys: token::TokenKeys,
    access_token_ttl: time::Duration,
}

impl Service {
    /// Loads (or on first start generates and stores) the token signing key.
    pub async fn start(
        storage: &Storage,
        clock: Arc<dyn Clock>,
        options: Options,
    ) -> Result<Self, Error> {
        let secret = match options.signing_secret {
            Some(secret) if secret.len() < MIN_SECRET_BYTES => {
                return Err(Error::Validation(vec![FieldError::new(
                    "auth.jwt_secret",
                    format!("must be at least {MIN_SECRET_BYTES} bytes"),
                )]));
            }
            Some(secret) => secret,
            None => {
                let mut candidate = vec![0u8; 32];
                rand::rng().fill_bytes(&mut candidate);
                storage
                    .secrets
                    .get_or_insert_secret(SIGNING_KEY_NAME, &candidate)
                    .await?
            }
        };
        Ok(Self {
            identities: storage.identities.clone(),
            clock,
            keys: token::TokenKeys::new(&secret, options.issuer, options.audience),
            access_token_ttl: options.access_token_ttl,
        })
    }

    /// Checks a username and password and issues an access token.
    /// Unknown user, wrong password and disabled account all give the same error and take the
    /// same time.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
    ) -> Result<(User, AccessToken), Error> {
        // Oversized input is refused before any work (and before the hash's memory is spent).
        if password.len() > identity::PASSWORD_MAX * 4
            || username.len() > identity::USERNAME_MAX * 4
        {
            return Err(Error::InvalidCredentials);
        }
        let user = self.identities.user_by_username(username).await?;
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let ok = password::verify(password.to_owned(), stored).await?;
        match user {
            Some(user) if ok && !user.disabled => {
                let token = self.issue(user.id)?;
                tracing::info!(user_id = %user.id, username = %user.username, "User logged in.");
                Ok((user, token))
            }
            _ => {
                tracing::info!(username = %username, "Login refused.");
                Err(Error::InvalidCredentials)
            }
        }
    }

    fn issue(&self, user: UserId) -> Result<AccessToken, Error> {
        let issued = self
            .keys
            .issue(user, self.clock.now(), self.access_token_ttl)
            .map_err(|e| Error::Internal(format!("token signing failed: {e}")))?;
        Ok(AccessToken {
            token: issued.token,
            expires_at: issued.expires_at,
            expires_in_secs: self.access_token_ttl.whole_seconds(),
        })
    }

    /// Resolves a bearer credential (an access token or an API key) to a principal.
    /// The role always comes from the store, so a role change or a disabled account takes
    /// effect at once, not when the token expires.
    pub async fn authenticate(&self, credential: &str) -> Result<Principal, Error> {
        let now = self.clock.now();
        if let Some((prefix, secret)) = api_key::parse(credential) {
            return self.authenticate_api_key(prefix, secret, now).await;
        }
        if credential.starts_with(api_key::SCHEME) {
            return Err(Error::InvalidApiKey);
        }
        let verified = self
            .keys
            .verify(credential, now)
            .map_err(Error::InvalidToken)?;
        match self.identities.user_by_id(verified.user).await? {
            Some(user) if user.disabled => Err(Error::InvalidToken(Rejection::Claims)),
            Some(user) if verified.issued_at < user.password_changed_at.unix_timestamp() => {
                Err(Error::InvalidToken(Rejection::Superseded))
            }
            Some(user) => Ok(Principal {
                role: user.role,
                subject: Subject::User {
                    id: user.id,
                    username: user.username,
                },
            }),
            None => Err(Error::InvalidToken(Rejection::Claims)),
        }
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
            subject: Subject::ApiKey {
                id: key.id,
                name: key.name,
            },
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
            password_hash: password::hash(plain).await?,
            disabled: false,
            must_change_password: generated.is_some(),
            password_changed_at: now,
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
        tracing::info!(user_id = %user.id, username = %user.username, role = %user.role, "User created.");
        Ok((user, generated))
    }

    pub async fn list_users(&self, caller: &Principal) -> Result<Vec<User>, Error> {
        require(caller, Permission::UsersRead)?;
        Ok(self.identities.list_users().await?)
    }

    pub async fn current_user(&self, caller: &Principal) -> Result<Option<User>, Error> {
        match caller.user_id() {
            Some(id) => Ok(self.identities.user_by_id(id).await?),
            None => Ok(None),
        }
    }

    async fn find_user(&self, user: &UserRef) -> Result<User, Error> {
        let found = match user {
            UserRef::Id(id) => self.identities.user_by_id(*id).await?,
            UserRef::Username(name) => self.identities.user_by_username(name.trim()).await?,
        };
        found.ok_or(Error::UserNotFound)
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
        let target = self.find_user(user).await?;
        // The store refuses to disable the last active admin, atomically.
        let Some(updated) = self
            .identities
            .set_user_disabled(target.id, disabled, self.clock.now())
            .await?
        else {
            return Err(match self.identities.user_by_id(target.id).await? {
                Some(_) => Error::LastAdmin,
                None => Error::UserNotFound,
            });
        };
        tracing::info!(user_id = %updated.id, disabled, "User disabled flag changed.");
        Ok(updated)
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
        tracing::info!(user_id = %id, "Password changed.");
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
        // A 48-bit prefix collides about once in 10^7 keys; one retry makes it practically never.
        for _ in 0..2 {
            let generated = api_key::generate();
            let key = ApiKey {
                id: ApiKeyId(Uuid::now_v7()),
                prefix: generated.prefix,
                secret_hash: generated.secret_hash,
                name: new.name.trim().to_owned(),
                role: new.role,
                created_by: caller.user_id(),
                created_at: now,
                expires_at: new.expires_at,
                last_used_at: None,
                revoked_at: None,
            };
            match self.identities.insert_api_key(&key).await {
                Ok(()) => {
                    tracing::info!(api_key_id = %key.id, prefix = %key.prefix, role = %key.role, "API key created.");
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

    pub async fn list_api_keys(&self, caller: &Principal) -> Result<Vec<ApiKey>, Error> {
        require(caller, Permission::ApiKeysManage)?;
        Ok(self.identities.list_api_keys().await?)
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
    } else {
        Err(Error::PermissionDenied(permission))
    }
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
            subject: Subject::System,
        }
    }
}
