//! Procurement in portable SQL, stamped onto a store by
//! [`sql_procurement_store!`](crate::sql_procurement_store).
//!
//! Catalogue rows (parts, BOM lines, suppliers, offers, stock) are upserted with
//! `ON CONFLICT … DO UPDATE`. An order is one row with its quotes as JSON text. The two
//! idempotency rules are partial unique indexes (`procurement_orders_ticket_part`,
//! `procurement_orders_open_reorder`); status moves are compare-and-set on the status; stock is
//! changed after a no-op update has taken its row (PostgreSQL) or the write lock (SQLite), so
//! two reservations never read the same level.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use fb_core::gates::{ApprovalId, DecisionId};
use fb_core::maintenance::{FailureType, TicketId};
use fb_core::plant::MachineId;
use fb_core::ports::StoreError;
use fb_core::procurement::{Order, OrderId, OrderStatus, Quote, Urgency};

pub const PART_COLUMNS: &str = "sku, name, unit, currency";
pub const SUPPLIER_COLUMNS: &str = "id, name, reliability, currency";
pub const STOCK_COLUMNS: &str =
    "site, part_sku, on_hand, reserved, reorder_point, reorder_quantity";

pub const ORDER_COLUMNS: &str = "id, site, machine_id, ticket_id, part_sku, quantity, \
     supplier_id, quoted_unit_minor, negotiated_unit_minor, amount_minor, savings_minor, currency, \
     urgency, status, approval_id, decision_id, quotes, reason, created_at, updated_at, placed_at, \
     received_at";

/// A BOM line's failure type as its key column: the type's name, or `*` for every repair.
pub fn failure_key(f: Option<FailureType>) -> &'static str {
    f.map_or("*", FailureType::as_str)
}

pub fn failure_of_key(key: &str) -> Result<Option<FailureType>, StoreError> {
    match key {
        "*" => Ok(None),
        other => FailureType::parse(other)
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt(format!("BOM line: failure type {other:?}"))),
    }
}

/// A stored quantity (a non-negative integer column) as the domain's `u32`.
pub fn quantity(what: &str, v: i64) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{what}: quantity {v}")))
}

/// A quote as stored (JSON): the shape written out here, so that a change to the domain type
/// cannot change stored data by accident.
#[derive(Serialize, Deserialize)]
struct StoredQuote {
    supplier: String,
    quoted_unit_minor: i64,
    negotiated_unit_minor: i64,
    lead_time_days: u32,
    reliability: f64,
    price_score: f64,
    reliability_score: f64,
    delivery_score: f64,
    deal_score: f64,
}

pub fn encode_quotes(quotes: &[Quote]) -> Result<String, StoreError> {
    let stored: Vec<StoredQuote> = quotes
        .iter()
        .map(|q| StoredQuote {
            supplier: q.supplier.clone(),
            quoted_unit_minor: q.quoted_unit_minor,
            negotiated_unit_minor: q.negotiated_unit_minor,
            lead_time_days: q.lead_time_days,
            reliability: q.reliability,
            price_score: q.price_score,
            reliability_score: q.reliability_score,
            delivery_score: q.delivery_score,
            deal_score: q.deal_score,
        })
        .collect();
    serde_json::to_string(&stored).map_err(|e| StoreError::Other(Box::new(e)))
}

fn decode_quotes(id: Uuid, text: &str) -> Result<Vec<Quote>, StoreError> {
    let stored: Vec<StoredQuote> = serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("order {id}: quotes: {e}")))?;
    Ok(stored
        .into_iter()
        .map(|q| Quote {
            supplier: q.supplier,
            quoted_unit_minor: q.quoted_unit_minor,
            negotiated_unit_minor: q.negotiated_unit_minor,
            lead_time_days: q.lead_time_days,
            reliability: q.reliability,
            price_score: q.price_score,
            reliability_score: q.reliability_score,
            delivery_score: q.delivery_score,
            deal_score: q.deal_score,
        })
        .collect())
}

