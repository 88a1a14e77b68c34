//! Time-based one-time passwords (RFC 6238) and recovery codes.
//!
//! The parameters are the ones every authenticator app supports: HMAC-SHA1, 6 digits, 30-second
//! steps, a 160-bit secret (RFC 4226 §4 recommends at least 128). A code is accepted for the
//! current step and one step either side (clock drift between phone and server, and the time
//! it takes to type), and the step that matched is returned so that the caller can refuse the
//! same code a second time (RFC 6238 §5.2).
//!
//! Written here rather than taken from a TOTP crate: the verifier must say *which* step matched
//! (for replay protection across nodes, stored with the user), and the whole algorithm is the
//! dozen lines of `hotp` below over the RustCrypto HMAC and SHA-1 the workspace already builds.

use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, KeyInit, Mac};
use rand::RngCore;
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const DIGITS: u32 = 6;
pub const PERIOD_SECS: i64 = 30;
pub const SECRET_BYTES: usize = 20;
/// Steps either side of the current one whose codes are accepted.
const DRIFT_STEPS: i64 = 1;
pub const RECOVERY_CODES: usize = 10;
/// 80 bits per recovery code: 16 base32 characters.
const RECOVERY_CODE_BYTES: usize = 10;

pub fn generate_secret() -> Vec<u8> {
    let mut secret = vec![0u8; SECRET_BYTES];
    rand::rng().fill_bytes(&mut secret);
    secret
}

/// The secret as authenticator apps take it when typed in: base32 without padding.
pub fn encode_secret(secret: &[u8]) -> String {
    BASE32_NOPAD.encode(secret)
}

/// The `otpauth://` URI that authenticator apps read from a QR code (Key Uri Format).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let issuer = percent_encode(issuer);
    format!(
        "otpauth://totp/{issuer}:{}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={PERIOD_SECS}",
        percent_encode(account),
        encode_secret(secret),
    )
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The time step of a Unix time.
pub fn step_at(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(PERIOD_SECS)
}

/// The code of one time step (RFC 4226 HOTP with the step as counter).
pub fn code_at(secret: &[u8], step: i64) -> u32 {
    hotp(secret, step.max(0).unsigned_abs())
}

fn hotp(secret: &[u8], counter: u64) -> u32 {
    // HMAC accepts keys of any length; this cannot fail.
    let Ok(mut mac) = <Hmac<Sha1> as KeyInit>::new_from_slice(secret) else {
        return u32::MAX;
    };
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    // Dynamic truncation (RFC 4226 §5.3).
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let binary = (u32::from(digest[offset]) & 0x7f) << 24
        | u32::from(digest[offset + 1]) << 16
        | u32::from(digest[offset + 2]) << 8
        | u32::from(digest[offset + 3]);
    binary % 10u32.pow(DIGITS)
}

/// Checks a typed code at `now` (Unix seconds). Returns the matched step if the code belongs
/// to a step within the drift window that is later than `last_step`.
pub fn verify(secret: &[u8], typed: &str, now_unix: i64, last_step: i64) -> Option<i64> {
    let digits: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() != DIGITS as usize || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let typed: u32 = digits.parse().ok()?;
    let current = step_at(now_unix);
    // Every candidate is computed and compared, so the time taken does not say which matched.
    let mut matched = None;
    for step in current - DRIFT_STEPS..=current + DRIFT_STEPS {
        let same: bool = code_at(secret, step)
            .to_be_bytes()
            .ct_eq(&typed.to_be_bytes())
            .into();
        if same && step > last_step && matched.is_none() {
            matched = Some(step);
        }
    }
    matched
}

