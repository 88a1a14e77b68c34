//! The plant optimizer over the real API and store: readings in through ingest, OEE and the
//! other KPIs per machine, line and site out of `GET /api/v1/kpis`, refusals naming the field,
//! and a coordination directive landing in the decision log `GET /api/v1/decisions` lists.

use axum::http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use fb_core::alerts::{AlertId, AlertKind, AlertStatus};
use fb_core::detection::Severity;
use fb_core::events::{AlertEvent, Envelope, Event};
use fb_core::identity::{Role, SiteScope};
use fb_core::plant::{
    Location, Machine, MachineId, MachineStatus, SensorKey, SensorKind, SensorSpec,
};

use crate::support::TestApp;

fn stamp(t: OffsetDateTime) -> String {
    t.format(&Rfc3339).unwrap()
}

fn close(v: &Value, expected: f64) -> bool {
    v["value"]
        .as_f64()
        .is_some_and(|x| (x - expected).abs() < 1e-9)
}

/// One reading a minute, 30 s into each minute of `[from + first, from + first + n)` minutes.
fn series(
    machine: &str,
    sensor: &str,
    from: OffsetDateTime,
    first: i64,
    n: i64,
    value: f64,
) -> Vec<Value> {
    (first..first + n)
        .map(|i| {
            json!({"machine": machine, "sensor": sensor, "value": value,
                   "ts": stamp(from + time::Duration::minutes(i) + time::Duration::seconds(30))})
        })
        .collect()
}

