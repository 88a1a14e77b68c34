//! The audit log (D5): an append-only, hash-chained record of every state-changing action, every
//! login attempt and every authorization failure.
//!
//! Each record carries the hash of the one before it, so a record that is edited, deleted,
//! reordered or cut off the tail is found by [`Verifier`] however it was done (the stores add
//! triggers against accidental changes, but someone with database access can drop those). The
//! hash is computed by one pure function, [`chain_hash`], that every store and the verifier use:
//! SHA-256 over a canonical, length-prefixed encoding of the record, never over JSON (whose
//! spelling is not unique).
//!
//! A chain that is rewritten wholesale from some record on (hashes recomputed, head moved) is
//! consistent again; only a copy of the head kept outside the store (an *anchor*, see
//! [`Checkpoint`]) reveals that.

mod verify;

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use time::{OffsetDateTime, UtcOffset};

pub use verify::{Checkpoint, CheckpointKind, Problem, Verifier, verify};

/// What came of an audited action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The action was carried out.
    Success,
    /// It was attempted and failed (invalid input, conflict, not found, server error).
    Failure,
    /// The caller was not authenticated or not allowed (HTTP 401 or 403).
    Denied,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Success, Outcome::Failure, Outcome::Denied];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::Denied => "denied",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest text kept in a field; longer values (a path parameter, an attempted username) are cut
/// so that nobody can fill the log with one request.
pub const FIELD_MAX_CHARS: usize = 256;
/// Most `details` kept per record.
pub const DETAILS_MAX: usize = 16;

/// What a caller records: who did what to which target, when, and how it ended.
///
/// Never put a secret here (password, token, key): the log is read by admins and kept forever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// UTC, microsecond precision (finer digits are dropped when the record is made).
    pub at: OffsetDateTime,
    /// `user:<name>`, `api_key:<id>`, `system`, `cli:<os user>` or `anonymous`.
    pub actor: String,
    /// A stable dotted name, e.g. `user.disable`, `auth.login`.
    pub action: String,
    /// What was acted on, e.g. `user:bob`, `machine:press-01`.
    pub target: Option<String>,
    pub outcome: Outcome,
    /// The request's or command's op id, to find its log lines.
    pub op_id: String,
    /// The client address, `local` for the command line, or `unknown`.
    pub source: String,
    /// Small non-secret facts: the error code, the HTTP status, an id that was created.
    pub details: BTreeMap<String, String>,
}

impl AuditEntry {
    /// The same entry within the stored bounds: UTC, whole microseconds, fields cut to
    /// [`FIELD_MAX_CHARS`] characters without control characters, at most [`DETAILS_MAX`]
    /// details. Every store keeps exactly this, so what is read back hashes the same.
    pub fn normalized(self) -> AuditEntry {
        let at = self.at.to_offset(UtcOffset::UTC);
        let at = at.replace_microsecond(at.microsecond()).unwrap_or(at);
        AuditEntry {
            at,
            actor: bounded(&self.actor),
            action: bounded(&self.action),
            target: self.target.as_deref().map(bounded),
            outcome: self.outcome,
            op_id: bounded(&self.op_id),
            source: bounded(&self.source),
            details: self
                .details
                .iter()
                .take(DETAILS_MAX)
                .map(|(k, v)| (bounded(k), bounded(v)))
                .collect(),
        }
    }

    /// Microseconds since the Unix epoch: how `at` is hashed and stored.
    pub fn at_micros(&self) -> i64 {
        micros(self.at)
    }
}

fn micros(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos().div_euclid(1_000)).unwrap_or(i64::MAX)
}

/// The instant `micros` microseconds after the Unix epoch, if representable.
pub fn from_micros(micros: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000).ok()
}

