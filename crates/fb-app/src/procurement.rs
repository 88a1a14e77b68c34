//! Procurement (C2): the parts catalogue, bills of materials, suppliers and their offers, stock
//! per site, and the procurement agent that turns repairs and low stock into purchase orders.
//!
//! Who may do what: reading needs `plant.read`; changing the catalogue, offers, BOMs and stock
//! and receiving orders needs `procurement.manage` (supervisors and admins). Stock and orders
//! belong to a site: a caller sees and changes only those of its sites, and any other order
//! answers `order_not_found`. Approving an order is the confidence gate's business
//! (`orders.approve`, through [`crate::gates::Service`]).
//!
//! The agent:
//! - [`Service::on_ticket`]: a repair of a ticket's failure type on its machine's type needs the
//!   BOM's parts; for each, it reserves what the site has in stock (once per ticket and part,
//!   in the store) and orders the rest.
//! - [`Service::check_reorder_points`]: stock whose available level (on hand − reserved) fell
//!   below its reorder point is reordered (its reorder quantity, urgency `low`).
//!
//! For each order it asks the [`QuoteSource`] for every supplier's offer of the part,
//! negotiates each at the order's urgency, scores them and takes the best
//! ([`fb_core::procurement::best_deal`]), stores the order (`awaiting_approval`), and submits a
//! `purchase_order` action to the gate with the order's amount and the deal's confidence
//! ([`fb_core::procurement::confidence`]: quote coverage × the chosen supplier's reliability).
//! `Proceed` places the order at once; `Hold` leaves it awaiting approval with the approval id.
//! [`PlaceOrder`] is the gate's executor for purchase orders: an approval places the order
//! (compare-and-set, so a second call does nothing and says so); a rejection or an expiry
//! rejects or cancels it.
//!
//! Handling is idempotent: the store keeps one order per ticket and part and one open reorder
//! per site and part, so handling an event twice returns the orders of the first time.
//!
//! Every order change is recorded in the audit log (actor `agent:procurement` for the agent's,
//! the person for a receipt) and published as `order.changed` on the bus when one is set
//! ([`Service::set_bus`]).

use std::sync::{Arc, OnceLock, Weak};

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use fb_core::Clock;
use fb_core::audit::{AuditEntry, Outcome as AuditOutcome};
use fb_core::clock::truncate_to_micros;
use fb_core::error::{Code, Coded, FieldError};
use fb_core::events::{Envelope, Event, EventId, OrderEvent};
use fb_core::gates::{Action, ActionKind, ApprovalId, ApprovalItem, ApprovalStatus};
use fb_core::identity::{Permission, Principal, SiteScope};
use fb_core::maintenance::{Ticket, TicketId};
use fb_core::plant::MachineId;
use fb_core::ports::{
    EventBus, MachineStore, OrderFilter, OrderMove, ProcurementStore, QuoteSource, SiteSavings,
    StoreError,
};
use fb_core::procurement::{
    BomLine, DealError, Offer, Order, OrderId, OrderStatus, Part, StockItem, Supplier, Urgency,
    best_deal, parts_for_repair,
};

use crate::audit;
use crate::gates::{self, GatedExecutor, Submission, Submitted};

