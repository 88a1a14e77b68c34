//! Confidence gates over the real API and store: an agent's purchase order held at its gate
//! waits in the approval queue; an operator cannot approve it (403, the item stays pending); a
//! supervisor can, which runs the action once; the audit log holds both attempts; a viewer reads
//! the decision log.

use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use serde_json::json;

use fb_app::gates::{GatedExecutor, Submission, Submitted};
use fb_core::gates::{Action, ActionKind, ApprovalId};
use fb_core::identity::Role;
use fb_core::plant::MachineId;

use crate::support::TestApp;

/// Records the orders it is asked to place.
#[derive(Default)]
struct Recorder(Mutex<Vec<ApprovalId>>);

#[async_trait::async_trait]
impl GatedExecutor for Recorder {
    async fn execute(&self, item: ApprovalId, _action: &Action) -> Result<String, String> {
        self.0.lock().unwrap().push(item);
        Ok("order placed with Acme".to_owned())
    }
}

fn order() -> Submission {
    Submission {
        action: Action {
            kind: ActionKind::PurchaseOrder,
            site: "plant-a".to_owned(),
            machine: Some(MachineId("press-01".to_owned())),
            summary: "Order 4 bearings SKF-6205 from Acme".to_owned(),
            payload: r#"{"part":"SKF-6205","quantity":4,"supplier":"acme"}"#.to_owned(),
            confidence: 0.62,
            amount_minor: Some(41_200),
            command: None,
            requested_by: "procurement".to_owned(),
        },
        inputs: r#"{"stock":0,"reorder_point":2}"#.to_owned(),
        reason: "bearing wear on press-01, none in stock".to_owned(),
        ticket: None,
        alert: None,
    }
}

async fn held_order_is_approved_by_a_supervisor_only_on(app: TestApp) {
    let recorder = Arc::new(Recorder::default());
    app.state
        .gates
        .register_executor(ActionKind::PurchaseOrder, recorder.clone());
    let Submitted::Held { item, .. } = app.state.gates.submit(order()).await.unwrap() else {
        panic!("an order below the threshold is held");
    };
    let path = format!("/api/v1/approvals/{}", item.id);
    let admin = app.admin_token().await;
    let operator = app.token_for("otto", Role::Operator).await;
    let supervisor = app.token_for("sam", Role::Supervisor).await;
    let viewer = app.token_for("vera", Role::Viewer).await;

    // The queue, as anyone who reads the plant sees it.
    let queue = app
        .get(
            "/api/v1/approvals?status=pending&kind=purchase_order",
            Some(&viewer),
        )
        .await;
    assert_eq!(queue.status, StatusCode::OK, "{}", queue.body);
    assert_eq!(queue.body["items"][0]["id"], item.id.to_string());
    assert_eq!(
        queue.body["items"][0]["reasons"][0],
        "low_confidence: 0.62 < 0.80"
    );
    assert_eq!(queue.body["items"][0]["payload"]["quantity"], 4);
    let bad = app
        .get("/api/v1/approvals?status=maybe", Some(&viewer))
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert!(bad.body.to_string().contains("status"), "{}", bad.body);

    // An operator cannot approve: 403, and the item stays pending.
    let refused = app
        .post(&format!("{path}/approve"), Some(&operator), json!({}))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let still = app.get(&path, Some(&operator)).await;
    assert_eq!(still.status, StatusCode::OK, "{}", still.body);
    assert_eq!(still.body["status"], "pending");
    assert!(recorder.0.lock().unwrap().is_empty());

    // A rejection needs a reason.
    let no_reason = app
        .post(&format!("{path}/reject"), Some(&supervisor), json!({}))
        .await;
    assert_eq!(
        no_reason.status,
        StatusCode::BAD_REQUEST,
        "{}",
        no_reason.body
    );
    assert_eq!(no_reason.code(), "invalid_field");
    assert!(
        no_reason.body.to_string().contains("reason"),
        "{}",
        no_reason.body
    );

    // A supervisor approves: the order is placed, once.
    let approved = app
        .post(
            &format!("{path}/approve"),
            Some(&supervisor),
            json!({"reason": "supplier confirmed the price"}),
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    assert_eq!(approved.body["item"]["status"], "approved");
    assert_eq!(approved.body["item"]["answered_by"], "user:sam");
    assert_eq!(approved.body["execution"]["outcome"], "executed");
    assert_eq!(*recorder.0.lock().unwrap(), vec![item.id]);
    let again = app
        .post(&format!("{path}/approve"), Some(&supervisor), json!({}))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(again.code(), "approval_already_decided");
    assert_eq!(recorder.0.lock().unwrap().len(), 1);

    // The audit log holds the refused attempt and the approval.
    let audit = app
        .get(
            "/api/v1/audit?action=approval.approve&limit=50",
            Some(&admin),
        )
        .await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.body);
    let records: Vec<(String, String)> = audit.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["actor"].as_str().unwrap().to_owned(),
                r["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        records.contains(&("user:otto".to_owned(), "denied".to_owned())),
        "{records:?}"
    );
    // Once each: the service records answers, the guard only what it refuses itself.
    let count = |actor: &str, outcome: &str| {
        records
            .iter()
            .filter(|r| r.0 == actor && r.1 == outcome)
            .count()
    };
    assert_eq!(count("user:otto", "denied"), 1, "{records:?}");
    assert_eq!(count("user:sam", "success"), 1, "{records:?}");
    assert_eq!(
        count("user:sam", "failure"),
        1,
        "the second answer: {records:?}"
    );

    // A viewer reads the decision log: the hold, then the execution.
    let log = app
        .get("/api/v1/decisions?agent=procurement", Some(&viewer))
        .await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.body);
    let outcomes: Vec<&str> = log.body["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["executed", "held"]);
    assert_eq!(log.body["decisions"][1]["approval"], item.id.to_string());
    assert_eq!(log.body["decisions"][1]["inputs"]["stock"], 0);
    app.finish().await;
}

#[tokio::test]
async fn a_held_order_is_approved_by_a_supervisor_only_on_sqlite() {
    held_order_is_approved_by_a_supervisor_only_on(TestApp::new().await).await;
}

#[tokio::test]
async fn a_held_order_is_approved_by_a_supervisor_only_on_postgres() {
    held_order_is_approved_by_a_supervisor_only_on(TestApp::postgres().await).await;
}