fn bounded(text: &str) -> String {
    redact_credentials(text)
        .chars()
        .take(FIELD_MAX_CHARS)
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

/// The product's own credentials, recognised by their prefixes: API keys, refresh tokens and
/// device passwords. An admin who pastes a whole key where its prefix belongs (`apikey revoke
/// fbk_…_secret`) must not leave the secret in a log that can never be edited.
const CREDENTIAL_PREFIXES: [&str; 3] = ["fbk_", "fbr_", "fbd_"];
const REDACTED: &str = "[redacted]";

/// `text` with every credential-shaped word (one of [`CREDENTIAL_PREFIXES`] followed by a
/// secret part) and every JWT-shaped word (`eyJ….….…`) replaced by `[redacted]`.
/// Idempotent, so records read back normalise to themselves.
fn redact_credentials(text: &str) -> std::borrow::Cow<'_, str> {
    let secret_like = |word: &str| {
        let credential = CREDENTIAL_PREFIXES.iter().any(|p| {
            word.strip_prefix(p).is_some_and(|rest| match *p {
                // `fbk_<public prefix>` names a key; `fbk_<prefix>_<secret>` is one.
                "fbk_" => rest
                    .split_once('_')
                    .is_some_and(|(_, secret)| secret.len() >= 8),
                _ => rest.len() >= 8,
            })
        });
        let jwt = word.starts_with("eyJ") && word.matches('.').count() == 2 && word.len() > 20;
        credential || jwt
    };
    let boundary = |c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !text.split(boundary).any(secret_like) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if secret_like(word) {
            out.push_str(REDACTED);
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if boundary(c) {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    std::borrow::Cow::Owned(out)
}

/// A SHA-256 chain hash.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainHash(pub [u8; 32]);

impl ChainHash {
    /// The "previous hash" of the first record.
    pub const GENESIS: ChainHash = ChainHash([0; 32]);

    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Parses 64 hex digits.
    pub fn parse_hex(text: &str) -> Option<ChainHash> {
        let text = text.trim();
        if text.len() != 64 || !text.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(ChainHash(bytes))
    }

    /// From stored bytes; `None` unless exactly 32.
    pub fn from_slice(bytes: &[u8]) -> Option<ChainHash> {
        bytes.try_into().ok().map(ChainHash)
    }
}

impl std::fmt::Display for ChainHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl std::fmt::Debug for ChainHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ChainHash({})", self.to_hex())
    }
}

/// Separates this hash from every other SHA-256 use; the version changes if the encoding does.
const DOMAIN_TAG: &[u8] = b"factorybrain.audit.v1";

/// The chain hash of the record `seq` holding `entry`, following the record whose hash is `prev`.
///
/// SHA-256 over: the domain tag, `prev`, `seq`, then every field in a fixed order, each
/// length-prefixed (u64 big-endian) so that no two different records encode alike (moving a
/// character from one field to the next changes the encoding). An absent target and an empty
/// one differ by a presence byte; details are hashed in key order with their count first.
/// Hash what [`AuditEntry::normalized`] returns: it is what stores keep.
pub fn chain_hash(prev: &ChainHash, seq: u64, entry: &AuditEntry) -> ChainHash {
    fn field(hasher: &mut Sha256, bytes: &[u8]) {
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    }
    let mut hasher = Sha256::new();
    field(&mut hasher, DOMAIN_TAG);
    hasher.update(prev.0);
    hasher.update(seq.to_be_bytes());
    hasher.update(entry.at_micros().to_be_bytes());
    field(&mut hasher, entry.actor.as_bytes());
    field(&mut hasher, entry.action.as_bytes());
    match &entry.target {
        Some(target) => {
            hasher.update([1]);
            field(&mut hasher, target.as_bytes());
        }
        None => hasher.update([0]),
    }
    field(&mut hasher, entry.outcome.as_str().as_bytes());
    field(&mut hasher, entry.op_id.as_bytes());
    field(&mut hasher, entry.source.as_bytes());
    hasher.update((entry.details.len() as u64).to_be_bytes());
    for (key, value) in &entry.details {
        field(&mut hasher, key.as_bytes());
        field(&mut hasher, value.as_bytes());
    }
    ChainHash(hasher.finalize().into())
}

/// The newest record's position and hash. Stores keep it apart from the records, so that
/// deleting the newest records is seen; an empty log's head is `(0, GENESIS)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditHead {
    pub seq: u64,
    pub hash: ChainHash,
}

impl AuditHead {
    pub const EMPTY: AuditHead = AuditHead {
        seq: 0,
        hash: ChainHash::GENESIS,
    };
}

impl AuditHead {
    /// Parses the anchor form `SEQ:HASH` that [`Display`](std::fmt::Display) prints.
    pub fn parse(text: &str) -> Option<AuditHead> {
        let (seq, hash) = text.trim().split_once(':')?;
        Some(AuditHead {
            seq: seq.parse().ok()?,
            hash: ChainHash::parse_hex(hash)?,
        })
    }
}