/// The `source` of the agent's events and audit records.
pub const SOURCE: &str = "agent:procurement";
/// The agent's name in the decision log and on its gate actions.
pub const AGENT: &str = "procurement";
/// Most orders one list returns.
pub const LIST_MAX: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("this role lacks the permission {0}")]
    PermissionDenied(Permission),
    #[error("invalid {}", FieldError::names(.0))]
    Validation(Vec<FieldError>),
    #[error("no purchase order has this id")]
    NotFound,
    #[error("no part has sku '{0}'")]
    PartNotFound(String),
    #[error("no supplier has id '{0}'")]
    SupplierNotFound(String),
    #[error("the supplier quotes in {supplier}, the part is priced in {part}")]
    CurrencyMismatch { supplier: String, part: String },
    #[error("the order is {}; it cannot become {}", .from.as_str(), .to.as_str())]
    Transition { from: OrderStatus, to: OrderStatus },
    #[error(transparent)]
    OutOfScope(#[from] crate::scope::OutOfScope),
    #[error(transparent)]
    Gate(#[from] gates::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for Error {
    fn code(&self) -> Code {
        match self {
            Error::PermissionDenied(_) => Code::permission_denied,
            Error::Validation(_) => Code::invalid_field,
            Error::NotFound => Code::order_not_found,
            Error::PartNotFound(_) => Code::part_not_found,
            Error::SupplierNotFound(_) => Code::supplier_not_found,
            Error::CurrencyMismatch { .. } => Code::currency_mismatch,
            Error::Transition { .. } => Code::order_transition_invalid,
            Error::OutOfScope(e) => e.code(),
            Error::Gate(e) => e.code(),
            Error::Store(StoreError::Unavailable(_)) => Code::storage_unavailable,
            Error::Store(_) => Code::internal,
        }
    }

    fn field_errors(&self) -> &[FieldError] {
        match self {
            Error::Validation(fields) => fields,
            Error::OutOfScope(e) => e.field_errors(),
            Error::Gate(e) => e.field_errors(),
            _ => &[],
        }
    }
}

fn invalid(errors: Vec<FieldError>) -> Result<(), Error> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Error::Validation(errors))
    }
}

/// Quotes from the stored offers: every offer of the part with its supplier (an offer whose
/// supplier is gone is left out).
pub struct StoredQuotes {
    store: Arc<dyn ProcurementStore>,
}

impl StoredQuotes {
    pub fn new(store: Arc<dyn ProcurementStore>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl QuoteSource for StoredQuotes {
    async fn offers(&self, part: &str) -> Result<Vec<(Offer, Supplier)>, StoreError> {
        let mut out = Vec::new();
        for offer in self.store.list_offers(Some(part)).await? {
            if let Some(supplier) = self.store.supplier(&offer.supplier).await? {
                out.push((offer, supplier));
            }
        }
        Ok(out)
    }
}

/// Which orders to list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderQuery {
    pub site: Option<String>,
    pub status: Option<OrderStatus>,
    pub ticket: Option<TicketId>,
    pub before: Option<OrderId>,
    pub limit: usize,
}

/// What one order is for.
struct Need {
    site: String,
    machine: Option<MachineId>,
    ticket: Option<TicketId>,
    alert: Option<Uuid>,
    part: Part,
    quantity: u32,
    urgency: Urgency,
    reason: String,
    trigger: Option<EventId>,
}

pub struct Service {
    store: Arc<dyn ProcurementStore>,
    machines: Arc<dyn MachineStore>,
    quotes: Arc<dyn QuoteSource>,
    gates: Arc<gates::Service>,
    audit: Arc<audit::Service>,
    clock: Arc<dyn Clock>,
    bus: OnceLock<Arc<dyn EventBus>>,
}

impl Service {
    pub fn new(
        store: Arc<dyn ProcurementStore>,
        machines: Arc<dyn MachineStore>,
        quotes: Arc<dyn QuoteSource>,
        gates: Arc<gates::Service>,
        audit: Arc<audit::Service>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            machines,
            quotes,
            gates,
            audit,
            clock,
            bus: OnceLock::new(),
        }
    }

    /// Publishes `order.changed` for every order change from now on (wired once); `false` if
    /// one was set already.
    pub fn set_bus(&self, bus: Arc<dyn EventBus>) -> bool {
        self.bus.set(bus).is_ok()
    }

    fn now(&self) -> OffsetDateTime {
        truncate_to_micros(self.clock.now())
    }

    // ---- Catalogue, offers, BOMs, stock -------------------------------------------------

