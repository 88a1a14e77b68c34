//! `/api/v1/procurement` bodies: parts, suppliers, offers, BOM lines, stock, purchase orders
//! with their quotes, and savings. Money is integer minor units (e.g. cents) of the currency
//! named beside it.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use fb_core::ports::SiteSavings;
use fb_core::procurement as core;

use super::tickets::FailureType;

wire_enum!(
    /// `awaiting_approval` → `approved` → `placed` → `received`; `awaiting_approval` →
    /// `placed` when the gate let it through; `rejected` at the gate, `cancelled` when its
    /// approval expired.
    OrderStatus <=> core::OrderStatus { AwaitingApproval, Approved, Rejected, Placed, Received, Cancelled }
);
wire_enum!(
    /// `low`, `medium`, `high` or `critical`: a repair's is its ticket's priority; stock
    /// reorders are `low`. Sets the negotiation target (README, Procurement).
    Urgency <=> core::Urgency { Low, Medium, High, Critical }
);

/// A spare part.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Part {
    /// 1 to 64 letters, digits, `.`, `_` or `-`.
    #[schema(example = "SKF-6205")]
    pub sku: String,
    #[schema(example = "Deep groove ball bearing 6205")]
    pub name: String,
    /// What one unit is, e.g. `pcs`.
    #[schema(example = "pcs")]
    pub unit: String,
    /// ISO 4217, e.g. `EUR`: offers for the part must be in it.
    #[schema(example = "EUR")]
    pub currency: String,
}

impl From<core::Part> for Part {
    fn from(p: core::Part) -> Self {
        Self {
            sku: p.sku,
            name: p.name,
            unit: p.unit,
            currency: p.currency,
        }
    }
}

