use std::sync::Arc;

use time::Duration;
use uuid::Uuid;

use fb_core::gates::{ApprovalId, DecisionId};
use fb_core::identity::SiteScope;
use fb_core::maintenance::{FailureType, TicketId};
use fb_core::plant::MachineId;
use fb_core::ports::{OrderFilter, OrderMove, SiteSavings, Storage, StoreError};
use fb_core::procurement::{
    BomLine, Offer, Order, OrderId, OrderStatus, Part, Quote, StockItem, Supplier, Urgency,
};

use crate::fixtures::instant;

fn part(sku: &str) -> Part {
    Part {
        sku: sku.into(),
        name: format!("Part {sku}"),
        unit: "pcs".into(),
        currency: "EUR".into(),
    }
}

fn supplier(id: &str) -> Supplier {
    Supplier {
        id: id.into(),
        name: format!("{id} GmbH"),
        reliability: 0.95,
        currency: "EUR".into(),
    }
}

async fn catalogue(storage: &Storage) {
    let store = &storage.procurement;
    for sku in ["SKF-6205", "SEAL-40"] {
        store.put_part(&part(sku)).await.unwrap();
    }
    for id in ["acme", "bolt"] {
        store.put_supplier(&supplier(id)).await.unwrap();
    }
}

fn order(site: &str, ticket: Option<TicketId>, part: &str, status: OrderStatus) -> Order {
    let at = instant() + Duration::microseconds(123_457);
    Order {
        id: OrderId::new(),
        site: site.into(),
        machine: ticket.map(|_| MachineId("press-01".into())),
        ticket,
        part: part.into(),
        quantity: 4,
        supplier: "acme".into(),
        quoted_unit_minor: 10_500,
        negotiated_unit_minor: 9_660,
        amount_minor: 38_640,
        savings_minor: 3_360,
        currency: "EUR".into(),
        urgency: Urgency::Medium,
        status,
        approval: None,
        decision: None,
        quotes: vec![Quote {
            supplier: "acme".into(),
            quoted_unit_minor: 10_500,
            negotiated_unit_minor: 9_660,
            lead_time_days: 5,
            reliability: 0.95,
            price_score: 1.0,
            reliability_score: 0.95,
            delivery_score: 0.625,
            deal_score: 0.7725,
        }],
        reason: "bearing repair on press-01".into(),
        created_at: at,
        updated_at: at,
        placed_at: None,
        received_at: None,
    }
}

pub async fn procurement_catalogue_round_trips_and_upserts(storage: &Storage) {
    let store = &storage.procurement;
    catalogue(storage).await;
    assert_eq!(
        store.part("SKF-6205").await.unwrap(),
        Some(part("SKF-6205"))
    );
    assert_eq!(store.part("nope").await.unwrap(), None);
    let renamed = Part {
        name: "Deep groove ball bearing".into(),
        ..part("SKF-6205")
    };
    store.put_part(&renamed).await.unwrap();
    let skus: Vec<String> = store
        .list_parts()
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.sku)
        .collect();
    assert_eq!(skus, ["SEAL-40", "SKF-6205"], "by sku, replaced in place");
    assert_eq!(store.part("SKF-6205").await.unwrap(), Some(renamed));

    let s = Supplier {
        reliability: 0.8,
        ..supplier("acme")
    };
    store.put_supplier(&s).await.unwrap();
    assert_eq!(store.supplier("acme").await.unwrap(), Some(s));
    assert_eq!(store.list_suppliers().await.unwrap().len(), 2);

    let line = |ft, part: &str, q| BomLine {
        machine_type: "pump".into(),
        failure_type: ft,
        part: part.into(),
        quantity: q,
    };
    store
        .put_bom_line(&line(Some(FailureType::Bearing), "SKF-6205", 2))
        .await
        .unwrap();
    store.put_bom_line(&line(None, "SEAL-40", 1)).await.unwrap();
    store
        .put_bom_line(&line(Some(FailureType::Bearing), "SKF-6205", 3))
        .await
        .unwrap();
    store
        .put_bom_line(&BomLine {
            machine_type: "press".into(),
            ..line(None, "SEAL-40", 1)
        })
        .await
        .unwrap();
    let pump = store.list_bom_lines(Some("pump")).await.unwrap();
    assert_eq!(pump.len(), 2);
    assert!(pump.contains(&line(Some(FailureType::Bearing), "SKF-6205", 3)));
    assert!(pump.contains(&line(None, "SEAL-40", 1)));
    assert_eq!(store.list_bom_lines(None).await.unwrap().len(), 3);
    assert!(
        store
            .delete_bom_line("pump", None, "SEAL-40")
            .await
            .unwrap()
    );
    assert!(
        !store
            .delete_bom_line("pump", None, "SEAL-40")
            .await
            .unwrap()
    );
    assert_eq!(store.list_bom_lines(Some("pump")).await.unwrap().len(), 1);

    let offer = |s: &str, price| Offer {
        supplier: s.into(),
        part: "SKF-6205".into(),
        unit_price_minor: price,
        lead_time_days: 5,
        max_discount_pct: 7.5,
    };
    store.put_offer(&offer("acme", 10_000)).await.unwrap();
    store.put_offer(&offer("bolt", 11_000)).await.unwrap();
    store.put_offer(&offer("acme", 9_900)).await.unwrap();
    assert_eq!(
        store.list_offers(Some("SKF-6205")).await.unwrap(),
        vec![offer("acme", 9_900), offer("bolt", 11_000)]
    );
    assert!(store.list_offers(Some("SEAL-40")).await.unwrap().is_empty());
    assert!(store.delete_offer("bolt", "SKF-6205").await.unwrap());
    assert!(!store.delete_offer("bolt", "SKF-6205").await.unwrap());
    assert_eq!(store.list_offers(None).await.unwrap().len(), 1);
}

