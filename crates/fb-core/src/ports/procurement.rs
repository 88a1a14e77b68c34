//! Storage port of procurement (C2), and the seam where quotes come from.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::gates::{ApprovalId, DecisionId};
use crate::identity::SiteScope;
use crate::maintenance::{FailureType, TicketId};
use crate::procurement::{BomLine, Offer, Order, OrderId, OrderStatus, Part, StockItem, Supplier};

use super::StoreError;

/// Which orders to list, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderFilter {
    /// Only orders of these sites. No `Default`: every filter says its sites.
    pub sites: SiteScope,
    pub status: Option<OrderStatus>,
    pub ticket: Option<TicketId>,
    /// Page: orders created before this one (ids are time-ordered UUIDv7).
    pub before: Option<OrderId>,
    pub limit: usize,
}

impl OrderFilter {
    pub fn new(sites: SiteScope, limit: usize) -> Self {
        Self {
            sites,
            status: None,
            ticket: None,
            before: None,
            limit,
        }
    }
}

/// What a status change also records; `None` keeps the stored value.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderMove {
    pub at: OffsetDateTime,
    pub approval: Option<ApprovalId>,
    pub decision: Option<DecisionId>,
    /// Replaces the order's reason (what happened to it).
    pub reason: Option<String>,
}

impl OrderMove {
    pub fn at(at: OffsetDateTime) -> Self {
        Self {
            at,
            approval: None,
            decision: None,
            reason: None,
        }
    }
}

/// Savings of one site in one currency: the placed and received orders.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteSavings {
    pub site: String,
    pub currency: String,
    pub orders: u64,
    pub amount_minor: i64,
    pub savings_minor: i64,
}

/// Stores the parts catalogue, BOMs, suppliers, offers, stock and orders. Rules every store
/// enforces, whatever writes:
/// - at most one order per ticket and part (`Conflict { constraint: "order_ticket_part" }`),
/// - at most one open (awaiting approval, approved or placed) stock reorder — an order without
///   a ticket — per site and part (`Conflict { constraint: "order_open_reorder" }`),
/// - an order's status moves by compare-and-set, so each move happens once,
/// - reserving and receiving stock are atomic (no lost update between two callers), and a
///   ticket reserves a part once.
///
/// Parts and suppliers are never deleted: orders name them.
#[async_trait]
pub trait ProcurementStore: Send + Sync {
    /// Inserts or replaces the part with this sku.
    async fn put_part(&self, part: &Part) -> Result<(), StoreError>;
    async fn part(&self, sku: &str) -> Result<Option<Part>, StoreError>;
    /// By sku.
    async fn list_parts(&self) -> Result<Vec<Part>, StoreError>;

    /// Inserts or replaces the line of (machine type, failure type, part).
    async fn put_bom_line(&self, line: &BomLine) -> Result<(), StoreError>;
    /// `false` when there was no such line.
    async fn delete_bom_line(
        &self,
        machine_type: &str,
        failure_type: Option<FailureType>,
        part: &str,
    ) -> Result<bool, StoreError>;
    /// The lines of one machine type, or all; by machine type, failure type, part.
    async fn list_bom_lines(&self, machine_type: Option<&str>) -> Result<Vec<BomLine>, StoreError>;

    async fn put_supplier(&self, supplier: &Supplier) -> Result<(), StoreError>;
    async fn supplier(&self, id: &str) -> Result<Option<Supplier>, StoreError>;
    /// By id.
    async fn list_suppliers(&self) -> Result<Vec<Supplier>, StoreError>;

    /// Inserts or replaces the supplier's offer for the part.
    async fn put_offer(&self, offer: &Offer) -> Result<(), StoreError>;
    async fn delete_offer(&self, supplier: &str, part: &str) -> Result<bool, StoreError>;
    /// The offers for one part, or all; by part, then supplier.
    async fn list_offers(&self, part: Option<&str>) -> Result<Vec<Offer>, StoreError>;

    /// Inserts or replaces the stock of (site, part).
    async fn put_stock(&self, item: &StockItem) -> Result<(), StoreError>;
    async fn stock(&self, site: &str, part: &str) -> Result<Option<StockItem>, StoreError>;
    /// The stock of the sites, by site and part.
    async fn list_stock(&self, sites: &SiteScope) -> Result<Vec<StockItem>, StoreError>;
    /// Reserves up to `wanted` of the available stock (on hand − reserved) of (site, part) for
    /// a ticket's repair, atomically and once per ticket and part: the first call records what
    /// it reserved (0 when the site has none), and every later call for the same ticket and
    /// part reserves nothing more and returns that first figure.
    async fn reserve_stock(
        &self,
        ticket: TicketId,
        site: &str,
        part: &str,
        wanted: u32,
    ) -> Result<u32, StoreError>;

    /// Inserts a new order (see the trait's rules for conflicts).
    async fn insert_order(&self, order: &Order) -> Result<(), StoreError>;
    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError>;
    async fn list_orders(&self, filter: &OrderFilter) -> Result<Vec<Order>, StoreError>;
    /// The order of a ticket for a part, if any.
    async fn order_for_ticket(
        &self,
        ticket: TicketId,
        part: &str,
    ) -> Result<Option<Order>, StoreError>;
    /// The open stock reorder of (site, part), if any.
    async fn open_reorder(&self, site: &str, part: &str) -> Result<Option<Order>, StoreError>;
    /// Moves the order from `from` to `to` if it still is `from` (compare-and-set), recording
    /// `change`, and `placed_at` / `received_at` when it becomes placed / received; the order as
    /// stored after, or `None`, changing nothing, when it is not `from` (or does not exist).
    async fn move_order(
        &self,
        id: OrderId,
        from: OrderStatus,
        to: OrderStatus,
        change: &OrderMove,
    ) -> Result<Option<Order>, StoreError>;
    /// Marks a placed order received and adds its quantity to its site's stock of the part (a
    /// row is made if there is none), in one transaction; `None`, changing nothing, when it is
    /// not placed.
    async fn receive_order(
        &self,
        id: OrderId,
        at: OffsetDateTime,
    ) -> Result<Option<Order>, StoreError>;
    /// Totals of the placed and received orders per site and currency, by site and currency;
    /// with `placed`, only the orders placed in `[from, to)`.
    async fn savings(
        &self,
        sites: &SiteScope,
        placed: Option<(OffsetDateTime, OffsetDateTime)>,
    ) -> Result<Vec<SiteSavings>, StoreError>;
}

/// Where the agent gets its quotes: the suppliers that sell a part and their offers. Today
/// the stored offers ([`ProcurementStore`]); a supplier's API can come in behind this seam.
#[async_trait]
pub trait QuoteSource: Send + Sync {
    /// Every offer for the part with its supplier.
    async fn offers(&self, part: &str) -> Result<Vec<(Offer, Supplier)>, StoreError>;
}
