//! The machines registry over HTTP: who may do what, validation, partial updates.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use fb_core::identity::Role;

use crate::support::TestApp;

fn press(id: &str) -> Value {
    json!({
        "id": id,
        "name": "Press 1",
        "machine_type": "hydraulic_press",
        "machine_class": "class2",
        "location": {"site": "plant-a", "area": "stamping", "line": "line-1"},
        "sensors": [
            {"key": "temperature", "kind": "temperature", "unit": "°C", "physical_min": -40, "physical_max": 250,
             "warning_high": 80, "critical_high": 95},
            {"key": "vibration", "kind": "vibration", "unit": "mm/s", "physical_min": 0, "physical_max": 50,
             "warning_high": 4.5, "critical_high": 7.1}
        ],
        "next_maintenance": "2027-03-01T06:00:00Z"
    })
}

#[tokio::test]
async fn admins_create_and_everyone_reads() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let created = app
        .post("/api/v1/machines", Some(&admin), press("press-01"))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["location_path"], "plant-a/stamping/line-1");
    assert_eq!(created.body["status"], "running", "defaults to running");
    assert_eq!(created.body["active"], true);
    assert_eq!(created.body["health_score"], Value::Null);
    assert_eq!(created.body["sensors"][1]["critical_high"], 7.1);

    let viewer = app.token_for("vic", Role::Viewer).await;
    let one = app.get("/api/v1/machines/press-01", Some(&viewer)).await;
    assert_eq!(one.status, StatusCode::OK);
    assert_eq!(one.body["name"], "Press 1");
    let list = app.get("/api/v1/machines", Some(&viewer)).await;
    assert_eq!(list.body["machines"].as_array().unwrap().len(), 1);
    assert_eq!(
        app.post("/api/v1/machines", Some(&viewer), press("p2"))
            .await
            .status,
        StatusCode::FORBIDDEN
    );

    let again = app
        .post("/api/v1/machines", Some(&admin), press("press-01"))
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.code(), "machine_exists");
    let missing = app.get("/api/v1/machines/press-99", Some(&viewer)).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.code(), "machine_not_found");
    app.finish().await;
}

#[tokio::test]
async fn every_invalid_field_is_named() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let mut bad = press("bad/id");
    bad["location"] = json!({"site": "plant-a", "line": "line-1"});
    bad["sensors"][0]["physical_min"] = json!(300);
    bad["sensors"][1]["key"] = json!("temperature");
    let r = app.post("/api/v1/machines", Some(&admin), bad).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "invalid_field");
    let fields: Vec<&str> = r.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    for expected in [
        "id",
        "location.line",
        "sensors[0].physical_max",
        "sensors[1].key",
    ] {
        assert!(
            fields.contains(&expected),
            "{expected} missing from {fields:?}"
        );
    }
    let wrong_kind = app
        .post("/api/v1/machines", Some(&admin), {
            let mut m = press("ok-id");
            m["sensors"][0]["kind"] = json!("smell");
            m
        })
        .await;
    assert_eq!(wrong_kind.code(), "invalid_json");
    assert_eq!(
        wrong_kind.body["error"]["details"][0]["field"],
        "sensors[0].kind"
    );
    app.finish().await;
}

#[tokio::test]
async fn operators_edit_operations_but_not_identity() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    app.post("/api/v1/machines", Some(&admin), press("press-01"))
        .await;
    let operator = app.token_for("olaf", Role::Operator).await;

    let mut sensors = press("x")["sensors"].clone();
    sensors[0]["warning_high"] = json!(70);
    let r = app
        .call(
            Method::PATCH,
            "/api/v1/machines/press-01",
            Some(&operator),
            Some(json!({"status": "maintenance", "sensors": sensors, "next_maintenance": null})),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["status"], "maintenance");
    assert_eq!(r.body["sensors"][0]["warning_high"], 70.0);
    assert_eq!(r.body["next_maintenance"], Value::Null, "null clears");
    assert_eq!(r.body["name"], "Press 1", "absent fields stay");

    let moved = app
        .call(
            Method::PATCH,
            "/api/v1/machines/press-01",
            Some(&operator),
            Some(json!({"location": {"site": "plant-b"}})),
        )
        .await;
    assert_eq!(moved.status, StatusCode::FORBIDDEN);
    assert!(
        moved.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("plant.manage")
    );
    let by_admin = app
        .call(
            Method::PATCH,
            "/api/v1/machines/press-01",
            Some(&admin),
            Some(json!({"location": {"site": "plant-b"}, "machine_class": null})),
        )
        .await;
    assert_eq!(by_admin.body["location_path"], "plant-b");
    assert_eq!(by_admin.body["machine_class"], Value::Null);

    let invalid = app
        .call(Method::PATCH, "/api/v1/machines/press-01", Some(&operator), Some(json!({"sensors": [{"key": "t", "kind": "temperature", "unit": "K", "physical_min": 10, "physical_max": 5}]})))
        .await;
    assert_eq!(invalid.code(), "invalid_field");
    assert_eq!(
        app.get("/api/v1/machines/press-01", Some(&operator))
            .await
            .body["sensors"]
            .as_array()
            .unwrap()
            .len(),
        2,
        "a rejected patch changes nothing"
    );
    app.finish().await;
}

#[tokio::test]
async fn only_admins_delete() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    app.post("/api/v1/machines", Some(&admin), press("old-lathe"))
        .await;
    let supervisor = app.token_for("sue", Role::Supervisor).await;
    let refused = app
        .call(
            Method::DELETE,
            "/api/v1/machines/old-lathe",
            Some(&supervisor),
            None,
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let deleted = app
        .call(
            Method::DELETE,
            "/api/v1/machines/old-lathe",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let again = app
        .call(
            Method::DELETE,
            "/api/v1/machines/old-lathe",
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(again.code(), "machine_not_found");
    app.finish().await;
}