async fn kpis_and_directives_on(app: TestApp) {
    let run = uuid::Uuid::now_v7().simple().to_string();
    let site = format!("plant-{}", &run[run.len() - 8..]);
    // Registered two hours ago (straight into the store: the API stamps "now"), so that the
    // last hour is all observed time.
    let now = OffsetDateTime::now_utc();
    for id in ["press-01", "press-02"] {
        let sensors = [
            ("output", SensorKind::Other, "units/h"),
            ("scrap", SensorKind::Other, "units/h"),
            ("power", SensorKind::Power, "kW"),
        ]
        .into_iter()
        .map(|(key, kind, unit)| SensorSpec {
            key: SensorKey(key.into()),
            kind,
            unit: unit.into(),
            physical_min: 0.0,
            physical_max: 1000.0,
            warning_low: None,
            warning_high: None,
            critical_low: None,
            critical_high: None,
        })
        .collect();
        let m = Machine {
            id: MachineId(id.into()),
            name: format!("Press {id}"),
            // A type the default settings rate at 240 units an hour.
            machine_type: "press".into(),
            machine_class: None,
            location: Location {
                site: site.clone(),
                area: Some("stamping".into()),
                line: Some("line-1".into()),
                cell: None,
            },
            status: MachineStatus::Running,
            active: true,
            sensors,
            last_maintenance: None,
            next_maintenance: None,
            health_score: Some(90.0),
            failure_probability: None,
            rul_hours: None,
            created_at: now - time::Duration::hours(2),
            updated_at: now - time::Duration::hours(2),
        };
        app.storage.machines.insert_machine(&m).await.unwrap();
    }
    // The last whole hour: press-01 at the press's ideal 240/h with 1 % scrap and 20 kW;
    // press-02 at half speed for the first half hour, then silent (down).
    let to = now
        .replace_second(0)
        .unwrap()
        .replace_nanosecond(0)
        .unwrap();
    let from = to - time::Duration::hours(1);
    let mut readings = series("press-01", "output", from, 0, 60, 240.0);
    readings.extend(series("press-01", "scrap", from, 0, 60, 2.4));
    readings.extend(series("press-01", "power", from, 0, 60, 20.0));
    readings.extend(series("press-02", "output", from, 0, 30, 120.0));
    readings.extend(series("press-02", "scrap", from, 0, 30, 0.0));
    let admin = app.admin_token().await;
    let ingested = app
        .post("/api/v1/readings", Some(&admin), json!(readings))
        .await;
    assert_eq!(ingested.body["accepted"], 240, "{}", ingested.body);

    let viewer = app.token_for("vera", Role::Viewer).await;
    let range = format!("from={}&to={}", stamp(from), stamp(to));
    let report = app
        .get(&format!("/api/v1/kpis?site={site}&{range}"), Some(&viewer))
        .await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.body);
    let machines = report.body["machines"].as_array().unwrap();
    assert_eq!(machines.len(), 2, "{}", report.body);
    let p1 = &machines[0];
    assert_eq!(p1["machine"], "press-01");
    assert_eq!(p1["run_time_source"], "output");
    assert!(close(&p1["availability"], 1.0), "{p1}");
    assert!(close(&p1["performance"], 1.0), "{p1}");
    assert!(close(&p1["quality"], 0.99), "{p1}");
    assert!(close(&p1["oee"], 0.99), "{p1}");
    assert!(close(&p1["energy_kwh"], 20.0), "{p1}");
    assert!(close(&p1["co2_kg"], 10.0), "{p1}");
    assert!(close(&p1["health"], 90.0), "{p1}");
    // Unknown figures say why, with a null value.
    assert!(p1["mtbf_hours"]["value"].is_null(), "{p1}");
    assert!(
        p1["mtbf_hours"]["unknown"]
            .as_str()
            .unwrap()
            .contains("no failure"),
        "{p1}"
    );
    let p2 = &machines[1];
    assert!(close(&p2["availability"], 0.5), "{p2}");
    assert!(close(&p2["performance"], 0.5), "{p2}");
    assert!(close(&p2["oee"], 0.25), "{p2}");
    assert!(close(&p2["downtime_hours"], 0.5), "{p2}");

    // The line and the site: fully productive time over planned time, (59.4 + 15) / 120 min.
    let site_kpis = &report.body["sites"][0];
    assert_eq!(site_kpis["site"], site.as_str());
    assert!(close(&site_kpis["oee"], 74.4 / 120.0), "{site_kpis}");
    // The server wires procurement's ledger: savings are known (none placed here).
    assert!(
        site_kpis["procurement_savings"]["unknown"].is_null(),
        "{site_kpis}"
    );
    let lines = app
        .get(
            &format!("/api/v1/kpis/lines?site={site}&{range}"),
            Some(&viewer),
        )
        .await;
    assert_eq!(lines.status, StatusCode::OK, "{}", lines.body);
    let line = &lines.body["lines"][0];
    assert_eq!(
        (line["line"].as_str(), line["machines"].as_u64()),
        (Some("line-1"), Some(2))
    );
    assert!(close(&line["oee"], 74.4 / 120.0), "{line}");
    assert!(close(&line["availability"], 0.75), "{line}");

    // Refusals name the field; other sites are not the caller's.
    let backwards = app
        .get(
            &format!("/api/v1/kpis?from={}&to={}", stamp(to), stamp(from)),
            Some(&viewer),
        )
        .await;
    assert_eq!(
        backwards.status,
        StatusCode::BAD_REQUEST,
        "{}",
        backwards.body
    );
    assert_eq!(backwards.body["error"]["details"][0]["field"], "to");
    let missing = app
        .get(&format!("/api/v1/kpis?to={}", stamp(to)), Some(&viewer))
        .await;
    assert_eq!(missing.status, StatusCode::BAD_REQUEST, "{}", missing.body);
    assert_eq!(missing.body["error"]["details"][0]["field"], "from");
    let elsewhere = app
        .token_for_sites(
            "otis",
            Role::Viewer,
            SiteScope::Sites(["plant-elsewhere".to_owned()].into()),
        )
        .await;
    let refused = app
        .get(
            &format!("/api/v1/kpis?site={site}&{range}"),
            Some(&elsewhere),
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_eq!(refused.code(), "site_out_of_scope");
    let anonymous = app.get(&format!("/api/v1/kpis?{range}"), None).await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);

    // A critical alert on press-01: the agent increases its monitoring once, and the decision
    // log lists the directive.
    let opened = OffsetDateTime::now_utc();
    let envelope = Envelope::new(
        "alerts",
        Some(&site),
        opened,
        Event::AlertOpened(AlertEvent {
            alert: AlertId(uuid::Uuid::now_v7()),
            machine: MachineId("press-01".into()),
            kind: AlertKind::Overheating,
            severity: Severity::Critical,
            status: AlertStatus::Open,
            title: "Overheating".into(),
            evidence: Vec::new(),
            opened_at: opened,
            escalation_level: 0,
            acknowledged: None,
            resolved: None,
            version: 1,
        }),
    );
    let optimizer = &app.state.optimizer;
    let issued = optimizer.handle(&envelope).await.unwrap();
    assert_eq!(issued.len(), 1);
    assert!(optimizer.handle(&envelope).await.unwrap().is_empty());
    let press = MachineId("press-01".into());
    assert_eq!(
        optimizer
            .sensitivity()
            .factor(&press, OffsetDateTime::now_utc()),
        0.5
    );
    let decisions = app
        .get("/api/v1/decisions?agent=optimizer", Some(&viewer))
        .await;
    assert_eq!(decisions.status, StatusCode::OK, "{}", decisions.body);
    let listed = decisions.body["decisions"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{}", decisions.body);
    assert_eq!(listed[0]["agent"], "optimizer");
    assert_eq!(listed[0]["action"], "increase_monitoring");
    assert_eq!(listed[0]["machine"], "press-01");
    app.finish().await;
}

#[tokio::test]
async fn kpis_and_directives_on_sqlite() {
    kpis_and_directives_on(TestApp::new().await).await;
}

#[tokio::test]
async fn kpis_and_directives_on_postgres() {
    kpis_and_directives_on(TestApp::postgres().await).await;
}
