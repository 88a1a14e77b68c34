//! Access tokens: JWTs signed with HMAC-SHA256, following RFC 8725 (JWT best current practice).
//!
//! - One algorithm is allow-listed (HS256); `alg: none` and every other algorithm are rejected.
//! - Tokens are explicitly typed (`typ: at+jwt`, RFC 9068) so no other JWT can pass as one.
//! - `iss`, `aud`, `sub`, `exp` and `nbf` are required and checked; time comes from the `Clock`
//!   port so expiry is testable without sleeping.
//! - Header fields that point at keys (`jku`, `jwk`, `x5u`) are never used to find a key: a
//!   token carrying one is rejected outright. `kid` only picks one of the (at most two) keys
//!   this node already holds — the current one and, after a rotation, the previous one — by
//!   their fingerprints; an unknown `kid` is refused, never looked up anywhere.
//! - Access tokens name their login session (`sid`), which is checked on every request.
//! - The login's MFA step gets a token of its own type (`mfa+jwt`, five minutes), which can
//!   never pass as an access token and vice versa.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use fb_core::identity::UserId;
use fb_core::session::SessionId;

pub(crate) const TOKEN_TYPE: &str = "at+jwt";
/// The login's second step: proves the password was right, grants nothing else.
pub(crate) const CHALLENGE_TYPE: &str = "mfa+jwt";
const ALGORITHM: Algorithm = Algorithm::HS256;
/// Tolerated clock skew between nodes when checking `nbf` and `exp`.
const LEEWAY_SECS: i64 = 30;
pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    sub: Uuid,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: Uuid,
    /// The login session (access tokens only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<Uuid>,
}

/// Why a token was refused. Shown to the client: it tells an integrator what to fix without
/// revealing anything about the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Malformed,
    WrongType,
    KeyReferenceNotAllowed,
    Algorithm,
    Signature,
    Claims,
    Expired,
    NotYetValid,
    /// Issued before the user's last password change.
    Superseded,
    /// Signed with a key this node does not hold (any more).
    UnknownKey,
    /// Its login session has ended (logout, revocation, reuse of a refresh token, …).
    SessionEnded,
}

impl Rejection {
    pub fn reason(self) -> &'static str {
        match self {
            Rejection::Malformed => "the token is malformed",
            Rejection::WrongType => "the token is not an access token (typ must be at+jwt)",
            Rejection::KeyReferenceNotAllowed => {
                "the token references an external key (jku/jwk/x5u)"
            }
            Rejection::Algorithm => "the token is signed with an algorithm that is not accepted",
            Rejection::Signature => "the token signature is invalid",
            Rejection::Claims => "the token's issuer, audience or subject is invalid",
            Rejection::Expired => "the token has expired",
            Rejection::NotYetValid => "the token is not valid yet",
            Rejection::Superseded => "the token was issued before the last password change",
            Rejection::UnknownKey => "the token is signed with a key that is not in use",
            Rejection::SessionEnded => "the token's session has ended; log in again",
        }
    }
}

pub(crate) struct Issued {
    pub token: String,
    pub expires_at: OffsetDateTime,
}

