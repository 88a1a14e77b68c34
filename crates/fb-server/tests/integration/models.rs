//! The model registry over the real API and store: models registered through the use case (as
//! the trainer does), listed, promoted and rolled back over HTTP, with the node's cache, the
//! permissions and the audit log checked; and the command line.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Value, json};

use fb_app::auth::SystemPrincipal;
use fb_app::models::{ModelLoader, Registry, Service};
use fb_core::SystemClock;
use fb_core::identity::{Principal, Role};
use fb_core::model::{ModelDraft, ModelKind, StoredModel};

use crate::support::{Response, TestApp};

const PUMP: &str = "centrifugal_pump";

/// Reads `test-json/1` payloads: JSON objects with `"ok": true`.
struct JsonLoader {
    formats: Vec<String>,
}

impl JsonLoader {
    fn new() -> Self {
        Self {
            formats: vec!["test-json/1".to_owned()],
        }
    }
}

impl ModelLoader for JsonLoader {
    type Loaded = Value;

    fn formats(&self) -> &[String] {
        &self.formats
    }

    fn load(&self, _: &StoredModel, payload: &[u8]) -> Result<Value, String> {
        let value: Value = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        if value["ok"] == true {
            Ok(value)
        } else {
            Err("the model is not ok".to_owned())
        }
    }
}

/// The app with a registry that reads `test-json/1`, as a build with a prediction engine has.
fn with_json_models(mut app: TestApp) -> (TestApp, Arc<Service<JsonLoader>>) {
    let registry = Arc::new(Service::new(
        app.storage.models.clone(),
        Arc::new(SystemClock),
        JsonLoader::new(),
    ));
    app.state.models = registry.clone();
    app.router = fb_http::router(app.state.clone());
    (app, registry)
}

fn draft(kind: ModelKind, format: &str) -> ModelDraft {
    ModelDraft {
        kind,
        machine_type: PUMP.to_owned(),
        format: format.to_owned(),
        data_hash: "ab".repeat(32),
        features: vec![
            "vibration.mean_30".to_owned(),
            "temperature.slope_60".to_owned(),
        ],
        metrics: [("rmse".to_owned(), 0.1 + 0.2)].into(),
        params: [("trees".to_owned(), "400".to_owned())].into(),
        note: None,
    }
}

/// Registers a `test-json/1` model called `name`, which the test loader reads if `ok`.
async fn register(registry: &dyn Registry, kind: ModelKind, name: &str, ok: bool) -> StoredModel {
    let payload = json!({"ok": ok, "name": name});
    registry
        .register(
            &Principal::system(),
            draft(kind, "test-json/1"),
            payload.to_string().into_bytes(),
        )
        .await
        .unwrap()
}

async fn promote(app: &TestApp, token: &str, id: impl std::fmt::Display) -> Response {
    app.post(
        &format!("/api/v1/models/{id}/promote"),
        Some(token),
        json!({}),
    )
    .await
}

async fn rollback(app: &TestApp, token: &str, kind: &str) -> Response {
    app.post(
        "/api/v1/models/rollback",
        Some(token),
        json!({"kind": kind, "machine_type": PUMP}),
    )
    .await
}

