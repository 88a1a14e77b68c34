//! Storage port of the audit log (D5).

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::audit::{AuditEntry, AuditHead, AuditRecord, Outcome, ScannedRecord};

use super::StoreError;

/// Which audit records to list. Every filter is an exact match; `from` is inclusive, `to`
/// exclusive.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub outcome: Option<Outcome>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    /// Page: records with a greater seq.
    pub after: Option<u64>,
    /// Page: records with a smaller seq.
    pub before: Option<u64>,
    /// Newest first (descending seq) instead of oldest first.
    pub newest_first: bool,
    pub limit: usize,
}

impl AuditFilter {
    /// Whether a record passes every filter and both page bounds (what the stores' queries
    /// select, before ordering and the limit).
    pub fn matches(&self, record: &AuditRecord) -> bool {
        let e = &record.entry;
        let same = |wanted: &Option<String>, have: Option<&str>| {
            wanted.as_deref().is_none_or(|w| Some(w) == have)
        };
        same(&self.actor, Some(e.actor.as_str()))
            && same(&self.action, Some(e.action.as_str()))
            && same(&self.target, e.target.as_deref())
            && self.outcome.is_none_or(|o| o == e.outcome)
            && self.from.is_none_or(|from| e.at >= from)
            && self.to.is_none_or(|to| e.at < to)
            && self.after.is_none_or(|after| record.seq > after)
            && self.before.is_none_or(|before| record.seq < before)
    }
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Appends `entry` as the record after the head, chained to it ([`AuditRecord::next`]), and
    /// moves the head to it, atomically. Appends from any number of nodes form one gapless chain:
    /// each waits for the one before it to commit.
    async fn append_audit(&self, entry: &AuditEntry) -> Result<AuditRecord, StoreError>;
    /// Records matching the filter, ordered by seq.
    async fn list_audit(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError>;
    /// Up to `limit` rows with a seq greater than `after`, ascending, for verification. A row that
    /// cannot be decoded comes back as an [`UnreadableRecord`](crate::audit::UnreadableRecord)
    /// rather than failing the page.
    async fn scan_audit(&self, after: u64, limit: usize) -> Result<Vec<ScannedRecord>, StoreError>;
    /// The stored head; `None` if it was deleted (a fresh store's head is [`AuditHead::EMPTY`]).
    async fn audit_head(&self) -> Result<Option<AuditHead>, StoreError>;
}