    pub async fn parts(&self, caller: &Principal) -> Result<Vec<Part>, Error> {
        require(caller, Permission::PlantRead)?;
        Ok(self.store.list_parts().await?)
    }

    /// Adds a part or replaces the one with its sku.
    pub async fn put_part(&self, caller: &Principal, part: Part) -> Result<Part, Error> {
        require(caller, Permission::ProcurementManage)?;
        invalid(part.validate())?;
        let part = Part {
            name: part.name.trim().to_owned(),
            unit: part.unit.trim().to_owned(),
            ..part
        };
        self.store.put_part(&part).await?;
        Ok(part)
    }

    pub async fn suppliers(&self, caller: &Principal) -> Result<Vec<Supplier>, Error> {
        require(caller, Permission::PlantRead)?;
        Ok(self.store.list_suppliers().await?)
    }

    pub async fn put_supplier(
        &self,
        caller: &Principal,
        supplier: Supplier,
    ) -> Result<Supplier, Error> {
        require(caller, Permission::ProcurementManage)?;
        invalid(supplier.validate())?;
        let supplier = Supplier {
            name: supplier.name.trim().to_owned(),
            ..supplier
        };
        self.store.put_supplier(&supplier).await?;
        Ok(supplier)
    }

    pub async fn offers(
        &self,
        caller: &Principal,
        part: Option<&str>,
    ) -> Result<Vec<Offer>, Error> {
        require(caller, Permission::PlantRead)?;
        Ok(self.store.list_offers(part).await?)
    }

    /// Adds or replaces a supplier's offer for a part; both must exist and agree on the
    /// currency.
    pub async fn put_offer(&self, caller: &Principal, offer: Offer) -> Result<Offer, Error> {
        require(caller, Permission::ProcurementManage)?;
        invalid(offer.validate())?;
        let part = self.part(&offer.part).await?;
        let supplier = self
            .store
            .supplier(&offer.supplier)
            .await?
            .ok_or_else(|| Error::SupplierNotFound(offer.supplier.clone()))?;
        if supplier.currency != part.currency {
            return Err(Error::CurrencyMismatch {
                supplier: supplier.currency,
                part: part.currency,
            });
        }
        self.store.put_offer(&offer).await?;
        Ok(offer)
    }

    /// `false` when there was no such offer.
    pub async fn delete_offer(
        &self,
        caller: &Principal,
        supplier: &str,
        part: &str,
    ) -> Result<bool, Error> {
        require(caller, Permission::ProcurementManage)?;
        Ok(self.store.delete_offer(supplier, part).await?)
    }

    pub async fn bom_lines(
        &self,
        caller: &Principal,
        machine_type: Option<&str>,
    ) -> Result<Vec<BomLine>, Error> {
        require(caller, Permission::PlantRead)?;
        Ok(self.store.list_bom_lines(machine_type).await?)
    }

    /// Adds a BOM line or replaces the quantity of (machine type, failure type, part).
    pub async fn put_bom_line(&self, caller: &Principal, line: BomLine) -> Result<BomLine, Error> {
        require(caller, Permission::ProcurementManage)?;
        invalid(line.validate())?;
        self.part(&line.part).await?;
        self.store.put_bom_line(&line).await?;
        Ok(line)
    }

    /// The stock of the caller's sites, or of the one site asked for.
    pub async fn stock(
        &self,
        caller: &Principal,
        site: Option<String>,
    ) -> Result<Vec<StockItem>, Error> {
        require(caller, Permission::PlantRead)?;
        let sites = self.sites(caller, site)?;
        Ok(self.store.list_stock(&sites).await?)
    }

    /// Sets a part's stock at a site (a count, reorder point and quantity).
    pub async fn put_stock(&self, caller: &Principal, item: StockItem) -> Result<StockItem, Error> {
        require(caller, Permission::ProcurementManage)?;
        invalid(item.validate())?;
        crate::scope::require_site(caller, "site", &item.site)?;
        self.part(&item.part).await?;
        self.store.put_stock(&item).await?;
        Ok(item)
    }

