//! Logins, sessions and refresh tokens (D1).
//!
//! A login whose password is right either starts a session at once, or, for a user with a
//! second factor, hands out a five-minute challenge that [`Service::verify_mfa`] exchanges
//! for a session. A session gives an access token (short-lived, carries the session id) and a
//! refresh token (opaque, stored as a hash, good for one use). [`Service::refresh`] trades a
//! refresh token for a new pair; presenting a used one ends the session (see `fb_core::session`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use fb_core::identity::{self, Permission, Principal, User, UserId};
use fb_core::session::{self as domain, EndReason, RefreshToken, Rotation, Session, SessionId};

use super::{AccessToken, Error, Rejection, Service, UserRef, password, require};

/// Refresh tokens look like `fbr_<43 characters>`: 256 random bits, base64url.
const REFRESH_SCHEME: &str = "fbr_";
const REFRESH_BYTES: usize = 32;
/// How long the login's MFA step may take.
pub(crate) const CHALLENGE_TTL: time::Duration = time::Duration::minutes(5);

/// What the caller's connection says about it, kept with the session for people reviewing
/// their sessions.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The User-Agent, or another self-description.
    pub client: String,
    /// The client's address.
    pub source: String,
}

/// A session's tokens, as handed to the client.
#[derive(Clone)]
pub struct SessionTokens {
    pub session: SessionId,
    pub access: AccessToken,
    pub refresh_token: String,
    pub refresh_expires_at: OffsetDateTime,
}

impl std::fmt::Debug for SessionTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTokens")
            .field("session", &self.session)
            .field("access", &self.access)
            .field("refresh_token", &"[redacted]")
            .finish()
    }
}

/// The login's second step: the password was right, the second factor is still to come.
#[derive(Clone)]
pub struct MfaChallenge {
    pub token: String,
    pub expires_in_secs: i64,
}

impl std::fmt::Debug for MfaChallenge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaChallenge")
            .field("token", &"[redacted]")
            .field("expires_in_secs", &self.expires_in_secs)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub enum LoginOutcome {
    /// Logged in.
    Session(User, SessionTokens),
    /// The password was right; the second factor must follow ([`Service::verify_mfa`]).
    MfaRequired(User, MfaChallenge),
}