/// New recovery codes, formatted for people (`ABCD-EFGH-IJKL-MNOP`), and their hashes.
pub fn generate_recovery_codes() -> (Vec<String>, Vec<Vec<u8>>) {
    let mut rng = rand::rng();
    (0..RECOVERY_CODES)
        .map(|_| {
            let mut bytes = [0u8; RECOVERY_CODE_BYTES];
            rng.fill_bytes(&mut bytes);
            let plain = BASE32_NOPAD.encode(&bytes);
            let shown = plain
                .as_bytes()
                .chunks(4)
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect::<Vec<_>>()
                .join("-");
            (shown, hash_recovery_code(&plain))
        })
        .unzip()
}

/// The stored form of a recovery code as typed: case, spaces and dashes do not matter. Codes
/// carry 80 random bits, so a fast hash cannot be reversed by guessing.
pub fn hash_recovery_code(typed: &str) -> Vec<u8> {
    let normalised: String = typed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    Sha256::digest(normalised.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC_SECRET: &[u8] = b"12345678901234567890";

    #[test]
    fn codes_match_rfc_6238_appendix_b() {
        // The RFC's SHA-1 vectors are 8 digits; the 6-digit code is their last six.
        for (time, eight_digits) in [
            (59, 94_287_082u32),
            (1_111_111_109, 7_081_804),
            (1_111_111_111, 14_050_471),
            (1_234_567_890, 89_005_924),
            (2_000_000_000, 69_279_037),
            (20_000_000_000, 65_353_130),
        ] {
            assert_eq!(
                code_at(RFC_SECRET, step_at(time)),
                eight_digits % 1_000_000,
                "at {time}"
            );
        }
    }

    #[test]
    fn codes_of_neighbouring_steps_pass_once_and_others_never() {
        let now = 1_234_567_890;
        let code = |step: i64| format!("{:06}", code_at(RFC_SECRET, step));
        let current = step_at(now);
        assert_eq!(verify(RFC_SECRET, &code(current), now, 0), Some(current));
        assert_eq!(
            verify(RFC_SECRET, &code(current - 1), now, 0),
            Some(current - 1)
        );
        assert_eq!(
            verify(RFC_SECRET, &code(current + 1), now, 0),
            Some(current + 1)
        );
        assert_eq!(verify(RFC_SECRET, &code(current - 2), now, 0), None);
        assert_eq!(verify(RFC_SECRET, &code(current + 2), now, 0), None);
        // Already used (the stored last step): refused.
        assert_eq!(verify(RFC_SECRET, &code(current), now, current), None);
        assert_eq!(verify(RFC_SECRET, &code(current - 1), now, current), None);
    }

    #[test]
    fn malformed_codes_are_refused() {
        let now = 1_234_567_890;
        for typed in ["", "12345", "1234567", "12a456", "１２３４５６"] {
            assert_eq!(verify(RFC_SECRET, typed, now, 0), None, "{typed:?}");
        }
        let spaced = format!("{:06}", code_at(RFC_SECRET, step_at(now)));
        let spaced = format!("{} {}", &spaced[..3], &spaced[3..]);
        assert!(verify(RFC_SECRET, &spaced, now, 0).is_some());
    }

    #[test]
    fn the_uri_carries_the_secret_and_parameters() {
        let uri = otpauth_uri("FactoryBrain", "ops lead", RFC_SECRET);
        assert_eq!(
            uri,
            "otpauth://totp/FactoryBrain:ops%20lead?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\
             &issuer=FactoryBrain&algorithm=SHA1&digits=6&period=30"
        );
    }

    #[test]
    fn recovery_codes_are_unique_and_hash_however_typed() {
        let (shown, hashes) = generate_recovery_codes();
        assert_eq!(shown.len(), RECOVERY_CODES);
        let distinct: std::collections::HashSet<_> = hashes.iter().collect();
        assert_eq!(distinct.len(), RECOVERY_CODES);
        let code = &shown[0];
        assert_eq!(code.len(), 19, "{code}");
        assert_eq!(hash_recovery_code(code), hashes[0]);
        assert_eq!(
            hash_recovery_code(&code.to_lowercase().replace('-', " ")),
            hashes[0]
        );
    }
}
