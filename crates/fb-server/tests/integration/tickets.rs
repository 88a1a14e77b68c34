//! Maintenance tickets over the real API and store: critical alerts from posted readings open
//! exactly one ticket per machine and failure type, later critical alerts of the same failure
//! join it; people work tickets through their lifecycle as their roles and sites allow; every
//! change is in the audit log; machines' reliability comes from their tickets.

use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use fb_app::maintenance::TicketEvent;
use fb_core::identity::{Role, SiteScope};
use fb_core::maintenance::FailureType;
use fb_server::wire;

use crate::support::TestApp;

/// How long a test waits for what the server does in the background before it gives up (a
/// guard against hanging, not a timed assertion).
const PATIENCE: Duration = Duration::from_secs(60);

fn press(id: &str, site: &str) -> Value {
    json!({
        "id": id, "name": "Press", "machine_type": "hydraulic_press", "machine_class": "class2",
        "location": {"site": site, "area": "stamping", "line": "line-1"},
        "sensors": [{"key": "temperature", "kind": "temperature", "unit": "°C",
                     "physical_min": -40, "physical_max": 250, "warning_high": 80, "critical_high": 95}]
    })
}

fn reading(machine: &str, seconds_ago: i64, value: f64) -> Value {
    let ts = (OffsetDateTime::now_utc() - time::Duration::seconds(seconds_ago))
        .format(&Rfc3339)
        .unwrap();
    json!({"machine": machine, "sensor": "temperature", "ts": ts, "value": value})
}

/// The next overheating ticket event of `machine`.
async fn next_overheating(
    events: &mut tokio::sync::broadcast::Receiver<TicketEvent>,
    machine: &str,
) -> TicketEvent {
    let wanted = async {
        loop {
            let event = events.recv().await.unwrap();
            let t = event.ticket();
            if t.machine.0 == machine && t.failure_type == FailureType::Overheating {
                return event;
            }
        }
    };
    tokio::time::timeout(PATIENCE, wanted)
        .await
        .expect("a ticket event within the patience")
}

async fn critical_alerts_open_one_ticket_on(app: TestApp) {
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tickets = app.state.maintenance.subscribe();
    let auto = wire::spawn_auto_tickets(&app.storage, &app.state, stopped.clone());
    let detection =
        wire::spawn_detection(&app.settings, &app.storage, &app.state, stopped).unwrap();
    let admin = app.admin_token().await;
    let created = app
        .post(
            "/api/v1/machines",
            Some(&admin),
            press("press-01", "plant-a"),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);

    // Two readings over the critical limit: a critical overheating alert, then its ticket.
    let hot = json!([reading("press-01", 2, 120.0), reading("press-01", 1, 121.5)]);
    let ingested = app.post("/api/v1/readings", Some(&admin), hot).await;
    assert_eq!(ingested.body["accepted"], 2, "{}", ingested.body);
    let TicketEvent::Opened(ticket) = next_overheating(&mut tickets, "press-01").await else {
        panic!("the first event of the failure opens its ticket")
    };
    assert_eq!(ticket.reporter, "system");
    assert_eq!(ticket.site, "plant-a");
    assert_eq!(ticket.alerts.len(), 1);
    let first_alert = ticket.alerts[0];

    let viewer = app.token_for("vera", Role::Viewer).await;
    let listed = app
        .get(
            "/api/v1/tickets?machine=press-01&status=active",
            Some(&viewer),
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let active = listed.body["tickets"].as_array().unwrap();
    let overheating: Vec<&Value> = active
        .iter()
        .filter(|t| t["failure_type"] == "overheating")
        .collect();
    assert_eq!(overheating.len(), 1, "exactly one ticket: {}", listed.body);
    assert_eq!(overheating[0]["priority"], "critical");
    assert_eq!(overheating[0]["reporter"], "system");
    assert_eq!(overheating[0]["alerts"], json!([first_alert.0.to_string()]));
    assert!(
        overheating[0]["steps"].as_array().unwrap().len() >= 4,
        "the template's steps"
    );

    // Someone resolves the alert; the press overheats again: a new critical alert, which joins
    // the ticket that is still open instead of opening another.
    let operator = app.token_for("otto", Role::Operator).await;
    let resolved = app
        .post(
            &format!("/api/v1/alerts/{first_alert}/resolve"),
            Some(&operator),
            json!({"comment": "cooling fan restarted"}),
        )
        .await;
    assert_eq!(resolved.status, StatusCode::OK, "{}", resolved.body);
    let hot_again = json!([reading("press-01", 1, 125.0), reading("press-01", 0, 126.0)]);
    let ingested = app.post("/api/v1/readings", Some(&admin), hot_again).await;
    assert_eq!(ingested.body["accepted"], 2, "{}", ingested.body);
    let TicketEvent::AlertLinked {
        ticket: joined,
        alert,
    } = next_overheating(&mut tickets, "press-01").await
    else {
        panic!("the second alert joins the open ticket")
    };
    assert_eq!(joined.id, ticket.id);
    assert_ne!(alert, first_alert);
    assert_eq!(joined.alerts, [first_alert, alert]);
    let listed = app
        .get(
            "/api/v1/tickets?machine=press-01&failure_type=overheating",
            Some(&viewer),
        )
        .await;
    assert_eq!(listed.body["tickets"].as_array().unwrap().len(), 1);

    // The automatic actions are in the audit log, by the system.
    let audit = app
        .get("/api/v1/audit?actor=system&limit=100", Some(&admin))
        .await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.body);
    let actions: Vec<&str> = audit.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert!(actions.contains(&"ticket.auto_open"), "{actions:?}");
    assert!(actions.contains(&"ticket.link_alert"), "{actions:?}");

    stop.send(true).unwrap();
    detection.await.unwrap();
    auto.await.unwrap();
    app.finish().await;
}