/// The columns of one order row, as read, before they are checked.
pub struct OrderRow {
    pub id: Uuid,
    pub site: String,
    pub machine_id: Option<String>,
    pub ticket_id: Option<Uuid>,
    pub part_sku: String,
    pub quantity: i64,
    pub supplier_id: String,
    pub quoted_unit_minor: i64,
    pub negotiated_unit_minor: i64,
    pub amount_minor: i64,
    pub savings_minor: i64,
    pub currency: String,
    pub urgency: String,
    pub status: String,
    pub approval_id: Option<Uuid>,
    pub decision_id: Option<Uuid>,
    pub quotes: String,
    pub reason: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub placed_at: Option<OffsetDateTime>,
    pub received_at: Option<OffsetDateTime>,
}

impl OrderRow {
    pub fn decode(self) -> Result<Order, StoreError> {
        let id = self.id;
        let bad = |what: &str, v: &str| StoreError::Corrupt(format!("order {id}: {what} {v:?}"));
        Ok(Order {
            id: OrderId(id),
            site: self.site,
            machine: self.machine_id.map(MachineId),
            ticket: self.ticket_id.map(TicketId),
            part: self.part_sku,
            quantity: quantity("order", self.quantity)?,
            supplier: self.supplier_id,
            quoted_unit_minor: self.quoted_unit_minor,
            negotiated_unit_minor: self.negotiated_unit_minor,
            amount_minor: self.amount_minor,
            savings_minor: self.savings_minor,
            currency: self.currency,
            urgency: Urgency::parse(&self.urgency).ok_or_else(|| bad("urgency", &self.urgency))?,
            status: OrderStatus::parse(&self.status).ok_or_else(|| bad("status", &self.status))?,
            approval: self.approval_id.map(ApprovalId),
            decision: self.decision_id.map(DecisionId),
            quotes: decode_quotes(id, &self.quotes)?,
            reason: self.reason,
            created_at: self.created_at,
            updated_at: self.updated_at,
            placed_at: self.placed_at,
            received_at: self.received_at,
        })
    }
}