/// `SEQ:HASH`, e.g. `42:9f86…`: the form to keep outside the store as an anchor.
impl std::fmt::Display for AuditHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.seq, self.hash)
    }
}

impl Default for AuditHead {
    fn default() -> Self {
        AuditHead::EMPTY
    }
}

/// A stored entry: its position in the chain and the hashes that link it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    /// 1, 2, 3 … without gaps.
    pub seq: u64,
    pub entry: AuditEntry,
    pub prev_hash: ChainHash,
    pub hash: ChainHash,
}

impl AuditRecord {
    /// The record that follows `head`: what every store's append writes.
    pub fn next(head: &AuditHead, entry: AuditEntry) -> AuditRecord {
        let entry = entry.normalized();
        let seq = head.seq + 1;
        AuditRecord {
            seq,
            hash: chain_hash(&head.hash, seq, &entry),
            prev_hash: head.hash,
            entry,
        }
    }

    /// Whether the stored hash matches the stored content and links.
    pub fn is_intact(&self) -> bool {
        chain_hash(&self.prev_hash, self.seq, &self.entry) == self.hash
    }

    /// The head once this record is the newest.
    pub fn as_head(&self) -> AuditHead {
        AuditHead {
            seq: self.seq,
            hash: self.hash,
        }
    }
}

/// A stored row that could not be decoded into a record (a column holds what no append writes):
/// verification reports it instead of stopping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableRecord {
    pub seq: u64,
    pub reason: String,
}

/// One row of a verification scan.
pub type ScannedRecord = Result<AuditRecord, UnreadableRecord>;

/// The actor of an anonymous caller (no or invalid credentials).
pub const ANONYMOUS: &str = "anonymous";

#[cfg(test)]
mod tests {
    #[test]
    fn credentials_never_reach_a_record() {
        let entry = AuditEntry {
            at: OffsetDateTime::UNIX_EPOCH,
            actor: "cli:ops".into(),
            action: "api_key.revoke".into(),
            target: Some(
                "api_key:fbk_0123456789ab_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into(),
            ),
            outcome: Outcome::Success,
            op_id: "op".into(),
            source: "local".into(),
            details: BTreeMap::from([
                (
                    "refresh".to_owned(),
                    "token fbr_abcdefghijklmnopqrstuvwxyz0123456789 used".to_owned(),
                ),
                (
                    "jwt".to_owned(),
                    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl".to_owned(),
                ),
                ("prefix".to_owned(), "fbk_0123456789ab".to_owned()),
            ]),
        }
        .normalized();
        assert_eq!(entry.target.as_deref(), Some("api_key:[redacted]"));
        assert_eq!(entry.details["refresh"], "token [redacted] used");
        assert_eq!(entry.details["jwt"], "[redacted]");
        // A short prefix names a key without revealing it: kept.
        assert_eq!(entry.details["prefix"], "fbk_0123456789ab");
        assert_eq!(
            entry.clone().normalized(),
            entry,
            "normalising twice changes nothing"
        );
    }

    use super::*;