/// One HMAC key and its fingerprint (`kid`).
struct SigningKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl SigningKey {
    fn new(secret: &[u8]) -> Self {
        Self {
            kid: fingerprint(secret),
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }
}

/// The first 8 bytes of the key's SHA-256, in hex: names a key without revealing it.
pub(crate) fn fingerprint(secret: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(secret)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The keys a node signs with (the current one) and accepts (current and previous).
pub(crate) struct TokenKeys {
    current: SigningKey,
    previous: Option<SigningKey>,
    issuer: String,
    audience: String,
}

impl TokenKeys {
    #[cfg(test)]
    pub(crate) fn new(secret: &[u8], issuer: String, audience: String) -> Self {
        Self::with_previous(secret, None, issuer, audience)
    }

    pub(crate) fn with_previous(
        secret: &[u8],
        previous: Option<&[u8]>,
        issuer: String,
        audience: String,
    ) -> Self {
        Self {
            current: SigningKey::new(secret),
            previous: previous.filter(|p| *p != secret).map(SigningKey::new),
            issuer,
            audience,
        }
    }

    /// Fingerprint of the key new tokens are signed with.
    pub(crate) fn current_kid(&self) -> &str {
        &self.current.kid
    }

    /// Issues an access token of `session`.
    pub(crate) fn issue(
        &self,
        user: UserId,
        session: SessionId,
        now: OffsetDateTime,
        ttl: time::Duration,
    ) -> Result<Issued, jsonwebtoken::errors::Error> {
        self.sign(TOKEN_TYPE, user, Some(session), now, ttl)
    }

    /// Issues the token of a login's MFA step.
    pub(crate) fn issue_challenge(
        &self,
        user: UserId,
        now: OffsetDateTime,
        ttl: time::Duration,
    ) -> Result<Issued, jsonwebtoken::errors::Error> {
        self.sign(CHALLENGE_TYPE, user, None, now, ttl)
    }

    fn sign(
        &self,
        typ: &str,
        user: UserId,
        session: Option<SessionId>,
        now: OffsetDateTime,
        ttl: time::Duration,
    ) -> Result<Issued, jsonwebtoken::errors::Error> {
        let expires_at = now + ttl;
        let claims = Claims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub: user.0,
            iat: now.unix_timestamp(),
            nbf: now.unix_timestamp(),
            exp: expires_at.unix_timestamp(),
            jti: Uuid::now_v7(),
            sid: session.map(|s| s.0),
        };
        let mut header = Header::new(ALGORITHM);
        header.typ = Some(typ.to_owned());
        header.kid = Some(self.current.kid.clone());
        let token = jsonwebtoken::encode(&header, &claims, &self.current.encoding)?;
        Ok(Issued { token, expires_at })
    }

    /// Checks an access token; returns its subject, session and when it was issued.
    pub(crate) fn verify(&self, token: &str, now: OffsetDateTime) -> Result<Verified, Rejection> {
        let claims = self.verify_typed(token, TOKEN_TYPE, now)?;
        let session = claims.sid.ok_or(Rejection::Claims)?;
        Ok(Verified {
            user: UserId(claims.sub),
            session: SessionId(session),
            issued_at: claims.iat,
        })
    }

    /// Checks the token of a login's MFA step; returns the user whose password was right.
    pub(crate) fn verify_challenge(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<UserId, Rejection> {
        let claims = self.verify_typed(token, CHALLENGE_TYPE, now)?;
        Ok(UserId(claims.sub))
    }

    fn verify_typed(
        &self,
        token: &str,
        typ: &str,
        now: OffsetDateTime,
    ) -> Result<Claims, Rejection> {
        use jsonwebtoken::errors::ErrorKind as K;

        let header = jsonwebtoken::decode_header(token).map_err(|_| Rejection::Malformed)?;
        if header.alg != ALGORITHM {
            return Err(Rejection::Algorithm);
        }
        if header
            .typ
            .as_deref()
            .is_none_or(|t| !t.eq_ignore_ascii_case(typ))
        {
            return Err(Rejection::WrongType);
        }
        if header.jku.is_some() || header.jwk.is_some() || header.x5u.is_some() {
            return Err(Rejection::KeyReferenceNotAllowed);
        }
        // `kid` picks one of the keys held here, nothing more.
        let key = match header.kid.as_deref() {
            None => &self.current,
            Some(kid) if kid == self.current.kid => &self.current,
            Some(kid) => self
                .previous
                .as_ref()
                .filter(|p| p.kid == kid)
                .ok_or(Rejection::UnknownKey)?,
        };

        let mut validation = Validation::new(ALGORITHM);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["iss", "aud", "sub", "exp", "nbf"]);
        // Time claims are checked below against the Clock port, not the library's wall clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let data = jsonwebtoken::decode::<Claims>(token, &key.decoding, &validation).map_err(
            |e| match e.kind() {
                K::InvalidSignature => Rejection::Signature,
                K::InvalidAlgorithm | K::InvalidAlgorithmName => Rejection::Algorithm,
                K::InvalidIssuer
                | K::InvalidAudience
                | K::InvalidSubject
                | K::MissingRequiredClaim(_) => Rejection::Claims,
                _ => Rejection::Malformed,
            },
        )?;

        let now = now.unix_timestamp();
        if data.claims.exp <= now - LEEWAY_SECS {
            return Err(Rejection::Expired);
        }
        if data.claims.nbf > now + LEEWAY_SECS {
            return Err(Rejection::NotYetValid);
        }
        Ok(data.claims)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verified {
    pub user: UserId,
    pub session: SessionId,
    /// Unix seconds.
    pub issued_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn keys() -> TokenKeys {
        TokenKeys::new(&[7u8; 32], "factorybrain".into(), "factorybrain-api".into())
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn hour() -> time::Duration {
        time::Duration::hours(1)
    }

    fn sid() -> SessionId {
        SessionId(Uuid::from_u128(42))
    }

    #[test]
    fn issued_token_verifies_until_expiry() {
        let user = UserId(Uuid::now_v7());
        let issued = keys().issue(user, sid(), now(), hour()).unwrap();
        assert_eq!(issued.expires_at, now() + hour());
        let verified = Verified {
            user,
            session: sid(),
            issued_at: now().unix_timestamp(),
        };
        assert_eq!(keys().verify(&issued.token, now()), Ok(verified));
        assert_eq!(
            keys().verify(&issued.token, now() + time::Duration::minutes(59)),
            Ok(verified)
        );
        assert_eq!(
            keys().verify(
                &issued.token,
                now() + hour() + time::Duration::seconds(LEEWAY_SECS)
            ),
            Err(Rejection::Expired)
        );
        assert_eq!(
            keys().verify(&issued.token, now() - time::Duration::minutes(5)),
            Err(Rejection::NotYetValid)
        );
    }

    #[test]
    fn other_key_issuer_or_audience_is_rejected() {
        let user = UserId(Uuid::now_v7());
        let other_key =
            TokenKeys::new(&[8u8; 32], "factorybrain".into(), "factorybrain-api".into());
        let token = other_key.issue(user, sid(), now(), hour()).unwrap().token;
        // Its kid names a key this node does not hold; relabelled as ours, the signature fails.
        assert_eq!(keys().verify(&token, now()), Err(Rejection::UnknownKey));
        let sig = token.split('.').nth(2).unwrap();
        let relabelled = with_header(
            &token,
            &format!(
                r#"{{"alg":"HS256","typ":"at+jwt","kid":"{}"}}"#,
                keys().current_kid()
            ),
            sig,
        );
        assert_eq!(keys().verify(&relabelled, now()), Err(Rejection::Signature));

        let other_iss =
            TokenKeys::new(&[7u8; 32], "someone-else".into(), "factorybrain-api".into());
        let token = other_iss.issue(user, sid(), now(), hour()).unwrap().token;
        assert_eq!(keys().verify(&token, now()), Err(Rejection::Claims));

        let other_aud = TokenKeys::new(&[7u8; 32], "factorybrain".into(), "other-api".into());
        let token = other_aud.issue(user, sid(), now(), hour()).unwrap().token;
        assert_eq!(keys().verify(&token, now()), Err(Rejection::Claims));
    }

    /// Re-signs `token`'s payload under a forged header, the way an attacker would.
    fn with_header(token: &str, header_json: &str, signature: &str) -> String {
        let payload = token.split('.').nth(1).unwrap();
        format!(
            "{}.{payload}.{signature}",
            URL_SAFE_NO_PAD.encode(header_json)
        )
    }

    #[test]
    fn alg_none_and_other_algorithms_are_rejected() {
        let token = keys()
            .issue(UserId(Uuid::now_v7()), sid(), now(), hour())
            .unwrap()
            .token;
        let none = with_header(&token, r#"{"alg":"none","typ":"at+jwt"}"#, "");
        assert!(keys().verify(&none, now()).is_err());

        let hs512 = with_header(&token, r#"{"alg":"HS512","typ":"at+jwt"}"#, "c2ln");
        assert_eq!(keys().verify(&hs512, now()), Err(Rejection::Algorithm));

        let rs256 = with_header(&token, r#"{"alg":"RS256","typ":"at+jwt"}"#, "c2ln");
        assert_eq!(keys().verify(&rs256, now()), Err(Rejection::Algorithm));
    }

    #[test]
    fn untyped_tokens_and_key_references_are_rejected() {
        let token = keys()
            .issue(UserId(Uuid::now_v7()), sid(), now(), hour())
            .unwrap()
            .token;
        let sig = token.split('.').nth(2).unwrap();
        let untyped = with_header(&token, r#"{"alg":"HS256"}"#, sig);
        assert_eq!(keys().verify(&untyped, now()), Err(Rejection::WrongType));
        let jku = with_header(
            &token,
            r#"{"alg":"HS256","typ":"at+jwt","jku":"http://evil.example/keys"}"#,
            sig,
        );
        assert_eq!(
            keys().verify(&jku, now()),
            Err(Rejection::KeyReferenceNotAllowed)
        );
    }

    #[test]
    fn after_a_rotation_the_previous_key_still_verifies_and_others_do_not() {
        let user = UserId(Uuid::now_v7());
        let old = keys();
        let token = old.issue(user, sid(), now(), hour()).unwrap().token;
        let rotated = TokenKeys::with_previous(
            &[9u8; 32],
            Some(&[7u8; 32]),
            "factorybrain".into(),
            "factorybrain-api".into(),
        );
        assert_eq!(rotated.verify(&token, now()).unwrap().user, user);
        let new = rotated.issue(user, sid(), now(), hour()).unwrap().token;
        assert_eq!(old.verify(&new, now()), Err(Rejection::UnknownKey));
        let forgotten =
            TokenKeys::new(&[9u8; 32], "factorybrain".into(), "factorybrain-api".into());
        assert_eq!(forgotten.verify(&token, now()), Err(Rejection::UnknownKey));
        // A kid naming the current key does not make another key's signature valid.
        let sig = token.split('.').nth(2).unwrap();
        let relabelled = with_header(
            &token,
            &format!(
                r#"{{"alg":"HS256","typ":"at+jwt","kid":"{}"}}"#,
                rotated.current_kid()
            ),
            sig,
        );
        assert_eq!(
            forgotten.verify(&relabelled, now()),
            Err(Rejection::Signature)
        );
    }

    #[test]
    fn challenge_and_access_tokens_never_pass_for_each_other() {
        let user = UserId(Uuid::now_v7());
        let challenge = keys()
            .issue_challenge(user, now(), time::Duration::minutes(5))
            .unwrap()
            .token;
        assert_eq!(keys().verify(&challenge, now()), Err(Rejection::WrongType));
        assert_eq!(keys().verify_challenge(&challenge, now()), Ok(user));
        let access = keys().issue(user, sid(), now(), hour()).unwrap().token;
        assert_eq!(
            keys().verify_challenge(&access, now()),
            Err(Rejection::WrongType)
        );
        assert_eq!(
            keys().verify_challenge(&challenge, now() + time::Duration::minutes(6)),
            Err(Rejection::Expired)
        );
    }

    #[test]
    fn garbage_is_malformed() {
        assert_eq!(
            keys().verify("not-a-token", now()),
            Err(Rejection::Malformed)
        );
    }
}