pub async fn stock_is_reserved_atomically_and_listed_by_site(storage: &Storage) {
    let store = &storage.procurement;
    catalogue(storage).await;
    let item = |site: &str, on_hand| StockItem {
        site: site.into(),
        part: "SKF-6205".into(),
        on_hand,
        reserved: 0,
        reorder_point: 2,
        reorder_quantity: 10,
    };
    store.put_stock(&item("plant-a", 5)).await.unwrap();
    store.put_stock(&item("plant-b", 1)).await.unwrap();
    let (t1, t2, t3) = (
        TicketId(Uuid::now_v7()),
        TicketId(Uuid::now_v7()),
        TicketId(Uuid::now_v7()),
    );
    let reserve = |t, site: &'static str, n| {
        let store = Arc::clone(&storage.procurement);
        async move { store.reserve_stock(t, site, "SKF-6205", n).await.unwrap() }
    };
    assert_eq!(reserve(t1, "plant-a", 3).await, 3);
    assert_eq!(
        reserve(t1, "plant-a", 3).await,
        3,
        "the same ticket again: the first reservation, nothing more"
    );
    assert_eq!(reserve(t2, "plant-a", 3).await, 2, "only what is left");
    assert_eq!(reserve(t3, "plant-a", 1).await, 0);
    assert_eq!(reserve(t3, "plant-c", 1).await, 0, "no stock row");
    let a = store.stock("plant-a", "SKF-6205").await.unwrap().unwrap();
    assert_eq!((a.on_hand, a.reserved), (5, 5));

    // Concurrent reservations never hand out the same unit twice.
    store.put_stock(&item("plant-b", 10)).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = Arc::clone(&storage.procurement);
            let ticket = TicketId(Uuid::now_v7());
            tokio::spawn(async move { store.reserve_stock(ticket, "plant-b", "SKF-6205", 2).await })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.unwrap().unwrap();
    }
    assert_eq!(total, 10);
    let b = store.stock("plant-b", "SKF-6205").await.unwrap().unwrap();
    assert_eq!(b.reserved, 10);

    let only_a = SiteScope::named("sites", &["plant-a"]).unwrap();
    let listed = store.list_stock(&only_a).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].site, "plant-a");
    assert_eq!(store.list_stock(&SiteScope::All).await.unwrap().len(), 2);
}

