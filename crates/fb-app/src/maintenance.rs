//! Maintenance (C1): tickets opened by hand or by the auto-ticket rule, worked through their
//! lifecycle, and the reliability figures of machines.
//!
//! Who may do what: reading needs `tickets.read`, opening, editing, starting, resolving and
//! reopening need `tickets.manage`, closing (signing a repair off) needs `tickets.close`. A ticket
//! belongs to the site its machine was in when it was opened; a caller sees and changes only
//! tickets of its sites ([`crate::scope`]), and any other answers `ticket_not_found`.
//!
//! Every stored change is announced on a broadcast channel of [`TicketEvent`]s
//! ([`Service::subscribe`]): the seam for the event bus (issue #7, part 1), which publishes them
//! as `ticket.changed` events once it is wired to it; nothing in here depends on a bus.
//!
//! The auto-ticket rule ([`auto`]): a critical alert opens a ticket for its machine and failure
//! type unless one is active, which it joins instead.

pub mod auto;

use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::broadcast;

use fb_core::Clock;
use fb_core::alerts::AlertId;
use fb_core::error::{Code, Coded, FieldError};
use fb_core::identity::{Permission, Principal};
use fb_core::maintenance::{
    ClosedError, FailureType, NewTicket, Reliability, Ticket, TicketId, TicketPatch, Transition,
    TransitionError, reliability, validate_cost,
};
use fb_core::plant::MachineId;
use fb_core::ports::{IdentityStore, StoreError, TicketFilter, TicketStore};

use crate::audit;
use crate::scope::MachineVisibility;

/// What happened to a ticket, for whoever listens (the event stream, the event bus, agents).
#[derive(Debug, Clone, PartialEq)]
pub enum TicketEvent {
    Opened(Ticket),
    /// Fields changed (assignee, priority, costs, steps ticked off, title, description).
    Updated(Ticket),
    /// The status changed by `action` (the ticket's new status says where to).
    Moved {
        ticket: Ticket,
        action: Transition,
    },
    /// Another alert showed the same failure and joined the ticket.
    AlertLinked {
        ticket: Ticket,
        alert: AlertId,
    },
}

