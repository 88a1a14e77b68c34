//! Energy over the real API, store and broker: idle machines in a peak window get a standby
//! recommendation with its savings; a Supervisor accepts it and the command reaches the
//! machine's `cmd` topic on Mosquitto (127.0.0.1:1883, a topic prefix per run) through the
//! command seam, wired here as the gate will be; the energy report integrates the readings.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use fb_core::identity::Role;
use fb_mqtt::{CommandOptions, CommandPublisher};
use fb_server::wire;

use crate::support::TestApp;

/// A guard against hanging, not a timed assertion.
const PATIENCE: Duration = Duration::from_secs(30);

fn machine(id: &str, site: &str) -> Value {
    json!({
        "id": id, "name": "Press", "machine_type": "hydraulic_press",
        "location": {"site": site}, "status": "running",
        "sensors": [{"key": "power", "kind": "power", "unit": "kW",
                     "physical_min": 0, "physical_max": 500}]
    })
}

fn stamp(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

async fn idle_machines_get_standby_and_the_command_reaches_the_machine_on(app: TestApp) {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let site = format!("plant-{}", &run[run.len() - 8..]);
    let admin = app.admin_token().await;
    let created = app
        .post("/api/v1/machines", Some(&admin), machine("press-01", &site))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);

    // Ten minutes at 1.5 kW, one reading a minute with explicit timestamps up to now.
    let now = OffsetDateTime::now_utc();
    let readings: Vec<Value> = (0..10)
        .map(|i| {
            json!({"machine": "press-01", "sensor": "power",
                   "ts": stamp(now - time::Duration::seconds(60 * i + 5)), "value": 1.5})
        })
        .collect();
    let ingested = app
        .post("/api/v1/readings", Some(&admin), json!(readings))
        .await;
    assert_eq!(ingested.body["accepted"], 10, "{}", ingested.body);

    // The generator's round (the server runs it every energy.recommendations.every_secs).
    let created = app.state.energy.generate().await.unwrap();
    assert_eq!(created.len(), 1, "{created:?}");
    let viewer = app.token_for("vera", Role::Viewer).await;
    let listed = app
        .get(
            &format!("/api/v1/energy/recommendations?status=proposed&site={site}"),
            Some(&viewer),
        )
        .await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let recs = listed.body["recommendations"].as_array().unwrap();
    assert_eq!(recs.len(), 1, "{}", listed.body);
    let rec = &recs[0];
    assert_eq!(rec["action"], "standby");
    assert_eq!(rec["machine"], "press-01");
    // (1.5 − 0.2 standby) kW × 1 h at the always-peak 0.30, CO2 at 0.5 kg/kWh.
    let kwh = rec["expected_kwh_saved"].as_f64().unwrap();
    assert!((kwh - 1.3).abs() < 1e-9, "{rec}");
    assert!(
        (rec["expected_cost_saved"].as_f64().unwrap() - 0.39).abs() < 1e-9,
        "{rec}"
    );
    assert!(
        (rec["expected_co2_kg_saved"].as_f64().unwrap() - 0.65).abs() < 1e-9,
        "{rec}"
    );
    let id = rec["id"].as_str().unwrap().to_owned();

    // The machine listens on its command topic; the server's command seam publishes there.
    let prefix = format!("fbtest-{run}");
    let topic = format!("{prefix}/{site}/press-01/cmd");
    let mut options = MqttOptions::new(format!("{prefix}-machine"), "127.0.0.1", 1883);
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = AsyncClient::new(options, 10);
    client.subscribe(&topic, QoS::AtLeastOnce).await.unwrap();
    tokio::time::timeout(PATIENCE, async {
        loop {
            if let Event::Incoming(Packet::SubAck(_)) = events.poll().await.unwrap() {
                break;
            }
        }
    })
    .await
    .expect("the subscription confirmed");
    let publisher = Arc::new(
        CommandPublisher::start(&CommandOptions {
            host: "127.0.0.1".into(),
            port: 1883,
            client_id: format!("{prefix}-server"),
            username: None,
            password: None,
            tls_ca_file: None,
            topic_prefix: prefix.clone(),
        })
        .unwrap(),
    );
    wire::install_command_gate(&app.state, publisher);

    // An Operator may not accept; a Supervisor may, once.
    let operator = app.token_for("otto", Role::Operator).await;
    let path = format!("/api/v1/energy/recommendations/{id}/accept");
    let refused = app.post(&path, Some(&operator), json!({})).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    let supervisor = app.token_for("sue", Role::Supervisor).await;
    let accepted = app.post(&path, Some(&supervisor), json!({})).await;
    assert_eq!(accepted.status, StatusCode::OK, "{}", accepted.body);
    assert_eq!(accepted.body["status"], "accepted");
    assert_eq!(accepted.body["command_state"], "sent");
    let again = app.post(&path, Some(&supervisor), json!({})).await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert_eq!(again.code(), "recommendation_not_open");

    let message = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = events.poll().await.unwrap() {
                return p;
            }
        }
    })
    .await
    .expect("the command on the machine's topic");
    assert_eq!(message.topic, topic);
    let command: Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(command["command"], "standby");
    assert_eq!(command["id"], accepted.body["command_id"]);
    assert_eq!(command["machine"], "press-01");
    assert!(
        command["reason"].as_str().unwrap().contains("idle"),
        "{command}"
    );
    assert!(command["issued_at"].as_str().is_some());

    // The report: ten minute buckets at 1.5 kW = 0.25 kWh.
    let from = stamp(now - time::Duration::minutes(30));
    let to = stamp(now + time::Duration::minutes(1));
    let report = app
        .get(
            &format!("/api/v1/energy?site={site}&from={from}&to={to}&bucket=minute"),
            Some(&viewer),
        )
        .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    let site_kwh = report.body["sites"][0]["kwh"].as_f64().unwrap();
    assert!((site_kwh - 0.25).abs() < 1e-9, "{}", report.body);
    assert!((report.body["machines"][0]["co2_kg"].as_f64().unwrap() - 0.125).abs() < 1e-9);
    let bad = app
        .get(
            &format!("/api/v1/energy?from={from}&to={to}&bucket=day"),
            Some(&viewer),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert_eq!(bad.body["error"]["details"][0]["field"], "bucket");
    let audit = app
        .get(
            "/api/v1/audit?action=energy_recommendation.accept",
            Some(&admin),
        )
        .await;
    assert_eq!(audit.status, StatusCode::OK, "{}", audit.body);
    let records = audit.body["records"].as_array().unwrap();
    let outcomes: Vec<&str> = records
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["denied", "success", "failure"], "{}", audit.body);
    app.finish().await;
}

