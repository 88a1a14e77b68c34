//! The alerts API over a real store: listing with filters, the lifecycle with who, when and a
//! comment, the permissions of each step, and the events announced for each change.

use axum::http::StatusCode;
use serde_json::json;
use time::OffsetDateTime;

use fb_app::alerts::{AlertEvent, Observation};
use fb_core::alerts::{AlertKind, Condition};
use fb_core::detection::{Evidence, Severity};
use fb_core::identity::Role;
use fb_core::plant::MachineId;

use crate::support::TestApp;

fn condition(machine: &str, kind: AlertKind, severity: Severity) -> Condition {
    Condition {
        machine: MachineId(machine.into()),
        kind,
        severity,
        at: OffsetDateTime::now_utc(),
        title: format!("{} on {machine}", kind.as_str()),
        evidence: vec![Evidence::number("value", 97.5)],
        confirmed: false,
    }
}

async fn lifecycle_on(app: TestApp) {
    let mut events = app.state.alerts.subscribe();
    app.state
        .alerts
        .observe(vec![
            Observation::Holds(condition(
                "press-1",
                AlertKind::Overheating,
                Severity::Critical,
            )),
            Observation::Holds(condition(
                "press-2",
                AlertKind::Vibration,
                Severity::Critical,
            )),
        ])
        .await
        .unwrap();
    let AlertEvent::Opened(first) = events.recv().await.unwrap() else {
        panic!("opened first")
    };
    assert!(matches!(
        events.recv().await.unwrap(),
        AlertEvent::Opened(_)
    ));

    let viewer = app.token_for("vera", Role::Viewer).await;
    let operator = app.token_for("otto", Role::Operator).await;

    let list = app.get("/api/v1/alerts?status=active", Some(&viewer)).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.body);
    assert_eq!(list.body["alerts"].as_array().unwrap().len(), 2);
    assert_eq!(list.body["alerts"][0]["machine"], "press-2", "newest first");
    let filtered = app
        .get(
            "/api/v1/alerts?machine=press-1&severity=critical&kind=overheating",
            Some(&viewer),
        )
        .await;
    assert_eq!(filtered.body["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(filtered.body["alerts"][0]["evidence"][0]["value"], 97.5);
    for bad in ["status=gone", "severity=major", "kind=rust", "limit=0"] {
        let r = app
            .get(&format!("/api/v1/alerts?{bad}"), Some(&viewer))
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.code(), "invalid_parameter");
    }

    let path = format!("/api/v1/alerts/{}", first.id);
    assert_eq!(app.get(&path, Some(&viewer)).await.body["status"], "open");
    // A viewer may look but not act.
    let refused = app
        .post(&format!("{path}/acknowledge"), Some(&viewer), json!({}))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);

    let acked = app
        .post(
            &format!("{path}/acknowledge"),
            Some(&operator),
            json!({"comment": "  checking the cooling loop  "}),
        )
        .await;
    assert_eq!(acked.status, StatusCode::OK, "{}", acked.body);
    assert_eq!(acked.body["status"], "acknowledged");
    assert_eq!(acked.body["acknowledged"]["by"], "user:otto");
    assert_eq!(
        acked.body["acknowledged"]["comment"],
        "checking the cooling loop"
    );
    assert!(
        matches!(events.recv().await.unwrap(), AlertEvent::Acknowledged(a) if a.id == first.id)
    );
    let again = app
        .post(&format!("{path}/acknowledge"), Some(&operator), json!({}))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "alert_transition_invalid");

    // Resolve with no body at all, as `curl -X POST` sends.
    let request = axum::http::Request::builder()
        .method("POST")
        .uri(format!("{path}/resolve"))
        .header("authorization", format!("Bearer {operator}"))
        .body(axum::body::Body::empty())
        .unwrap();
    let resolved = app.request(request).await;
    assert_eq!(resolved.status, StatusCode::OK, "{}", resolved.body);
    assert_eq!(resolved.body["status"], "resolved");
    assert_eq!(resolved.body["resolved"]["by"], "user:otto");
    assert!(matches!(events.recv().await.unwrap(), AlertEvent::Resolved(a) if a.id == first.id));
    let twice = app
        .post(&format!("{path}/resolve"), Some(&operator), json!({}))
        .await;
    assert_eq!(twice.code(), "alert_transition_invalid");

    // The condition holding again after a person resolved it opens a new alert.
    app.state
        .alerts
        .observe(vec![Observation::Holds(condition(
            "press-1",
            AlertKind::Overheating,
            Severity::Critical,
        ))])
        .await
        .unwrap();
    let AlertEvent::Opened(next) = events.recv().await.unwrap() else {
        panic!("a new alert")
    };
    assert_ne!(next.id, first.id);

    let missing = app
        .get(
            &format!("/api/v1/alerts/{}", uuid::Uuid::now_v7()),
            Some(&viewer),
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "alert_not_found");
    app.finish().await;
}

#[tokio::test]
async fn alerts_go_through_their_lifecycle_on_sqlite() {
    lifecycle_on(TestApp::new().await).await;
}

#[tokio::test]
async fn alerts_go_through_their_lifecycle_on_postgres() {
    lifecycle_on(TestApp::postgres().await).await;
}
