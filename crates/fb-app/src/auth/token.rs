//! Access tokens: JWTs signed with HMAC-SHA256, following RFC 8725 (JWT best current practice).
//!
//! - One algorithm is allow-listed (HS256); `alg: none` and every other algorithm are rejected.
//! - Tokens are explicitly typed (`typ: at+jwt`, RFC 9068) so no other JWT can pass as one.
//! - `iss`, `aud`, `sub`, `exp` and `nbf` are required and checked; time comes from the `Clock`
//!   port so expiry is testable without sleeping.
//! - Header fields that point at keys (`jku`, `jwk`, `x5u`, `kid`) are never used to find a key:
//!   a token carrying `jku`, `jwk` or `x5u` is rejected outright.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use fb_core::identity::UserId;

pub(crate) const TOKEN_TYPE: &str = "at+jwt";
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
        }
    }
}

pub(crate) struct Issued {
    pub token: String,
    pub expires_at: OffsetDateTime,
}

pub(crate) struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    issuer: String,
    audience: String,
}

impl TokenKeys {
    pub(crate) fn new(secret: &[u8], issuer: String, audience: String) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            issuer,
            audience,
        }
    }

    pub(crate) fn issue(
        &self,
        user: UserId,
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
        };
        let mut header = Header::new(ALGORITHM);
        header.typ = Some(TOKEN_TYPE.to_owned());
        let token = jsonwebtoken::encode(&header, &claims, &self.encoding)?;
        Ok(Issued { token, expires_at })
    }

    /// Checks a token; returns its subject and when it was issued.
    pub(crate) fn verify(&self, token: &str, now: OffsetDateTime) -> Result<Verified, Rejection> {
        use jsonwebtoken::errors::ErrorKind as K;

        let header = jsonwebtoken::decode_header(token).map_err(|_| Rejection::Malformed)?;
        if header.alg != ALGORITHM {
            return Err(Rejection::Algorithm);
        }
        if header
            .typ
            .as_deref()
            .is_none_or(|t| !t.eq_ignore_ascii_case(TOKEN_TYPE))
        {
            return Err(Rejection::WrongType);
        }
        if header.jku.is_some() || header.jwk.is_some() || header.x5u.is_some() {
            return Err(Rejection::KeyReferenceNotAllowed);
        }

        let mut validation = Validation::new(ALGORITHM);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["iss", "aud", "sub", "exp", "nbf"]);
        // Time claims are checked below against the Clock port, not the library's wall clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation).map_err(
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
        Ok(Verified {
            user: UserId(data.claims.sub),
            issued_at: data.claims.iat,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verified {
    pub user: UserId,
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

    #[test]
    fn issued_token_verifies_until_expiry() {
        let user = UserId(Uuid::now_v7());
        let issued = keys().issue(user, now(), hour()).unwrap();
        assert_eq!(issued.expires_at, now() + hour());
        let verified = Verified {
            user,
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
        let token = other_key.issue(user, now(), hour()).unwrap().token;
        assert_eq!(keys().verify(&token, now()), Err(Rejection::Signature));

        let other_iss =
            TokenKeys::new(&[7u8; 32], "someone-else".into(), "factorybrain-api".into());
        let token = other_iss.issue(user, now(), hour()).unwrap().token;
        assert_eq!(keys().verify(&token, now()), Err(Rejection::Claims));

        let other_aud = TokenKeys::new(&[7u8; 32], "factorybrain".into(), "other-api".into());
        let token = other_aud.issue(user, now(), hour()).unwrap().token;
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
            .issue(UserId(Uuid::now_v7()), now(), hour())
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
            .issue(UserId(Uuid::now_v7()), now(), hour())
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
    fn garbage_is_malformed() {
        assert_eq!(
            keys().verify("not-a-token", now()),
            Err(Rejection::Malformed)
        );
    }
}
