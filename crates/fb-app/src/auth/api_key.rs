//! API key strings: `fbk_<prefix>_<secret>`.
//!
//! The prefix (12 hex characters) is public and indexes the key; the secret (32 random bytes,
//! base64url) is shown once and only its SHA-256 is stored. A fast hash is right here: unlike a
//! password, the secret has 256 bits of entropy, so it cannot be brute-forced from its hash, and
//! every API request must verify it cheaply.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub(crate) const SCHEME: &str = "fbk_";
const PREFIX_BYTES: usize = 6;
const SECRET_BYTES: usize = 32;

pub(crate) struct Generated {
    pub prefix: String,
    pub secret_hash: Vec<u8>,
    /// The full key string, shown to the user once.
    pub token: String,
}

pub(crate) fn generate() -> Generated {
    let mut prefix = [0u8; PREFIX_BYTES];
    rand::rng().fill_bytes(&mut prefix);
    let prefix: String = prefix.iter().map(|b| format!("{b:02x}")).collect();
    let secret = random_secret();
    Generated {
        secret_hash: hash_secret(&secret),
        token: format!("{SCHEME}{prefix}_{secret}"),
        prefix,
    }
}

/// 256 random bits as base64url (43 characters): API key and device secrets.
pub(crate) fn random_secret() -> String {
    let mut secret = [0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut secret);
    URL_SAFE_NO_PAD.encode(secret)
}

/// Splits a presented key into (prefix, secret); `None` if it is not shaped like one of ours.
pub(crate) fn parse(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(SCHEME)?;
    let (prefix, secret) = rest.split_once('_')?;
    let prefix_ok =
        prefix.len() == PREFIX_BYTES * 2 && prefix.bytes().all(|b| b.is_ascii_hexdigit());
    let secret_ok = !secret.is_empty() && secret.len() <= 64;
    (prefix_ok && secret_ok).then_some((prefix, secret))
}

pub(crate) fn hash_secret(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

pub(crate) fn secret_matches(secret: &str, stored_hash: &[u8]) -> bool {
    hash_secret(secret).ct_eq(stored_hash).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_match() {
        let g = generate();
        let (prefix, secret) = parse(&g.token).unwrap();
        assert_eq!(prefix, g.prefix);
        assert!(secret_matches(secret, &g.secret_hash));
        assert!(!secret_matches("other", &g.secret_hash));
    }

    #[test]
    fn malformed_keys_do_not_parse() {
        assert!(parse("eyJhbGciOi.x.y").is_none());
        assert!(parse("fbk_short_secret").is_none());
        assert!(parse("fbk_0123456789ab_").is_none());
        assert!(parse("fbk_0123456789zz_secret").is_none());
        assert!(
            parse("fbk_0123456789ab_sec_ret").is_some(),
            "base64url secrets may hold '_'"
        );
    }
}