    pub(super) fn entry(action: &str) -> AuditEntry {
        AuditEntry {
            at: OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_123_456_789).unwrap(),
            actor: "user:alice".into(),
            action: action.into(),
            target: Some("user:bob".into()),
            outcome: Outcome::Success,
            op_id: "0190c0de-0000-7000-8000-000000000001".into(),
            source: "192.0.2.7".into(),
            details: BTreeMap::from([("status".into(), "200".into())]),
        }
    }

    #[test]
    fn the_hash_is_stable_across_releases() {
        // Stored chains must verify forever: a change here needs a new domain tag, not an edit.
        // The value was cross-checked with an independent implementation of the encoding
        // documented on `chain_hash` (Python's hashlib).
        let record = AuditRecord::next(&AuditHead::EMPTY, entry("user.disable"));
        assert_eq!(
            record.hash.to_hex(),
            "0e190a27bc15df2580c655efcec6a4c5ff998a377636fecc120c11d2e06324be"
        );
    }

    #[test]
    fn every_field_and_the_position_change_the_hash() {
        let base = entry("user.disable");
        let hash = |e: &AuditEntry| chain_hash(&ChainHash::GENESIS, 1, &e.clone().normalized());
        let original = hash(&base);
        let mut variants: Vec<AuditEntry> = Vec::new();
        let mut e = base.clone();
        e.at += time::Duration::microseconds(1);
        variants.push(e);
        let mut e = base.clone();
        e.actor = "user:alicf".into();
        variants.push(e);
        let mut e = base.clone();
        e.action = "user.enable".into();
        variants.push(e);
        let mut e = base.clone();
        e.target = None;
        variants.push(e);
        let mut e = base.clone();
        e.target = Some(String::new());
        variants.push(e);
        let mut e = base.clone();
        e.outcome = Outcome::Denied;
        variants.push(e);
        let mut e = base.clone();
        e.op_id.push('x');
        variants.push(e);
        let mut e = base.clone();
        e.source = "192.0.2.8".into();
        variants.push(e);
        let mut e = base.clone();
        e.details.insert("error".into(), "last_admin".into());
        variants.push(e);
        for variant in &variants {
            assert_ne!(hash(variant), original, "{variant:?}");
        }
        let normalized = base.normalized();
        assert_ne!(
            chain_hash(&ChainHash::GENESIS, 2, &normalized),
            original,
            "seq"
        );
        assert_ne!(
            chain_hash(&ChainHash([1; 32]), 1, &normalized),
            original,
            "prev"
        );
    }

    #[test]
    fn fields_are_length_prefixed_so_boundaries_cannot_shift() {
        let mut a = entry("x");
        a.actor = "user:ab".into();
        a.action = "c".into();
        let mut b = a.clone();
        b.actor = "user:a".into();
        b.action = "bc".into();
        assert_ne!(
            chain_hash(&ChainHash::GENESIS, 1, &a),
            chain_hash(&ChainHash::GENESIS, 1, &b)
        );
        let mut c = entry("x");
        c.details = BTreeMap::from([("ab".into(), "c".into())]);
        let mut d = c.clone();
        d.details = BTreeMap::from([("a".into(), "bc".into())]);
        assert_ne!(
            chain_hash(&ChainHash::GENESIS, 1, &c),
            chain_hash(&ChainHash::GENESIS, 1, &d)
        );
    }

    #[test]
    fn records_are_normalized_before_hashing() {
        let mut e = entry("auth.login");
        e.at = e.at.to_offset(time::UtcOffset::from_hms(2, 0, 0).unwrap());
        e.target = Some(format!("user:{}\n{}", "x".repeat(300), "forged line"));
        for i in 0..20 {
            e.details.insert(format!("k{i:02}"), "v".into());
        }
        let record = AuditRecord::next(&AuditHead::EMPTY, e);
        assert_eq!(record.entry.at.offset(), UtcOffset::UTC);
        assert_eq!(record.entry.at.nanosecond() % 1_000, 0);
        let target = record.entry.target.as_deref().unwrap();
        assert_eq!(target.chars().count(), FIELD_MAX_CHARS);
        assert!(!target.contains('\n'));
        assert_eq!(record.entry.details.len(), DETAILS_MAX);
        assert!(record.is_intact());
        // Normalizing again changes nothing, so a store's round trip hashes the same.
        assert_eq!(record.entry.clone().normalized(), record.entry);
    }

    #[test]
    fn hashes_print_and_parse_as_hex() {
        let hash = chain_hash(&ChainHash::GENESIS, 1, &entry("a.b"));
        assert_eq!(ChainHash::parse_hex(&hash.to_hex()), Some(hash));
        assert_eq!(ChainHash::parse_hex("00"), None);
        assert_eq!(ChainHash::parse_hex(&"g".repeat(64)), None);
        assert_eq!(ChainHash::from_slice(&[0; 31]), None);
    }

    #[test]
    fn heads_print_and_parse_as_anchors() {
        let head = AuditRecord::next(&AuditHead::EMPTY, entry("a.b")).as_head();
        let text = head.to_string();
        assert!(text.starts_with("1:"));
        assert_eq!(AuditHead::parse(&text), Some(head));
        assert_eq!(AuditHead::parse("1"), None);
        assert_eq!(AuditHead::parse("x:00"), None);
    }

    #[test]
    fn micros_round_trip() {
        let e = entry("a.b").normalized();
        assert_eq!(from_micros(e.at_micros()), Some(e.at));
    }
}
