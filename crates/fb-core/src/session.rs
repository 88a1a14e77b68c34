//! Login sessions, their refresh tokens, and users' second factor (D1).
//!
//! A session starts at a login and ends at logout, at its maximum age, when it is revoked, or
//! when one of its refresh tokens is presented a second time. Access tokens name their session
//! (`sid`), and the session is read on every request, so ending it stops its access tokens at
//! once. Refresh tokens rotate: each is good for one refresh, which hands out the next; the
//! chain of tokens of one session is its *family*. A token presented after it was used means
//! that two parties hold it (a stolen copy, or a client that lost the answer), and the whole
//! family ends (OAuth 2.0 Security BCP, RFC 9700 §4.14.2).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::identity::UserId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionId(pub Uuid);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Why a session ended before its maximum age.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// The user logged out.
    Logout,
    /// The user or an admin ended it.
    Revoked,
    /// A refresh token of the session was presented a second time.
    RefreshTokenReused,
    /// The user's password changed.
    PasswordChanged,
    /// The user was disabled.
    UserDisabled,
    /// The user's second factor was reset by an admin.
    MfaReset,
}

impl EndReason {
    pub const ALL: [EndReason; 6] = [
        EndReason::Logout,
        EndReason::Revoked,
        EndReason::RefreshTokenReused,
        EndReason::PasswordChanged,
        EndReason::UserDisabled,
        EndReason::MfaReset,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Logout => "logout",
            EndReason::Revoked => "revoked",
            EndReason::RefreshTokenReused => "refresh_token_reused",
            EndReason::PasswordChanged => "password_changed",
            EndReason::UserDisabled => "user_disabled",
            EndReason::MfaReset => "mfa_reset",
        }
    }

    pub fn parse(s: &str) -> Option<EndReason> {
        EndReason::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

/// A stored login session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: SessionId,
    pub user: UserId,
    pub created_at: OffsetDateTime,
    /// The last time a refresh token of the session was used.
    pub refreshed_at: OffsetDateTime,
    /// The session ends at this instant whatever happens: refreshing does not extend it.
    pub expires_at: OffsetDateTime,
    /// The second factor was verified at login.
    pub mfa: bool,
    /// The client's own description (User-Agent), shortened; for people reviewing sessions.
    pub client: String,
    /// The client's address at login.
    pub source: String,
    pub ended_at: Option<OffsetDateTime>,
    pub end_reason: Option<EndReason>,
}

/// Longest client description kept with a session.
pub const CLIENT_MAX: usize = 200;

impl Session {
    /// Usable at `now`: not ended and not past its maximum age.
    pub fn is_active(&self, now: OffsetDateTime) -> bool {
        self.ended_at.is_none() && now < self.expires_at
    }
}

/// A stored refresh token: only a hash of it is kept.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// SHA-256 of the token. Tokens are 256-bit random, so a fast hash is safe.
    pub hash: Vec<u8>,
    pub session: SessionId,
    /// 0 for the login's token, then one more per refresh.
    pub generation: u32,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RefreshToken")
            .field("session", &self.session)
            .field("generation", &self.generation)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// What presenting a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The token was good: it is now used, and `next` is stored in its place.
    Rotated(Session),
    /// The token had been used before: the session has been ended for it.
    Reused { session: SessionId, user: UserId },
    /// Unknown, expired, or of a session that has ended.
    Invalid,
}

/// A user's time-based one-time password (RFC 6238) state.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Totp {
    /// The shared secret, once enrolment started.
    pub secret: Option<Vec<u8>>,
    /// When the user proved to hold the secret; until then it is not required at login.
    pub enabled_at: Option<OffsetDateTime>,
    /// The last time step whose code was accepted: a code is never accepted twice.
    pub last_step: i64,
}

impl std::fmt::Debug for Totp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Totp")
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("enabled_at", &self.enabled_at)
            .field("last_step", &self.last_step)
            .finish()
    }
}

impl Totp {
    pub fn is_enabled(&self) -> bool {
        self.enabled_at.is_some() && self.secret.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_reasons_round_trip() {
        for reason in EndReason::ALL {
            assert_eq!(EndReason::parse(reason.as_str()), Some(reason));
        }
        assert_eq!(EndReason::parse("expired"), None);
    }

    #[test]
    fn a_session_is_active_until_it_ends_or_ages_out() {
        let start = OffsetDateTime::UNIX_EPOCH + time::Duration::days(1);
        let mut session = Session {
            id: SessionId(Uuid::nil()),
            user: UserId(Uuid::nil()),
            created_at: start,
            refreshed_at: start,
            expires_at: start + time::Duration::hours(1),
            mfa: false,
            client: String::new(),
            source: String::new(),
            ended_at: None,
            end_reason: None,
        };
        assert!(session.is_active(start));
        assert!(!session.is_active(start + time::Duration::hours(1)));
        session.ended_at = Some(start);
        assert!(!session.is_active(start));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let totp = Totp {
            secret: Some(b"very secret".to_vec()),
            ..Totp::default()
        };
        assert!(!format!("{totp:?}").contains("very"));
        let token = RefreshToken {
            hash: vec![1, 2, 3],
            session: SessionId(Uuid::nil()),
            generation: 0,
            issued_at: OffsetDateTime::UNIX_EPOCH,
            expires_at: OffsetDateTime::UNIX_EPOCH,
        };
        assert!(!format!("{token:?}").contains("[1, 2, 3]"));
    }
}