/// Implements `ProcurementStore` for `$store` (see
/// [`sql_identity_store!`](crate::sql_identity_store) for what the store must provide), whose
/// rows are `$row`. The backend reports violations of `procurement_orders_ticket_part` as
/// `Conflict { constraint: "order_ticket_part" }` and of `procurement_orders_open_reorder` as
/// `Conflict { constraint: "order_open_reorder" }`.
#[macro_export]
macro_rules! sql_procurement_store {
    ($store:ty, $row:ty) => {
        impl $store {
            fn decode_order(row: &$row) -> Result<$crate::__private::fb_core::procurement::Order, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::sqlx::Row as _;
                use $crate::corrupt;
                $crate::procurement::OrderRow {
                    id: row.try_get("id").map_err(corrupt)?,
                    site: row.try_get("site").map_err(corrupt)?,
                    machine_id: row.try_get("machine_id").map_err(corrupt)?,
                    ticket_id: row.try_get("ticket_id").map_err(corrupt)?,
                    part_sku: row.try_get("part_sku").map_err(corrupt)?,
                    quantity: row.try_get("quantity").map_err(corrupt)?,
                    supplier_id: row.try_get("supplier_id").map_err(corrupt)?,
                    quoted_unit_minor: row.try_get("quoted_unit_minor").map_err(corrupt)?,
                    negotiated_unit_minor: row.try_get("negotiated_unit_minor").map_err(corrupt)?,
                    amount_minor: row.try_get("amount_minor").map_err(corrupt)?,
                    savings_minor: row.try_get("savings_minor").map_err(corrupt)?,
                    currency: row.try_get("currency").map_err(corrupt)?,
                    urgency: row.try_get("urgency").map_err(corrupt)?,
                    status: row.try_get("status").map_err(corrupt)?,
                    approval_id: row.try_get("approval_id").map_err(corrupt)?,
                    decision_id: row.try_get("decision_id").map_err(corrupt)?,
                    quotes: row.try_get("quotes").map_err(corrupt)?,
                    reason: row.try_get("reason").map_err(corrupt)?,
                    created_at: row.try_get("created_at").map_err(corrupt)?,
                    updated_at: row.try_get("updated_at").map_err(corrupt)?,
                    placed_at: row.try_get("placed_at").map_err(corrupt)?,
                    received_at: row.try_get("received_at").map_err(corrupt)?,
                }
                .decode()
            }

            fn decode_part(row: &$row) -> Result<$crate::__private::fb_core::procurement::Part, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::sqlx::Row as _;
                use $crate::corrupt;
                Ok($crate::__private::fb_core::procurement::Part {
                    sku: row.try_get("sku").map_err(corrupt)?,
                    name: row.try_get("name").map_err(corrupt)?,
                    unit: row.try_get("unit").map_err(corrupt)?,
                    currency: row.try_get("currency").map_err(corrupt)?,
                })
            }

            fn decode_bom_line(row: &$row) -> Result<$crate::__private::fb_core::procurement::BomLine, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::sqlx::Row as _;
                use $crate::corrupt;
                let key: String = row.try_get("failure_key").map_err(corrupt)?;
                Ok($crate::__private::fb_core::procurement::BomLine {
                    machine_type: row.try_get("machine_type").map_err(corrupt)?,
                    failure_type: $crate::procurement::failure_of_key(&key)?,
                    part: row.try_get("part_sku").map_err(corrupt)?,
                    quantity: $crate::procurement::quantity("BOM line", row.try_get("quantity").map_err(corrupt)?)?,
                })
            }

            fn decode_supplier(row: &$row) -> Result<$crate::__private::fb_core::procurement::Supplier, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::sqlx::Row as _;
                use $crate::corrupt;
                Ok($crate::__private::fb_core::procurement::Supplier {
                    id: row.try_get("id").map_err(corrupt)?,
                    name: row.try_get("name").map_err(corrupt)?,
                    reliability: row.try_get("reliability").map_err(corrupt)?,
                    currency: row.try_get("currency").map_err(corrupt)?,
                })
            }

            fn decode_offer(row: &$row) -> Result<$crate::__private::fb_core::procurement::Offer, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::sqlx::Row as _;
                use $crate::corrupt;
                Ok($crate::__private::fb_core::procurement::Offer {
                    supplier: row.try_get("supplier_id").map_err(corrupt)?,
                    part: row.try_get("part_sku").map_err(corrupt)?,
                    unit_price_minor: row.try_get("unit_price_minor").map_err(corrupt)?,
                    lead_time_days: $crate::procurement::quantity("offer lead time", row.try_get("lead_time_days").map_err(corrupt)?)?,
                    max_discount_pct: row.try_get("max_discount_pct").map_err(corrupt)?,
                })
            }

            fn decode_stock(row: &$row) -> Result<$crate::__private::fb_core::procurement::StockItem, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::sqlx::Row as _;
                use $crate::corrupt;
                use $crate::procurement::quantity;
                Ok($crate::__private::fb_core::procurement::StockItem {
                    site: row.try_get("site").map_err(corrupt)?,
                    part: row.try_get("part_sku").map_err(corrupt)?,
                    on_hand: quantity("stock", row.try_get("on_hand").map_err(corrupt)?)?,
                    reserved: quantity("stock", row.try_get("reserved").map_err(corrupt)?)?,
                    reorder_point: quantity("stock", row.try_get("reorder_point").map_err(corrupt)?)?,
                    reorder_quantity: quantity("stock", row.try_get("reorder_quantity").map_err(corrupt)?)?,
                })
            }

            async fn orders_where(
                &self,
                name: &'static str,
                condition: &str,
                part: &str,
                key: $crate::procurement::OrderKey,
            ) -> Result<Option<$crate::__private::fb_core::procurement::Order>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!("SELECT {} FROM procurement_orders WHERE {condition}", $crate::ORDER_COLUMNS);
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql)).bind(part.to_owned());
                let query = match key {
                    $crate::procurement::OrderKey::Ticket(t) => query.bind(t),
                    $crate::procurement::OrderKey::Site(s) => query.bind(s),
                };
                Self::timed(name, query.fetch_optional(&self.pool)).await?.as_ref().map(Self::decode_order).transpose()
            }
        }

        #[$crate::__private::async_trait]
        impl $crate::__private::fb_core::ports::ProcurementStore for $store {
            async fn put_part(&self, p: &$crate::__private::fb_core::procurement::Part) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let upsert = $crate::__private::sqlx::query(
                    "INSERT INTO procurement_parts (sku, name, unit, currency) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (sku) DO UPDATE SET name = excluded.name, unit = excluded.unit, \
                     currency = excluded.currency",
                )
                .bind(&p.sku)
                .bind(&p.name)
                .bind(&p.unit)
                .bind(&p.currency)
                .execute(&self.pool);
                Self::timed("procurement.put_part", upsert).await.map(|_| ())
            }

            async fn part(&self, sku: &str) -> Result<Option<$crate::__private::fb_core::procurement::Part>, $crate::__private::fb_core::ports::StoreError> {
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(format!("SELECT {} FROM procurement_parts WHERE sku = $1", $crate::procurement::PART_COLUMNS)))
                    .bind(sku)
                    .fetch_optional(&self.pool);
                Self::timed("procurement.part", query).await?.as_ref().map(Self::decode_part).transpose()
            }

            async fn list_parts(&self) -> Result<Vec<$crate::__private::fb_core::procurement::Part>, $crate::__private::fb_core::ports::StoreError> {
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(format!("SELECT {} FROM procurement_parts ORDER BY sku", $crate::procurement::PART_COLUMNS)))
                    .fetch_all(&self.pool);
                Self::timed("procurement.parts", query).await?.iter().map(Self::decode_part).collect()
            }

            async fn put_bom_line(&self, l: &$crate::__private::fb_core::procurement::BomLine) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let upsert = $crate::__private::sqlx::query(
                    "INSERT INTO procurement_bom_lines (machine_type, failure_key, part_sku, quantity) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (machine_type, failure_key, part_sku) \
                     DO UPDATE SET quantity = excluded.quantity",
                )
                .bind(&l.machine_type)
                .bind($crate::procurement::failure_key(l.failure_type))
                .bind(&l.part)
                .bind(i64::from(l.quantity))
                .execute(&self.pool);
                Self::timed("procurement.put_bom_line", upsert).await.map(|_| ())
            }

            async fn delete_bom_line(
                &self,
                machine_type: &str,
                failure_type: Option<$crate::__private::fb_core::maintenance::FailureType>,
                part: &str,
            ) -> Result<bool, $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let delete = $crate::__private::sqlx::query(
                    "DELETE FROM procurement_bom_lines WHERE machine_type = $1 AND failure_key = $2 AND part_sku = $3",
                )
                .bind(machine_type)
                .bind($crate::procurement::failure_key(failure_type))
                .bind(part)
                .execute(&self.pool);
                Ok(Self::timed("procurement.delete_bom_line", delete).await?.rows_affected() == 1)
            }

            async fn list_bom_lines(&self, machine_type: Option<&str>) -> Result<Vec<$crate::__private::fb_core::procurement::BomLine>, $crate::__private::fb_core::ports::StoreError> {
                let query = $crate::__private::sqlx::query(
                    "SELECT machine_type, failure_key, part_sku, quantity FROM procurement_bom_lines \
                     WHERE (CAST($1 AS TEXT) IS NULL OR machine_type = $1) \
                     ORDER BY machine_type, failure_key, part_sku",
                )
                .bind(machine_type)
                .fetch_all(&self.pool);
                Self::timed("procurement.bom_lines", query).await?.iter().map(Self::decode_bom_line).collect()
            }

            async fn put_supplier(&self, s: &$crate::__private::fb_core::procurement::Supplier) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let upsert = $crate::__private::sqlx::query(
                    "INSERT INTO procurement_suppliers (id, name, reliability, currency) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (id) DO UPDATE SET name = excluded.name, reliability = excluded.reliability, \
                     currency = excluded.currency",
                )
                .bind(&s.id)
                .bind(&s.name)
                .bind(s.reliability)
                .bind(&s.currency)
                .execute(&self.pool);
                Self::timed("procurement.put_supplier", upsert).await.map(|_| ())
            }

            async fn supplier(&self, id: &str) -> Result<Option<$crate::__private::fb_core::procurement::Supplier>, $crate::__private::fb_core::ports::StoreError> {
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(format!("SELECT {} FROM procurement_suppliers WHERE id = $1", $crate::procurement::SUPPLIER_COLUMNS)))
                    .bind(id)
                    .fetch_optional(&self.pool);
                Self::timed("procurement.supplier", query).await?.as_ref().map(Self::decode_supplier).transpose()
            }

            async fn list_suppliers(&self) -> Result<Vec<$crate::__private::fb_core::procurement::Supplier>, $crate::__private::fb_core::ports::StoreError> {
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(format!("SELECT {} FROM procurement_suppliers ORDER BY id", $crate::procurement::SUPPLIER_COLUMNS)))
                    .fetch_all(&self.pool);
                Self::timed("procurement.suppliers", query).await?.iter().map(Self::decode_supplier).collect()
            }

            async fn put_offer(&self, o: &$crate::__private::fb_core::procurement::Offer) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let upsert = $crate::__private::sqlx::query(
                    "INSERT INTO procurement_offers (part_sku, supplier_id, unit_price_minor, lead_time_days, max_discount_pct) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (part_sku, supplier_id) DO UPDATE SET \
                     unit_price_minor = excluded.unit_price_minor, lead_time_days = excluded.lead_time_days, \
                     max_discount_pct = excluded.max_discount_pct",
                )
                .bind(&o.part)
                .bind(&o.supplier)
                .bind(o.unit_price_minor)
                .bind(i64::from(o.lead_time_days))
                .bind(o.max_discount_pct)
                .execute(&self.pool);
                Self::timed("procurement.put_offer", upsert).await.map(|_| ())
            }

            async fn delete_offer(&self, supplier: &str, part: &str) -> Result<bool, $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let delete = $crate::__private::sqlx::query("DELETE FROM procurement_offers WHERE supplier_id = $1 AND part_sku = $2")
                    .bind(supplier)
                    .bind(part)
                    .execute(&self.pool);
                Ok(Self::timed("procurement.delete_offer", delete).await?.rows_affected() == 1)
            }

            async fn list_offers(&self, part: Option<&str>) -> Result<Vec<$crate::__private::fb_core::procurement::Offer>, $crate::__private::fb_core::ports::StoreError> {
                let query = $crate::__private::sqlx::query(
                    "SELECT part_sku, supplier_id, unit_price_minor, lead_time_days, max_discount_pct \
                     FROM procurement_offers WHERE (CAST($1 AS TEXT) IS NULL OR part_sku = $1) \
                     ORDER BY part_sku, supplier_id",
                )
                .bind(part)
                .fetch_all(&self.pool);
                Self::timed("procurement.offers", query).await?.iter().map(Self::decode_offer).collect()
            }

            async fn put_stock(&self, i: &$crate::__private::fb_core::procurement::StockItem) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let upsert = $crate::__private::sqlx::query(
                    "INSERT INTO procurement_stock (site, part_sku, on_hand, reserved, reorder_point, reorder_quantity) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (site, part_sku) DO UPDATE SET \
                     on_hand = excluded.on_hand, reserved = excluded.reserved, \
                     reorder_point = excluded.reorder_point, reorder_quantity = excluded.reorder_quantity",
                )
                .bind(&i.site)
                .bind(&i.part)
                .bind(i64::from(i.on_hand))
                .bind(i64::from(i.reserved))
                .bind(i64::from(i.reorder_point))
                .bind(i64::from(i.reorder_quantity))
                .execute(&self.pool);
                Self::timed("procurement.put_stock", upsert).await.map(|_| ())
            }

            async fn stock(&self, site: &str, part: &str) -> Result<Option<$crate::__private::fb_core::procurement::StockItem>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!(
                    "SELECT {} FROM procurement_stock WHERE site = $1 AND part_sku = $2",
                    $crate::procurement::STOCK_COLUMNS
                );
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                .bind(site)
                .bind(part)
                .fetch_optional(&self.pool);
                Self::timed("procurement.stock", query).await?.as_ref().map(Self::decode_stock).transpose()
            }

            async fn list_stock(&self, sites: &$crate::__private::fb_core::identity::SiteScope) -> Result<Vec<$crate::__private::fb_core::procurement::StockItem>, $crate::__private::fb_core::ports::StoreError> {
                let (site_sql, site_names) = match $crate::site_condition(sites, "site", 1) {
                    Some((condition, names)) => (format!(" WHERE {condition}"), names),
                    None => (String::new(), Vec::new()),
                };
                let sql = format!(
                    "SELECT {} FROM procurement_stock{site_sql} ORDER BY site, part_sku",
                    $crate::procurement::STOCK_COLUMNS
                );
                let mut query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql));
                for name in site_names {
                    query = query.bind(name);
                }
                Self::timed("procurement.list_stock", query.fetch_all(&self.pool)).await?.iter().map(Self::decode_stock).collect()
            }

            async fn reserve_stock(
                &self,
                ticket: $crate::__private::fb_core::maintenance::TicketId,
                site: &str,
                part: &str,
                wanted: u32,
            ) -> Result<u32, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::sqlx::Row as _;
                let _turn = self.write_turn().await;
                let mut tx = Self::timed("procurement.begin", self.pool.begin()).await?;
                // A no-op update first takes the row (PostgreSQL) or the write lock (SQLite), so
                // that the level read is the one the reservation changes, and a second caller
                // for the same ticket waits and then finds the first one's reservation.
                let sql = format!(
                    "UPDATE procurement_stock SET reserved = reserved WHERE site = $1 AND part_sku = $2 \
                     RETURNING {}",
                    $crate::procurement::STOCK_COLUMNS
                );
                let lock = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                .bind(site)
                .bind(part)
                .fetch_optional(&mut *tx);
                let stock = Self::timed("procurement.stock_lock", lock).await?;
                let earlier = $crate::__private::sqlx::query(
                    "SELECT quantity FROM procurement_reservations WHERE ticket_id = $1 AND part_sku = $2",
                )
                .bind(ticket.0)
                .bind(part);
                if let Some(row) = Self::timed("procurement.reservation", earlier.fetch_optional(&mut *tx)).await? {
                    let n: i64 = row.try_get("quantity").map_err($crate::corrupt)?;
                    return $crate::procurement::quantity("reservation", n);
                }
                let n = match &stock {
                    Some(row) => Self::decode_stock(row)?.available().min(wanted),
                    None => 0,
                };
                let record = $crate::__private::sqlx::query(
                    "INSERT INTO procurement_reservations (ticket_id, part_sku, site, quantity) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (ticket_id, part_sku) DO NOTHING",
                )
                .bind(ticket.0)
                .bind(part)
                .bind(site)
                .bind(i64::from(n))
                .execute(&mut *tx);
                if Self::timed("procurement.reserve_record", record).await?.rows_affected() == 0 {
                    // Only possible without a stock row (nothing was locked): the other caller
                    // reserved nothing either.
                    return Ok(0);
                }
                if n > 0 {
                    let update = $crate::__private::sqlx::query(
                        "UPDATE procurement_stock SET reserved = reserved + $3 WHERE site = $1 AND part_sku = $2",
                    )
                    .bind(site)
                    .bind(part)
                    .bind(i64::from(n))
                    .execute(&mut *tx);
                    Self::timed("procurement.reserve", update).await?;
                }
                Self::timed("procurement.commit", tx.commit()).await?;
                Ok(n)
            }

            async fn insert_order(&self, o: &$crate::__private::fb_core::procurement::Order) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let quotes = $crate::procurement::encode_quotes(&o.quotes)?;
                let _turn = self.write_turn().await;
                let sql = format!(
                    "INSERT INTO procurement_orders ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
                     $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)",
                    $crate::ORDER_COLUMNS
                );
                let insert = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(o.id.0)
                    .bind(&o.site)
                    .bind(o.machine.as_ref().map(|m| m.0.as_str()))
                    .bind(o.ticket.map(|t| t.0))
                    .bind(&o.part)
                    .bind(i64::from(o.quantity))
                    .bind(&o.supplier)
                    .bind(o.quoted_unit_minor)
                    .bind(o.negotiated_unit_minor)
                    .bind(o.amount_minor)
                    .bind(o.savings_minor)
                    .bind(&o.currency)
                    .bind(o.urgency.as_str())
                    .bind(o.status.as_str())
                    .bind(o.approval.map(|a| a.0))
                    .bind(o.decision.map(|d| d.0))
                    .bind(quotes)
                    .bind(&o.reason)
                    .bind(o.created_at)
                    .bind(o.updated_at)
                    .bind(o.placed_at)
                    .bind(o.received_at)
                    .execute(&self.pool);
                Self::timed("procurement.insert_order", insert).await.map(|_| ())
            }

            async fn order(&self, id: $crate::__private::fb_core::procurement::OrderId) -> Result<Option<$crate::__private::fb_core::procurement::Order>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!("SELECT {} FROM procurement_orders WHERE id = $1", $crate::ORDER_COLUMNS);
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .fetch_optional(&self.pool);
                Self::timed("procurement.order", query).await?.as_ref().map(Self::decode_order).transpose()
            }

            async fn list_orders(&self, f: &$crate::__private::fb_core::ports::OrderFilter) -> Result<Vec<$crate::__private::fb_core::procurement::Order>, $crate::__private::fb_core::ports::StoreError> {
                let (site_sql, site_names) = match $crate::site_condition(&f.sites, "site", 5) {
                    Some((condition, names)) => (format!(" AND {condition}"), names),
                    None => (String::new(), Vec::new()),
                };
                let sql = format!(
                    "SELECT {} FROM procurement_orders WHERE (CAST($1 AS TEXT) IS NULL OR status = $1) \
                     AND ($2 IS NULL OR ticket_id = $2) AND ($3 IS NULL OR id < $3){site_sql} \
                     ORDER BY id DESC LIMIT $4",
                    $crate::ORDER_COLUMNS
                );
                let mut query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(f.status.map(|s| s.as_str()))
                    .bind(f.ticket.map(|t| t.0))
                    .bind(f.before.map(|b| b.0))
                    .bind(i64::try_from(f.limit).unwrap_or(i64::MAX));
                for name in site_names {
                    query = query.bind(name);
                }
                Self::timed("procurement.list_orders", query.fetch_all(&self.pool)).await?.iter().map(Self::decode_order).collect()
            }

            async fn order_for_ticket(
                &self,
                ticket: $crate::__private::fb_core::maintenance::TicketId,
                part: &str,
            ) -> Result<Option<$crate::__private::fb_core::procurement::Order>, $crate::__private::fb_core::ports::StoreError> {
                self.orders_where(
                    "procurement.order_for_ticket",
                    "part_sku = $1 AND ticket_id = $2",
                    part,
                    $crate::procurement::OrderKey::Ticket(ticket.0),
                )
                .await
            }

            async fn open_reorder(&self, site: &str, part: &str) -> Result<Option<$crate::__private::fb_core::procurement::Order>, $crate::__private::fb_core::ports::StoreError> {
                self.orders_where(
                    "procurement.open_reorder",
                    "part_sku = $1 AND site = $2 AND ticket_id IS NULL \
                     AND status IN ('awaiting_approval', 'approved', 'placed')",
                    part,
                    $crate::procurement::OrderKey::Site(site.to_owned()),
                )
                .await
            }

            async fn move_order(
                &self,
                id: $crate::__private::fb_core::procurement::OrderId,
                from: $crate::__private::fb_core::procurement::OrderStatus,
                to: $crate::__private::fb_core::procurement::OrderStatus,
                change: &$crate::__private::fb_core::ports::OrderMove,
            ) -> Result<Option<$crate::__private::fb_core::procurement::Order>, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::fb_core::procurement::OrderStatus;
                let _turn = self.write_turn().await;
                let sql = format!(
                    "UPDATE procurement_orders SET status = $3, updated_at = $4, \
                     approval_id = COALESCE($5, approval_id), decision_id = COALESCE($6, decision_id), \
                     reason = COALESCE($7, reason), \
                     placed_at = CASE WHEN $8 THEN $4 ELSE placed_at END, \
                     received_at = CASE WHEN $9 THEN $4 ELSE received_at END \
                     WHERE id = $1 AND status = $2 RETURNING {}",
                    $crate::ORDER_COLUMNS
                );
                let update = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .bind(from.as_str())
                    .bind(to.as_str())
                    .bind(change.at)
                    .bind(change.approval.map(|a| a.0))
                    .bind(change.decision.map(|d| d.0))
                    .bind(change.reason.as_deref())
                    .bind(to == OrderStatus::Placed)
                    .bind(to == OrderStatus::Received)
                    .fetch_optional(&self.pool);
                Self::timed("procurement.move_order", update).await?.as_ref().map(Self::decode_order).transpose()
            }

            async fn receive_order(
                &self,
                id: $crate::__private::fb_core::procurement::OrderId,
                at: $crate::__private::OffsetDateTime,
            ) -> Result<Option<$crate::__private::fb_core::procurement::Order>, $crate::__private::fb_core::ports::StoreError> {
                let _turn = self.write_turn().await;
                let mut tx = Self::timed("procurement.begin", self.pool.begin()).await?;
                let sql = format!(
                    "UPDATE procurement_orders SET status = 'received', updated_at = $2, received_at = $2 \
                     WHERE id = $1 AND status = 'placed' RETURNING {}",
                    $crate::ORDER_COLUMNS
                );
                let update = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .bind(at)
                    .fetch_optional(&mut *tx);
                let Some(row) = Self::timed("procurement.receive", update).await? else {
                    return Ok(None);
                };
                let order = Self::decode_order(&row)?;
                let stock = $crate::__private::sqlx::query(
                    "INSERT INTO procurement_stock (site, part_sku, on_hand, reserved, reorder_point, reorder_quantity) \
                     VALUES ($1, $2, $3, 0, 0, 0) ON CONFLICT (site, part_sku) DO UPDATE SET \
                     on_hand = procurement_stock.on_hand + excluded.on_hand",
                )
                .bind(&order.site)
                .bind(&order.part)
                .bind(i64::from(order.quantity))
                .execute(&mut *tx);
                Self::timed("procurement.receive_stock", stock).await?;
                Self::timed("procurement.commit", tx.commit()).await?;
                Ok(Some(order))
            }

            async fn savings(
                &self,
                sites: &$crate::__private::fb_core::identity::SiteScope,
                placed: Option<(
                    $crate::__private::OffsetDateTime,
                    $crate::__private::OffsetDateTime,
                )>,
            ) -> Result<Vec<$crate::__private::fb_core::ports::SiteSavings>, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::sqlx::Row as _;
                use $crate::corrupt;
                let (window_sql, first_site) = match placed {
                    Some(_) => (" AND placed_at >= $1 AND placed_at < $2", 3),
                    None => ("", 1),
                };
                let (site_sql, site_names) = match $crate::site_condition(sites, "site", first_site) {
                    Some((condition, names)) => (format!(" AND {condition}"), names),
                    None => (String::new(), Vec::new()),
                };
                let sql = format!(
                    "SELECT site, currency, COUNT(*) AS orders, CAST(SUM(amount_minor) AS BIGINT) AS amount, \
                     CAST(SUM(savings_minor) AS BIGINT) AS savings FROM procurement_orders \
                     WHERE status IN ('placed', 'received'){window_sql}{site_sql} GROUP BY site, currency ORDER BY site, currency"
                );
                let mut query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql));
                if let Some((from, to)) = placed {
                    query = query.bind(from).bind(to);
                }
                for name in site_names {
                    query = query.bind(name);
                }
                let rows = Self::timed("procurement.savings", query.fetch_all(&self.pool)).await?;
                rows.iter()
                    .map(|row| {
                        let orders: i64 = row.try_get("orders").map_err(corrupt)?;
                        Ok($crate::__private::fb_core::ports::SiteSavings {
                            site: row.try_get("site").map_err(corrupt)?,
                            currency: row.try_get("currency").map_err(corrupt)?,
                            orders: u64::try_from(orders).unwrap_or(0),
                            amount_minor: row.try_get("amount").map_err(corrupt)?,
                            savings_minor: row.try_get("savings").map_err(corrupt)?,
                        })
                    })
                    .collect()
            }
        }
    };
}

/// The second key of a one-order look-up.
pub enum OrderKey {
    Ticket(Uuid),
    Site(String),
}