    async fn part(&self, sku: &str) -> Result<Part, Error> {
        self.store
            .part(sku)
            .await?
            .ok_or_else(|| Error::PartNotFound(sku.to_owned()))
    }

    fn sites(&self, caller: &Principal, site: Option<String>) -> Result<SiteScope, Error> {
        Ok(match site {
            Some(site) => {
                crate::scope::require_site(caller, "site", &site)?;
                SiteScope::Sites([site].into())
            }
            None => caller.sites.clone(),
        })
    }

    // ---- Orders ---------------------------------------------------------------------------

    pub async fn orders(&self, caller: &Principal, q: OrderQuery) -> Result<Vec<Order>, Error> {
        require(caller, Permission::PlantRead)?;
        let filter = OrderFilter {
            status: q.status,
            ticket: q.ticket,
            before: q.before,
            ..OrderFilter::new(self.sites(caller, q.site)?, q.limit.clamp(1, LIST_MAX))
        };
        Ok(self.store.list_orders(&filter).await?)
    }

    pub async fn order(&self, caller: &Principal, id: OrderId) -> Result<Order, Error> {
        require(caller, Permission::PlantRead)?;
        match self.store.order(id).await? {
            Some(o) if caller.can_access_site(&o.site) => Ok(o),
            _ => Err(Error::NotFound),
        }
    }

    /// Marks a placed order received and adds its quantity to the site's stock.
    pub async fn receive(&self, caller: &Principal, id: OrderId) -> Result<Order, Error> {
        require(caller, Permission::ProcurementManage)?;
        // Visible to the caller first: another site's order is not found.
        self.order(caller, id).await?;
        let Some(order) = self.store.receive_order(id, self.now()).await? else {
            let now = self.store.order(id).await?.ok_or(Error::NotFound)?;
            return Err(Error::Transition {
                from: now.status,
                to: OrderStatus::Received,
            });
        };
        self.changed(&caller.describe(), "order.receive", &order, None)
            .await;
        Ok(order)
    }

    /// Totals of placed and received orders per site and currency, within the caller's sites
    /// (or the one site asked for).
    pub async fn savings(
        &self,
        caller: &Principal,
        site: Option<String>,
    ) -> Result<Vec<SiteSavings>, Error> {
        require(caller, Permission::PlantRead)?;
        let sites = self.sites(caller, site)?;
        Ok(self.store.savings(&sites, None).await?)
    }

    // ---- The agent ------------------------------------------------------------------------

    /// Reserves and orders the parts a ticket's repair needs (see the module docs); returns the
    /// ticket's orders, those of an earlier handling included. A ticket that is no longer
    /// active, or whose machine is gone, needs nothing.
    pub async fn on_ticket(
        &self,
        ticket: &Ticket,
        trigger: Option<EventId>,
    ) -> Result<Vec<Order>, Error> {
        if !ticket.status.is_active() {
            return Ok(Vec::new());
        }
        let Some(machine) = self.machines.machine(&ticket.machine).await? else {
            return Ok(Vec::new());
        };
        let lines = self
            .store
            .list_bom_lines(Some(&machine.machine_type))
            .await?;
        let mut orders = Vec::new();
        for (sku, quantity) in parts_for_repair(&lines, &machine.machine_type, ticket.failure_type)
        {
            if let Some(existing) = self.store.order_for_ticket(ticket.id, &sku).await? {
                orders.push(self.resume(existing).await?);
                continue;
            }
            let reserved = self
                .store
                .reserve_stock(ticket.id, &ticket.site, &sku, quantity)
                .await?;
            let missing = quantity - reserved.min(quantity);
            if missing == 0 {
                continue;
            }
            let Some(part) = self.store.part(&sku).await? else {
                continue;
            };
            let need = Need {
                site: ticket.site.clone(),
                machine: Some(ticket.machine.clone()),
                ticket: Some(ticket.id),
                alert: ticket.alerts.first().map(|a| a.0),
                reason: format!(
                    "{} repair of {} ({}, ticket {}, {} priority) needs {quantity} {} of {sku}; \
                     {reserved} reserved from stock at {}",
                    ticket.failure_type.as_str(),
                    ticket.machine.0,
                    machine.machine_type,
                    ticket.id,
                    ticket.priority.as_str(),
                    part.unit,
                    ticket.site,
                ),
                part,
                quantity: missing,
                urgency: Urgency::of_priority(ticket.priority),
                trigger,
            };
            if let Some((order, _)) = self.order_for(need).await? {
                orders.push(order);
            }
        }
        Ok(orders)
    }