#[tokio::test]
async fn critical_alerts_from_readings_open_one_ticket_on_sqlite() {
    critical_alerts_open_one_ticket_on(TestApp::new().await).await;
}

#[tokio::test]
async fn critical_alerts_from_readings_open_one_ticket_on_postgres() {
    critical_alerts_open_one_ticket_on(TestApp::postgres().await).await;
}

async fn lifecycle_on(app: TestApp) {
    let admin = app.admin_token().await;
    for (id, site) in [("press-01", "plant-a"), ("press-02", "plant-b")] {
        let created = app
            .post("/api/v1/machines", Some(&admin), press(id, site))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    }
    let viewer = app.token_for("vera", Role::Viewer).await;
    let operator = app.token_for("otto", Role::Operator).await;
    let supervisor = app.token_for("sue", Role::Supervisor).await;

    let templates = app.get("/api/v1/tickets/templates", Some(&viewer)).await;
    assert_eq!(templates.status, StatusCode::OK);
    assert_eq!(templates.body["templates"].as_array().unwrap().len(), 7);
    assert_eq!(
        templates.body["templates"][0]["alert_kinds"],
        json!(["vibration"])
    );

    let new = json!({
        "machine": "press-01", "title": "Grinding noise from the main drive",
        "failure_type": "bearing", "priority": "high", "assignee": "otto",
        "cost_estimate_minor": 45000
    });
    // A viewer reads tickets but cannot write them.
    let refused = app
        .post("/api/v1/tickets", Some(&viewer), new.clone())
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.code(), "permission_denied");
    let created = app
        .post("/api/v1/tickets", Some(&operator), new.clone())
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let ticket = created.body.clone();
    assert_eq!(ticket["status"], "open");
    assert_eq!(ticket["reporter"], "user:otto");
    assert_eq!(ticket["site"], "plant-a");
    assert_eq!(ticket["assignee"], "otto");
    assert_eq!(ticket["version"], 1);
    assert_eq!(ticket["steps"][0]["done"], false);
    let path = format!("/api/v1/tickets/{}", ticket["id"].as_str().unwrap());
    assert_eq!(app.get(&path, Some(&viewer)).await.body["id"], ticket["id"]);
    let refused = app
        .post(&format!("{path}/start"), Some(&viewer), json!({}))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    // One active ticket per machine and failure type.
    let twice = app.post("/api/v1/tickets", Some(&operator), new).await;
    assert_eq!(twice.status, StatusCode::CONFLICT);
    assert_eq!(twice.code(), "ticket_already_open");
    assert!(
        twice.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(ticket["id"].as_str().unwrap())
    );

    // Bad input: 4xx with the field and a stable code.
    let bad = app
        .post(
            "/api/v1/tickets",
            Some(&operator),
            json!({"machine": "press-99", "title": " ", "failure_type": "bearing",
                   "cost_estimate_minor": -1}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.code(), "invalid_field");
    let fields: Vec<&str> = bad.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["title", "cost_estimate_minor", "machine"]);
    let unknown = app
        .post(
            "/api/v1/tickets",
            Some(&operator),
            json!({"machine": "press-01", "title": "x", "failure_type": "rust"}),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.code(), "invalid_json");
    for bad in [
        "status=broken",
        "priority=urgent",
        "failure_type=rust",
        "limit=0",
    ] {
        let r = app
            .get(&format!("/api/v1/tickets?{bad}"), Some(&viewer))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.code(), "invalid_parameter", "{bad}");
    }
    let beyond = app
        .patch(
            &path,
            Some(&operator),
            json!({"steps": [{"step": 99, "done": true}]}),
        )
        .await;
    assert_eq!(beyond.status, StatusCode::BAD_REQUEST);
    assert_eq!(beyond.body["error"]["details"][0]["field"], "steps[0].step");
    let not_allowed = app
        .patch(&path, Some(&operator), json!({"assignee": "vera"}))
        .await;
    assert_eq!(not_allowed.body["error"]["details"][0]["field"], "assignee");

    // The lifecycle: only what the table allows.
    let early = app
        .post(&format!("{path}/resolve"), Some(&operator), json!({}))
        .await;
    assert_eq!(early.status, StatusCode::CONFLICT);
    assert_eq!(early.code(), "ticket_transition_invalid");
    // Started with no body at all, as `curl -X POST` sends.
    let request = axum::http::Request::builder()
        .method("POST")
        .uri(format!("{path}/start"))
        .header("authorization", format!("Bearer {operator}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let started = app.request(request).await;
    assert_eq!(started.status, StatusCode::OK, "{}", started.body);
    assert_eq!(started.body["status"], "in_progress");
    let ticked = app
        .patch(
            &path,
            Some(&operator),
            json!({"steps": [{"step": 0, "done": true}, {"step": 1, "done": true}], "version": 2}),
        )
        .await;
    assert_eq!(ticked.status, StatusCode::OK, "{}", ticked.body);
    assert_eq!(ticked.body["steps"][1]["done_by"], "user:otto");
    assert_eq!(ticked.body["version"], 3);
    let stale = app
        .patch(
            &path,
            Some(&operator),
            json!({"priority": "low", "version": 2}),
        )
        .await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert_eq!(stale.code(), "ticket_version_conflict");
    let resolved = app
        .post(
            &format!("{path}/resolve"),
            Some(&operator),
            json!({"comment": "bearing replaced", "actual_cost_minor": 51230}),
        )
        .await;
    assert_eq!(resolved.status, StatusCode::OK, "{}", resolved.body);
    assert_eq!(resolved.body["status"], "resolved");
    assert_eq!(resolved.body["actual_cost_minor"], 51230);
    assert_eq!(resolved.body["history"][1]["comment"], "bearing replaced");

    // An operator cannot close; a supervisor signs the repair off; then it is final.
    let denied = app
        .post(&format!("{path}/close"), Some(&operator), json!({}))
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);
    assert_eq!(denied.code(), "permission_denied");
    let closed = app
        .post(
            &format!("{path}/close"),
            Some(&supervisor),
            json!({"comment": "ran a shift without noise"}),
        )
        .await;
    assert_eq!(closed.status, StatusCode::OK, "{}", closed.body);
    assert_eq!(closed.body["status"], "closed");
    let reopen = app
        .post(&format!("{path}/reopen"), Some(&operator), json!({}))
        .await;
    assert_eq!(reopen.code(), "ticket_transition_invalid");
    let edit = app
        .patch(&path, Some(&operator), json!({"title": "renamed"}))
        .await;
    assert_eq!(edit.status, StatusCode::CONFLICT);
    assert_eq!(edit.code(), "ticket_closed");

    // Reliability from the tickets: one failure, one repair.
    let reliability = app
        .get("/api/v1/machines/press-01/reliability", Some(&viewer))
        .await;
    assert_eq!(reliability.status, StatusCode::OK, "{}", reliability.body);
    assert_eq!(reliability.body["failures"], 1);
    assert_eq!(reliability.body["repairs"], 1);
    assert_eq!(reliability.body["unresolved"], 0);
    assert!(reliability.body["mttr_hours"].as_f64().unwrap() >= 0.0);
    assert!(reliability.body["mtbf_hours"].as_f64().unwrap() >= 0.0);
    let none = app
        .get(
            "/api/v1/machines/press-01/reliability?failure_type=flow",
            Some(&viewer),
        )
        .await;
    assert_eq!(none.body["failures"], 0);
    assert_eq!(none.body["mtbf_hours"], Value::Null);
    let backwards = app
        .get(
            "/api/v1/machines/press-01/reliability?from=2030-01-02T00:00:00Z&to=2030-01-01T00:00:00Z",
            Some(&viewer),
        )
        .await;
    assert_eq!(backwards.status, StatusCode::BAD_REQUEST);

    // A user of plant-b sees only plant-b's tickets and machines.
    let other = app
        .post(
            "/api/v1/tickets",
            Some(&operator),
            json!({"machine": "press-02", "title": "Oil on the floor", "failure_type": "pressure_leak"}),
        )
        .await;
    assert_eq!(other.status, StatusCode::CREATED, "{}", other.body);
    let scoped = app
        .token_for_sites(
            "bea",
            Role::Operator,
            SiteScope::named("sites", &["plant-b"]).unwrap(),
        )
        .await;
    let seen = app.get("/api/v1/tickets", Some(&scoped)).await;
    let ids: Vec<&Value> = seen.body["tickets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| &t["id"])
        .collect();
    assert_eq!(ids, [&other.body["id"]]);
    let narrowed = app.get("/api/v1/tickets?site=plant-a", Some(&scoped)).await;
    assert_eq!(narrowed.body["tickets"], json!([]));
    let hidden = app.get(&path, Some(&scoped)).await;
    assert_eq!(hidden.status, StatusCode::NOT_FOUND);
    assert_eq!(hidden.code(), "ticket_not_found");
    let hidden = app
        .post(&format!("{path}/reopen"), Some(&scoped), json!({}))
        .await;
    assert_eq!(hidden.code(), "ticket_not_found");
    let elsewhere = app
        .post(
            "/api/v1/tickets",
            Some(&scoped),
            json!({"machine": "press-01", "title": "x", "failure_type": "flow"}),
        )
        .await;
    assert_eq!(elsewhere.body["error"]["details"][0]["field"], "machine");
    let hidden = app
        .get("/api/v1/machines/press-01/reliability", Some(&scoped))
        .await;
    assert_eq!(hidden.code(), "machine_not_found");
    let all = app.get("/api/v1/tickets", Some(&viewer)).await;
    assert_eq!(all.body["tickets"].as_array().unwrap().len(), 2);

    // Every change is in the audit log with the ticket as its target.
    let audit = app
        .get("/api/v1/audit?action=ticket.close&limit=10", Some(&admin))
        .await;
    let records = audit.body["records"].as_array().unwrap();
    let outcomes: Vec<(&str, &str)> = records
        .iter()
        .map(|r| (r["actor"].as_str().unwrap(), r["outcome"].as_str().unwrap()))
        .collect();
    assert!(outcomes.contains(&("user:sue", "success")), "{outcomes:?}");
    assert!(outcomes.contains(&("user:otto", "denied")), "{outcomes:?}");
    let created = app
        .get("/api/v1/audit?action=ticket.create&limit=10", Some(&admin))
        .await;
    let targets: Vec<&str> = created.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "success")
        .map(|r| r["target"].as_str().unwrap())
        .collect();
    assert!(
        targets.contains(&format!("ticket:{}", ticket["id"].as_str().unwrap()).as_str()),
        "{targets:?}"
    );
    app.finish().await;
}

