//! Site scopes (D3): the one place where a caller's sites meet the plant's objects.
//!
//! Every use case that reads or changes a machine, or anything that belongs to one (readings,
//! anomalies, alerts; tickets and orders when they come), asks here. An object outside the
//! caller's sites is answered exactly like one that does not exist, so a scoped caller cannot
//! learn what other sites hold; naming a site outside one's scope for something new (a
//! machine's location, a user's or key's sites) is refused with `site_out_of_scope`.

use std::sync::Arc;

use fb_core::error::{Code, Coded, FieldError};
use fb_core::identity::{Principal, SiteScope};
use fb_core::plant::{Machine, MachineId};
use fb_core::ports::{MachineStore, StoreError};

/// A site (or a whole scope) the caller cannot reach, named by the field that asked for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0[0].reason)]
pub struct OutOfScope(Vec<FieldError>);

impl OutOfScope {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self(vec![FieldError::new(field, reason)])
    }
}

impl Coded for OutOfScope {
    fn code(&self) -> Code {
        Code::site_out_of_scope
    }

    fn field_errors(&self) -> &[FieldError] {
        &self.0
    }
}

/// The sites a read covers: the one `site` named in `field` (which the caller must reach),
/// or all of the caller's.
pub fn sites_asked(
    caller: &Principal,
    field: &str,
    site: Option<&str>,
) -> Result<SiteScope, OutOfScope> {
    match site {
        Some(site) => {
            require_site(caller, field, site)?;
            Ok(SiteScope::Sites([site.to_owned()].into()))
        }
        None => Ok(caller.sites.clone()),
    }
}

/// The caller may put something into `site` (a new machine, a machine's new location).
pub fn require_site(caller: &Principal, field: &str, site: &str) -> Result<(), OutOfScope> {
    if caller.can_access_site(site) {
        Ok(())
    } else {
        Err(OutOfScope::new(
            field,
            format!(
                "site '{site}' is outside the caller's sites ({})",
                caller.sites
            ),
        ))
    }
}

/// The caller may grant `sites` to a user or API key (field `field`).
pub fn require_grantable(
    caller: &Principal,
    field: &str,
    sites: &SiteScope,
) -> Result<(), OutOfScope> {
    if caller.sites.covers(sites) {
        Ok(())
    } else {
        Err(OutOfScope::new(
            field,
            format!(
                "'{sites}' reaches beyond the caller's sites ({})",
                caller.sites
            ),
        ))
    }
}

/// The caller reaches every site: for what cannot be attributed to one (dead letters).
pub fn require_all_sites(caller: &Principal, what: &str) -> Result<(), OutOfScope> {
    if caller.sites.is_all() {
        Ok(())
    } else {
        Err(OutOfScope::new(
            "sites",
            format!(
                "{what} may concern any site; only a caller with access to all sites may use them"
            ),
        ))
    }
}

/// Machines as a caller may see them: the check every read or write of a plant object goes
/// through before it touches the object.
#[derive(Clone)]
pub struct MachineVisibility {
    machines: Arc<dyn MachineStore>,
}

impl MachineVisibility {
    pub fn new(machines: Arc<dyn MachineStore>) -> Self {
        Self { machines }
    }

    /// The machine, or `None` when it does not exist or lies outside the caller's sites (the
    /// two are indistinguishable on purpose).
    pub async fn machine(
        &self,
        caller: &Principal,
        id: &MachineId,
    ) -> Result<Option<Machine>, StoreError> {
        Ok(self
            .machines
            .machine(id)
            .await?
            .filter(|m| caller.can_access_site(&m.location.site)))
    }

    /// Whether what belongs to machine `id` (an alert, an anomaly, a ticket) is visible to the
    /// caller. A caller with every site sees it even when the machine has been deleted since;
    /// a scoped caller only while the machine exists in one of its sites.
    pub async fn owns_visible(
        &self,
        caller: &Principal,
        id: &MachineId,
    ) -> Result<bool, StoreError> {
        if caller.sites.is_all() {
            return Ok(true);
        }
        Ok(self.machine(caller, id).await?.is_some())
    }
}