    /// Reorders every stock item whose available level fell below its reorder point and that
    /// has no open reorder; returns the new orders.
    pub async fn check_reorder_points(&self) -> Result<Vec<Order>, Error> {
        let mut orders = Vec::new();
        for item in self.store.list_stock(&SiteScope::All).await? {
            if !item.needs_reorder()
                || self
                    .store
                    .open_reorder(&item.site, &item.part)
                    .await?
                    .is_some()
            {
                continue;
            }
            let Some(part) = self.store.part(&item.part).await? else {
                continue;
            };
            let need = Need {
                site: item.site.clone(),
                machine: None,
                ticket: None,
                alert: None,
                reason: format!(
                    "stock of {} at {}: {} available ({} on hand, {} reserved), below its reorder \
                     point {}; reorder {}",
                    item.part,
                    item.site,
                    item.available(),
                    item.on_hand,
                    item.reserved,
                    item.reorder_point,
                    item.reorder_quantity
                ),
                part,
                quantity: item.reorder_quantity,
                urgency: Urgency::Low,
                trigger: None,
            };
            if let Some((order, true)) = self.order_for(need).await? {
                orders.push(order);
            }
        }
        Ok(orders)
    }

    /// Quotes, negotiates and scores the offers for a need, stores the order and takes it to
    /// its gate; with `true` when it is new. `None` when no supplier offers the part (logged).
    /// An order the store already has (the same ticket and part, or an open reorder) is
    /// returned with `false`.
    async fn order_for(&self, need: Need) -> Result<Option<(Order, bool)>, Error> {
        let offers: Vec<(Offer, Supplier)> = self
            .quotes
            .offers(&need.part.sku)
            .await?
            .into_iter()
            .filter(|(_, s)| s.currency == need.part.currency)
            .collect();
        let deal = match best_deal(&need.part.sku, &offers, need.urgency, need.quantity) {
            Ok(deal) => deal,
            Err(DealError::NoOffers(part)) => {
                tracing::warn!(part = %part, site = %need.site, "No supplier offers a part that is needed; nothing ordered.");
                return Ok(None);
            }
            Err(DealError::Invalid(fields)) => return Err(Error::Validation(fields)),
        };
        let best = deal.best().clone();
        let now = self.now();
        let order = Order {
            id: OrderId::new(),
            site: need.site.clone(),
            machine: need.machine.clone(),
            ticket: need.ticket,
            part: need.part.sku.clone(),
            quantity: need.quantity,
            supplier: best.supplier.clone(),
            quoted_unit_minor: best.quoted_unit_minor,
            negotiated_unit_minor: best.negotiated_unit_minor,
            amount_minor: deal.amount_minor,
            savings_minor: deal.savings_minor,
            currency: need.part.currency.clone(),
            urgency: need.urgency,
            status: OrderStatus::AwaitingApproval,
            approval: None,
            decision: None,
            quotes: deal.quotes.clone(),
            reason: need.reason.clone(),
            created_at: now,
            updated_at: now,
            placed_at: None,
            received_at: None,
        };
        match self.store.insert_order(&order).await {
            Ok(()) => {}
            // Handled before (or by another node just now): the first order stands.
            Err(StoreError::Conflict {
                constraint: "order_ticket_part" | "order_open_reorder",
            }) => {
                let existing = match need.ticket {
                    Some(ticket) => self.store.order_for_ticket(ticket, &order.part).await?,
                    None => self.store.open_reorder(&order.site, &order.part).await?,
                };
                return match existing {
                    Some(existing) => Ok(Some((self.resume(existing).await?, false))),
                    None => Ok(None),
                };
            }
            Err(e) => return Err(e.into()),
        }
        self.changed(SOURCE, "order.create", &order, need.trigger)
            .await;
        let gated = self
            .gate(order, &need.part, need.alert, need.trigger)
            .await?;
        Ok(Some((gated, true)))
    }

