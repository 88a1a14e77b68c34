//! The audit log (D5): recording what happened, reading it back, checking the chain.
//!
//! Recording never fails the action it records: the action has happened (or been refused)
//! by then, and refusing to answer for want of a log line would turn a store hiccup into an
//! outage. A failed write is logged once with the op id and counted in
//! `fb_audit_write_failures_total`, which deserves an alert of its own.

use std::sync::Arc;

use time::OffsetDateTime;

use fb_core::Clock;
use fb_core::audit::{AuditEntry, AuditHead, AuditRecord, Problem, Verifier};
use fb_core::error::{Code, Coded};
use fb_core::identity::{Permission, Principal};
use fb_core::ports::{AuditFilter, AuditStore, StoreError};

/// Records read per page while verifying.
const VERIFY_PAGE: usize = 1_000;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("this role lacks the permission {0}")]
    PermissionDenied(Permission),
    #[error(transparent)]
    OutOfScope(#[from] crate::scope::OutOfScope),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for Error {
    fn code(&self) -> Code {
        match self {
            Error::PermissionDenied(_) => Code::permission_denied,
            Error::OutOfScope(e) => e.code(),
            Error::Store(StoreError::Unavailable(_)) => Code::storage_unavailable,
            Error::Store(_) => Code::internal,
        }
    }

    fn field_errors(&self) -> &[fb_core::error::FieldError] {
        match self {
            Error::OutOfScope(e) => e.field_errors(),
            _ => &[],
        }
    }
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Rows checked.
    pub checked: u64,
    /// The stored head after the check (`None`: it was deleted).
    pub head: Option<AuditHead>,
    /// Every problem, ordered by seq; empty when the chain is intact.
    pub problems: Vec<Problem>,
}

pub struct Service {
    store: Arc<dyn AuditStore>,
    clock: Arc<dyn Clock>,
}

impl Service {
    pub fn new(store: Arc<dyn AuditStore>, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// The time to stamp an entry with.
    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Appends an entry to the chain; the stored record, or `None` if the store failed (logged
    /// and counted here, never passed on).
    pub async fn record(&self, entry: AuditEntry) -> Option<AuditRecord> {
        match self.store.append_audit(&entry).await {
            Ok(record) => Some(record),
            Err(e) => {
                metrics::counter!("fb_audit_write_failures_total").increment(1);
                tracing::error!(
                    op_id = %entry.op_id,
                    action = %entry.action,
                    outcome = %entry.outcome,
                    error = %e,
                    "Audit record could not be written."
                );
                None
            }
        }
    }

    /// Records matching the filter.
    pub async fn list(
        &self,
        caller: &Principal,
        filter: &AuditFilter,
    ) -> Result<Vec<AuditRecord>, Error> {
        require(caller)?;
        Ok(self.store.list_audit(filter).await?)
    }

    /// The stored head, to keep elsewhere as an anchor.
    pub async fn head(&self, caller: &Principal) -> Result<Option<AuditHead>, Error> {
        require(caller)?;
        Ok(self.store.audit_head().await?)
    }

    /// Checks the whole chain against itself, the stored head and `anchors` (heads kept
    /// outside the store), a page at a time. Records appended while it runs are checked too.
    pub async fn verify(
        &self,
        caller: &Principal,
        anchors: &[AuditHead],
    ) -> Result<Verification, Error> {
        require(caller)?;
        // The head is read before the records, so that records appended during the scan lie
        // after it instead of looking like a cut-off end.
        let head = self.store.audit_head().await?;
        let mut verifier = Verifier::new(head, anchors);
        let mut after = 0;
        loop {
            let page = self.store.scan_audit(after, VERIFY_PAGE).await?;
            let full = page.len() == VERIFY_PAGE;
            for row in page {
                verifier.feed(row);
            }
            // The verifier tracks the highest seq; a page that does not pass it ends the scan.
            if !full || verifier.last_seq() <= after {
                break;
            }
            after = verifier.last_seq();
        }
        // Read again after the scan: records past this head were not appended through a store.
        let head = self.store.audit_head().await?;
        let checked = verifier.checked();
        Ok(Verification {
            checked,
            head,
            problems: verifier.finish(head),
        })
    }
}

/// The audit log names machines, users and addresses of every site, so only a caller of all
/// sites reads it.
fn require(caller: &Principal) -> Result<(), Error> {
    if !caller.can(Permission::AuditRead) {
        return Err(Error::PermissionDenied(Permission::AuditRead));
    }
    crate::scope::require_all_sites(caller, "the audit log")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use fb_core::audit::Outcome;
    use fb_core::identity::{Role, Subject};
    use fb_core::ports::Storage;
    use fb_testkit::FakeClock;
    use fb_testkit::fakes::MemoryStore;

    use super::*;

    fn service() -> Service {
        let storage = Storage::from_backend(Arc::new(MemoryStore::new()));
        Service::new(storage.audit, Arc::new(FakeClock::new()))
    }

    fn principal(role: Role) -> Principal {
        Principal {
            role,
            sites: fb_core::identity::SiteScope::All,
            subject: Subject::System,
            mfa_enrolment_pending: false,
        }
    }

    fn entry(service: &Service, action: &str) -> AuditEntry {
        AuditEntry {
            at: service.now(),
            actor: "cli:root".into(),
            action: action.into(),
            target: None,
            outcome: Outcome::Success,
            op_id: "op".into(),
            source: "local".into(),
            details: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn only_admins_read_and_verify_the_log() {
        let service = service();
        for role in [Role::Supervisor, Role::Operator, Role::Viewer] {
            let caller = principal(role);
            let filter = AuditFilter::default();
            assert!(matches!(
                service.list(&caller, &filter).await,
                Err(Error::PermissionDenied(Permission::AuditRead))
            ));
            assert!(service.verify(&caller, &[]).await.is_err());
            assert!(service.head(&caller).await.is_err());
        }
        let admin = principal(Role::Admin);
        assert_eq!(service.head(&admin).await.unwrap(), Some(AuditHead::EMPTY));
    }

    #[tokio::test]
    async fn verification_pages_through_the_whole_chain() {
        let service = service();
        let admin = principal(Role::Admin);
        let count = VERIFY_PAGE as u64 * 2 + 3;
        let mut last = None;
        for _ in 0..count {
            last = service.record(entry(&service, "user.create")).await;
        }
        let report = service.verify(&admin, &[]).await.unwrap();
        assert_eq!(report.checked, count);
        assert_eq!(report.problems, []);
        assert_eq!(report.head, last.map(|r| r.as_head()));
        // An anchor that this chain never had is reported.
        let foreign = AuditHead {
            seq: 5,
            hash: fb_core::audit::ChainHash([9; 32]),
        };
        let report = service.verify(&admin, &[foreign]).await.unwrap();
        assert_eq!(report.problems.len(), 1);
        assert_eq!(report.problems[0].kind(), "checkpoint_mismatch");
    }
}