pub async fn orders_round_trip_and_are_one_per_ticket_and_part(storage: &Storage) {
    let store = &storage.procurement;
    catalogue(storage).await;
    let ticket = TicketId(Uuid::now_v7());
    let o = order(
        "plant-a",
        Some(ticket),
        "SKF-6205",
        OrderStatus::AwaitingApproval,
    );
    store.insert_order(&o).await.unwrap();
    assert_eq!(store.order(o.id).await.unwrap(), Some(o.clone()));
    assert_eq!(store.order(OrderId::new()).await.unwrap(), None);
    assert_eq!(
        store.order_for_ticket(ticket, "SKF-6205").await.unwrap(),
        Some(o.clone())
    );
    assert_eq!(
        store.order_for_ticket(ticket, "SEAL-40").await.unwrap(),
        None
    );

    // The same ticket and part again: the agent handled the event twice.
    let again = order(
        "plant-a",
        Some(ticket),
        "SKF-6205",
        OrderStatus::AwaitingApproval,
    );
    assert!(matches!(
        store.insert_order(&again).await,
        Err(StoreError::Conflict {
            constraint: "order_ticket_part"
        })
    ));
    // Another part of the same ticket is another order.
    store
        .insert_order(&order(
            "plant-a",
            Some(ticket),
            "SEAL-40",
            OrderStatus::Placed,
        ))
        .await
        .unwrap();
}

