//! Password hashing with argon2id (OWASP parameters: 19 MiB, 2 passes, 1 lane).
//!
//! Hashing is CPU- and memory-bound (tens of milliseconds, 19 MiB each), so it runs on the
//! blocking pool behind a semaphore with one permit per core: a flood of logins queues up briefly
//! and is then refused with `auth_busy`, instead of exhausting memory.

use std::sync::OnceLock;
use std::time::Duration;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::Rng;
use tokio::sync::Semaphore;

use super::Error;

/// How long a hash waits for a free permit before the request is refused.
const MAX_WAIT: Duration = Duration::from_secs(3);

fn hasher() -> Argon2<'static> {
    // Params::DEFAULT is m=19456 KiB, t=2, p=1: the OWASP recommendation for argon2id.
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::DEFAULT)
}

fn permits() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Semaphore::new(cores)
    })
}

pub(crate) async fn hash(password: String) -> Result<String, Error> {
    run_limited(move || {
        hasher()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))
    })
    .await
}

/// Verifies `password` against a stored PHC string. With `None` it verifies against a fixed
/// dummy hash and returns `false`, so that "no such user" costs the same time as "wrong password".
pub(crate) async fn verify(password: String, stored: Option<String>) -> Result<bool, Error> {
    run_limited(move || verify_blocking(&password, stored.as_deref())).await
}

fn verify_blocking(password: &str, stored: Option<&str>) -> Result<bool, Error> {
    let known = stored.is_some();
    let phc = match stored {
        Some(phc) => phc,
        None => dummy_hash()?,
    };
    let parsed = PasswordHash::new(phc)
        .map_err(|e| Error::Internal(format!("stored password hash is malformed: {e}")))?;
    // Always run the full verification, then combine: a short-circuit here would answer unknown
    // usernames in microseconds and reveal which names exist.
    let matches = hasher()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok();
    #[cfg(test)]
    tests::VERIFICATIONS.with(|n| n.set(n.get() + 1));
    Ok(known && matches)
}

fn dummy_hash() -> Result<&'static str, Error> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(h) = DUMMY.get() {
        return Ok(h);
    }
    let h = hasher()
        .hash_password(generate(24).as_bytes())
        .map_err(|e| Error::Internal(format!("password hashing failed: {e}")))?
        .to_string();
    Ok(DUMMY.get_or_init(|| h))
}

/// A random password of `len` characters from an alphabet without look-alikes (no 0/O, 1/l/I),
/// so that it can be read off a console and typed.
pub fn generate(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

async fn run_limited<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let _permit = match tokio::time::timeout(MAX_WAIT, permits().acquire()).await {
        Ok(Ok(permit)) => permit,
        Ok(Err(_)) | Err(_) => return Err(Error::Busy),
    };
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal(format!("password task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    thread_local! {
        pub(super) static VERIFICATIONS: Cell<u32> = const { Cell::new(0) };
    }

    fn verifications() -> u32 {
        VERIFICATIONS.with(Cell::get)
    }

    #[test]
    fn hash_then_verify() {
        let phc = hasher()
            .hash_password(b"correct horse battery")
            .unwrap()
            .to_string();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(verify_blocking("correct horse battery", Some(&phc)).unwrap());
        assert!(!verify_blocking("wrong horse battery", Some(&phc)).unwrap());
    }

    #[test]
    fn unknown_users_cost_a_full_verification() {
        let before = verifications();
        assert!(!verify_blocking("anything at all", None).unwrap());
        assert_eq!(
            verifications(),
            before + 1,
            "the dummy hash must really be verified"
        );
        // Even the right dummy password never verifies an unknown user.
        let dummy = dummy_hash().unwrap().to_owned();
        assert!(!verify_blocking("whatever", None).unwrap());
        assert!(PasswordHash::new(&dummy).is_ok());
    }

    #[tokio::test]
    async fn async_wrappers_round_trip() {
        let phc = hash("correct horse battery".into()).await.unwrap();
        assert!(
            verify("correct horse battery".into(), Some(phc))
                .await
                .unwrap()
        );
        assert!(!verify("anything".into(), None).await.unwrap());
    }

    #[test]
    fn generated_passwords_use_the_alphabet() {
        let p = generate(20);
        assert_eq!(p.len(), 20);
        assert!(
            p.chars()
                .all(|c| c.is_ascii_alphanumeric() && !"0O1lI".contains(c))
        );
        assert_ne!(generate(20), p);
    }
}
