//! Procurement over the real API and store: supervisors keep the catalogue (operators cannot),
//! bad input is refused naming its fields; a ticket's repair becomes purchase orders with
//! their quotes; an order over the gate's limit waits for approval, which an operator cannot
//! give (403) and a supervisor can, placing it once through the server's registered executor;
//! savings are counted; receiving adds to stock.

use axum::http::StatusCode;
use serde_json::{Value, json};

use fb_core::identity::Role;
use fb_core::maintenance::TicketId;

use crate::support::TestApp;

fn press(id: &str, site: &str) -> Value {
    json!({
        "id": id, "name": "Press", "machine_type": "hydraulic_press", "machine_class": "class2",
        "location": {"site": site, "area": "stamping", "line": "line-1"},
        "sensors": [{"key": "temperature", "kind": "temperature", "unit": "°C",
                     "physical_min": -40, "physical_max": 250}]
    })
}

async fn post_ok(app: &TestApp, path: &str, token: &str, body: Value) -> Value {
    let r = app.post(path, Some(token), body).await;
    assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
    r.body
}

async fn ticket_orders(app: &TestApp, token: &str, operator: &str, body: Value) -> Vec<Value> {
    let created = app.post("/api/v1/tickets", Some(operator), body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id: uuid::Uuid = created.body["id"].as_str().unwrap().parse().unwrap();
    let ticket = app
        .storage
        .tickets
        .ticket(TicketId(id))
        .await
        .unwrap()
        .unwrap();
    // The agent's trigger (the ticket event on the bus) is the server's wiring; here it is
    // called as that wiring will.
    let handled = app
        .state
        .procurement
        .on_ticket(&ticket, None)
        .await
        .unwrap();
    let again = app
        .state
        .procurement
        .on_ticket(&ticket, None)
        .await
        .unwrap();
    assert_eq!(handled.len(), again.len(), "handled twice, ordered once");
    let listed = app
        .get(
            &format!("/api/v1/procurement/orders?ticket={id}"),
            Some(token),
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    listed.body["orders"].as_array().unwrap().clone()
}

async fn procurement_on(app: TestApp) {
    let admin = app.admin_token().await;
    let created = app
        .post(
            "/api/v1/machines",
            Some(&admin),
            press("press-01", "plant-a"),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let viewer = app.token_for("vera", Role::Viewer).await;
    let operator = app.token_for("otto", Role::Operator).await;
    let supervisor = app.token_for("sam", Role::Supervisor).await;

    // The catalogue is the supervisors'.
    let part =
        json!({"sku": "SKF-6205", "name": "Ball bearing 6205", "unit": "pcs", "currency": "EUR"});
    let refused = app
        .post("/api/v1/procurement/parts", Some(&operator), part.clone())
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let bad = app
        .post(
            "/api/v1/procurement/parts",
            Some(&supervisor),
            json!({"sku": "bad sku", "name": "x", "unit": "pcs", "currency": "euro"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert_eq!(bad.code(), "invalid_field");
    let fields: Vec<&str> = bad.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["sku", "currency"]);
    post_ok(&app, "/api/v1/procurement/parts", &supervisor, part).await;
    post_ok(
        &app,
        "/api/v1/procurement/parts",
        &supervisor,
        json!({"sku": "MOTOR-7", "name": "7.5 kW motor", "unit": "pcs", "currency": "EUR"}),
    )
    .await;
    for (id, reliability, currency) in [
        ("acme", 0.90, "EUR"),
        ("bolt", 0.99, "EUR"),
        ("cogs", 0.85, "EUR"),
        ("yank", 0.90, "USD"),
    ] {
        post_ok(
            &app,
            "/api/v1/procurement/suppliers",
            &supervisor,
            json!({"id": id, "name": id, "reliability": reliability, "currency": currency}),
        )
        .await;
    }
    let mismatch = app
        .post(
            "/api/v1/procurement/offers",
            Some(&supervisor),
            json!({"supplier": "yank", "part": "SKF-6205", "unit_price_minor": 900,
                   "lead_time_days": 1, "max_discount_pct": 0}),
        )
        .await;
    assert_eq!(
        mismatch.status,
        StatusCode::BAD_REQUEST,
        "{}",
        mismatch.body
    );
    assert_eq!(mismatch.code(), "currency_mismatch");
    for (supplier, part, price, lead, max) in [
        ("acme", "SKF-6205", 10_000, 10, 10.0),
        ("bolt", "SKF-6205", 11_000, 2, 0.0),
        ("cogs", "SKF-6205", 10_500, 5, 8.0),
        ("acme", "MOTOR-7", 300_000, 20, 10.0),
        ("bolt", "MOTOR-7", 310_000, 5, 0.0),
        ("cogs", "MOTOR-7", 305_000, 10, 8.0),
    ] {
        post_ok(
            &app,
            "/api/v1/procurement/offers",
            &supervisor,
            json!({"supplier": supplier, "part": part, "unit_price_minor": price,
                   "lead_time_days": lead, "max_discount_pct": max}),
        )
        .await;
    }
    for (failure, part, quantity) in [("bearing", "SKF-6205", 4), ("electrical", "MOTOR-7", 2)] {
        post_ok(
            &app,
            "/api/v1/procurement/boms",
            &supervisor,
            json!({"machine_type": "hydraulic_press", "failure_type": failure,
                   "part": part, "quantity": quantity}),
        )
        .await;
    }
    post_ok(
        &app,
        "/api/v1/procurement/stock",
        &supervisor,
        json!({"site": "plant-a", "part": "SKF-6205", "on_hand": 1}),
    )
    .await;
    let offers = app
        .get("/api/v1/procurement/offers?part=MOTOR-7", Some(&viewer))
        .await;
    assert_eq!(offers.body["offers"].as_array().unwrap().len(), 3);

    // A bearing repair: one bearing in stock, three ordered, placed at once (three quotes,
    // under the gate's limit).
    let bearing = ticket_orders(
        &app,
        &viewer,
        &operator,
        json!({"machine": "press-01", "title": "Bearing noise", "failure_type": "bearing",
               "priority": "medium"}),
    )
    .await;
    assert_eq!(bearing.len(), 1);
    assert_eq!(bearing[0]["status"], "placed");
    assert_eq!(bearing[0]["quantity"], 3);
    assert_eq!(bearing[0]["supplier"], "cogs");
    assert_eq!(bearing[0]["quotes"].as_array().unwrap().len(), 3);
    let stock = app
        .get("/api/v1/procurement/stock?site=plant-a", Some(&viewer))
        .await;
    assert_eq!(stock.body["stock"][0]["reserved"], 1);
    assert_eq!(stock.body["stock"][0]["available"], 0);

    // A motor: over the gate's 5,000.00, so it waits for a supervisor.
    let motor = ticket_orders(
        &app,
        &viewer,
        &operator,
        json!({"machine": "press-01", "title": "Motor burnt", "failure_type": "electrical",
               "priority": "high"}),
    )
    .await;
    assert_eq!(motor.len(), 1);
    let order = &motor[0];
    assert_eq!(order["status"], "awaiting_approval");
    assert_eq!(order["amount_minor"], 579_500);
    let order_path = format!(
        "/api/v1/procurement/orders/{}",
        order["id"].as_str().unwrap()
    );
    let one = app.get(&order_path, Some(&viewer)).await;
    assert_eq!(one.status, StatusCode::OK, "{}", one.body);
    assert_eq!(one.body["quotes"][0]["supplier"], "cogs");
    let approval = format!(
        "/api/v1/approvals/{}/approve",
        order["approval"].as_str().unwrap()
    );
    let refused = app.post(&approval, Some(&operator), json!({})).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(
        app.get(&order_path, Some(&viewer)).await.body["status"],
        "awaiting_approval"
    );
    let approved = app.post(&approval, Some(&supervisor), json!({})).await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    let placed = app.get(&order_path, Some(&viewer)).await;
    assert_eq!(placed.body["status"], "placed", "{}", placed.body);

    let savings = app.get("/api/v1/procurement/savings", Some(&viewer)).await;
    assert_eq!(savings.status, StatusCode::OK, "{}", savings.body);
    // (10_500 − 9_660) × 3 + (305_000 − 289_750) × 2.
    assert_eq!(savings.body["total"][0]["savings_minor"], 2_520 + 30_500);
    assert_eq!(savings.body["sites"][0]["site"], "plant-a");

    // Receiving is the supervisors', once; the parts go into stock.
    let receive = format!("{order_path}/receive");
    let refused = app.post(&receive, Some(&operator), json!({})).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let received = app.post(&receive, Some(&supervisor), json!({})).await;
    assert_eq!(received.status, StatusCode::OK, "{}", received.body);
    assert_eq!(received.body["status"], "received");
    let twice = app.post(&receive, Some(&supervisor), json!({})).await;
    assert_eq!(twice.status, StatusCode::CONFLICT, "{}", twice.body);
    assert_eq!(twice.code(), "order_transition_invalid");
    let stock = app
        .get("/api/v1/procurement/stock?site=plant-a", Some(&viewer))
        .await;
    let motors = stock.body["stock"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["part"] == "MOTOR-7")
        .unwrap()
        .clone();
    assert_eq!(motors["on_hand"], 2);
    let bad = app
        .get("/api/v1/procurement/orders?status=lost", Some(&viewer))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    app.finish().await;
}

#[tokio::test]
async fn procurement_orders_parts_and_a_supervisor_approves_on_sqlite() {
    procurement_on(TestApp::new().await).await;
}

#[tokio::test]
async fn procurement_orders_parts_and_a_supervisor_approves_on_postgres() {
    procurement_on(TestApp::postgres().await).await;
}

/// The demo's seed loads into a real store, twice without change, and keeps counts the plant
/// changed.
#[tokio::test]
async fn the_demo_catalogue_seeds_idempotently() {
    let app = TestApp::new().await;
    let supervisor = app.token_for("sam", Role::Supervisor).await;
    fb_server::demo_procurement::seed(&app.state.procurement)
        .await
        .unwrap();
    post_ok(
        &app,
        "/api/v1/procurement/stock",
        &supervisor,
        json!({"site": "demo-plant", "part": "BRG-6205", "on_hand": 40, "reorder_point": 4,
               "reorder_quantity": 10}),
    )
    .await;
    fb_server::demo_procurement::seed(&app.state.procurement)
        .await
        .unwrap();
    let parts = app
        .get("/api/v1/procurement/parts", Some(&supervisor))
        .await;
    assert_eq!(parts.body["parts"].as_array().unwrap().len(), 8);
    let boms = app
        .get(
            "/api/v1/procurement/boms?machine_type=pump",
            Some(&supervisor),
        )
        .await;
    assert_eq!(boms.body["lines"].as_array().unwrap().len(), 8);
    let stock = app
        .get(
            "/api/v1/procurement/stock?site=demo-plant",
            Some(&supervisor),
        )
        .await;
    let bearings = stock.body["stock"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["part"] == "BRG-6205")
        .unwrap()
        .clone();
    assert_eq!(bearings["on_hand"], 40, "a restart keeps the plant's count");
    app.finish().await;
}