fn ids(body: &Value) -> Vec<String> {
    body["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The version the node serves for the pump's RUL, with the payload's name.
fn cached(registry: &Service<JsonLoader>) -> Option<(u32, String)> {
    registry.active(ModelKind::Rul, PUMP).map(|m| {
        (
            m.model.version,
            m.loaded["name"].as_str().unwrap().to_owned(),
        )
    })
}

async fn promote_list_and_roll_back(app: TestApp) {
    let (app, registry) = with_json_models(app);
    let v1 = register(&*registry, ModelKind::Rul, "first", true).await;
    let v2 = register(&*registry, ModelKind::Rul, "second", true).await;
    let failure = register(&*registry, ModelKind::Failure, "f", true).await;
    let broken = register(&*registry, ModelKind::Rul, "broken", false).await;
    let admin = app.admin_token().await;
    let operator = app.token_for("floor", Role::Operator).await;
    let supervisor = app.token_for("lead", Role::Supervisor).await;

    // Every reader lists them, newest version first, never with a payload.
    let all = app.get("/api/v1/models", Some(&operator)).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.body);
    assert_eq!(
        ids(&all.body),
        [&failure.id, &broken.id, &v2.id, &v1.id].map(|id| id.to_string())
    );
    assert_eq!(all.body["readable_formats"], json!(["test-json/1"]));
    let first = &all.body["models"][3];
    assert_eq!(first["version"], 1);
    assert_eq!(first["features"], json!(v1.features));
    assert_eq!(first["metrics"]["rmse"], json!(0.1 + 0.2));
    assert_eq!(first["created_by"], "system");
    assert_eq!(first["active"], false);
    assert!(first.get("payload").is_none(), "{first}");
    assert!(
        !all.body.to_string().contains("first\\\""),
        "no payload content"
    );
    let rul = app
        .get(
            &format!("/api/v1/models?kind=rul&machine_type={PUMP}"),
            Some(&operator),
        )
        .await;
    assert_eq!(
        ids(&rul.body),
        [&broken.id, &v2.id, &v1.id].map(|id| id.to_string())
    );
    let bad = app
        .get("/api/v1/models?kind=anomaly", Some(&operator))
        .await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::BAD_REQUEST, "invalid_parameter")
    );
    assert_eq!(bad.body["error"]["details"][0]["field"], "kind");
    let one = app
        .get(&format!("/api/v1/models/{}", v2.id), Some(&operator))
        .await;
    assert_eq!(
        (one.status, one.body["version"].clone()),
        (StatusCode::OK, json!(2))
    );
    let missing = app
        .get(
            &format!("/api/v1/models/{}", uuid::Uuid::now_v7()),
            Some(&operator),
        )
        .await;
    assert_eq!(
        (missing.status, missing.code()),
        (StatusCode::NOT_FOUND, "model_not_found")
    );

    // Only admins promote and roll back.
    for token in [&operator, &supervisor] {
        let refused = promote(&app, token, v1.id).await;
        assert_eq!(
            (refused.status, refused.code()),
            (StatusCode::FORBIDDEN, "permission_denied")
        );
        let refused = rollback(&app, token, "rul").await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
    }
    assert_eq!(cached(&registry), None);

    // A promotion swaps this node's model at once.
    let promoted = promote(&app, &admin, v1.id).await;
    assert_eq!(promoted.status, StatusCode::OK, "{}", promoted.body);
    assert_eq!(promoted.body["active"], true);
    assert!(promoted.body["activated_at"].is_string());
    assert_eq!(cached(&registry), Some((1, "first".to_owned())));
    let promoted = promote(&app, &admin, v2.id).await;
    assert_eq!(promoted.status, StatusCode::OK, "{}", promoted.body);
    assert_eq!(cached(&registry), Some((2, "second".to_owned())));

    // A model this node cannot load is refused and changes nothing.
    let refused = promote(&app, &admin, broken.id).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::CONFLICT, "model_payload_invalid")
    );
    assert_eq!(cached(&registry), Some((2, "second".to_owned())));

    let back = rollback(&app, &admin, "rul").await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.body);
    assert_eq!(
        (back.body["id"].as_str(), back.body["active"].clone()),
        (Some(v1.id.to_string().as_str()), json!(true))
    );
    assert_eq!(cached(&registry), Some((1, "first".to_owned())));
    let none = rollback(&app, &admin, "rul").await;
    assert_eq!(
        (none.status, none.code()),
        (StatusCode::CONFLICT, "no_previous_model")
    );
    let bad = rollback(&app, &admin, "anomaly").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);

    let listed = app
        .get(
            &format!("/api/v1/models?kind=rul&machine_type={PUMP}"),
            Some(&operator),
        )
        .await;
    let active: Vec<&Value> = listed.body["models"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["active"] == true)
        .collect();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0]["id"], v1.id.to_string());

    let history = app
        .get(
            &format!("/api/v1/models/activations?kind=rul&machine_type={PUMP}"),
            Some(&operator),
        )
        .await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.body);
    let steps: Vec<(Value, Value, Value)> = history.body["activations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["version"].clone(),
                a["action"].clone(),
                a["activated_by"].clone(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            (json!(1), json!("rollback"), json!("user:admin")),
            (json!(2), json!("promote"), json!("user:admin")),
            (json!(1), json!("promote"), json!("user:admin")),
        ]
    );

    // Each activation is in the audit log with the model, its line and version.
    let audit = app
        .get("/api/v1/audit?action=model.rollback&limit=10", Some(&admin))
        .await;
    let records = audit.body["records"].as_array().unwrap();
    let done: Vec<&Value> = records
        .iter()
        .filter(|r| r["outcome"] == "success")
        .collect();
    assert_eq!(done.len(), 1, "{records:?}");
    assert_eq!(done[0]["target"], format!("model:{}", v1.id));
    assert_eq!(done[0]["details"]["version"], "1");
    assert_eq!(done[0]["details"]["machine_type"], PUMP);
    let denied = records.iter().filter(|r| r["outcome"] == "denied").count();
    assert_eq!(denied, 2, "the operator's and supervisor's refusals");
    let audit = app
        .get("/api/v1/audit?action=model.promote&limit=10", Some(&admin))
        .await;
    let promotions: Vec<&Value> = audit.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["outcome"] == "success")
        .collect();
    assert_eq!(promotions.len(), 2);
    app.finish().await;
}

#[tokio::test]
async fn models_are_listed_promoted_and_rolled_back_over_the_api() {
    promote_list_and_roll_back(TestApp::new().await).await;
}

#[tokio::test]
async fn models_are_listed_promoted_and_rolled_back_over_the_api_on_postgres() {
    promote_list_and_roll_back(TestApp::postgres().await).await;
}