impl TicketEvent {
    pub fn ticket(&self) -> &Ticket {
        match self {
            TicketEvent::Opened(t)
            | TicketEvent::Updated(t)
            | TicketEvent::Moved { ticket: t, .. }
            | TicketEvent::AlertLinked { ticket: t, .. } => t,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            TicketEvent::Opened(_) => "ticket.opened",
            TicketEvent::Updated(_) => "ticket.updated",
            TicketEvent::Moved { action, .. } => match action {
                Transition::Start => "ticket.started",
                Transition::Resolve => "ticket.resolved",
                Transition::Close => "ticket.closed",
                Transition::Reopen => "ticket.reopened",
            },
            TicketEvent::AlertLinked { .. } => "ticket.alert_linked",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("this role lacks the permission {0}")]
    PermissionDenied(Permission),
    #[error("invalid {}", FieldError::names(.0))]
    Validation(Vec<FieldError>),
    #[error("no ticket has this id")]
    NotFound,
    #[error("no machine has the id '{0}'")]
    MachineNotFound(String),
    #[error(transparent)]
    Transition(#[from] TransitionError),
    #[error(transparent)]
    Closed(#[from] ClosedError),
    #[error("the machine has an active ticket for this failure type already: {0}")]
    AlreadyOpen(TicketId),
    #[error("the ticket is at version {current}, not {expected}; read it again and retry")]
    VersionConflict { expected: u64, current: u64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for Error {
    fn code(&self) -> Code {
        match self {
            Error::PermissionDenied(_) => Code::permission_denied,
            Error::Validation(_) => Code::invalid_field,
            Error::NotFound => Code::ticket_not_found,
            Error::MachineNotFound(_) => Code::machine_not_found,
            Error::Transition(_) => Code::ticket_transition_invalid,
            Error::Closed(_) => Code::ticket_closed,
            Error::AlreadyOpen(_) => Code::ticket_already_open,
            Error::VersionConflict { .. } => Code::ticket_version_conflict,
            Error::Store(StoreError::Unavailable(_)) => Code::storage_unavailable,
            Error::Store(_) => Code::internal,
        }
    }

    fn field_errors(&self) -> &[FieldError] {
        match self {
            Error::Validation(fields) => fields,
            _ => &[],
        }
    }
}

/// Attempts at a change that keeps meeting a concurrent one.
const RETRIES: usize = 5;
/// Most tickets of one machine a reliability figure is computed from.
pub const RELIABILITY_TICKETS_MAX: usize = 10_000;
/// Longest window of a reliability figure.
pub const RELIABILITY_WINDOW_MAX: time::Duration = time::Duration::days(3_660);

/// A status change a person asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Move {
    pub comment: Option<String>,
    /// With `resolve`: what the repair cost, in minor units.
    pub actual_cost_minor: Option<i64>,
    /// The version the caller saw; `None` applies the change to whatever is stored.
    pub expected_version: Option<u64>,
}

pub struct Service {
    store: Arc<dyn TicketStore>,
    visibility: MachineVisibility,
    identities: Arc<dyn IdentityStore>,
    audit: Arc<audit::Service>,
    clock: Arc<dyn Clock>,
    events: broadcast::Sender<TicketEvent>,
    decision_log: std::sync::OnceLock<Arc<crate::gates::Service>>,
}

impl Service {
    pub fn new(
        store: Arc<dyn TicketStore>,
        visibility: MachineVisibility,
        identities: Arc<dyn IdentityStore>,
        audit: Arc<audit::Service>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let (events, _) = broadcast::channel(1024);
        Self {
            store,
            visibility,
            identities,
            audit,
            clock,
            events,
            decision_log: std::sync::OnceLock::new(),
        }
    }

    /// Writes what the auto-ticket rule does to the agents' decision log (wired once by the
    /// server; `false` if one was set already).
    pub fn attach_decision_log(&self, gates: Arc<crate::gates::Service>) -> bool {
        self.decision_log.set(gates).is_ok()
    }

    /// Ticket changes as they are stored. A listener more than 1024 events behind misses the
    /// oldest (the store keeps every ticket).
    pub fn subscribe(&self) -> broadcast::Receiver<TicketEvent> {
        self.events.subscribe()
    }

    pub fn now(&self) -> OffsetDateTime {
        self.clock.now()
    }

    /// Tickets matching `filter` within the caller's sites (narrowed in the store's query, so
    /// that limits and pages count only visible tickets).
    pub async fn list(
        &self,
        caller: &Principal,
        filter: &TicketFilter,
    ) -> Result<Vec<Ticket>, Error> {
        require(caller, Permission::TicketsRead)?;
        let filter = TicketFilter {
            sites: filter.sites.intersection(&caller.sites),
            ..filter.clone()
        };
        Ok(self.store.list_tickets(&filter).await?)
    }

    pub async fn get(&self, caller: &Principal, id: TicketId) -> Result<Ticket, Error> {
        require(caller, Permission::TicketsRead)?;
        self.visible(caller, id).await
    }

    /// The ticket if it exists and its site is one of the caller's; `NotFound` for both other
    /// cases alike.
    async fn visible(&self, caller: &Principal, id: TicketId) -> Result<Ticket, Error> {
        match self.store.ticket(id).await? {
            Some(t) if caller.can_access_site(&t.site) => Ok(t),
            _ => Err(Error::NotFound),
        }
    }

    /// Opens a ticket by hand. Its site is its machine's; the machine must be one the caller
    /// sees (else the field `machine` is invalid, as for a machine that does not exist).
    pub async fn create(&self, caller: &Principal, new: NewTicket) -> Result<Ticket, Error> {
        require(caller, Permission::TicketsManage)?;
        let mut errors = new.validate();
        let machine = self.visibility.machine(caller, &new.machine).await?;
        if machine.is_none() {
            errors.push(FieldError::new("machine", "no machine has this id"));
        }
        if let (Some(machine), Some(assignee)) = (&machine, &new.assignee)
            && errors.iter().all(|e| e.field != "assignee")
        {
            errors.extend(
                self.check_assignee(assignee, &machine.location.site)
                    .await?,
            );
        }
        let Some(machine) = machine.filter(|_| errors.is_empty()) else {
            return Err(Error::Validation(errors));
        };
        let ticket = new.open(machine.location.site, caller.describe(), self.clock.now());
        match self.store.insert_ticket(&ticket).await {
            Ok(()) => {}
            Err(StoreError::Conflict {
                constraint: "ticket_active",
            }) => {
                return Err(self
                    .active_for(&ticket.machine, ticket.failure_type)
                    .await?
                    .map_or(
                        Error::Store(StoreError::Conflict {
                            constraint: "ticket_active",
                        }),
                        |t| Error::AlreadyOpen(t.id),
                    ));
            }
            Err(e) => return Err(e.into()),
        }
        self.announce(TicketEvent::Opened(ticket.clone()));
        Ok(ticket)
    }

    /// The active ticket of a machine and failure type, if there is one.
    async fn active_for(
        &self,
        machine: &MachineId,
        failure_type: FailureType,
    ) -> Result<Option<Ticket>, StoreError> {
        let filter = TicketFilter {
            machine: Some(machine.clone()),
            failure_type: Some(failure_type),
            active_only: true,
            ..TicketFilter::new(fb_core::identity::SiteScope::All, 1)
        };
        Ok(self.store.list_tickets(&filter).await?.into_iter().next())
    }

    /// An assignee is an active user who may work on tickets of the site.
    async fn check_assignee(
        &self,
        username: &str,
        site: &str,
    ) -> Result<Option<FieldError>, StoreError> {
        let able = self
            .identities
            .user_by_username(username)
            .await?
            .is_some_and(|u| {
                !u.disabled && u.role.allows(Permission::TicketsManage) && u.sites.contains(site)
            });
        Ok((!able).then(|| {
            FieldError::new(
                "assignee",
                format!(
                    "must be an active user who may work on tickets (tickets.manage) of site '{site}'"
                ),
            )
        }))
    }

    /// Changes a ticket's fields. With `expected_version`, refuses when the ticket has moved
    /// on; without, applies the patch to whatever is stored.
    pub async fn update(
        &self,
        caller: &Principal,
        id: TicketId,
        patch: TicketPatch,
        expected_version: Option<u64>,
    ) -> Result<Ticket, Error> {
        require(caller, Permission::TicketsManage)?;
        let by = caller.describe();
        // Looked up when well formed (else the patch's validation names the field).
        let assignee = patch
            .assignee
            .clone()
            .flatten()
            .filter(|a| fb_core::identity::validate_username("assignee", a).is_ok());
        self.change(
            caller,
            id,
            expected_version,
            |ticket| {
                let errors = patch.validate(ticket);
                if !errors.is_empty() {
                    return Err(Error::Validation(errors));
                }
                Ok(ticket.apply(&patch, &by, self.clock.now())?)
            },
            |ticket| {
                let (assignee, site) = (assignee.clone(), ticket.site.clone());
                async move {
                    match assignee {
                        Some(name) => self.check_assignee(&name, &site).await,
                        None => Ok(None),
                    }
                }
            },
        )
        .await
        .map(|(ticket, changed)| {
            if changed {
                self.announce(TicketEvent::Updated(ticket.clone()));
            }
            ticket
        })
    }

    /// Moves a ticket along its lifecycle. Closing needs `tickets.close`; the other moves
    /// `tickets.manage`. Resolving may record the actual cost.
    pub async fn transition(
        &self,
        caller: &Principal,
        id: TicketId,
        action: Transition,
        request: Move,
    ) -> Result<Ticket, Error> {
        require(
            caller,
            if action == Transition::Close {
                Permission::TicketsClose
            } else {
                Permission::TicketsManage
            },
        )?;
        if let Some(e) = validate_cost("actual_cost_minor", request.actual_cost_minor) {
            return Err(Error::Validation(vec![e]));
        }
        if request.actual_cost_minor.is_some() && action != Transition::Resolve {
            return Err(Error::Validation(vec![FieldError::new(
                "actual_cost_minor",
                "is recorded when resolving (or by editing the ticket)",
            )]));
        }
        let by = caller.describe();
        let result = self
            .change(
                caller,
                id,
                request.expected_version,
                |ticket| {
                    let at = self.clock.now();
                    ticket.transition(action, &by, at, request.comment.clone())?;
                    if let Some(cost) = request.actual_cost_minor {
                        ticket.actual_cost_minor = Some(cost);
                    }
                    Ok(true)
                },
                |_| async { Ok(None) },
            )
            .await;
        match result {
            Ok((ticket, _)) => {
                self.announce(TicketEvent::Moved {
                    ticket: ticket.clone(),
                    action,
                });
                Ok(ticket)
            }
            // A reopen while another ticket of the machine and failure type is active.
            Err(Error::Store(StoreError::Conflict {
                constraint: "ticket_active",
            })) => {
                let ticket = self.visible(caller, id).await?;
                Err(self
                    .active_for(&ticket.machine, ticket.failure_type)
                    .await?
                    .map_or(
                        Error::Store(StoreError::Conflict {
                            constraint: "ticket_active",
                        }),
                        |t| Error::AlreadyOpen(t.id),
                    ))
            }
            Err(e) => Err(e),
        }
    }

    /// Reads the visible ticket, applies `change` (which says whether anything changed) and
    /// writes it with the next version, retrying when a concurrent write got there first
    /// (unless the caller named the version it saw). `check` adds problems that need the
    /// store (an assignee), once. Returns the ticket as stored and whether it changed.
    async fn change<C, K, F>(
        &self,
        caller: &Principal,
        id: TicketId,
        expected_version: Option<u64>,
        mut change: C,
        mut check: K,
    ) -> Result<(Ticket, bool), Error>
    where
        C: FnMut(&mut Ticket) -> Result<bool, Error>,
        K: FnMut(&Ticket) -> F,
        F: Future<Output = Result<Option<FieldError>, StoreError>>,
    {
        for _ in 0..RETRIES {
            let mut ticket = self.visible(caller, id).await?;
            let stored = ticket.version;
            if let Some(expected) = expected_version
                && expected != stored
            {
                return Err(Error::VersionConflict {
                    expected,
                    current: stored,
                });
            }
            if let Some(problem) = check(&ticket).await? {
                return Err(Error::Validation(vec![problem]));
            }
            if !change(&mut ticket)? {
                return Ok((ticket, false));
            }
            ticket.version = stored + 1;
            if self.store.update_ticket(&ticket, stored).await? {
                return Ok((ticket, true));
            }
        }
        Err(Error::Store(StoreError::Unavailable(
            "the ticket keeps changing; try again".into(),
        )))
    }

    /// A machine's reliability over `[from, to)`, from its tickets (of one failure type, or
    /// all). The machine must be one the caller sees.
    pub async fn reliability(
        &self,
        caller: &Principal,
        machine: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
        failure_type: Option<FailureType>,
    ) -> Result<Reliability, Error> {
        require(caller, Permission::TicketsRead)?;
        let mut errors = Vec::new();
        if from >= to {
            errors.push(FieldError::new("from", "must be before 'to'"));
        } else if to - from > RELIABILITY_WINDOW_MAX {
            errors.push(FieldError::new(
                "from",
                format!(
                    "the window may span at most {} days",
                    RELIABILITY_WINDOW_MAX.whole_days()
                ),
            ));
        }
        if !errors.is_empty() {
            return Err(Error::Validation(errors));
        }
        let id = MachineId(machine.to_owned());
        let Some(machine) = self.visibility.machine(caller, &id).await? else {
            return Err(Error::MachineNotFound(machine.to_owned()));
        };
        // A second either side: SQLite compares times as text, which can misplace a time
        // within its second; the computation below clips exactly.
        let margin = time::Duration::seconds(1);
        let tickets: Vec<Ticket> = self
            .store
            .machine_tickets(
                &id,
                from.checked_sub(margin).unwrap_or(from),
                to.checked_add(margin).unwrap_or(to),
                RELIABILITY_TICKETS_MAX,
            )
            .await?
            .into_iter()
            // A machine that moved keeps its old site's tickets: those are not this caller's.
            .filter(|t| caller.can_access_site(&t.site))
            .filter(|t| failure_type.is_none_or(|f| f == t.failure_type))
            .collect();
        Ok(reliability(&tickets, from, to, Some(machine.created_at)))
    }

    fn announce(&self, event: TicketEvent) {
        metrics::counter!("fb_ticket_events_total", "event" => event.name()).increment(1);
        // Nobody listening is fine.
        let _ = self.events.send(event);
    }
}

fn require(caller: &Principal, permission: Permission) -> Result<(), Error> {
    if caller.can(permission) {
        Ok(())
    } else {
        Err(Error::PermissionDenied(permission))
    }
}

#[cfg(test)]
mod tests;
