//! Procurement (issue #7, C2): spare parts, the bills of materials that say which parts a repair
//! needs, stock per site with reorder points, suppliers and their offers, and purchase orders
//! with the quotes they were chosen from. Pure: the stores keep, `fb_app::procurement` runs the
//! agent.
//!
//! **Negotiation.** Each order has an [`Urgency`] (a ticket's priority, or `low` for a stock
//! reorder). The agent asks every supplier for [`NEGOTIATION_TARGETS`]' discount for that
//! urgency, at most the discount the supplier accepts (its floor, [`Offer::max_discount_pct`]):
//! the more urgent, the less it haggles, because speed matters more than price.
//! negotiated unit price = quoted × (1 − min(target, supplier max) / 100), rounded to the minor
//! unit (half away from zero, in integers).
//!
//! **Deal score** of each quote among an order's quotes, each component in [0, 1]:
//! `0.4 × price + 0.3 × reliability + 0.3 × delivery`, where price = (max negotiated − this) /
//! (max − min) over the quotes and delivery = (max lead time − this) / (max − min), each 1.0
//! when all quotes are equal, and reliability is the supplier's. The best is the highest score;
//! ties go to the lower negotiated price, then the smaller supplier id, so the choice is
//! deterministic.
//!
//! **Money** is integer minor units of the part's currency everywhere; an offer is in its
//! supplier's currency, which must be the part's (no conversion here).

use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::FieldError;
use crate::gates::{ApprovalId, DecisionId};
use crate::maintenance::{FailureType, TicketId, TicketPriority};
use crate::plant::{MachineId, validate_machine_type, validate_site};

pub use crate::events::OrderStatus;

#[cfg(test)]
mod tests;

/// Longest id of a part (SKU) or supplier.
pub const ID_MAX: usize = 64;
/// Longest name or unit, in characters.
pub const NAME_MAX: usize = 200;
/// Largest quantity of one BOM line, stock level or order.
pub const QUANTITY_MAX: u32 = 1_000_000;
/// Largest unit price in minor units: ten million in the major unit.
pub const PRICE_MAX_MINOR: i64 = 1_000_000_000;
/// Longest lead time, in days.
pub const LEAD_TIME_MAX_DAYS: u32 = 365;

/// Weights of the deal score: price savings, reliability, delivery speed.
pub const WEIGHT_PRICE: f64 = 0.4;
pub const WEIGHT_RELIABILITY: f64 = 0.3;
pub const WEIGHT_DELIVERY: f64 = 0.3;

/// Quotes the three-quote rule of purchasing asks for: the agent's confidence in a choice grows
/// with the quotes it compared, up to this many ([`confidence`]).
pub const QUOTES_FOR_FULL_CONFIDENCE: usize = 3;

/// How urgently parts are needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Urgency {
    Low,
    Medium,
    High,
    Critical,
}

impl Urgency {
    pub const ALL: [Urgency; 4] = [
        Urgency::Low,
        Urgency::Medium,
        Urgency::High,
        Urgency::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Low => "low",
            Urgency::Medium => "medium",
            Urgency::High => "high",
            Urgency::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|u| u.as_str() == s)
    }

    /// A repair's parts are as urgent as its ticket.
    pub fn of_priority(p: TicketPriority) -> Self {
        match p {
            TicketPriority::Low => Urgency::Low,
            TicketPriority::Medium => Urgency::Medium,
            TicketPriority::High => Urgency::High,
            TicketPriority::Critical => Urgency::Critical,
        }
    }

    /// The discount the agent aims for at this urgency, in percent ([`NEGOTIATION_TARGETS`]).
    pub fn target_discount_pct(self) -> f64 {
        NEGOTIATION_TARGETS
            .iter()
            .find(|(u, _)| *u == self)
            .map_or(0.0, |(_, pct)| *pct)
    }
}

