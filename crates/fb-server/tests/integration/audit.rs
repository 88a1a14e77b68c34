//! The audit log over the real API, the real CLI and both real stores: what calls leave, what
//! only admins read, and what `audit verify` finds after someone edits the store directly.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use fb_app::auth::SystemPrincipal;
use fb_core::identity::{Principal, Role};

use crate::support::{Response, TestApp, pg_url};

fn system() -> Principal {
    Principal::system()
}

/// The op id the server gave a call.
fn op_id(response: &Response) -> String {
    response.headers["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// A login over the API, right or wrong.
async fn try_login(app: &TestApp, username: impl AsRef<str>, password: &str) -> Response {
    app.post(
        "/api/v1/auth/login",
        None,
        json!({"username": username.as_ref(), "password": password}),
    )
    .await
}

/// Every record, oldest first, as the API returns them.
async fn all_records(app: &TestApp, admin: &str) -> Vec<Value> {
    let listed = app.get("/api/v1/audit?limit=1000", Some(admin)).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    listed.body["records"].as_array().unwrap().clone()
}

/// The records of one call: exactly one is expected for every audited call.
async fn records_of(app: &TestApp, admin: &str, response: &Response) -> Vec<Value> {
    let op_id = op_id(response);
    all_records(app, admin)
        .await
        .into_iter()
        .filter(|r| r["op_id"] == op_id.as_str())
        .collect()
}

/// Checks the one record of a call: actor, action, target, outcome, and the status in details.
async fn assert_recorded(
    app: &TestApp,
    admin: &str,
    response: &Response,
    expected: (&str, &str, Option<&str>, &str),
) -> Value {
    let records = records_of(app, admin, response).await;
    assert_eq!(records.len(), 1, "one record per call: {records:?}");
    let r = records.into_iter().next().unwrap();
    let (actor, action, target, outcome) = expected;
    assert_eq!(r["actor"], actor, "{r}");
    assert_eq!(r["action"], action, "{r}");
    assert_eq!(r["target"], json!(target), "{r}");
    assert_eq!(r["outcome"], outcome, "{r}");
    assert_eq!(r["details"]["status"], response.status.as_u16().to_string());
    assert_eq!(r["source"], "unknown", "in-process calls have no peer");
    r
}

async fn records_what_the_api_does(app: TestApp) {
    let admin = app.admin_token().await;

    // A state change.
    let created = app
        .post(
            "/api/v1/users",
            Some(&admin),
            json!({"username": "bob", "role": "viewer", "password": "bob-secret-password-1"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let r = assert_recorded(
        &app,
        &admin,
        &created,
        ("user:admin", "user.create", Some("user:bob"), "success"),
    )
    .await;
    assert_eq!(r["details"]["user_id"], created.body["user"]["id"]);
    assert_eq!(r["details"]["role"], "viewer");

    // A failed login: the account tried, never the password.
    let failed = try_login(&app, "bob", "wrong-password-42").await;
    assert_eq!(failed.status, StatusCode::UNAUTHORIZED);
    let r = assert_recorded(
        &app,
        &admin,
        &failed,
        ("anonymous", "auth.login", Some("user:bob"), "denied"),
    )
    .await;
    assert_eq!(r["details"]["error"], "invalid_credentials");
    assert_eq!(r["details"]["username"], "bob");
    assert!(r["details"].get("user_id").is_none());

    // A successful login names the user it became.
    let bob_login = try_login(&app, "bob", "bob-secret-password-1").await;
    assert_eq!(bob_login.status, StatusCode::OK);
    let r = assert_recorded(
        &app,
        &admin,
        &bob_login,
        ("anonymous", "auth.login", Some("user:bob"), "success"),
    )
    .await;
    assert_eq!(r["details"]["user_id"], created.body["user"]["id"]);
    let bob = bob_login.body["access_token"].as_str().unwrap().to_owned();

    // Refusals: an authenticated caller without the permission, and nobody at all.
    let forbidden = app
        .post("/api/v1/users/admin/disable", Some(&bob), json!({}))
        .await;
    assert_eq!(forbidden.status, StatusCode::FORBIDDEN);
    let r = assert_recorded(
        &app,
        &admin,
        &forbidden,
        ("user:bob", "user.disable", Some("user:admin"), "denied"),
    )
    .await;
    assert_eq!(r["details"]["error"], "permission_denied");
    let anonymous_read = app.get("/api/v1/users", None).await;
    assert_eq!(anonymous_read.status, StatusCode::UNAUTHORIZED);
    let r = assert_recorded(
        &app,
        &admin,
        &anonymous_read,
        ("anonymous", "user.list", None, "denied"),
    )
    .await;
    assert_eq!(r["details"]["error"], "missing_credentials");

    // A failed state change is recorded with its error code.
    let last_admin = app
        .post("/api/v1/users/admin/disable", Some(&admin), json!({}))
        .await;
    assert_eq!(last_admin.status, StatusCode::CONFLICT);
    let r = assert_recorded(
        &app,
        &admin,
        &last_admin,
        ("user:admin", "user.disable", Some("user:admin"), "failure"),
    )
    .await;
    assert_eq!(r["details"]["error"], "last_admin");

    // Reads that succeed, and telemetry ingest, leave nothing; refused ingest does.
    let read = app.get("/api/v1/users", Some(&admin)).await;
    assert_eq!(read.status, StatusCode::OK);
    assert!(records_of(&app, &admin, &read).await.is_empty());
    let ingest = app
        .call(
            Method::POST,
            "/api/v1/readings",
            Some(&admin),
            Some(json!([])),
        )
        .await;
    assert!(ingest.status.is_success(), "{}", ingest.body);
    assert!(records_of(&app, &admin, &ingest).await.is_empty());
    let refused_ingest = app
        .call(
            Method::POST,
            "/api/v1/readings",
            Some(&bob),
            Some(json!([])),
        )
        .await;
    assert_eq!(refused_ingest.status, StatusCode::FORBIDDEN);
    assert_recorded(
        &app,
        &admin,
        &refused_ingest,
        ("user:bob", "reading.ingest", None, "denied"),
    )
    .await;

    // No password or token sent in any call appears in any record.
    let everything = serde_json::to_string(&all_records(&app, &admin).await).unwrap();
    for secret in [
        "bob-secret-password-1",
        "wrong-password-42",
        app.admin_password.as_str(),
        admin.as_str(),
        bob.as_str(),
    ] {
        assert!(!everything.contains(secret), "a secret is in the audit log");
    }

    // And the chain those calls built is intact.
    let report = app.state.audit.verify(&system(), &[]).await.unwrap();
    assert_eq!(report.problems, []);
    app.finish().await;
}

#[tokio::test]
async fn audit_records_calls_on_sqlite() {
    records_what_the_api_does(TestApp::new().await).await;
}

#[tokio::test]
async fn audit_records_calls_on_postgres() {
    records_what_the_api_does(TestApp::postgres().await).await;
}

#[tokio::test]
async fn audit_is_listed_with_filters_and_both_cursors() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    for name in ["user1", "user2", "user3"] {
        let r = app
            .post(
                "/api/v1/users",
                Some(&admin),
                json!({"username": name, "role": "viewer"}),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED);
    }
    for _ in 0..2 {
        let r = try_login(&app, "user2", "not-the-password").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let seqs = |body: &Value| -> Vec<u64> {
        body["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["seq"].as_u64().unwrap())
            .collect()
    };
    // Records so far: 1 the admin's login, 2-3 the admin's enrolment of a second factor (enrol,
    // confirm), 4-6 the users, 7-8 the failed logins.
    let get = |query: &'static str| {
        let (app, admin) = (&app, &admin);
        async move {
            let r = app
                .get(&format!("/api/v1/audit?{query}"), Some(admin))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.body);
            r.body
        }
    };
    assert_eq!(seqs(&get("action=user.create").await), [4, 5, 6]);
    assert_eq!(seqs(&get("actor=anonymous&outcome=denied").await), [7, 8]);
    assert_eq!(seqs(&get("target=user:user2").await), [5, 7, 8]);
    assert_eq!(seqs(&get("action=auth.login&outcome=success").await), [1]);

    let first = get("action=user.create&limit=2").await;
    assert_eq!(seqs(&first), [4, 5]);
    assert_eq!(first["next_after"], 5);
    assert_eq!(first["next_before"], Value::Null);
    let rest = get("action=user.create&limit=2&after=5").await;
    assert_eq!(seqs(&rest), [6]);
    assert_eq!(rest["next_after"], Value::Null);
    let newest = get("order=desc&limit=2").await;
    assert_eq!(seqs(&newest), [8, 7]);
    assert_eq!(newest["next_before"], 7);
    assert_eq!(seqs(&get("order=desc&limit=2&before=7").await), [6, 5]);

    // Time: from inclusive, to exclusive, as RFC 3339.
    let all = get("limit=1000").await;
    let at = |seq: usize| all["records"][seq - 1]["at"].as_str().unwrap().to_owned();
    let (from, to) = (at(5), at(7));
    let window = app
        .get(&format!("/api/v1/audit?from={from}&to={to}"), Some(&admin))
        .await;
    let in_window = seqs(&window.body);
    assert!(in_window.contains(&5) && !in_window.contains(&7) && !in_window.contains(&4));

    for bad in [
        "limit=0",
        "limit=1001",
        "outcome=maybe",
        "order=sideways",
        "from=yesterday",
        "seq=1",
    ] {
        let r = app.get(&format!("/api/v1/audit?{bad}"), Some(&admin)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(r.code(), "invalid_parameter", "{bad}");
    }
    app.finish().await;
}

#[tokio::test]
async fn audit_is_read_by_admins_only() {
    let app = TestApp::new().await;
    for role in [Role::Supervisor, Role::Operator, Role::Viewer] {
        let token = app.token_for(&format!("reader-{role}"), role).await;
        let r = app.get("/api/v1/audit", Some(&token)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{role}");
        assert_eq!(r.code(), "permission_denied");
    }
    let admin = app.admin_token().await;
    let denied = all_records(&app, &admin)
        .await
        .into_iter()
        .filter(|r| r["action"] == "audit.list" && r["outcome"] == "denied")
        .count();
    assert_eq!(denied, 3, "each refused read of the log is itself recorded");
    app.finish().await;
}

/// Runs statements directly on the app's store, as someone with database access would.
async fn tamper(app: &TestApp, statements: &[&str]) {
    match app.pg_schema() {
        None => {
            let conn = rusqlite::Connection::open(app.data_dir().join("factorybrain.db")).unwrap();
            for sql in statements {
                conn.execute_batch(sql).unwrap();
            }
        }
        Some(schema) => {
            use std::str::FromStr;
            let options = sqlx::postgres::PgConnectOptions::from_str(&pg_url())
                .unwrap()
                .options([("search_path", schema)]);
            let pool = sqlx::PgPool::connect_with(options).await.unwrap();
            for sql in statements {
                sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            pool.close().await;
        }
    }
}

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

async fn verify_reports_each_tampering(app: TestApp, drop_triggers: &[&str]) {
    // Ten records: failed logins, each through the API.
    for i in 0..10 {
        let r = try_login(&app, format!("nobody-{i}"), "not-a-password").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    let intact = app.cli(&["audit", "verify"], &[]);
    assert!(intact.status.success(), "{}", stdout(&intact));
    let head = app.cli(&["audit", "head"], &[]);
    let head = stdout(&head).trim().to_owned();
    assert!(head.starts_with("10:"), "{head}");
    assert_eq!(
        stdout(&intact).trim(),
        format!("ok: 10 records, head {head}")
    );

    let mut statements = drop_triggers.to_vec();
    statements.extend([
        // Edit one record.
        "UPDATE audit_log SET actor = 'user:mallory' WHERE seq = 2",
        // Delete one.
        "DELETE FROM audit_log WHERE seq = 4",
        // Swap two (reorder).
        "UPDATE audit_log SET seq = -6 WHERE seq = 6",
        "UPDATE audit_log SET seq = 6 WHERE seq = 7",
        "UPDATE audit_log SET seq = 7 WHERE seq = -6",
        // Cut off the end.
        "DELETE FROM audit_log WHERE seq > 8",
    ]);
    tamper(&app, &statements).await;

    let damaged = app.cli(&["audit", "verify"], &[]);
    assert_eq!(damaged.status.code(), Some(3), "{}", stdout(&damaged));
    let lines: Vec<String> = stdout(&damaged).lines().map(str::to_owned).collect();
    let expected = [
        "seq 2: edited:",
        "seq 4: deleted:",
        "seq 6: reordered: this record was written as seq 7",
        "seq 7: reordered: this record was written as seq 6",
        "seq 9-10: deleted from the end: the head names seq 10, the log ends at seq 8",
    ];
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    for (line, start) in lines.iter().zip(expected) {
        assert!(
            line.starts_with(start),
            "{line:?} should start with {start:?}"
        );
    }
    assert!(String::from_utf8_lossy(&damaged.stderr).contains("5 problem(s)"));

    let json_report = app.cli(&["audit", "verify", "--json"], &[]);
    assert_eq!(json_report.status.code(), Some(3));
    let report: Value = serde_json::from_str(&stdout(&json_report)).unwrap();
    assert_eq!(report["intact"], false);
    let kinds: Vec<(&str, u64)> = report["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["kind"].as_str().unwrap(), p["seq"].as_u64().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("edited", 2),
            ("deleted", 4),
            ("reordered", 6),
            ("reordered", 7),
            ("truncated", 9)
        ]
    );

    // The service the CLI calls sees the same, against the untouched head.
    let report = app.state.audit.verify(&system(), &[]).await.unwrap();
    assert_eq!(report.problems.len(), 5);
    assert_eq!(report.head.map(|h| h.seq), Some(10));
    app.finish().await;
}

#[tokio::test]
async fn audit_verify_reports_each_tampering_on_sqlite() {
    verify_reports_each_tampering(
        TestApp::new().await,
        &[
            "DROP TRIGGER audit_log_no_update",
            "DROP TRIGGER audit_log_no_delete",
        ],
    )
    .await;
}

#[tokio::test]
async fn audit_verify_reports_each_tampering_on_postgres() {
    verify_reports_each_tampering(
        TestApp::postgres().await,
        &["DROP TRIGGER audit_log_append_only ON audit_log"],
    )
    .await;
}

#[tokio::test]
async fn audit_anchor_finds_a_cut_that_moved_the_head_back() {
    let app = TestApp::new().await;
    for i in 0..4 {
        try_login(&app, format!("nobody-{i}"), "not-a-password").await;
    }
    let anchor = stdout(&app.cli(&["audit", "head"], &[])).trim().to_owned();
    // (Reading the log needs the admin's login, which is record 5.)
    let two = all_records(&app, &app.admin_token().await).await[1]["hash"]
        .as_str()
        .unwrap()
        .to_owned();
    // The records after seq 2 removed and the head set back to seq 2: consistent in itself.
    tamper(
        &app,
        &[
            "DROP TRIGGER audit_log_no_delete",
            "DROP TRIGGER audit_head_only_forward",
            "DELETE FROM audit_log WHERE seq > 2",
            &format!("UPDATE audit_head SET seq = 2, hash = X'{two}'"),
        ],
    )
    .await;
    let alone = app.cli(&["audit", "verify"], &[]);
    assert!(
        alone.status.success(),
        "{}{}",
        stdout(&alone),
        String::from_utf8_lossy(&alone.stderr)
    );
    let anchored = app.cli(&["audit", "verify", "--anchor", &anchor], &[]);
    assert_eq!(anchored.status.code(), Some(3));
    assert!(
        stdout(&anchored).starts_with("seq 3-4: deleted from the end: the anchor names seq 4"),
        "{}",
        stdout(&anchored)
    );
    let malformed = app.cli(&["audit", "verify", "--anchor", "four"], &[]);
    assert_eq!(malformed.status.code(), Some(1));
    app.finish().await;
}

#[tokio::test]
async fn audit_records_cli_commands_as_the_os_user() {
    let app = TestApp::new().await;
    let env = [("USER", "ops-lead")];
    let added = app.cli(&["user", "add", "carol", "--role", "viewer"], &env);
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let missing = app.cli(&["user", "disable", "nobody-here"], &env);
    assert!(!missing.status.success());
    let created = app.cli(
        &[
            "apikey",
            "create",
            "--name",
            "historian",
            "--role",
            "viewer",
        ],
        &env,
    );
    assert!(created.status.success());
    // "created API key historian (viewer, prefix …, id <uuid>)"
    let key_id = stdout(&created)
        .lines()
        .find_map(|l| {
            l.rsplit_once(", id ")
                .map(|(_, id)| id.trim_end_matches(')').to_owned())
        })
        .unwrap();
    let revoked = app.cli(&["apikey", "revoke", &key_id], &env);
    assert!(revoked.status.success());

    let admin = app.admin_token().await;
    let by_cli: Vec<Value> = all_records(&app, &admin)
        .await
        .into_iter()
        .filter(|r| r["actor"] == "cli:ops-lead")
        .collect();
    let summary: Vec<(&str, &str, &str)> = by_cli
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["target"].as_str().unwrap_or(""),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    let key_target = format!("api_key:{key_id}");
    assert_eq!(
        summary,
        [
            ("user.create", "user:carol", "success"),
            ("user.disable", "user:nobody-here", "failure"),
            ("api_key.create", key_target.as_str(), "success"),
            ("api_key.revoke", key_target.as_str(), "success"),
        ]
    );
    assert!(by_cli.iter().all(|r| r["source"] == "local"));
    assert_eq!(by_cli[1]["details"]["error"], "user_not_found");
    // One command, one op id; each command its own.
    assert_ne!(by_cli[0]["op_id"], by_cli[2]["op_id"]);
    // The generated password and the key printed once are not in the log.
    let everything = serde_json::to_string(&by_cli).unwrap();
    let secret_line = |out: &std::process::Output, prefix: &str| {
        stdout(out)
            .lines()
            .find_map(|l| l.strip_prefix(prefix).map(str::to_owned))
            .unwrap()
    };
    assert!(!everything.contains(&secret_line(&added, "password (shown once): ")));
    assert!(!everything.contains(&secret_line(&created, "key (shown once): ")));
    app.finish().await;
}

#[tokio::test]
async fn audit_write_failure_never_fails_the_action() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    // Without its head the store cannot append; the action must go through all the same.
    tamper(
        &app,
        &[
            "DROP TRIGGER audit_head_no_delete",
            "DELETE FROM audit_head",
        ],
    )
    .await;
    let created = app
        .post(
            "/api/v1/users",
            Some(&admin),
            json!({"username": "dora", "role": "viewer"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let metrics = app.get("/metrics", Some(&admin)).await;
    assert!(
        metrics
            .body
            .as_str()
            .unwrap()
            .contains("fb_audit_write_failures_total"),
        "the failure is counted"
    );
    let damaged = app.cli(&["audit", "verify"], &[]);
    assert_eq!(damaged.status.code(), Some(3));
    assert!(stdout(&damaged).starts_with("head: missing"));
    app.finish().await;
}
