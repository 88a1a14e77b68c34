//! Procurement in memory, with the stores' rules: one order per ticket and part, one open stock
//! reorder per site and part, status moves by compare-and-set, atomic stock changes.

use std::collections::BTreeMap;

use async_trait::async_trait;
use time::OffsetDateTime;

use fb_core::identity::SiteScope;
use fb_core::maintenance::{FailureType, TicketId};
use fb_core::ports::{OrderFilter, OrderMove, ProcurementStore, SiteSavings, StoreError};
use fb_core::procurement::{
    BomLine, Offer, Order, OrderId, OrderStatus, Part, StockItem, Supplier, counts_savings, is_open,
};

use super::{MemoryStore, State};

#[derive(Default)]
pub(super) struct ProcurementState {
    parts: BTreeMap<String, Part>,
    /// (machine type, failure type or "*", part) → line.
    boms: BTreeMap<(String, String, String), BomLine>,
    suppliers: BTreeMap<String, Supplier>,
    /// (part, supplier) → offer.
    offers: BTreeMap<(String, String), Offer>,
    /// (site, part) → stock.
    stock: BTreeMap<(String, String), StockItem>,
    orders: BTreeMap<OrderId, Order>,
    /// (ticket, part) → what its first reservation took.
    reservations: BTreeMap<(TicketId, String), u32>,
}

fn state(s: &mut State) -> &mut ProcurementState {
    &mut s.procurement
}

fn failure_key(f: Option<FailureType>) -> String {
    f.map_or_else(|| "*".to_owned(), |f| f.as_str().to_owned())
}

#[async_trait]
impl ProcurementStore for MemoryStore {
    async fn put_part(&self, part: &Part) -> Result<(), StoreError> {
        self.with(|s| state(s).parts.insert(part.sku.clone(), part.clone()));
        Ok(())
    }

    async fn part(&self, sku: &str) -> Result<Option<Part>, StoreError> {
        Ok(self.with(|s| state(s).parts.get(sku).cloned()))
    }

    async fn list_parts(&self) -> Result<Vec<Part>, StoreError> {
        Ok(self.with(|s| state(s).parts.values().cloned().collect()))
    }

    async fn put_bom_line(&self, line: &BomLine) -> Result<(), StoreError> {
        let key = (
            line.machine_type.clone(),
            failure_key(line.failure_type),
            line.part.clone(),
        );
        self.with(|s| state(s).boms.insert(key, line.clone()));
        Ok(())
    }

    async fn delete_bom_line(
        &self,
        machine_type: &str,
        failure_type: Option<FailureType>,
        part: &str,
    ) -> Result<bool, StoreError> {
        let key = (
            machine_type.to_owned(),
            failure_key(failure_type),
            part.to_owned(),
        );
        Ok(self.with(|s| state(s).boms.remove(&key).is_some()))
    }

    async fn list_bom_lines(&self, machine_type: Option<&str>) -> Result<Vec<BomLine>, StoreError> {
        Ok(self.with(|s| {
            state(s)
                .boms
                .values()
                .filter(|l| machine_type.is_none_or(|t| t == l.machine_type))
                .cloned()
                .collect()
        }))
    }

    async fn put_supplier(&self, supplier: &Supplier) -> Result<(), StoreError> {
        self.with(|s| {
            state(s)
                .suppliers
                .insert(supplier.id.clone(), supplier.clone())
        });
        Ok(())
    }

    async fn supplier(&self, id: &str) -> Result<Option<Supplier>, StoreError> {
        Ok(self.with(|s| state(s).suppliers.get(id).cloned()))
    }

    async fn list_suppliers(&self) -> Result<Vec<Supplier>, StoreError> {
        Ok(self.with(|s| state(s).suppliers.values().cloned().collect()))
    }

    async fn put_offer(&self, offer: &Offer) -> Result<(), StoreError> {
        let key = (offer.part.clone(), offer.supplier.clone());
        self.with(|s| state(s).offers.insert(key, offer.clone()));
        Ok(())
    }

    async fn delete_offer(&self, supplier: &str, part: &str) -> Result<bool, StoreError> {
        let key = (part.to_owned(), supplier.to_owned());
        Ok(self.with(|s| state(s).offers.remove(&key).is_some()))
    }

    async fn list_offers(&self, part: Option<&str>) -> Result<Vec<Offer>, StoreError> {
        Ok(self.with(|s| {
            state(s)
                .offers
                .values()
                .filter(|o| part.is_none_or(|p| p == o.part))
                .cloned()
                .collect()
        }))
    }

    async fn put_stock(&self, item: &StockItem) -> Result<(), StoreError> {
        let key = (item.site.clone(), item.part.clone());
        self.with(|s| state(s).stock.insert(key, item.clone()));
        Ok(())
    }

    async fn stock(&self, site: &str, part: &str) -> Result<Option<StockItem>, StoreError> {
        let key = (site.to_owned(), part.to_owned());
        Ok(self.with(|s| state(s).stock.get(&key).cloned()))
    }

    async fn list_stock(&self, sites: &SiteScope) -> Result<Vec<StockItem>, StoreError> {
        Ok(self.with(|s| {
            state(s)
                .stock
                .values()
                .filter(|i| sites.contains(&i.site))
                .cloned()
                .collect()
        }))
    }