/// The negotiation strategy as data: the discount aimed for per urgency, in percent. Critical
/// repairs take the first acceptable price (a stopped line costs more than the part); stock
/// reorders, which can wait, push hardest.
pub const NEGOTIATION_TARGETS: [(Urgency, f64); 4] = [
    (Urgency::Critical, 3.0),
    (Urgency::High, 5.0),
    (Urgency::Medium, 8.0),
    (Urgency::Low, 12.0),
];

/// A spare part.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// Stock-keeping unit: the part's id.
    pub sku: String,
    pub name: String,
    /// What one unit is, e.g. `pcs`, `m`, `l`.
    pub unit: String,
    /// ISO 4217 code of the prices it is bought at, e.g. `EUR`.
    pub currency: String,
}

/// One line of a bill of materials: a repair of `failure_type` (any failure when `None`) on a
/// machine of `machine_type` needs `quantity` of `part`.
#[derive(Debug, Clone, PartialEq)]
pub struct BomLine {
    pub machine_type: String,
    pub failure_type: Option<FailureType>,
    pub part: String,
    pub quantity: u32,
}

/// A part's stock at a site.
#[derive(Debug, Clone, PartialEq)]
pub struct StockItem {
    pub site: String,
    pub part: String,
    pub on_hand: u32,
    /// Held for repairs that will use it; not available for others.
    pub reserved: u32,
    /// When the available stock (on hand − reserved) falls below this, reorder.
    pub reorder_point: u32,
    /// How many a reorder buys.
    pub reorder_quantity: u32,
}

impl StockItem {
    /// On hand and not reserved.
    pub fn available(&self) -> u32 {
        self.on_hand.saturating_sub(self.reserved)
    }

