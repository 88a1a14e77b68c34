//! The port the plant optimizer (C4) reads procurement savings through.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::identity::SiteScope;

use super::StoreError;

/// Savings procurement (C2) achieved, per site and currency: the seam between the optimizer's
/// KPIs and procurement's orders. Procurement implements it (from its orders' negotiated
/// savings); with none wired, the optimizer reports procurement savings as unknown.
#[async_trait]
pub trait SavingsLedger: Send + Sync {
    /// (site, ISO 4217 currency, savings in the currency's minor unit) for every site of
    /// `sites` and currency with savings booked in `[from, to)`. A site without any is left
    /// out (it saved nothing), which is different from the ledger being absent (unknown).
    async fn savings_minor(
        &self,
        sites: &SiteScope,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<(String, String, i64)>, StoreError>;
}