    async fn reserve_stock(
        &self,
        ticket: TicketId,
        site: &str,
        part: &str,
        wanted: u32,
    ) -> Result<u32, StoreError> {
        let key = (site.to_owned(), part.to_owned());
        Ok(self.with(|s| {
            let p = state(s);
            if let Some(n) = p.reservations.get(&(ticket, part.to_owned())) {
                return *n;
            }
            let n = match p.stock.get_mut(&key) {
                Some(item) => {
                    let n = item.available().min(wanted);
                    item.reserved += n;
                    n
                }
                None => 0,
            };
            p.reservations.insert((ticket, part.to_owned()), n);
            n
        }))
    }

    async fn insert_order(&self, order: &Order) -> Result<(), StoreError> {
        self.with(|s| {
            let orders = &mut state(s).orders;
            if orders.contains_key(&order.id) {
                return Err(StoreError::Conflict {
                    constraint: "order_id",
                });
            }
            if let Some(ticket) = order.ticket
                && orders
                    .values()
                    .any(|o| o.ticket == Some(ticket) && o.part == order.part)
            {
                return Err(StoreError::Conflict {
                    constraint: "order_ticket_part",
                });
            }
            let reorder_clash = order.ticket.is_none()
                && is_open(order.status)
                && orders.values().any(|o| {
                    o.ticket.is_none()
                        && is_open(o.status)
                        && o.site == order.site
                        && o.part == order.part
                });
            if reorder_clash {
                return Err(StoreError::Conflict {
                    constraint: "order_open_reorder",
                });
            }
            orders.insert(order.id, order.clone());
            Ok(())
        })
    }

    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        Ok(self.with(|s| state(s).orders.get(&id).cloned()))
    }

    async fn list_orders(&self, f: &OrderFilter) -> Result<Vec<Order>, StoreError> {
        Ok(self.with(|s| {
            state(s)
                .orders
                .values()
                .rev()
                .filter(|o| f.sites.contains(&o.site))
                .filter(|o| f.status.is_none_or(|st| st == o.status))
                .filter(|o| f.ticket.is_none_or(|t| Some(t) == o.ticket))
                .filter(|o| f.before.is_none_or(|b| o.id < b))
                .take(f.limit)
                .cloned()
                .collect()
        }))
    }

    async fn order_for_ticket(
        &self,
        ticket: TicketId,
        part: &str,
    ) -> Result<Option<Order>, StoreError> {
        Ok(self.with(|s| {
            state(s)
                .orders
                .values()
                .find(|o| o.ticket == Some(ticket) && o.part == part)
                .cloned()
        }))
    }

    async fn open_reorder(&self, site: &str, part: &str) -> Result<Option<Order>, StoreError> {
        Ok(self.with(|s| {
            state(s)
                .orders
                .values()
                .find(|o| {
                    o.ticket.is_none() && is_open(o.status) && o.site == site && o.part == part
                })
                .cloned()
        }))
    }

    async fn move_order(
        &self,
        id: OrderId,
        from: OrderStatus,
        to: OrderStatus,
        change: &OrderMove,
    ) -> Result<Option<Order>, StoreError> {
        Ok(self.with(|s| match state(s).orders.get_mut(&id) {
            Some(o) if o.status == from => {
                o.status = to;
                o.updated_at = change.at;
                if change.approval.is_some() {
                    o.approval = change.approval;
                }
                if change.decision.is_some() {
                    o.decision = change.decision;
                }
                if let Some(reason) = &change.reason {
                    o.reason.clone_from(reason);
                }
                match to {
                    OrderStatus::Placed => o.placed_at = Some(change.at),
                    OrderStatus::Received => o.received_at = Some(change.at),
                    _ => {}
                }
                Some(o.clone())
            }
            _ => None,
        }))
    }

    async fn receive_order(
        &self,
        id: OrderId,
        at: OffsetDateTime,
    ) -> Result<Option<Order>, StoreError> {
        Ok(self.with(|s| {
            let p = state(s);
            let o = p.orders.get_mut(&id)?;
            if o.status != OrderStatus::Placed {
                return None;
            }
            o.status = OrderStatus::Received;
            o.updated_at = at;
            o.received_at = Some(at);
            let order = o.clone();
            let item = p
                .stock
                .entry((order.site.clone(), order.part.clone()))
                .or_insert_with(|| StockItem {
                    site: order.site.clone(),
                    part: order.part.clone(),
                    on_hand: 0,
                    reserved: 0,
                    reorder_point: 0,
                    reorder_quantity: 0,
                });
            item.on_hand = item.on_hand.saturating_add(order.quantity);
            Some(order)
        }))
    }

    async fn savings(
        &self,
        sites: &SiteScope,
        placed: Option<(OffsetDateTime, OffsetDateTime)>,
    ) -> Result<Vec<SiteSavings>, StoreError> {
        Ok(self.with(|s| {
            let mut totals: BTreeMap<(String, String), SiteSavings> = BTreeMap::new();
            for o in state(s).orders.values() {
                let in_window = placed
                    .is_none_or(|(from, to)| o.placed_at.is_some_and(|at| at >= from && at < to));
                if !counts_savings(o.status) || !sites.contains(&o.site) || !in_window {
                    continue;
                }
                let t = totals
                    .entry((o.site.clone(), o.currency.clone()))
                    .or_insert_with(|| SiteSavings {
                        site: o.site.clone(),
                        currency: o.currency.clone(),
                        orders: 0,
                        amount_minor: 0,
                        savings_minor: 0,
                    });
                t.orders += 1;
                t.amount_minor += o.amount_minor;
                t.savings_minor += o.savings_minor;
            }
            totals.into_values().collect()
        }))
    }
}