    /// Below its reorder point, with a quantity to reorder.
    pub fn needs_reorder(&self) -> bool {
        self.reorder_quantity > 0 && self.available() < self.reorder_point
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Supplier {
    pub id: String,
    pub name: String,
    /// Share of its orders delivered complete and on time, in [0, 1].
    pub reliability: f64,
    /// ISO 4217 code it quotes in.
    pub currency: String,
}

/// A supplier's standing offer for a part.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub supplier: String,
    pub part: String,
    /// List price of one unit, in minor units.
    pub unit_price_minor: i64,
    pub lead_time_days: u32,
    /// The largest discount the supplier accepts, in percent: its negotiation floor.
    pub max_discount_pct: f64,
}

/// One supplier's answer for one order, negotiated and scored.
#[derive(Debug, Clone, PartialEq)]
pub struct Quote {
    pub supplier: String,
    pub quoted_unit_minor: i64,
    pub negotiated_unit_minor: i64,
    pub lead_time_days: u32,
    pub reliability: f64,
    /// The normalised components, each in [0, 1], and the weighted deal score.
    pub price_score: f64,
    pub reliability_score: f64,
    pub delivery_score: f64,
    pub deal_score: f64,
}

/// An order's id (UUIDv7: time-ordered).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrderId(pub Uuid);

impl OrderId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for OrderId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for OrderId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A purchase order for one part.
#[derive(Debug, Clone, PartialEq)]
pub struct Order {
    pub id: OrderId,
    pub site: String,
    /// The machine the parts are for; `None` for a stock reorder.
    pub machine: Option<MachineId>,
    /// The ticket whose repair needs them; `None` for a stock reorder.
    pub ticket: Option<TicketId>,
    pub part: String,
    pub quantity: u32,
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
    /// The approval item, when its gate held it.
    pub approval: Option<ApprovalId>,
    /// The decision-log entry of the agent's decision.
    pub decision: Option<DecisionId>,
    /// Every quote considered, best first.
    pub quotes: Vec<Quote>,
    /// Why it was ordered, and what happened to it.
    pub reason: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub placed_at: Option<OffsetDateTime>,
    pub received_at: Option<OffsetDateTime>,
}

/// The order lifecycle as one table (from, to). An order that passes its gate without a person
/// is placed at once (awaiting_approval → placed: the gate approved it); a held one waits for a
/// person (approved, or rejected), or is cancelled when its approval expires.
pub const ORDER_TRANSITIONS: [(OrderStatus, OrderStatus); 7] = [
    (OrderStatus::AwaitingApproval, OrderStatus::Approved),
    (OrderStatus::AwaitingApproval, OrderStatus::Placed),
    (OrderStatus::AwaitingApproval, OrderStatus::Rejected),
    (OrderStatus::AwaitingApproval, OrderStatus::Cancelled),
    (OrderStatus::Approved, OrderStatus::Placed),
    (OrderStatus::Approved, OrderStatus::Cancelled),
    (OrderStatus::Placed, OrderStatus::Received),
];

/// Whether the lifecycle lets an order move from `from` to `to`.
pub fn can_move(from: OrderStatus, to: OrderStatus) -> bool {
    ORDER_TRANSITIONS.contains(&(from, to))
}

/// An order still on its way: not received, rejected or cancelled. At most one open stock
/// reorder per site and part.
pub fn is_open(status: OrderStatus) -> bool {
    matches!(
        status,
        OrderStatus::AwaitingApproval | OrderStatus::Approved | OrderStatus::Placed
    )
}

/// Savings count once an order is placed (the price is agreed with the supplier).
pub fn counts_savings(status: OrderStatus) -> bool {
    matches!(status, OrderStatus::Placed | OrderStatus::Received)
}

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= ID_MAX
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

fn check_id(field: &str, value: &str, errors: &mut Vec<FieldError>) {
    if !valid_id(value) {
        errors.push(FieldError::new(
            field,
            format!("must be 1 to {ID_MAX} letters, digits, '.', '_' or '-'"),
        ));
    }
}

fn check_text(field: &str, value: &str, errors: &mut Vec<FieldError>) {
    let len = value.trim().chars().count();
    if len == 0 || len > NAME_MAX {
        errors.push(FieldError::new(
            field,
            format!("must be 1 to {NAME_MAX} characters"),
        ));
    } else if value.chars().any(char::is_control) {
        errors.push(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
}

/// An ISO 4217 code: three upper-case letters.
pub fn validate_currency(field: &str, code: &str) -> Option<FieldError> {
    (code.len() != 3 || !code.bytes().all(|b| b.is_ascii_uppercase())).then(|| {
        FieldError::new(
            field,
            "must be an ISO 4217 code: three upper-case letters, e.g. EUR",
        )
    })
}

fn check_quantity(field: &str, q: u32, min: u32, errors: &mut Vec<FieldError>) {
    if q < min || q > QUANTITY_MAX {
        errors.push(FieldError::new(
            field,
            format!("must be {min} to {QUANTITY_MAX}"),
        ));
    }
}

fn check_share(field: &str, value: f64, max: f64, errors: &mut Vec<FieldError>) {
    if !(value.is_finite() && (0.0..=max).contains(&value)) {
        errors.push(FieldError::new(
            field,
            format!("must be a number from 0 to {max}"),
        ));
    }
}

impl Part {
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        check_id("sku", &self.sku, &mut errors);
        check_text("name", &self.name, &mut errors);
        check_text("unit", &self.unit, &mut errors);
        errors.extend(validate_currency("currency", &self.currency));
        errors
    }
}

impl BomLine {
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = validate_machine_type("machine_type", &self.machine_type);
        check_id("part", &self.part, &mut errors);
        check_quantity("quantity", self.quantity, 1, &mut errors);
        errors
    }

    /// Whether a repair of `failure` on a machine of `machine_type` needs this line.
    pub fn applies_to(&self, machine_type: &str, failure: FailureType) -> bool {
        self.machine_type == machine_type && self.failure_type.is_none_or(|f| f == failure)
    }
}

impl StockItem {
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = validate_site("site", &self.site);
        check_id("part", &self.part, &mut errors);
        check_quantity("on_hand", self.on_hand, 0, &mut errors);
        check_quantity("reserved", self.reserved, 0, &mut errors);
        if self.reserved > self.on_hand {
            errors.push(FieldError::new("reserved", "must not exceed on_hand"));
        }
        check_quantity("reorder_point", self.reorder_point, 0, &mut errors);
        check_quantity("reorder_quantity", self.reorder_quantity, 0, &mut errors);
        errors
    }
}