    /// An order found again: one without a gate decision (a run stopped between storing it
    /// and moving it past its gate, or another run is on its way) is taken to the gate now —
    /// the submission is keyed by the order, so the gate answers as it did the first time and
    /// the order moves once; any other is returned as it is.
    async fn resume(&self, order: Order) -> Result<Order, Error> {
        let stranded = order.status == OrderStatus::AwaitingApproval
            && order.approval.is_none()
            && order.decision.is_none();
        if !stranded {
            return Ok(order);
        }
        let part = self.part(&order.part).await?;
        self.gate(order, &part, None, None).await
    }

    /// Submits the order to the purchase-order gate: placed at once on `Proceed`, awaiting
    /// approval with the item's id on `Hold`.
    async fn gate(
        &self,
        order: Order,
        part: &Part,
        alert: Option<Uuid>,
        trigger: Option<EventId>,
    ) -> Result<Order, Error> {
        let best = order.quotes.first().cloned();
        let confidence = fb_core::procurement::confidence(&order.quotes);
        let inputs = serde_json::json!({
            "order": order.id.0,
            "part": order.part,
            "quantity": order.quantity,
            "urgency": order.urgency.as_str(),
            "quotes": order.quotes.len(),
            "deal_score": best.as_ref().map(|q| q.deal_score),
            "ticket": order.ticket.map(|t| t.0),
        });
        let submission = Submission {
            action: Action {
                kind: ActionKind::PurchaseOrder,
                site: order.site.clone(),
                machine: order.machine.clone(),
                summary: format!(
                    "Order {} {} {} ({}) from {} for {} {} (saves {})",
                    order.quantity,
                    part.unit,
                    order.part,
                    part.name,
                    order.supplier,
                    major(order.amount_minor),
                    order.currency,
                    major(order.savings_minor),
                )
                .chars()
                .take(fb_core::gates::TEXT_MAX_CHARS)
                .collect(),
                payload: serde_json::json!({ "order": order.id.0 }).to_string(),
                confidence,
                amount_minor: Some(order.amount_minor),
                command: None,
                requested_by: AGENT.to_owned(),
            },
            inputs: inputs.to_string(),
            reason: order
                .reason
                .chars()
                .take(fb_core::gates::TEXT_MAX_CHARS)
                .collect(),
            ticket: order.ticket.map(|t| t.0),
            alert,
        };
        let key = format!("order:{}", order.id.0);
        let (to, change, action) = match self.gates.submit_once(&key, submission).await? {
            Submitted::Proceed { decision } => (
                OrderStatus::Placed,
                OrderMove {
                    decision: Some(decision.id),
                    ..OrderMove::at(self.now())
                },
                "order.place",
            ),
            Submitted::Held { item, decision } => (
                OrderStatus::AwaitingApproval,
                OrderMove {
                    approval: Some(item.id),
                    decision: Some(decision.id),
                    ..OrderMove::at(self.now())
                },
                "order.hold",
            ),
        };
        let moved = self
            .store
            .move_order(order.id, OrderStatus::AwaitingApproval, to, &change)
            .await?;
        match moved {
            Some(moved) => {
                self.changed(SOURCE, action, &moved, trigger).await;
                Ok(moved)
            }
            // Someone moved it in between (another run's gate): theirs stands.
            None => self.store.order(order.id).await?.ok_or(Error::NotFound),
        }
    }