fn env(mut extra: Vec<(String, String)>) -> Vec<(String, String)> {
    extra.extend([
        (
            "FB__ENERGY__TARIFF__WINDOWS".to_owned(),
            r#"[{name: "peak", peak: true, days: [], start: "00:00", end: "24:00", price_per_kwh: 0.30}]"#
                .to_owned(),
        ),
        (
            "FB__ENERGY__RECOMMENDATIONS__IDLE_MIN_MINUTES".to_owned(),
            "5".to_owned(),
        ),
    ]);
    extra
}

#[tokio::test]
async fn idle_machines_get_standby_and_the_command_reaches_the_machine_on_sqlite() {
    idle_machines_get_standby_and_the_command_reaches_the_machine_on(
        TestApp::with_env(env(Vec::new())).await,
    )
    .await;
}

#[tokio::test]
async fn idle_machines_get_standby_and_the_command_reaches_the_machine_on_postgres() {
    let schema = format!("fbtest_{}", uuid::Uuid::now_v7().simple());
    let app = TestApp::with_env(env(vec![
        ("FB__STORAGE__URL".into(), crate::support::pg_url()),
        ("FB__STORAGE__SCHEMA".into(), schema.clone()),
    ]))
    .await;
    idle_machines_get_standby_and_the_command_reaches_the_machine_on(app.with_pg_schema(schema))
        .await;
}
