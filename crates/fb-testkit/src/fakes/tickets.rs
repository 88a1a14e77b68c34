//! Maintenance tickets in memory, with the stores' two rules: one active ticket per machine
//! and failure type, and an alert linked to one ticket.

use std::collections::BTreeMap;

use async_trait::async_trait;
use time::OffsetDateTime;

use fb_core::alerts::AlertId;
use fb_core::maintenance::{Ticket, TicketId};
use fb_core::plant::MachineId;
use fb_core::ports::{StoreError, TicketFilter, TicketStore};

use super::{MemoryStore, State};

#[derive(Default)]
pub(super) struct TicketState {
    tickets: BTreeMap<TicketId, Ticket>,
    /// alert → the ticket it is linked to.
    links: BTreeMap<AlertId, TicketId>,
}

impl TicketState {
    /// The rules a write of `ticket` must keep, checked before anything changes.
    fn check(&self, ticket: &Ticket) -> Result<(), StoreError> {
        let clash = ticket.status.is_active()
            && self.tickets.values().any(|t| {
                t.id != ticket.id
                    && t.status.is_active()
                    && t.machine == ticket.machine
                    && t.failure_type == ticket.failure_type
            });
        if clash {
            return Err(StoreError::Conflict {
                constraint: "ticket_active",
            });
        }
        if ticket
            .alerts
            .iter()
            .any(|a| self.links.get(a).is_some_and(|owner| *owner != ticket.id))
        {
            return Err(StoreError::Conflict {
                constraint: "ticket_alert",
            });
        }
        Ok(())
    }

    fn store(&mut self, ticket: &Ticket) {
        for alert in &ticket.alerts {
            self.links.insert(*alert, ticket.id);
        }
        // Links are never removed: the stored ticket keeps every alert it was ever linked to,
        // like the link table of the SQL stores.
        let mut ticket = ticket.clone();
        if let Some(stored) = self.tickets.get(&ticket.id) {
            for alert in &stored.alerts {
                if !ticket.alerts.contains(alert) {
                    ticket.alerts.push(*alert);
                }
            }
        }
        self.tickets.insert(ticket.id, ticket);
    }
}

fn state(s: &mut State) -> &mut TicketState {
    &mut s.tickets
}

#[async_trait]
impl TicketStore for MemoryStore {
    async fn insert_ticket(&self, ticket: &Ticket) -> Result<(), StoreError> {
        self.with(|s| {
            let t = state(s);
            if t.tickets.contains_key(&ticket.id) {
                return Err(StoreError::Conflict {
                    constraint: "ticket_id",
                });
            }
            t.check(ticket)?;
            t.store(ticket);
            Ok(())
        })
    }

    async fn update_ticket(
        &self,
        ticket: &Ticket,
        expected_version: u64,
    ) -> Result<bool, StoreError> {
        self.with(|s| {
            let t = state(s);
            if t.tickets.get(&ticket.id).map(|stored| stored.version) != Some(expected_version) {
                return Ok(false);
            }
            t.check(ticket)?;
            t.store(ticket);
            Ok(true)
        })
    }

    async fn ticket(&self, id: TicketId) -> Result<Option<Ticket>, StoreError> {
        Ok(self.with(|s| state(s).tickets.get(&id).cloned()))
    }

    async fn list_tickets(&self, f: &TicketFilter) -> Result<Vec<Ticket>, StoreError> {
        Ok(self.with(|s| {
            state(s)
                .tickets
                .values()
                .rev()
                .filter(|t| f.sites.contains(&t.site))
                .filter(|t| f.machine.as_ref().is_none_or(|m| *m == t.machine))
                .filter(|t| match f.status {
                    Some(status) => t.status == status,
                    None => !f.active_only || t.status.is_active(),
                })
                .filter(|t| f.priority.is_none_or(|p| p == t.priority))
                .filter(|t| f.failure_type.is_none_or(|ft| ft == t.failure_type))
                .filter(|t| f.before.is_none_or(|b| t.id < b))
                .take(f.limit)
                .cloned()
                .collect()
        }))
    }

    async fn ticket_for_alert(&self, alert: AlertId) -> Result<Option<Ticket>, StoreError> {
        Ok(self.with(|s| {
            let t = state(s);
            t.links
                .get(&alert)
                .and_then(|id| t.tickets.get(id))
                .cloned()
        }))
    }

    async fn machine_tickets(
        &self,
        machine: &MachineId,
        from: OffsetDateTime,
        to: OffsetDateTime,
        limit: usize,
    ) -> Result<Vec<Ticket>, StoreError> {
        let mut found: Vec<Ticket> = self.with(|s| {
            state(s)
                .tickets
                .values()
                .filter(|t| t.machine == *machine && t.created_at < to)
                .filter(|t| t.resolved_at.is_none_or(|r| r >= from))
                .cloned()
                .collect()
        });
        found.sort_by_key(|t| (t.created_at, t.id));
        found.truncate(limit);
        Ok(found)
    }
}
