//! Site scopes (D3) over the real router, on SQLite and PostgreSQL: two sites with machines,
//! readings, anomalies and alerts; callers limited to one site see and change only that site
//! (everything else answers like something that does not exist), grant nothing beyond it, and
//! nobody writes a field a body of theirs may not carry.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use time::{Duration, OffsetDateTime};

use fb_app::alerts::Observation;
use fb_core::alerts::{AlertKind, Condition};
use fb_core::detection::{Anomaly, AnomalyKind, DetectorKind, Evidence, Severity};
use fb_core::identity::{Role, SiteScope};
use fb_core::plant::MachineId;

use crate::support::{Response, TestApp};

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

pub(crate) fn machine(id: &str, site: &str) -> Value {
    json!({
        "id": id, "name": id, "machine_type": "press",
        "location": {"site": site},
        "sensors": [{"key": "temperature", "kind": "temperature", "unit": "C",
                     "physical_min": -40, "physical_max": 250}]
    })
}

pub(crate) fn reading(machine: &str, at: OffsetDateTime, value: f64) -> Value {
    json!({"machine": machine, "sensor": "temperature", "ts": rfc3339(at), "value": value})
}

pub(crate) fn north() -> SiteScope {
    SiteScope::named("sites", &["north"]).unwrap()
}

/// The `field` of every element of the array `list[key]`.
fn ids(list: &Value, key: &str, field: &str) -> Vec<String> {
    list[key]
        .as_array()
        .unwrap_or_else(|| panic!("no {key} in {list}"))
        .iter()
        .map(|m| m[field].as_str().unwrap().to_owned())
        .collect()
}

pub(crate) fn assert_code(r: &Response, status: StatusCode, code: &str) {
    assert_eq!((r.status, r.code()), (status, code), "{}", r.body);
}