impl From<Part> for core::Part {
    fn from(p: Part) -> Self {
        Self {
            sku: p.sku,
            name: p.name,
            unit: p.unit,
            currency: p.currency,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PartList {
    /// By sku.
    pub parts: Vec<Part>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Supplier {
    #[schema(example = "acme")]
    pub id: String,
    pub name: String,
    /// Share of orders delivered complete and on time, 0 to 1.
    pub reliability: f64,
    /// ISO 4217: the currency it quotes in.
    pub currency: String,
}

impl From<core::Supplier> for Supplier {
    fn from(s: core::Supplier) -> Self {
        Self {
            id: s.id,
            name: s.name,
            reliability: s.reliability,
            currency: s.currency,
        }
    }
}

impl From<Supplier> for core::Supplier {
    fn from(s: Supplier) -> Self {
        Self {
            id: s.id,
            name: s.name,
            reliability: s.reliability,
            currency: s.currency,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SupplierList {
    /// By id.
    pub suppliers: Vec<Supplier>,
}

/// A supplier's standing offer for a part.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Offer {
    pub supplier: String,
    pub part: String,
    /// List price of one unit, 1 to 10^9 minor units.
    pub unit_price_minor: i64,
    /// 0 to 365.
    pub lead_time_days: u32,
    /// The largest discount the supplier accepts, 0 to 100 (%): its negotiation floor.
    pub max_discount_pct: f64,
}

impl From<core::Offer> for Offer {
    fn from(o: core::Offer) -> Self {
        Self {
            supplier: o.supplier,
            part: o.part,
            unit_price_minor: o.unit_price_minor,
            lead_time_days: o.lead_time_days,
            max_discount_pct: o.max_discount_pct,
        }
    }
}

impl From<Offer> for core::Offer {
    fn from(o: Offer) -> Self {
        Self {
            supplier: o.supplier,
            part: o.part,
            unit_price_minor: o.unit_price_minor,
            lead_time_days: o.lead_time_days,
            max_discount_pct: o.max_discount_pct,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OfferList {
    /// By part, then supplier.
    pub offers: Vec<Offer>,
}

/// A BOM line: a repair of `failure_type` (any repair when absent) on a machine of
/// `machine_type` needs `quantity` of `part`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BomLine {
    #[schema(example = "pump")]
    pub machine_type: String,
    #[serde(default)]
    pub failure_type: Option<FailureType>,
    pub part: String,
    /// 1 to 1,000,000.
    pub quantity: u32,
}

impl From<core::BomLine> for BomLine {
    fn from(l: core::BomLine) -> Self {
        Self {
            machine_type: l.machine_type,
            failure_type: l.failure_type.map(Into::into),
            part: l.part,
            quantity: l.quantity,
        }
    }
}

impl From<BomLine> for core::BomLine {
    fn from(l: BomLine) -> Self {
        Self {
            machine_type: l.machine_type,
            failure_type: l.failure_type.map(Into::into),
            part: l.part,
            quantity: l.quantity,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BomLineList {
    pub lines: Vec<BomLine>,
}

/// A part's stock at a site, as set by a person (a count and the reorder settings).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StockRequest {
    /// A site within the caller's sites.
    pub site: String,
    pub part: String,
    pub on_hand: u32,
    /// Held for repairs; at most `on_hand`. Default 0.
    #[serde(default)]
    pub reserved: u32,
    /// Reorder when `on_hand − reserved` falls below this. Default 0 (never).
    #[serde(default)]
    pub reorder_point: u32,
    /// How many a reorder buys. Default 0 (never reorder).
    #[serde(default)]
    pub reorder_quantity: u32,
}

impl From<StockRequest> for core::StockItem {
    fn from(s: StockRequest) -> Self {
        Self {
            site: s.site,
            part: s.part,
            on_hand: s.on_hand,
            reserved: s.reserved,
            reorder_point: s.reorder_point,
            reorder_quantity: s.reorder_quantity,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StockItem {
    pub site: String,
    pub part: String,
    pub on_hand: u32,
    pub reserved: u32,
    /// `on_hand − reserved`.
    pub available: u32,
    pub reorder_point: u32,
    pub reorder_quantity: u32,
}

impl From<core::StockItem> for StockItem {
    fn from(s: core::StockItem) -> Self {
        Self {
            available: s.available(),
            site: s.site,
            part: s.part,
            on_hand: s.on_hand,
            reserved: s.reserved,
            reorder_point: s.reorder_point,
            reorder_quantity: s.reorder_quantity,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct StockList {
    /// By site, then part.
    pub stock: Vec<StockItem>,
}

/// One supplier's quote for an order: negotiated and scored among the order's quotes.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Quote {
    pub supplier: String,
    pub quoted_unit_minor: i64,
    pub negotiated_unit_minor: i64,
    pub lead_time_days: u32,
    pub reliability: f64,
    /// (max negotiated − this) / (max − min) over the quotes; 1 when all are equal.
    pub price_score: f64,
    pub reliability_score: f64,
    /// (max lead time − this) / (max − min); 1 when all are equal.
    pub delivery_score: f64,
    /// 0.4 × price + 0.3 × reliability + 0.3 × delivery.
    pub deal_score: f64,
}

impl From<core::Quote> for Quote {
    fn from(q: core::Quote) -> Self {
        Self {
            supplier: q.supplier,
            quoted_unit_minor: q.quoted_unit_minor,
            negotiated_unit_minor: q.negotiated_unit_minor,
            lead_time_days: q.lead_time_days,
            reliability: q.reliability,
            price_score: q.price_score,
            reliability_score: q.reliability_score,
            delivery_score: q.delivery_score,
            deal_score: q.deal_score,
        }
    }
}

/// A purchase order with the quotes it was chosen from.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Order {
    pub id: Uuid,
    pub site: String,
    /// The machine the parts are for; absent for a stock reorder.
    pub machine: Option<String>,
    /// The ticket whose repair needs them; absent for a stock reorder.
    pub ticket: Option<Uuid>,
    pub part: String,
    pub quantity: u32,
    /// The chosen supplier (the best deal score).
    pub supplier: String,
    pub quoted_unit_minor: i64,
    pub negotiated_unit_minor: i64,
    /// negotiated × quantity.
    pub amount_minor: i64,
    /// (quoted − negotiated) × quantity.
    pub savings_minor: i64,
    pub currency: String,
    pub urgency: Urgency,
    pub status: OrderStatus,
    /// The approval item, when the gate held the order (`/api/v1/approvals/{id}`).
    pub approval: Option<Uuid>,
    /// The decision-log entry of the agent's decision.
    pub decision: Option<Uuid>,
    /// Every quote considered, best first.
    pub quotes: Vec<Quote>,
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub placed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub received_at: Option<OffsetDateTime>,
}

impl From<core::Order> for Order {
    fn from(o: core::Order) -> Self {
        Self {
            id: o.id.0,
            site: o.site,
            machine: o.machine.map(|m| m.0),
            ticket: o.ticket.map(|t| t.0),
            part: o.part,
            quantity: o.quantity,
            supplier: o.supplier,
            quoted_unit_minor: o.quoted_unit_minor,
            negotiated_unit_minor: o.negotiated_unit_minor,
            amount_minor: o.amount_minor,
            savings_minor: o.savings_minor,
            currency: o.currency,
            urgency: o.urgency.into(),
            status: o.status.into(),
            approval: o.approval.map(|a| a.0),
            decision: o.decision.map(|d| d.0),
            quotes: o.quotes.into_iter().map(Into::into).collect(),
            reason: o.reason,
            created_at: o.created_at,
            updated_at: o.updated_at,
            placed_at: o.placed_at,
            received_at: o.received_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderList {
    /// Newest first.
    pub orders: Vec<Order>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<Uuid>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OrdersParams {
    /// Only this site (within the caller's sites).
    pub site: Option<String>,
    /// `awaiting_approval`, `approved`, `rejected`, `placed`, `received` or `cancelled`.
    pub status: Option<String>,
    /// Only the orders of this ticket.
    pub ticket: Option<Uuid>,
    /// Page: orders created before this id.
    pub before: Option<Uuid>,
    /// 1 to 1000; default 100.
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProcurementSiteParams {
    /// Only this site (within the caller's sites); default: all of the caller's.
    pub site: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OffersParams {
    /// Only the offers for this part.
    pub part: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct BomParams {
    /// Only the lines of this machine type.
    pub machine_type: Option<String>,
}

/// What placed and received orders cost and saved.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SavingsFigures {
    pub currency: String,
    pub orders: u64,
    pub amount_minor: i64,
    pub savings_minor: i64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SiteSavingsFigures {
    pub site: String,
    #[serde(flatten)]
    pub figures: SavingsFigures,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Savings {
    /// Per currency over the sites below (currencies are never added together).
    pub total: Vec<SavingsFigures>,
    /// Per site and currency.
    pub sites: Vec<SiteSavingsFigures>,
}

impl From<Vec<SiteSavings>> for Savings {
    fn from(rows: Vec<SiteSavings>) -> Self {
        let mut total: Vec<SavingsFigures> = Vec::new();
        for r in &rows {
            match total.iter_mut().find(|t| t.currency == r.currency) {
                Some(t) => {
                    t.orders += r.orders;
                    t.amount_minor += r.amount_minor;
                    t.savings_minor += r.savings_minor;
                }
                None => total.push(SavingsFigures {
                    currency: r.currency.clone(),
                    orders: r.orders,
                    amount_minor: r.amount_minor,
                    savings_minor: r.savings_minor,
                }),
            }
        }
        total.sort_by(|a, b| a.currency.cmp(&b.currency));
        Self {
            total,
            sites: rows
                .into_iter()
                .map(|r| SiteSavingsFigures {
                    site: r.site,
                    figures: SavingsFigures {
                        currency: r.currency,
                        orders: r.orders,
                        amount_minor: r.amount_minor,
                        savings_minor: r.savings_minor,
                    },
                })
                .collect(),
        }
    }
}
