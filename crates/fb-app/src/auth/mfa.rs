//! The second factor: TOTP enrolment, verification at login, recovery codes, admin reset (D1).
//!
//! Enrolment is two steps so that a factor is never required before the user has proved they
//! hold it: [`Service::start_totp_enrolment`] stores a new secret and shows it once (as text
//! and as an `otpauth://` URI for a QR code); [`Service::confirm_totp`] checks a first code,
//! enables the factor, hands out ten one-time recovery codes, and marks the caller's current
//! session as verified, which lifts the "enrol first" restriction of roles that require it.

use fb_core::identity::{Permission, Principal, User};
use fb_core::session::{EndReason, Totp};

use super::sessions::{ClientInfo, SessionTokens};
use super::{Error, Service, UserRef, password, require, totp};

/// What the user proves at the login's second step.
#[derive(Clone)]
pub enum MfaProof {
    /// The six digits the authenticator app shows.
    Code(String),
    /// One of the recovery codes (each works once).
    RecoveryCode(String),
}

impl std::fmt::Debug for MfaProof {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            MfaProof::Code(_) => "Code([redacted])",
            MfaProof::RecoveryCode(_) => "RecoveryCode([redacted])",
        })
    }
}

/// A started enrolment: shown to the user once.
#[derive(Clone)]
pub struct TotpEnrolment {
    /// The secret in base32, for typing into an authenticator app.
    pub secret: String,
    /// `otpauth://totp/…`, for a QR code.
    pub uri: String,
}

impl std::fmt::Debug for TotpEnrolment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpEnrolment([redacted])")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MfaStatus {
    pub enabled: bool,
    /// Enrolment was started and waits for its first code.
    pub pending: bool,
    /// The user's role requires a second factor.
    pub required: bool,
    pub recovery_codes_left: u64,
}

impl Service {
    /// The login's second step: exchanges the challenge and a code (or recovery code) for a
    /// session that has verified the second factor.
    pub async fn verify_mfa(
        &self,
        challenge: &str,
        proof: &MfaProof,
        client: &ClientInfo,
    ) -> Result<(User, SessionTokens), Error> {
        let user = self.challenged_user(challenge).await?;
        let totp = self.mfa.totp(user.id).await?;
        if !totp.is_enabled() {
            // Reset by an admin since the password step.
            return Err(Error::MfaCodeInvalid);
        }
        self.check_proof(&user, &totp, proof).await?;
        let tokens = self.start_session(&user, true, client).await?;
        tracing::info!(user_id = %user.id, username = %user.username, session = %tokens.session, "User logged in with a second factor.");
        Ok((user, tokens))
    }

    /// Accepts a code once (never the same time step twice, on any node) or uses up a
    /// recovery code.
    async fn check_proof(&self, user: &User, totp: &Totp, proof: &MfaProof) -> Result<(), Error> {
        let now = self.clock.now();
        let accepted =
            match proof {
                MfaProof::Code(code) => match totp.secret.as_deref().and_then(|secret| {
                    totp::verify(secret, code, now.unix_timestamp(), totp.last_step)
                }) {
                    Some(step) => self.mfa.accept_totp_step(user.id, step).await?,
                    None => false,
                },
                MfaProof::RecoveryCode(code) => {
                    let used = self
                        .mfa
                        .use_recovery_code(user.id, &totp::hash_recovery_code(code), now)
                        .await?;
                    if used {
                        tracing::info!(user_id = %user.id, "A recovery code was used.");
                    }
                    used
                }
            };
        if accepted {
            Ok(())
        } else {
            tracing::info!(user_id = %user.id, "Second factor refused.");
            Err(Error::MfaCodeInvalid)
        }
    }

    async fn caller_with_totp(&self, caller: &Principal) -> Result<(User, Totp), Error> {
        require(caller, Permission::SelfSecurity)?;
        let id = caller.user_id().ok_or(Error::UserSessionRequired)?;
        let user = self
            .identities
            .user_by_id(id)
            .await?
            .ok_or(Error::UserNotFound)?;
        let totp = self.mfa.totp(id).await?;
        Ok((user, totp))
    }