impl Supplier {
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        check_id("id", &self.id, &mut errors);
        check_text("name", &self.name, &mut errors);
        check_share("reliability", self.reliability, 1.0, &mut errors);
        errors.extend(validate_currency("currency", &self.currency));
        errors
    }
}

impl Offer {
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        check_id("supplier", &self.supplier, &mut errors);
        check_id("part", &self.part, &mut errors);
        if !(1..=PRICE_MAX_MINOR).contains(&self.unit_price_minor) {
            errors.push(FieldError::new(
                "unit_price_minor",
                format!("must be 1 to {PRICE_MAX_MINOR} (minor units, e.g. cents)"),
            ));
        }
        if self.lead_time_days > LEAD_TIME_MAX_DAYS {
            errors.push(FieldError::new(
                "lead_time_days",
                format!("must be 0 to {LEAD_TIME_MAX_DAYS}"),
            ));
        }
        check_share(
            "max_discount_pct",
            self.max_discount_pct,
            100.0,
            &mut errors,
        );
        errors
    }
}

/// A percentage as whole basis points (hundredths of a percent), clamped to [0, 100 %].
fn basis_points(pct: f64) -> i128 {
    if pct.is_finite() {
        (pct.clamp(0.0, 100.0) * 100.0).round() as i128
    } else {
        0
    }
}

/// The discount actually asked for: the urgency's target, at most the supplier's floor.
pub fn discount_pct(urgency: Urgency, supplier_max_pct: f64) -> f64 {
    let max = if supplier_max_pct.is_finite() {
        supplier_max_pct.max(0.0)
    } else {
        0.0
    };
    urgency.target_discount_pct().min(max)
}

/// quoted × (1 − discount), rounded to the minor unit half away from zero, in integers (the
/// discount taken to whole basis points).
pub fn negotiated_unit_minor(quoted_minor: i64, discount_pct: f64) -> i64 {
    let q = i128::from(quoted_minor);
    let off = (q * basis_points(discount_pct) + 5_000) / 10_000;
    i64::try_from(q - off).unwrap_or(quoted_minor)
}

/// An offer negotiated for an order of `urgency`, not yet scored.
pub fn negotiate(offer: &Offer, supplier: &Supplier, urgency: Urgency) -> Quote {
    let discount = discount_pct(urgency, offer.max_discount_pct);
    Quote {
        supplier: supplier.id.clone(),
        quoted_unit_minor: offer.unit_price_minor,
        negotiated_unit_minor: negotiated_unit_minor(offer.unit_price_minor, discount),
        lead_time_days: offer.lead_time_days,
        reliability: supplier.reliability,
        price_score: 0.0,
        reliability_score: 0.0,
        delivery_score: 0.0,
        deal_score: 0.0,
    }
}

/// (max − value) / (max − min), or 1.0 when all are equal: lower is better.
fn lower_is_better(value: f64, min: f64, max: f64) -> f64 {
    if max > min {
        ((max - value) / (max - min)).clamp(0.0, 1.0)
    } else {
        1.0
    }
}

/// Scores every quote against the others and sorts them best first (highest deal score; ties
/// to the lower negotiated price, then the smaller supplier id).
pub fn score(quotes: &mut [Quote]) {
    let prices = quotes.iter().map(|q| q.negotiated_unit_minor as f64);
    let (min_p, max_p) = bounds(prices);
    let leads = quotes.iter().map(|q| f64::from(q.lead_time_days));
    let (min_l, max_l) = bounds(leads);
    for q in quotes.iter_mut() {
        q.price_score = lower_is_better(q.negotiated_unit_minor as f64, min_p, max_p);
        q.reliability_score = if q.reliability.is_finite() {
            q.reliability.clamp(0.0, 1.0)
        } else {
            0.0
        };
        q.delivery_score = lower_is_better(f64::from(q.lead_time_days), min_l, max_l);
        q.deal_score = WEIGHT_PRICE * q.price_score
            + WEIGHT_RELIABILITY * q.reliability_score
            + WEIGHT_DELIVERY * q.delivery_score;
    }
    quotes.sort_by(|a, b| {
        b.deal_score
            .total_cmp(&a.deal_score)
            .then(a.negotiated_unit_minor.cmp(&b.negotiated_unit_minor))
            .then_with(|| a.supplier.cmp(&b.supplier))
    });
}

fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    })
}

/// The confidence the agent states for a chosen deal: the share of the three quotes purchasing
/// asks for that it compared (1/3, 2/3, 1), times the chosen supplier's reliability. One quote
/// from a 95 % supplier gives 0.32, three give 0.95: an order from a single source, or from a
/// supplier who often fails to deliver, waits for a person at the default gate (0.8).
pub fn confidence(quotes: &[Quote]) -> f64 {
    let Some(best) = quotes.first() else {
        return 0.0;
    };
    let coverage =
        quotes.len().min(QUOTES_FOR_FULL_CONFIDENCE) as f64 / QUOTES_FOR_FULL_CONFIDENCE as f64;
    (coverage * best.reliability_score).clamp(0.0, 1.0)
}

/// Why no deal could be made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DealError {
    #[error("invalid {}", FieldError::names(.0))]
    Invalid(Vec<FieldError>),
    #[error("no supplier offers part {0}")]
    NoOffers(String),
}

/// The quotes for an order, best first, and its money.
#[derive(Debug, Clone, PartialEq)]
pub struct Deal {
    pub quotes: Vec<Quote>,
    /// negotiated × quantity of the best quote.
    pub amount_minor: i64,
    /// (quoted − negotiated) × quantity of the best quote.
    pub savings_minor: i64,
    pub confidence: f64,
}

impl Deal {
    /// The chosen quote (the list is never empty).
    pub fn best(&self) -> &Quote {
        &self.quotes[0]
    }
}

/// Negotiates every offer for `quantity` of a part at `urgency`, scores the quotes and picks the
/// best. Offers whose supplier is missing are left out. Zero quantities are refused.
pub fn best_deal(
    part: &str,
    offers: &[(Offer, Supplier)],
    urgency: Urgency,
    quantity: u32,
) -> Result<Deal, DealError> {
    let mut errors = Vec::new();
    check_quantity("quantity", quantity, 1, &mut errors);
    if !errors.is_empty() {
        return Err(DealError::Invalid(errors));
    }
    let mut quotes: Vec<Quote> = offers
        .iter()
        .filter(|(o, s)| o.supplier == s.id && o.part == part)
        .map(|(o, s)| negotiate(o, s, urgency))
        .collect();
    if quotes.is_empty() {
        return Err(DealError::NoOffers(part.to_owned()));
    }
    score(&mut quotes);
    let best = &quotes[0];
    let q = i128::from(quantity);
    let amount = i128::from(best.negotiated_unit_minor) * q;
    let savings = i128::from(best.quoted_unit_minor - best.negotiated_unit_minor) * q;
    let (Ok(amount_minor), Ok(savings_minor)) = (i64::try_from(amount), i64::try_from(savings))
    else {
        return Err(DealError::Invalid(vec![FieldError::new(
            "quantity",
            "the order's amount does not fit in 64 bits",
        )]));
    };
    let confidence = confidence(&quotes);
    Ok(Deal {
        quotes,
        amount_minor,
        savings_minor,
        confidence,
    })
}

/// The parts a repair needs: the applicable BOM lines' quantities summed per part, by sku.
pub fn parts_for_repair(
    lines: &[BomLine],
    machine_type: &str,
    failure: FailureType,
) -> Vec<(String, u32)> {
    let mut needs: std::collections::BTreeMap<&str, u32> = std::collections::BTreeMap::new();
    for l in lines.iter().filter(|l| l.applies_to(machine_type, failure)) {
        let n = needs.entry(&l.part).or_default();
        *n = n.saturating_add(l.quantity);
    }
    needs.into_iter().map(|(p, n)| (p.to_owned(), n)).collect()
}