#[tokio::test]
async fn another_node_follows_a_promotion_at_its_next_reload() {
    let (app, this_node) = with_json_models(TestApp::postgres().await);
    let other_node = Service::new(
        app.storage.models.clone(),
        Arc::new(SystemClock),
        JsonLoader::new(),
    );
    let v1 = register(&*this_node, ModelKind::Rul, "first", true).await;
    let admin = app.admin_token().await;
    let promoted = promote(&app, &admin, v1.id).await;
    assert_eq!(promoted.status, StatusCode::OK, "{}", promoted.body);
    assert_eq!(cached(&other_node), None, "not before it looks");
    let reloaded = other_node.reload().await.unwrap();
    assert_eq!((reloaded.loaded, reloaded.failed), (1, 0));
    assert_eq!(cached(&other_node), Some((1, "first".to_owned())));
    app.finish().await;
}

#[tokio::test]
async fn the_server_says_which_model_formats_it_reads() {
    // The server as wired reads fb-predict's models, and refuses any other format by name.
    let app = TestApp::new().await;
    let model = app
        .state
        .models
        .register(
            &Principal::system(),
            draft(ModelKind::Rul, "fb-predict/1"),
            b"{}".to_vec(),
        )
        .await
        .unwrap();
    let admin = app.admin_token().await;
    let listed = app.get("/api/v1/models", Some(&admin)).await;
    assert_eq!(
        listed.body["readable_formats"],
        json!([fb_predict::REGISTRY_FORMAT])
    );
    let refused = promote(&app, &admin, model.id).await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::CONFLICT, "model_format_unsupported")
    );
    let message = refused.body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("\"fb-predict/1\"") && message.contains("factorybrain.predict.model/1"),
        "{message}"
    );
    assert!(
        !app.storage
            .models
            .model(model.id)
            .await
            .unwrap()
            .unwrap()
            .active
    );
    app.finish().await;
}

#[test]
fn the_command_line_lists_models_shows_history_and_records_its_changes() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (app, registry) = with_json_models(runtime.block_on(TestApp::new()));
    let (v1, v2) = runtime.block_on(async {
        let v1 = register(&*registry, ModelKind::Rul, "first", true).await;
        let v2 = register(&*registry, ModelKind::Rul, "second", true).await;
        registry.promote(&Principal::system(), v1.id).await.unwrap();
        (v1, v2)
    });
    let run = |args: &[&str]| {
        let output = app.cli(args, &[]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    };

    let (ok, out) = run(&["model", "list", "--kind", "rul", "--machine-type", PUMP]);
    assert!(ok, "{out}");
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(
        rows[0].starts_with(&v2.id.to_string()) && rows[0].contains(" - "),
        "{out}"
    );
    assert!(
        rows[1].starts_with(&v1.id.to_string()) && rows[1].contains("ACTIVE"),
        "{out}"
    );
    assert!(rows[1].contains("rmse=0.30000000000000004"), "{out}");
    let (ok, out) = run(&["model", "list", "--kind", "failure"]);
    assert!(ok && out.lines().count() == 1, "{out}");

    // The binary reads fb-predict's models only: it refuses to make another format active.
    let (ok, out) = run(&["model", "promote", &v2.id.to_string()]);
    assert!(!ok && out.contains("model_format_unsupported"), "{out}");
    let (ok, out) = run(&["model", "promote", "not-an-id"]);
    assert!(
        !ok && out.contains("invalid_field") && out.contains("ID:"),
        "{out}"
    );
    let (ok, out) = run(&["model", "rollback", "--kind", "rul", "--machine-type", PUMP]);
    assert!(!ok && out.contains("no_previous_model"), "{out}");
    let (ok, out) = run(&[
        "model",
        "rollback",
        "--kind",
        "anomaly",
        "--machine-type",
        PUMP,
    ]);
    assert!(!ok && out.contains("anomaly"), "{out}");

    let (ok, out) = run(&["model", "history", "--kind", "rul", "--machine-type", PUMP]);
    assert!(ok, "{out}");
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{out}");
    assert!(
        rows[0].contains("promote") && rows[0].ends_with("system"),
        "{out}"
    );

    let records = runtime.block_on(async {
        let admin = app.admin_token().await;
        let listed = app.get("/api/v1/audit?limit=100", Some(&admin)).await;
        listed.body["records"].as_array().unwrap().clone()
    });
    let from_cli: Vec<(String, String, String)> = records
        .iter()
        .filter(|r| r["actor"].as_str().unwrap().starts_with("cli:"))
        .map(|r| {
            (
                r["action"].as_str().unwrap().to_owned(),
                r["target"].as_str().unwrap_or("").to_owned(),
                r["details"]["error"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        from_cli,
        [
            (
                "model.promote".to_owned(),
                format!("model:{}", v2.id),
                "model_format_unsupported".to_owned()
            ),
            (
                "model.promote".to_owned(),
                "model:not-an-id".to_owned(),
                "invalid_field".to_owned()
            ),
            (
                "model.rollback".to_owned(),
                format!("models:rul/{PUMP}"),
                "no_previous_model".to_owned()
            ),
        ]
    );
    runtime.block_on(app.finish());
}