    /// Starts (or restarts) TOTP enrolment for the caller: a new secret, not required until
    /// confirmed with a first code.
    pub async fn start_totp_enrolment(&self, caller: &Principal) -> Result<TotpEnrolment, Error> {
        let (user, totp) = self.caller_with_totp(caller).await?;
        if totp.is_enabled() {
            return Err(Error::MfaAlreadyEnabled);
        }
        let secret = totp::generate_secret();
        self.mfa.set_totp_secret(user.id, &secret).await?;
        tracing::info!(user_id = %user.id, "TOTP enrolment started.");
        Ok(TotpEnrolment {
            secret: totp::encode_secret(&secret),
            uri: totp::otpauth_uri(&self.options.issuer, &user.username, &secret),
        })
    }

    /// Confirms enrolment with a first code; returns the recovery codes, shown this once.
    pub async fn confirm_totp(&self, caller: &Principal, code: &str) -> Result<Vec<String>, Error> {
        let (user, totp) = self.caller_with_totp(caller).await?;
        if totp.is_enabled() {
            return Err(Error::MfaAlreadyEnabled);
        }
        if totp.secret.is_none() {
            return Err(Error::MfaNotEnrolled);
        }
        self.check_proof(&user, &totp, &MfaProof::Code(code.to_owned()))
            .await?;
        let (codes, hashes) = totp::generate_recovery_codes();
        self.mfa
            .enable_totp(user.id, self.clock.now(), &hashes)
            .await?;
        // Proven just now: this session no longer waits for an enrolment.
        if let Some(session) = caller.session() {
            self.sessions.set_session_mfa(session).await?;
        }
        tracing::info!(user_id = %user.id, "TOTP enabled.");
        Ok(codes)
    }

    /// Turns the caller's second factor off, with their password and a current code. Refused
    /// for roles that require it.
    pub async fn disable_totp(
        &self,
        caller: &Principal,
        current_password: &str,
        code: &str,
    ) -> Result<(), Error> {
        let (user, totp) = self.caller_with_totp(caller).await?;
        if self.requires_mfa(user.role) {
            return Err(Error::MfaRequiredForRole);
        }
        if !totp.is_enabled() {
            return Err(Error::MfaNotEnrolled);
        }
        if !password::verify(
            current_password.to_owned(),
            Some(user.password_hash.clone()),
        )
        .await?
        {
            return Err(Error::InvalidCredentials);
        }
        self.check_proof(&user, &totp, &MfaProof::Code(code.to_owned()))
            .await?;
        self.mfa.clear_totp(user.id).await?;
        tracing::info!(user_id = %user.id, "TOTP disabled.");
        Ok(())
    }

    /// New recovery codes for the caller (the old ones stop working), with a current code.
    pub async fn regenerate_recovery_codes(
        &self,
        caller: &Principal,
        code: &str,
    ) -> Result<Vec<String>, Error> {
        let (user, totp) = self.caller_with_totp(caller).await?;
        if !totp.is_enabled() {
            return Err(Error::MfaNotEnrolled);
        }
        self.check_proof(&user, &totp, &MfaProof::Code(code.to_owned()))
            .await?;
        let (codes, hashes) = totp::generate_recovery_codes();
        self.mfa
            .replace_recovery_codes(user.id, &hashes, self.clock.now())
            .await?;
        tracing::info!(user_id = %user.id, "Recovery codes replaced.");
        Ok(codes)
    }

    pub async fn mfa_status(&self, caller: &Principal) -> Result<MfaStatus, Error> {
        let (user, totp) = self.caller_with_totp(caller).await?;
        Ok(MfaStatus {
            enabled: totp.is_enabled(),
            pending: totp.secret.is_some() && !totp.is_enabled(),
            required: self.requires_mfa(user.role),
            recovery_codes_left: self.mfa.recovery_codes_left(user.id).await?,
        })
    }

    /// Removes another user's second factor (a lost phone, no recovery code left) and ends
    /// their sessions; they enrol again at their next login.
    pub async fn reset_mfa(&self, caller: &Principal, user: &UserRef) -> Result<User, Error> {
        require(caller, Permission::UsersManage)?;
        let target = self.find_user(caller, user).await?;
        self.mfa.clear_totp(target.id).await?;
        self.sessions
            .end_user_sessions(target.id, EndReason::MfaReset, self.clock.now())
            .await?;
        tracing::info!(user_id = %target.id, "Second factor reset by an admin.");
        Ok(target)
    }
}