    /// The executor's half of an approval: awaiting approval → approved → placed.
    async fn approved(&self, item: ApprovalId, action: &Action) -> Result<String, String> {
        let id = order_of(&action.payload)?;
        let at = self.now();
        let approve = OrderMove {
            approval: Some(item),
            reason: None,
            ..OrderMove::at(at)
        };
        let step = self
            .store
            .move_order(
                id,
                OrderStatus::AwaitingApproval,
                OrderStatus::Approved,
                &approve,
            )
            .await
            .map_err(|e| e.to_string())?;
        let from = match step {
            Some(approved) => {
                self.changed(SOURCE, "order.approve", &approved, None).await;
                OrderStatus::Approved
            }
            None => match self.store.order(id).await.map_err(|e| e.to_string())? {
                // Approved before and not placed yet (a run stopped in between): place it.
                Some(o) if o.status == OrderStatus::Approved => OrderStatus::Approved,
                Some(o) => {
                    return Ok(format!(
                        "order {id} is {} already; nothing done",
                        o.status.as_str()
                    ));
                }
                None => return Err(format!("order {id} does not exist")),
            },
        };
        let placed = self
            .store
            .move_order(id, from, OrderStatus::Placed, &OrderMove::at(self.now()))
            .await
            .map_err(|e| e.to_string())?;
        match placed {
            Some(o) => {
                self.changed(SOURCE, "order.place", &o, None).await;
                Ok(format!(
                    "order {id} placed with {}: {} × {} for {} {}, saving {} {}",
                    o.supplier,
                    o.quantity,
                    o.part,
                    major(o.amount_minor),
                    o.currency,
                    major(o.savings_minor),
                    o.currency
                ))
            }
            None => Ok(format!("order {id} was placed already; nothing done")),
        }
    }

    /// The executor's half of a rejection or expiry: the order is rejected or cancelled.
    async fn declined(&self, item: &ApprovalItem) -> Result<String, String> {
        let id = order_of(&item.payload)?;
        let (to, what) = match item.status {
            ApprovalStatus::Rejected => (OrderStatus::Rejected, "order.reject"),
            _ => (OrderStatus::Cancelled, "order.cancel"),
        };
        let why = item
            .answer
            .as_ref()
            .and_then(|a| a.reason.clone())
            .unwrap_or_default();
        let change = OrderMove {
            reason: Some(
                format!(
                    "{} at its gate by {}: {why}",
                    item.status.as_str(),
                    by(item)
                )
                .chars()
                .take(fb_core::gates::TEXT_MAX_CHARS)
                .collect(),
            ),
            ..OrderMove::at(self.now())
        };
        let moved = self
            .store
            .move_order(id, OrderStatus::AwaitingApproval, to, &change)
            .await
            .map_err(|e| e.to_string())?;
        match moved {
            Some(o) => {
                self.changed(SOURCE, what, &o, None).await;
                Ok(format!("order {id} {}", to.as_str()))
            }
            None => Ok(format!(
                "order {id} was not awaiting approval; nothing done"
            )),
        }
    }