pub async fn one_open_reorder_per_site_and_part(storage: &Storage) {
    let store = &storage.procurement;
    catalogue(storage).await;
    let first = order("plant-a", None, "SKF-6205", OrderStatus::Placed);
    store.insert_order(&first).await.unwrap();
    assert_eq!(
        store.open_reorder("plant-a", "SKF-6205").await.unwrap(),
        Some(first.clone())
    );
    assert!(matches!(
        store
            .insert_order(&order(
                "plant-a",
                None,
                "SKF-6205",
                OrderStatus::AwaitingApproval
            ))
            .await,
        Err(StoreError::Conflict {
            constraint: "order_open_reorder"
        })
    ));
    // Another site, or another part, is another reorder.
    store
        .insert_order(&order("plant-b", None, "SKF-6205", OrderStatus::Placed))
        .await
        .unwrap();
    store
        .insert_order(&order("plant-a", None, "SEAL-40", OrderStatus::Placed))
        .await
        .unwrap();
    // Once received, the next reorder may open.
    assert!(
        store
            .receive_order(first.id, instant() + Duration::days(3))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(
        store.open_reorder("plant-a", "SKF-6205").await.unwrap(),
        None
    );
    store
        .insert_order(&order("plant-a", None, "SKF-6205", OrderStatus::Placed))
        .await
        .unwrap();
}

pub async fn orders_move_once_and_receiving_adds_stock(storage: &Storage) {
    let store = &storage.procurement;
    catalogue(storage).await;
    let o = order(
        "plant-a",
        Some(TicketId(Uuid::now_v7())),
        "SKF-6205",
        OrderStatus::AwaitingApproval,
    );
    store.insert_order(&o).await.unwrap();
    let approval = ApprovalId::new();
    let decision = DecisionId::new();
    let held = OrderMove {
        approval: Some(approval),
        decision: Some(decision),
        ..OrderMove::at(instant() + Duration::seconds(1))
    };
    // A move to the same status records the gate's ids.
    let stored = store
        .move_order(
            o.id,
            OrderStatus::AwaitingApproval,
            OrderStatus::AwaitingApproval,
            &held,
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.approval, stored.decision),
        (Some(approval), Some(decision))
    );

    let at = instant() + Duration::minutes(5);
    let approved = store
        .move_order(
            o.id,
            OrderStatus::AwaitingApproval,
            OrderStatus::Approved,
            &OrderMove::at(at),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(approved.status, OrderStatus::Approved);
    assert_eq!(approved.approval, Some(approval), "kept when not given");
    // Compare-and-set: a second approval finds it approved already.
    assert_eq!(
        store
            .move_order(
                o.id,
                OrderStatus::AwaitingApproval,
                OrderStatus::Approved,
                &OrderMove::at(at)
            )
            .await
            .unwrap(),
        None
    );
    let placed = store
        .move_order(
            o.id,
            OrderStatus::Approved,
            OrderStatus::Placed,
            &OrderMove {
                reason: Some("approved by user:sue".into()),
                ..OrderMove::at(at)
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(placed.placed_at, Some(at));
    assert_eq!(placed.reason, "approved by user:sue");
    assert_eq!(placed.received_at, None);

    // Receiving makes a stock row where there was none, and adds to it afterwards.
    let received_at = instant() + Duration::days(2);
    let received = store
        .receive_order(o.id, received_at)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(received.status, OrderStatus::Received);
    assert_eq!(received.received_at, Some(received_at));
    assert_eq!(
        store.receive_order(o.id, received_at).await.unwrap(),
        None,
        "received once"
    );
    let stock = store.stock("plant-a", "SKF-6205").await.unwrap().unwrap();
    assert_eq!(stock.on_hand, 4);
    let reorder = order("plant-a", None, "SKF-6205", OrderStatus::Placed);
    store.insert_order(&reorder).await.unwrap();
    store.receive_order(reorder.id, received_at).await.unwrap();
    let stock = store.stock("plant-a", "SKF-6205").await.unwrap().unwrap();
    assert_eq!(stock.on_hand, 8);
    assert_eq!(store.order(o.id).await.unwrap(), Some(received));
}

pub async fn orders_are_listed_newest_first_and_savings_sum_per_site(storage: &Storage) {
    let store = &storage.procurement;
    catalogue(storage).await;
    let ticket = TicketId(Uuid::now_v7());
    let mut all = Vec::new();
    for (site, ticket, part, status) in [
        ("plant-a", Some(ticket), "SKF-6205", OrderStatus::Placed),
        (
            "plant-a",
            Some(ticket),
            "SEAL-40",
            OrderStatus::AwaitingApproval,
        ),
        ("plant-a", None, "SKF-6205", OrderStatus::Received),
        ("plant-b", None, "SKF-6205", OrderStatus::Placed),
        ("plant-b", None, "SEAL-40", OrderStatus::Rejected),
    ] {
        let mut o = order(site, ticket, part, status);
        if matches!(status, OrderStatus::Placed | OrderStatus::Received) {
            o.placed_at = Some(o.created_at);
        }
        store.insert_order(&o).await.unwrap();
        all.push(o);
    }
    let ids = |orders: Vec<Order>| orders.into_iter().map(|o| o.id).collect::<Vec<_>>();
    let everything = ids(store
        .list_orders(&OrderFilter::new(SiteScope::All, 100))
        .await
        .unwrap());
    let mut expected: Vec<OrderId> = all.iter().map(|o| o.id).collect();
    expected.reverse();
    assert_eq!(everything, expected, "newest first");
    let a = SiteScope::named("sites", &["plant-a"]).unwrap();
    assert_eq!(
        store
            .list_orders(&OrderFilter::new(a.clone(), 100))
            .await
            .unwrap()
            .len(),
        3
    );
    let placed = OrderFilter {
        status: Some(OrderStatus::Placed),
        ..OrderFilter::new(SiteScope::All, 100)
    };
    assert_eq!(
        ids(store.list_orders(&placed).await.unwrap()),
        vec![all[3].id, all[0].id]
    );
    let of_ticket = OrderFilter {
        ticket: Some(ticket),
        ..OrderFilter::new(SiteScope::All, 100)
    };
    assert_eq!(
        ids(store.list_orders(&of_ticket).await.unwrap()),
        vec![all[1].id, all[0].id]
    );
    let page = OrderFilter {
        before: Some(all[2].id),
        ..OrderFilter::new(SiteScope::All, 1)
    };
    assert_eq!(
        ids(store.list_orders(&page).await.unwrap()),
        vec![all[1].id]
    );

    // Placed and received orders count; waiting and rejected ones do not.
    let each = order("x", None, "x", OrderStatus::Placed);
    assert_eq!(
        store.savings(&SiteScope::All, None).await.unwrap(),
        vec![
            SiteSavings {
                site: "plant-a".into(),
                currency: "EUR".into(),
                orders: 2,
                amount_minor: 2 * each.amount_minor,
                savings_minor: 2 * each.savings_minor,
            },
            SiteSavings {
                site: "plant-b".into(),
                currency: "EUR".into(),
                orders: 1,
                amount_minor: each.amount_minor,
                savings_minor: each.savings_minor,
            },
        ]
    );
    assert_eq!(store.savings(&a, None).await.unwrap().len(), 1);
    // A window counts the orders placed in it.
    let placed_at = all[0].created_at;
    let second = Duration::seconds(1);
    assert_eq!(
        store
            .savings(&SiteScope::All, Some((placed_at, placed_at + second)))
            .await
            .unwrap(),
        store.savings(&SiteScope::All, None).await.unwrap()
    );
    assert!(
        store
            .savings(&a, Some((placed_at + second, placed_at + second * 2)))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .savings(&SiteScope::Sites(Default::default()), None)
            .await
            .unwrap()
            .is_empty()
    );
}
