use super::*;

fn supplier(id: &str, reliability: f64) -> Supplier {
    Supplier {
        id: id.into(),
        name: format!("{id} GmbH"),
        reliability,
        currency: "EUR".into(),
    }
}

fn offer(supplier: &str, price: i64, lead: u32, max_discount: f64) -> Offer {
    Offer {
        supplier: supplier.into(),
        part: "SKF-6205".into(),
        unit_price_minor: price,
        lead_time_days: lead,
        max_discount_pct: max_discount,
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn the_negotiation_target_falls_with_urgency() {
    assert_eq!(Urgency::Critical.target_discount_pct(), 3.0);
    assert_eq!(Urgency::High.target_discount_pct(), 5.0);
    assert_eq!(Urgency::Medium.target_discount_pct(), 8.0);
    assert_eq!(Urgency::Low.target_discount_pct(), 12.0);
    for u in Urgency::ALL {
        assert_eq!(Urgency::parse(u.as_str()), Some(u));
    }
    assert_eq!(
        Urgency::of_priority(TicketPriority::Critical),
        Urgency::Critical
    );
}

#[test]
fn the_supplier_floor_caps_the_discount_and_prices_round_to_minor_units() {
    // Low urgency aims for 12 %, but this supplier accepts at most 5 %.
    assert_eq!(discount_pct(Urgency::Low, 5.0), 5.0);
    assert_eq!(discount_pct(Urgency::Critical, 5.0), 3.0);
    assert_eq!(discount_pct(Urgency::Low, f64::NAN), 0.0);
    assert_eq!(negotiated_unit_minor(10_000, 12.0), 8_800);
    // 999 × 0.97 = 969.03 → 969; 1_005 × 0.95 = 954.75 → 955 (half away from zero).
    assert_eq!(negotiated_unit_minor(999, 3.0), 969);
    assert_eq!(negotiated_unit_minor(1_005, 5.0), 955);
    assert_eq!(
        negotiated_unit_minor(10, 5.0),
        10 - 1,
        "0.5 rounds away from zero"
    );
    assert_eq!(negotiated_unit_minor(1_000, 0.0), 1_000);
}

#[test]
fn the_deal_score_weighs_price_reliability_and_delivery() {
    let offers = vec![
        // Cheapest after negotiation, slow, fairly reliable.
        (offer("acme", 10_000, 10, 10.0), supplier("acme", 0.90)),
        // Dearest, fastest, most reliable.
        (offer("bolt", 11_000, 2, 0.0), supplier("bolt", 0.99)),
        // Between both.
        (offer("cogs", 10_500, 5, 8.0), supplier("cogs", 0.80)),
    ];
    let deal = best_deal("SKF-6205", &offers, Urgency::Medium, 4).unwrap();
    let by = |id: &str| {
        deal.quotes
            .iter()
            .find(|q| q.supplier == id)
            .unwrap()
            .clone()
    };
    // Medium aims for 8 %: acme 9_200, bolt 11_000 (no discount), cogs 9_660.
    let (a, b, c) = (by("acme"), by("bolt"), by("cogs"));
    assert_eq!(
        (
            a.negotiated_unit_minor,
            b.negotiated_unit_minor,
            c.negotiated_unit_minor
        ),
        (9_200, 11_000, 9_660)
    );
    assert!(close(a.price_score, 1.0) && close(b.price_score, 0.0));
    assert!(close(c.price_score, (11_000.0 - 9_660.0) / 1_800.0));
    assert!(close(a.delivery_score, 0.0) && close(b.delivery_score, 1.0));
    assert!(close(c.delivery_score, 5.0 / 8.0));
    for q in &deal.quotes {
        let expected = 0.4 * q.price_score + 0.3 * q.reliability + 0.3 * q.delivery_score;
        assert!(close(q.deal_score, expected));
    }
    // acme 0.4 + 0.27 = 0.67; bolt 0.297 + 0.3 = 0.597; cogs 0.2978 + 0.24 + 0.1875 = 0.7253.
    assert_eq!(deal.best().supplier, "cogs");
    assert_eq!(deal.quotes[1].supplier, "acme");
    assert_eq!(deal.amount_minor, 9_660 * 4);
    assert_eq!(deal.savings_minor, (10_500 - 9_660) * 4);
    assert!(close(deal.confidence, 0.8), "three quotes × 0.80");
}

#[test]
fn one_quote_scores_full_on_price_and_delivery_but_confidence_is_low() {
    let offers = vec![(offer("acme", 10_000, 10, 10.0), supplier("acme", 0.9))];
    let deal = best_deal("SKF-6205", &offers, Urgency::Critical, 1).unwrap();
    let q = deal.best();
    assert!(close(q.price_score, 1.0) && close(q.delivery_score, 1.0));
    assert!(close(q.deal_score, 0.4 + 0.27 + 0.3));
    assert_eq!(q.negotiated_unit_minor, 9_700, "critical: 3 %");
    assert!(close(deal.confidence, 0.3), "one of three quotes × 0.9");
}

#[test]
fn equal_quotes_are_broken_by_price_then_supplier_id() {
    let offers = vec![
        (offer("zeta", 10_000, 5, 0.0), supplier("zeta", 0.9)),
        (offer("alpha", 10_000, 5, 0.0), supplier("alpha", 0.9)),
        (offer("mid", 10_000, 5, 0.0), supplier("mid", 0.9)),
    ];
    let deal = best_deal("SKF-6205", &offers, Urgency::Low, 2).unwrap();
    let order: Vec<&str> = deal.quotes.iter().map(|q| q.supplier.as_str()).collect();
    assert_eq!(order, ["alpha", "mid", "zeta"]);
    assert!(deal.quotes.iter().all(|q| close(q.price_score, 1.0)));
    assert!(deal.quotes.iter().all(|q| close(q.delivery_score, 1.0)));
    assert_eq!(deal.savings_minor, 0, "no discount accepted, nothing saved");
}

#[test]
fn zero_quantity_and_missing_offers_are_refused() {
    let offers = vec![(offer("acme", 10_000, 10, 10.0), supplier("acme", 0.9))];
    match best_deal("SKF-6205", &offers, Urgency::Low, 0) {
        Err(DealError::Invalid(fields)) => assert_eq!(fields[0].field, "quantity"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        best_deal("OTHER", &offers, Urgency::Low, 1),
        Err(DealError::NoOffers("OTHER".into()))
    );
    // An offer paired with another supplier's record is not a quote.
    let mismatched = vec![(offer("acme", 10_000, 10, 10.0), supplier("bolt", 0.9))];
    assert!(matches!(
        best_deal("SKF-6205", &mismatched, Urgency::Low, 1),
        Err(DealError::NoOffers(_))
    ));
}

#[test]
fn validation_names_every_bad_field() {
    let part = Part {
        sku: "bad sku".into(),
        name: " ".into(),
        unit: "pcs".into(),
        currency: "eur".into(),
    };
    let fields: Vec<String> = part.validate().into_iter().map(|f| f.field).collect();
    assert_eq!(fields, ["sku", "name", "currency"]);

    let s = Supplier {
        reliability: 1.5,
        ..supplier("acme", 0.9)
    };
    assert_eq!(s.validate()[0].field, "reliability");

    let o = Offer {
        unit_price_minor: 0,
        lead_time_days: 400,
        max_discount_pct: -1.0,
        ..offer("acme", 1, 1, 1.0)
    };
    let fields: Vec<String> = o.validate().into_iter().map(|f| f.field).collect();
    assert_eq!(
        fields,
        ["unit_price_minor", "lead_time_days", "max_discount_pct"]
    );

    let stock = StockItem {
        site: "plant-a".into(),
        part: "SKF-6205".into(),
        on_hand: 2,
        reserved: 3,
        reorder_point: 1,
        reorder_quantity: 5,
    };
    assert_eq!(stock.validate()[0].field, "reserved");

    let line = BomLine {
        machine_type: "pump".into(),
        failure_type: Some(FailureType::Bearing),
        part: "SKF-6205".into(),
        quantity: 0,
    };
    assert_eq!(line.validate()[0].field, "quantity");
}

#[test]
fn a_repair_needs_the_lines_of_its_failure_type_and_the_general_ones() {
    let line = |ft: Option<FailureType>, part: &str, q: u32| BomLine {
        machine_type: "pump".into(),
        failure_type: ft,
        part: part.into(),
        quantity: q,
    };
    let lines = vec![
        line(Some(FailureType::Bearing), "SKF-6205", 2),
        line(Some(FailureType::Bearing), "GREASE", 1),
        line(None, "GREASE", 1),
        line(Some(FailureType::PressureLeak), "SEAL-40", 1),
        BomLine {
            machine_type: "press".into(),
            ..line(Some(FailureType::Bearing), "SKF-9999", 1)
        },
    ];
    assert_eq!(
        parts_for_repair(&lines, "pump", FailureType::Bearing),
        vec![("GREASE".to_owned(), 2), ("SKF-6205".to_owned(), 2)]
    );
    assert_eq!(
        parts_for_repair(&lines, "pump", FailureType::Overheating),
        vec![("GREASE".to_owned(), 1)]
    );
}

#[test]
fn stock_reorders_below_its_point_and_the_lifecycle_is_a_table() {
    let mut s = StockItem {
        site: "plant-a".into(),
        part: "SKF-6205".into(),
        on_hand: 5,
        reserved: 2,
        reorder_point: 4,
        reorder_quantity: 10,
    };
    assert_eq!(s.available(), 3);
    assert!(s.needs_reorder());
    s.reserved = 0;
    assert!(!s.needs_reorder());
    s.reorder_quantity = 0;
    s.on_hand = 0;
    assert!(!s.needs_reorder(), "no reorder quantity: never reordered");

    assert!(can_move(
        OrderStatus::AwaitingApproval,
        OrderStatus::Approved
    ));
    assert!(can_move(OrderStatus::Approved, OrderStatus::Placed));
    assert!(can_move(OrderStatus::Placed, OrderStatus::Received));
    assert!(!can_move(OrderStatus::Rejected, OrderStatus::Placed));
    assert!(!can_move(OrderStatus::Received, OrderStatus::Placed));
    assert!(is_open(OrderStatus::Placed) && !is_open(OrderStatus::Received));
}
