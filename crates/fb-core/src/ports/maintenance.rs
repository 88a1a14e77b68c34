//! Storage port of maintenance tickets (C1).

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::alerts::AlertId;
use crate::identity::SiteScope;
use crate::maintenance::{FailureType, Ticket, TicketId, TicketPriority, TicketStatus};
use crate::plant::MachineId;

use super::StoreError;

/// Which tickets to list, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketFilter {
    /// Only tickets of these sites (the site a ticket was opened in). No `Default`: every
    /// filter says its sites.
    pub sites: SiteScope,
    pub machine: Option<MachineId>,
    pub status: Option<TicketStatus>,
    /// Open or in progress only (ignored when `status` is given).
    pub active_only: bool,
    pub priority: Option<TicketPriority>,
    pub failure_type: Option<FailureType>,
    /// Page: tickets opened before this one (ids are time-ordered UUIDv7).
    pub before: Option<TicketId>,
    pub limit: usize,
}

impl TicketFilter {
    /// Up to `limit` tickets of the given sites, newest first, with no other condition.
    pub fn new(sites: SiteScope, limit: usize) -> Self {
        Self {
            sites,
            machine: None,
            status: None,
            active_only: false,
            priority: None,
            failure_type: None,
            before: None,
            limit,
        }
    }
}

/// Stores tickets with their alert links. Two rules hold in every store, whatever writes:
/// at most one active (open or in-progress) ticket per machine and failure type
/// (`Conflict { constraint: "ticket_active" }`), and an alert is linked to at most one ticket
/// (`Conflict { constraint: "ticket_alert" }`).
#[async_trait]
pub trait TicketStore: Send + Sync {
    /// Inserts a new ticket and links its alerts, atomically.
    async fn insert_ticket(&self, ticket: &Ticket) -> Result<(), StoreError>;

    /// Replaces the stored ticket if its version is still `expected_version` (the caller has
    /// set `ticket.version` to the next one) and links those of its alerts that are not linked
    /// yet (links are never removed), atomically; `false`, changing nothing, if someone changed
    /// it in between.
    async fn update_ticket(
        &self,
        ticket: &Ticket,
        expected_version: u64,
    ) -> Result<bool, StoreError>;

    async fn ticket(&self, id: TicketId) -> Result<Option<Ticket>, StoreError>;

    async fn list_tickets(&self, filter: &TicketFilter) -> Result<Vec<Ticket>, StoreError>;

    /// The ticket an alert is linked to.
    async fn ticket_for_alert(&self, alert: AlertId) -> Result<Option<Ticket>, StoreError>;

    /// The machine's tickets that bear on `[from, to)`: opened before `to` and not resolved
    /// before `from` (unresolved ones included), oldest first, at most `limit`.
    async fn machine_tickets(
        &self,
        machine: &MachineId,
        from: OffsetDateTime,
        to: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError>;
}