/// Two sites: a press in each with a reading, an anomaly and an active alert. Returns the
/// admin's token and the alert ids (north, south).
pub(crate) async fn two_sites(app: &TestApp) -> (String, String, String) {
    let admin = app.admin_token().await;
    for (id, site) in [("north-press", "north"), ("south-press", "south")] {
        let r = app
            .post("/api/v1/machines", Some(&admin), machine(id, site))
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    let at = OffsetDateTime::now_utc() - Duration::minutes(10);
    let batch = json!([
        reading("north-press", at, 20.0),
        reading("south-press", at, 30.0)
    ]);
    let r = app.post("/api/v1/readings", Some(&admin), batch).await;
    assert_eq!(r.body["accepted"], 2, "{}", r.body);
    let anomalies: Vec<Anomaly> = ["north-press", "south-press"]
        .into_iter()
        .map(|m| Anomaly {
            id: uuid::Uuid::now_v7(),
            machine: MachineId(m.into()),
            sensor: None,
            kind: AnomalyKind::Overheating,
            detector: DetectorKind::Statistical,
            severity: Severity::Warning,
            at,
            score: 0.8,
            evidence: vec![Evidence::number("z", 6.0)],
        })
        .collect();
    app.storage
        .anomalies
        .insert_anomalies(&anomalies)
        .await
        .unwrap();
    let conditions = ["north-press", "south-press"]
        .into_iter()
        .map(|m| {
            Observation::Holds(Condition {
                machine: MachineId(m.into()),
                kind: AlertKind::Overheating,
                severity: Severity::Critical,
                at: OffsetDateTime::now_utc(),
                title: format!("overheating on {m}"),
                evidence: vec![Evidence::number("value", 97.5)],
                confirmed: false,
            })
        })
        .collect();
    app.state.alerts.observe(conditions).await.unwrap();
    let alerts = app.get("/api/v1/alerts", Some(&admin)).await;
    let alert_of = |machine: &str| {
        alerts.body["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["machine"] == machine)
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .unwrap()
    };
    let (north_alert, south_alert) = (alert_of("north-press"), alert_of("south-press"));
    (admin, north_alert, south_alert)
}

/// What a caller limited to the north site (a user or an API key, both operators) may and may
/// not do with the plant.
async fn north_only(app: &TestApp, token: &str, north_alert: &str, south_alert: &str) {
    let list = app.get("/api/v1/machines", Some(token)).await;
    assert_eq!(ids(&list.body, "machines", "id"), ["north-press"]);
    let window = {
        let from = rfc3339(OffsetDateTime::now_utc() - Duration::hours(1));
        let to = rfc3339(OffsetDateTime::now_utc());
        format!("from={from}&to={to}")
    };
    for path in [
        "/api/v1/machines/{m}".to_owned(),
        format!("/api/v1/machines/{{m}}/readings?{window}"),
        format!("/api/v1/machines/{{m}}/readings?{window}&bucket=auto"),
        "/api/v1/machines/{m}/latest".to_owned(),
        format!("/api/v1/machines/{{m}}/anomalies?{window}"),
    ] {
        let mine = app
            .get(&path.replace("{m}", "north-press"), Some(token))
            .await;
        assert_eq!(mine.status, StatusCode::OK, "{path}: {}", mine.body);
        let theirs = app
            .get(&path.replace("{m}", "south-press"), Some(token))
            .await;
        let nothing = app
            .get(&path.replace("{m}", "no-such-press"), Some(token))
            .await;
        assert_code(&theirs, StatusCode::NOT_FOUND, "machine_not_found");
        // Indistinguishable from a machine that does not exist, but for the id it names.
        assert_eq!(
            theirs.body["error"]["message"]
                .as_str()
                .unwrap()
                .replace("south-press", "X"),
            nothing.body["error"]["message"]
                .as_str()
                .unwrap()
                .replace("no-such-press", "X")
        );
    }
    let anomalies = app
        .get(
            &format!("/api/v1/machines/north-press/anomalies?{window}"),
            Some(token),
        )
        .await;
    assert_eq!(anomalies.body["anomalies"].as_array().unwrap().len(), 1);

    let patch = json!({"status": "maintenance"});
    let r = app
        .call(
            Method::PATCH,
            "/api/v1/machines/south-press",
            Some(token),
            Some(patch.clone()),
        )
        .await;
    assert_code(&r, StatusCode::NOT_FOUND, "machine_not_found");
    let r = app
        .call(
            Method::PATCH,
            "/api/v1/machines/north-press",
            Some(token),
            Some(patch),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // Ingest: the south reading is refused like an unknown machine's and never stored.
    let at = OffsetDateTime::now_utc() - Duration::minutes(5);
    let batch = json!([
        reading("north-press", at, 21.0),
        reading("south-press", at, 99.0)
    ]);
    let r = app.post("/api/v1/readings", Some(token), batch).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (r.body["accepted"].as_u64(), r.body["rejected"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(r.body["rejections"][0]["index"], 1);
    assert_eq!(r.body["rejections"][0]["code"], "unknown_machine");
    assert_eq!(
        r.body["rejections"][0]["reason"],
        "unknown machine 'south-press'"
    );
    let stored = app
        .storage
        .readings
        .latest_readings(&MachineId("south-press".into()))
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(
        stored[0].value, 30.0,
        "the out-of-scope reading was not stored"
    );
    // Dead letters may hold any site's readings: not for a caller limited to some sites.
    let r = app.get("/api/v1/dead-letters", Some(token)).await;
    assert_code(&r, StatusCode::FORBIDDEN, "site_out_of_scope");

    // Alerts: listed, read and changed only for the north machine.
    let list = app.get("/api/v1/alerts", Some(token)).await;
    assert_eq!(ids(&list.body, "alerts", "id"), [north_alert]);
    let limited = app.get("/api/v1/alerts?limit=1", Some(token)).await;
    assert_eq!(
        ids(&limited.body, "alerts", "id"),
        [north_alert],
        "the limit counts visible alerts"
    );
    let r = app
        .get(&format!("/api/v1/alerts/{south_alert}"), Some(token))
        .await;
    assert_code(&r, StatusCode::NOT_FOUND, "alert_not_found");
    for step in ["acknowledge", "resolve"] {
        let r = app
            .post(
                &format!("/api/v1/alerts/{south_alert}/{step}"),
                Some(token),
                json!({}),
            )
            .await;
        assert_code(&r, StatusCode::NOT_FOUND, "alert_not_found");
    }
    let r = app
        .get(&format!("/api/v1/alerts/{north_alert}"), Some(token))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

async fn scoped_callers_reach_only_their_sites(app: TestApp) {
    let (admin, north_alert, south_alert) = two_sites(&app).await;

    let nora = app.token_for_sites("nora", Role::Operator, north()).await;
    let me = app.get("/api/v1/auth/me", Some(&nora)).await;
    assert_eq!(me.body["sites"], json!(["north"]));
    north_only(&app, &nora, &north_alert, &south_alert).await;
    let r = app
        .post(
            &format!("/api/v1/alerts/{north_alert}/acknowledge"),
            Some(&nora),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // An API key limited to the north site, created over the API, likewise.
    let r = app
        .post(
            "/api/v1/api_keys",
            Some(&admin),
            json!({"name": "north gateway", "role": "operator", "sites": ["north"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["api_key"]["sites"], json!(["north"]));
    let key = r.body["key"].as_str().unwrap().to_owned();
    north_only(&app, &key, &north_alert, &south_alert).await;
    let r = app
        .post(
            &format!("/api/v1/alerts/{north_alert}/resolve"),
            Some(&key),
            json!({}),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);

    // The unscoped admin sees both sites, and so does a user created without sites by it.
    let list = app.get("/api/v1/machines", Some(&admin)).await;
    assert_eq!(
        ids(&list.body, "machines", "id"),
        ["north-press", "south-press"]
    );
    let r = app
        .post(
            "/api/v1/users",
            Some(&admin),
            json!({"username": "wanda", "role": "viewer"}),
        )
        .await;
    assert_eq!(r.body["user"]["sites"], "all", "{}", r.body);
    let alerts = app.get("/api/v1/alerts", Some(&admin)).await;
    assert_eq!(alerts.body["alerts"].as_array().unwrap().len(), 2);
    let r = app
        .get(&format!("/api/v1/alerts/{south_alert}"), Some(&admin))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = app.get("/api/v1/dead-letters", Some(&admin)).await;
    assert_eq!(r.body["dead_letters"].as_array().unwrap().len(), 2);

    app.finish().await;
}

#[tokio::test]
async fn scoped_callers_reach_only_their_sites_on_sqlite() {
    scoped_callers_reach_only_their_sites(TestApp::new().await).await;
}

#[tokio::test]
async fn scoped_callers_reach_only_their_sites_on_postgres() {
    scoped_callers_reach_only_their_sites(TestApp::postgres().await).await;
}

#[tokio::test]
async fn a_scoped_admin_manages_only_its_sites() {
    let app = TestApp::new().await;
    let (_, _, _) = two_sites(&app).await;
    let boss = app
        .token_for_sites("north-boss", Role::Admin, north())
        .await;

    let r = app
        .post(
            "/api/v1/machines",
            Some(&boss),
            machine("south-mill", "south"),
        )
        .await;
    assert_code(&r, StatusCode::FORBIDDEN, "site_out_of_scope");
    assert_eq!(r.body["error"]["details"][0]["field"], "location.site");
    let r = app
        .post(
            "/api/v1/machines",
            Some(&boss),
            machine("north-mill", "north"),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = app
        .call(
            Method::PATCH,
            "/api/v1/machines/north-mill",
            Some(&boss),
            Some(json!({"location": {"site": "south"}})),
        )
        .await;
    assert_code(&r, StatusCode::FORBIDDEN, "site_out_of_scope");
    assert_eq!(r.body["error"]["details"][0]["field"], "location.site");
    let r = app
        .call(
            Method::DELETE,
            "/api/v1/machines/south-press",
            Some(&boss),
            None,
        )
        .await;
    assert_code(&r, StatusCode::NOT_FOUND, "machine_not_found");
    assert!(
        app.storage
            .machines
            .machine(&MachineId("south-press".into()))
            .await
            .unwrap()
            .is_some()
    );
    let r = app
        .call(
            Method::DELETE,
            "/api/v1/machines/north-mill",
            Some(&boss),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);

    // Users and keys only within its sites; without sites, its own.
    for sites in [json!(["south"]), json!(["north", "south"]), json!("all")] {
        let r = app
            .post(
                "/api/v1/users",
                Some(&boss),
                json!({"username": "sam", "role": "viewer", "sites": sites}),
            )
            .await;
        assert_code(&r, StatusCode::FORBIDDEN, "site_out_of_scope");
        assert_eq!(r.body["error"]["details"][0]["field"], "sites");
        let r = app
            .post(
                "/api/v1/api_keys",
                Some(&boss),
                json!({"name": "k", "role": "viewer", "sites": sites}),
            )
            .await;
        assert_code(&r, StatusCode::FORBIDDEN, "site_out_of_scope");
    }
    let r = app
        .post(
            "/api/v1/users",
            Some(&boss),
            json!({"username": "nils", "role": "operator"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert_eq!(r.body["user"]["sites"], json!(["north"]));
    let r = app
        .post(
            "/api/v1/users",
            Some(&boss),
            json!({"username": "bad-site", "role": "viewer", "sites": ["ok", "a/b"]}),
        )
        .await;
    assert_code(&r, StatusCode::BAD_REQUEST, "invalid_field");
    assert_eq!(r.body["error"]["details"][0]["field"], "sites[1]");
    let r = app
        .post(
            "/api/v1/users",
            Some(&boss),
            json!({"username": "bad-all", "role": "viewer", "sites": "everything"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.body);
    let users = app.get("/api/v1/users", Some(&boss)).await;
    assert_eq!(
        ids(&users.body, "users", "username"),
        ["nils", "north-boss"]
    );
    app.finish().await;
}

#[tokio::test]
async fn user_access_changes_follow_the_rules() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let boss = app
        .token_for_sites("north-boss", Role::Admin, north())
        .await;
    app.token_for_sites("nora", Role::Operator, north()).await;
    app.token_for("olga", Role::Operator).await;
    let supervisor = app.token_for("sue", Role::Supervisor).await;
    let patch = |token: &str, user: &str, body: Value| {
        let (token, path) = (token.to_owned(), format!("/api/v1/users/{user}"));
        let app = &app;
        async move {
            app.call(Method::PATCH, &path, Some(&token), Some(body))
                .await
        }
    };

    let r = patch(&supervisor, "nora", json!({"role": "viewer"})).await;
    assert_code(&r, StatusCode::FORBIDDEN, "permission_denied");
    let r = patch(&boss, "north-boss", json!({"sites": ["north"]})).await;
    assert_code(&r, StatusCode::FORBIDDEN, "own_access_change");
    let r = patch(&admin, "admin", json!({"role": "admin"})).await;
    assert_code(&r, StatusCode::FORBIDDEN, "own_access_change");
    let r = patch(&boss, "nora", json!({"sites": ["north", "south"]})).await;
    assert_code(&r, StatusCode::FORBIDDEN, "site_out_of_scope");
    let r = patch(&boss, "nora", json!({"sites": "all"})).await;
    assert_code(&r, StatusCode::FORBIDDEN, "site_out_of_scope");
    let r = patch(&boss, "olga", json!({"role": "viewer"})).await;
    assert_code(&r, StatusCode::NOT_FOUND, "user_not_found");
    let r = patch(&boss, "nora", json!({"role": "viewer"})).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        (&r.body["role"], &r.body["sites"]),
        (&json!("viewer"), &json!(["north"]))
    );
    let r = patch(
        &admin,
        "nora",
        json!({"role": "operator", "sites": ["south"]}),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body["sites"], json!(["south"]));
    // The change applies to the next request of a session already open.
    let nora = app.login("nora", "nora-password-123").await;
    let r = patch(&admin, "nora", json!({"sites": ["north"]})).await;
    assert_eq!(r.status, StatusCode::OK);
    let me = app.get("/api/v1/auth/me", Some(&nora)).await;
    assert_eq!(me.body["sites"], json!(["north"]));

    // Two admins of all sites demoting each other at once: one stays. The store refuses the
    // second demotion (409 last_admin), unless the first one landed before the second caller
    // was authenticated, who then no longer reaches the other admin (404).
    let root = app.token_for("root", Role::Admin).await;
    let (a, b) = tokio::join!(
        patch(&admin, "root", json!({"sites": ["north"]})),
        patch(&root, "admin", json!({"sites": ["south"]}))
    );
    let mut outcomes = [
        (a.status, a.code().to_owned()),
        (b.status, b.code().to_owned()),
    ];
    outcomes.sort();
    assert_eq!(outcomes[0].0, StatusCode::OK, "{outcomes:?}");
    assert!(
        [
            (StatusCode::NOT_FOUND, "user_not_found".to_owned()),
            (StatusCode::CONFLICT, "last_admin".to_owned())
        ]
        .contains(&outcomes[1]),
        "{outcomes:?}"
    );
    let full_admins = app
        .storage
        .identities
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .filter(|u| u.role == Role::Admin && u.sites.is_all() && !u.disabled)
        .count();
    assert_eq!(full_admins, 1);
    app.finish().await;
}

#[tokio::test]
async fn no_body_carries_a_field_its_sender_may_not_write() {
    let app = TestApp::new().await;
    let (_, north_alert, _) = two_sites(&app).await;
    let viewer = app.token_for("vic", Role::Viewer).await;
    let operator = app.token_for("otto", Role::Operator).await;
    let smuggled = |mut body: Value| {
        body["role"] = json!("admin");
        body["sites"] = json!("all");
        body
    };
    let r = app
        .post(
            "/api/v1/auth/password",
            Some(&viewer),
            smuggled(json!({"current_password": "vic-password-123",
                            "new_password": "another-password-456"})),
        )
        .await;
    assert_code(&r, StatusCode::BAD_REQUEST, "invalid_json");
    let r = app
        .call(
            Method::PATCH,
            "/api/v1/machines/north-press",
            Some(&operator),
            Some(smuggled(json!({"status": "idle"}))),
        )
        .await;
    assert_code(&r, StatusCode::BAD_REQUEST, "invalid_json");
    let r = app
        .post(
            &format!("/api/v1/alerts/{north_alert}/acknowledge"),
            Some(&operator),
            smuggled(json!({"comment": "on it"})),
        )
        .await;
    assert_code(&r, StatusCode::BAD_REQUEST, "invalid_json");
    let r = app
        .call(
            Method::PATCH,
            "/api/v1/users/vic",
            Some(&viewer),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_code(&r, StatusCode::FORBIDDEN, "permission_denied");
    // Nothing changed: the viewer is still a viewer of all sites with the old password.
    let me = app.get("/api/v1/auth/me", Some(&viewer)).await;
    assert_eq!(
        (&me.body["role"], &me.body["sites"]),
        (&json!("viewer"), &json!("all"))
    );
    app.login("vic", "vic-password-123").await;
    app.finish().await;
}

#[tokio::test]
async fn the_command_line_creates_users_and_keys_with_sites() {
    let app = TestApp::new().await;
    let out = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();
    let added = app.cli(
        &[
            "user",
            "add",
            "sven",
            "--role",
            "operator",
            "--sites",
            "north, south",
        ],
        &[],
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert!(out(&added).contains("sites north,south"), "{}", out(&added));
    let listed = out(&app.cli(&["user", "list"], &[]));
    let sven = listed.lines().find(|l| l.contains("sven")).unwrap();
    assert!(sven.ends_with("north,south"), "{listed}");
    let admin = listed.lines().find(|l| l.contains("admin")).unwrap();
    assert!(admin.ends_with("all"), "{listed}");
    let stored = app
        .storage
        .identities
        .user_by_username("sven")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.sites,
        SiteScope::named("sites", &["north", "south"]).unwrap()
    );

    let key = app.cli(
        &[
            "apikey", "create", "--name", "gw", "--role", "operator", "--sites", "north",
        ],
        &[],
    );
    assert!(out(&key).contains("sites north,"), "{}", out(&key));
    let bad = app.cli(
        &[
            "apikey",
            "create",
            "--name",
            "gw2",
            "--role",
            "viewer",
            "--sites",
            "north,a/b",
        ],
        &[],
    );
    assert!(!bad.status.success());
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("--sites[1]"), "{stderr}");
    app.finish().await;
}

#[tokio::test]
async fn auto_registration_needs_the_site_of_new_machines() {
    let app = TestApp::with_env(vec![("FB__INGEST__AUTO_REGISTER".into(), "true".into())]).await;
    let (admin, _, _) = two_sites(&app).await;
    let nora = app.token_for_sites("nora", Role::Operator, north()).await;
    let at = OffsetDateTime::now_utc() - Duration::minutes(1);
    // Neither a new machine (it would land in the site "unassigned") nor another site's.
    let batch = json!([
        reading("brand-new", at, 1.0),
        reading("south-press", at, 2.0)
    ]);
    let r = app.post("/api/v1/readings", Some(&nora), batch).await;
    assert_eq!(r.body["rejected"], 2, "{}", r.body);
    assert_eq!(
        ids(&r.body, "rejections", "code"),
        ["unknown_machine", "unknown_machine"]
    );
    let brand_new = MachineId("brand-new".into());
    assert!(
        app.storage
            .machines
            .machine(&brand_new)
            .await
            .unwrap()
            .is_none()
    );
    let south = app
        .storage
        .machines
        .machine(&MachineId("south-press".into()))
        .await
        .unwrap()
        .unwrap();
    assert!(south.sensor("temperature").is_some() && south.sensors.len() == 1);
    // A caller reaching "unassigned" (here: every site) registers it.
    let r = app
        .post(
            "/api/v1/readings",
            Some(&admin),
            json!([reading("brand-new", at, 1.0)]),
        )
        .await;
    assert_eq!(r.body["accepted"], 1, "{}", r.body);
    let registered = app
        .storage
        .machines
        .machine(&brand_new)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(registered.location.site, "unassigned");
    app.finish().await;
}