    /// Audits an order change and publishes it on the bus.
    async fn changed(&self, actor: &str, action: &str, o: &Order, trigger: Option<EventId>) {
        self.audit
            .record(AuditEntry {
                at: o.updated_at,
                actor: actor.to_owned(),
                action: action.to_owned(),
                target: Some(format!("order:{}", o.id)),
                outcome: AuditOutcome::Success,
                op_id: Uuid::now_v7().to_string(),
                source: SOURCE.to_owned(),
                details: [
                    ("site".to_owned(), o.site.clone()),
                    ("part".to_owned(), o.part.clone()),
                    ("quantity".to_owned(), o.quantity.to_string()),
                    ("supplier".to_owned(), o.supplier.clone()),
                    ("status".to_owned(), o.status.as_str().to_owned()),
                    ("amount_minor".to_owned(), o.amount_minor.to_string()),
                    ("savings_minor".to_owned(), o.savings_minor.to_string()),
                    ("currency".to_owned(), o.currency.clone()),
                ]
                .into(),
            })
            .await;
        let Some(bus) = self.bus.get() else { return };
        let event = Event::Order(OrderEvent {
            order: o.id.0,
            machine: o.machine.clone(),
            ticket: o.ticket.map(|t| t.0),
            part: o.part.clone(),
            quantity: o.quantity,
            supplier: Some(o.supplier.clone()),
            status: o.status,
            currency: o.currency.clone(),
            amount_minor: o.amount_minor,
            savings_minor: o.savings_minor,
        });
        let mut envelope = Envelope::new(SOURCE, Some(&o.site), o.updated_at, event);
        if let Some(cause) = trigger {
            envelope = envelope.caused_by(cause);
        }
        let outcome = match bus.publish(&envelope).await {
            Ok(_) => "published",
            Err(e) => {
                tracing::warn!(order = %o.id, error = %e, "Could not publish an order change on the bus; the store keeps it.");
                "failed"
            }
        };
        metrics::counter!(
            "fb_bus_published_total",
            "event" => "order.changed",
            "outcome" => outcome,
            "backend" => bus.backend()
        )
        .increment(1);
    }
}

/// Procurement's savings as the plant optimizer reads them (C4's KPIs): the orders placed in a
/// window, per site and currency.
pub struct Ledger {
    store: Arc<dyn ProcurementStore>,
}

impl Ledger {
    pub fn new(store: Arc<dyn ProcurementStore>) -> Self {
        Self { store }
    }
}

#[async_trait]
impl fb_core::ports::SavingsLedger for Ledger {
    async fn savings_minor(
        &self,
        sites: &SiteScope,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<(String, String, i64)>, StoreError> {
        Ok(self
            .store
            .savings(sites, Some((from, to)))
            .await?
            .into_iter()
            .map(|s| (s.site, s.currency, s.savings_minor))
            .collect())
    }
}

/// The gate's executor for purchase orders (register it for `ActionKind::PurchaseOrder`): an
/// approval places the order, a rejection or expiry rejects or cancels it. Holds the service
/// weakly, since the service holds the gates that hold this.
pub struct PlaceOrder {
    service: Weak<Service>,
}

impl PlaceOrder {
    pub fn new(service: &Arc<Service>) -> Self {
        Self {
            service: Arc::downgrade(service),
        }
    }

    fn service(&self) -> Result<Arc<Service>, String> {
        self.service
            .upgrade()
            .ok_or_else(|| "the procurement service has stopped".to_owned())
    }
}

#[async_trait]
impl GatedExecutor for PlaceOrder {
    async fn execute(&self, item: ApprovalId, action: &Action) -> Result<String, String> {
        self.service()?.approved(item, action).await
    }

    async fn declined(&self, item: &ApprovalItem) -> Result<String, String> {
        self.service()?.declined(item).await
    }
}

/// The order id of a purchase-order action's payload, `{"order": "<uuid>"}`.
fn order_of(payload: &str) -> Result<OrderId, String> {
    #[derive(serde::Deserialize)]
    struct Payload {
        order: Uuid,
    }
    serde_json::from_str::<Payload>(payload)
        .map(|p| OrderId(p.order))
        .map_err(|e| format!("the action's payload names no order: {e}"))
}

fn by(item: &ApprovalItem) -> String {
    item.answer
        .as_ref()
        .map_or_else(|| "nobody".to_owned(), |a| a.by.clone())
}

/// Minor units as major ones with two decimals, for people (amounts themselves stay integers).
fn major(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let m = minor.unsigned_abs();
    format!("{sign}{}.{:02}", m / 100, m % 100)
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