#[tokio::test]
async fn people_work_tickets_as_their_roles_and_sites_allow_on_sqlite() {
    lifecycle_on(TestApp::new().await).await;
}

#[tokio::test]
async fn people_work_tickets_as_their_roles_and_sites_allow_on_postgres() {
    lifecycle_on(TestApp::postgres().await).await;
}

/// The running binary follows its alerts: critical readings posted over HTTP open a ticket
/// (the server's own wiring of the auto-ticket rule, not the test's).
#[test]
fn the_running_server_opens_tickets_for_critical_alerts() {
    use crate::e2e::{admin_token, agent, start_with};
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), &[]);
    let token = admin_token(&server);
    let post = |path: &str, body: Value| {
        let mut response = agent()
            .post(&format!("{}{path}", server.base))
            .header("authorization", &format!("Bearer {token}"))
            .send_json(&body)
            .unwrap();
        let status = response.status().as_u16();
        let body: Value = response.body_mut().read_json().unwrap();
        (status, body)
    };
    let (status, body) = post("/api/v1/machines", press("press-01", "plant-a"));
    assert_eq!(status, 201, "{body}");
    let hot = json!([reading("press-01", 2, 120.0), reading("press-01", 1, 121.5)]);
    let (status, body) = post("/api/v1/readings", hot);
    assert_eq!((status, &body["accepted"]), (200, &json!(2)), "{body}");
    let deadline = std::time::Instant::now() + PATIENCE;
    let ticket = loop {
        let mut response = agent()
            .get(&format!(
                "{}/api/v1/tickets?machine=press-01&failure_type=overheating",
                server.base
            ))
            .header("authorization", &format!("Bearer {token}"))
            .call()
            .unwrap();
        let body: Value = response.body_mut().read_json().unwrap();
        if let Some(ticket) = body["tickets"].as_array().unwrap().first() {
            break ticket.clone();
        }
        assert!(std::time::Instant::now() < deadline, "no ticket: {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(ticket["reporter"], "system");
    assert_eq!(ticket["status"], "open");
    assert_eq!(ticket["alerts"].as_array().unwrap().len(), 1);
    server.stop();
}