impl Service {
    /// Checks a username and password. Unknown user, wrong password and disabled account all
    /// give the same error and take the same time.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<LoginOutcome, Error> {
        // Oversized input is refused before any work (and before the hash's memory is spent).
        if password.len() > identity::PASSWORD_MAX * 4
            || username.len() > identity::USERNAME_MAX * 4
        {
            return Err(Error::InvalidCredentials);
        }
        let user = self.identities.user_by_username(username).await?;
        let stored = user.as_ref().map(|u| u.password_hash.clone());
        let ok = password::verify(password.to_owned(), stored).await?;
        let user = match user {
            Some(user) if ok && !user.disabled => user,
            _ => {
                tracing::info!(username = %username, "Login refused.");
                return Err(Error::InvalidCredentials);
            }
        };
        if user.mfa_enabled {
            let issued = self
                .keys()
                .issue_challenge(user.id, self.clock.now(), CHALLENGE_TTL)
                .map_err(|e| Error::Internal(format!("token signing failed: {e}")))?;
            tracing::info!(user_id = %user.id, "Password accepted; waiting for the second factor.");
            let challenge = MfaChallenge {
                token: issued.token,
                expires_in_secs: CHALLENGE_TTL.whole_seconds(),
            };
            return Ok(LoginOutcome::MfaRequired(user, challenge));
        }
        let tokens = self.start_session(&user, false, client).await?;
        tracing::info!(user_id = %user.id, username = %user.username, session = %tokens.session, "User logged in.");
        Ok(LoginOutcome::Session(user, tokens))
    }

    /// Starts a session for a user whose credentials were just checked.
    pub(crate) async fn start_session(
        &self,
        user: &User,
        mfa: bool,
        client: &ClientInfo,
    ) -> Result<SessionTokens, Error> {
        let now = self.clock.now();
        let session = Session {
            id: SessionId(Uuid::now_v7()),
            user: user.id,
            created_at: now,
            refreshed_at: now,
            expires_at: now + self.options.session_max_age,
            mfa,
            client: shorten(&client.client, domain::CLIENT_MAX),
            source: shorten(&client.source, domain::CLIENT_MAX),
            ended_at: None,
            end_reason: None,
        };
        let (refresh_token, first) = self.new_refresh_token(&session, now);
        self.sessions.insert_session(&session, &first).await?;
        // The credentials were checked before the session was stored: if the password changed
        // (or the user was disabled) in between, that change ended the user's sessions before
        // this one existed, so this one must go too.
        let current = self.identities.user_by_id(user.id).await?;
        if current.is_none_or(|u| u.disabled || u.password_changed_at != user.password_changed_at) {
            self.sessions
                .end_session(session.id, EndReason::PasswordChanged, now)
                .await?;
            return Err(Error::InvalidCredentials);
        }
        let access = self.issue_access(&session, now)?;
        Ok(SessionTokens {
            session: session.id,
            access,
            refresh_token,
            refresh_expires_at: first.expires_at,
        })
    }

    fn new_refresh_token(&self, session: &Session, now: OffsetDateTime) -> (String, RefreshToken) {
        let mut secret = [0u8; REFRESH_BYTES];
        rand::rng().fill_bytes(&mut secret);
        let token = format!("{REFRESH_SCHEME}{}", URL_SAFE_NO_PAD.encode(secret));
        let record = RefreshToken {
            hash: hash_refresh_token(&token),
            session: session.id,
            generation: 0,
            issued_at: now,
            // Never beyond the session's own end.
            expires_at: (now + self.options.refresh_token_ttl).min(session.expires_at),
        };
        (token, record)
    }

    /// An access token of the session, never outliving it.
    fn issue_access(&self, session: &Session, now: OffsetDateTime) -> Result<AccessToken, Error> {
        let ttl = self
            .options
            .access_token_ttl
            .min(session.expires_at - now)
            .max(time::Duration::seconds(1));
        let issued = self
            .keys()
            .issue(session.user, session.id, now, ttl)
            .map_err(|e| Error::Internal(format!("token signing failed: {e}")))?;
        Ok(AccessToken {
            token: issued.token,
            expires_at: issued.expires_at,
            expires_in_secs: ttl.whole_seconds(),
        })
    }

    /// Trades a refresh token for a new access token and refresh token. A token used before
    /// ends its whole session (`RefreshTokenReused`).
    pub async fn refresh(&self, refresh_token: &str) -> Result<(User, SessionTokens), Error> {
        let token = refresh_token.trim();
        let well_formed = token
            .strip_prefix(REFRESH_SCHEME)
            .is_some_and(|rest| rest.len() == 43 && URL_SAFE_NO_PAD.decode(rest).is_ok());
        if !well_formed {
            return Err(Error::RefreshTokenInvalid);
        }
        let now = self.clock.now();
        // The store fills in the session and generation of the next token.
        let placeholder = Session {
            id: SessionId(Uuid::nil()),
            user: UserId(Uuid::nil()),
            created_at: now,
            refreshed_at: now,
            expires_at: now + self.options.refresh_token_ttl,
            mfa: false,
            client: String::new(),
            source: String::new(),
            ended_at: None,
            end_reason: None,
        };
        let (next_token, mut next) = self.new_refresh_token(&placeholder, now);
        let session = match self
            .sessions
            .rotate_refresh_token(&hash_refresh_token(token), &next, now)
            .await?
        {
            Rotation::Rotated(session) => session,
            Rotation::Reused { session, user } => {
                tracing::warn!(
                    user_id = %user,
                    session = %session,
                    "A used refresh token was presented again; the session was ended."
                );
                return Err(Error::RefreshTokenReused);
            }
            Rotation::Invalid => return Err(Error::RefreshTokenInvalid),
        };
        next.expires_at = next.expires_at.min(session.expires_at);
        let Some((_, user)) = self.sessions.session_with_user(session.id).await? else {
            return Err(Error::RefreshTokenInvalid);
        };
        if user.disabled {
            return Err(Error::RefreshTokenInvalid);
        }
        let access = self.issue_access(&session, now)?;
        Ok((
            user,
            SessionTokens {
                session: session.id,
                access,
                refresh_token: next_token,
                refresh_expires_at: next.expires_at,
            },
        ))
    }

    /// Ends the caller's own session (the one its access token belongs to).
    pub async fn logout(&self, caller: &Principal) -> Result<Session, Error> {
        let session = caller.session().ok_or(Error::UserSessionRequired)?;
        self.sessions
            .end_session(session, EndReason::Logout, self.clock.now())
            .await?
            .ok_or(Error::SessionNotFound)
    }

    /// The caller's active sessions, newest first.
    pub async fn my_sessions(&self, caller: &Principal) -> Result<Vec<Session>, Error> {
        require(caller, Permission::SelfSecurity)?;
        let user = caller.user_id().ok_or(Error::UserSessionRequired)?;
        Ok(self
            .sessions
            .list_sessions(user, false, self.clock.now())
            .await?)
    }

    /// Ends one of the caller's own sessions (a forgotten browser, a lost tablet).
    pub async fn end_my_session(
        &self,
        caller: &Principal,
        session: SessionId,
    ) -> Result<Session, Error> {
        require(caller, Permission::SelfSecurity)?;
        let user = caller.user_id().ok_or(Error::UserSessionRequired)?;
        let now = self.clock.now();
        let owned = self
            .sessions
            .session_with_user(session)
            .await?
            .is_some_and(|(s, _)| s.user == user);
        if !owned {
            return Err(Error::SessionNotFound);
        }
        self.sessions
            .end_session(session, EndReason::Revoked, now)
            .await?
            .ok_or(Error::SessionNotFound)
    }

    /// A user's sessions, for admins; ended ones too when `include_ended`.
    pub async fn user_sessions(
        &self,
        caller: &Principal,
        user: &UserRef,
        include_ended: bool,
    ) -> Result<(User, Vec<Session>), Error> {
        require(caller, Permission::UsersManage)?;
        let target = self.find_user(caller, user).await?;
        let sessions = self
            .sessions
            .list_sessions(target.id, include_ended, self.clock.now())
            .await?;
        Ok((target, sessions))
    }

    /// Ends every session of a user (admins); returns how many were active.
    pub async fn end_user_sessions(
        &self,
        caller: &Principal,
        user: &UserRef,
    ) -> Result<(User, u64), Error> {
        require(caller, Permission::UsersManage)?;
        let target = self.find_user(caller, user).await?;
        let ended = self
            .sessions
            .end_user_sessions(target.id, EndReason::Revoked, self.clock.now())
            .await?;
        tracing::info!(user_id = %target.id, ended, "User's sessions ended.");
        Ok((target, ended))
    }

    /// The user a login's MFA challenge was issued to, if the token is a genuine, unexpired
    /// challenge: what the edge counts code guesses against, before any code is checked.
    pub fn challenge_subject(&self, challenge: &str) -> Option<UserId> {
        self.keys()
            .verify_challenge(challenge, self.clock.now())
            .ok()
    }

    /// Checks a login's MFA challenge token; returns the user it was issued to (an active one).
    pub(crate) async fn challenged_user(&self, challenge: &str) -> Result<User, Error> {
        let now = self.clock.now();
        let user = self
            .keys()
            .verify_challenge(challenge, now)
            .map_err(|_| Error::MfaCodeInvalid)?;
        match self.identities.user_by_id(user).await? {
            Some(user) if !user.disabled => Ok(user),
            _ => Err(Error::MfaCodeInvalid),
        }
    }
}

/// Refresh tokens carry 256 random bits: a fast hash is safe and lets every refresh look the
/// token up by it.
fn hash_refresh_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// At most `max` characters, without control characters (it is shown to people and logged).
fn shorten(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

impl From<Rejection> for Error {
    fn from(rejection: Rejection) -> Self {
        Error::InvalidToken(rejection)
    }
}
