//! Failure prediction in the server (issue #6): models trained by fb-predict, registered,
//! promoted and rolled back over the real API and loaded by the server's own loader.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::json;

use fb_app::auth::SystemPrincipal;
use fb_app::models::Registry;
use fb_app::prediction::{LiveModel, draft};
use fb_core::identity::Principal;
use fb_core::model::{ModelKind, StoredModel};
use fb_core::rng::SplitMix64;
use fb_predict::data::{History, Observation, Schema, Unit};
use fb_predict::gbdt::BoostParams;
use fb_predict::train::SearchSpec;
use fb_predict::{FeatureSpec, LiveSpec, Model, TrainConfig};
use fb_server::wire::{self, ModelRegistry};

use crate::support::TestApp;

pub const PUMP: &str = "centrifugal_pump";
/// One observation a minute, time in hours.
pub const LIVE: LiveSpec = LiveSpec {
    sample_secs: 60.0,
    secs_per_unit: 3600.0,
};
/// Minutes from a new bearing to failure in the synthetic fleet.
pub const LIFE: f64 = 240.0;

/// (vibration, temperature) of a pump `minutes` into its bearing's life.
pub fn pump(minutes: f64, rng: &mut SplitMix64) -> [f64; 2] {
    let wear = (minutes / LIFE).clamp(0.0, 1.0);
    let noise = |rng: &mut SplitMix64| rng.next_f64() - 0.5;
    [
        2.0 * (1.0 + 6.0 * wear * wear) + 0.1 * noise(rng),
        50.0 + 20.0 * wear * wear + 0.5 * noise(rng),
    ]
}

/// Run-to-failure pumps starting at random points of their lives, a quarter of them healthy
/// and still running (censored); one observation a minute, time in hours.
pub fn fleet(units: usize, seed: u64) -> History {
    let mut rng = SplitMix64::new(seed);
    let units = (0..units)
        .map(|u| {
            let failing = u % 4 != 3;
            let start = rng.below(100) as f64;
            let length = if failing { LIFE - start } else { 200.0 };
            let observations: Vec<Observation> = (1..=length as u64)
                .map(|m| Observation {
                    time: (u as f64 * 1000.0 + m as f64) / 60.0,
                    settings: vec![],
                    sensors: pump(if failing { start + m as f64 } else { 10.0 }, &mut rng).to_vec(),
                })
                .collect();
            let end = observations.last().map(|o| o.time);
            Unit {
                id: format!("u{u}"),
                observations,
                failed_at: if failing { end } else { None },
            }
        })
        .collect();
    History {
        schema: Schema {
            settings: vec![],
            sensors: vec!["vibration".into(), "temperature".into()],
        },
        units,
    }
}

/// A small model of the fleet, trained in well under a second.
pub fn tiny_model(kind: ModelKind, seed: u64) -> Model {
    let target = match kind {
        ModelKind::Failure => TrainConfig::failure(0.5),
        ModelKind::Rul => TrainConfig::rul(2.0),
    };
    let config = TrainConfig {
        features: FeatureSpec::condition(),
        boost: BoostParams {
            max_rounds: 60,
            early_stopping_rounds: 10,
            min_data_in_leaf: 10,
            ..BoostParams::default()
        },
        search: SearchSpec {
            candidates: 1,
            folds: 3,
            threads: 1,
        },
        seed,
        ..target
    };
    fb_predict::train(&fleet(24, 3), &config, &mut |_| {}).unwrap()
}

/// Registers a trained model as the trainer does.
pub async fn register(registry: &dyn Registry, model: &Model, machine_type: &str) -> StoredModel {
    registry
        .register(
            &Principal::system(),
            draft(model, machine_type, &LIVE, Some("integration test".into())),
            model.to_json().unwrap().into_bytes(),
        )
        .await
        .unwrap()
}

/// The app with the server's own registry in its state, as `serve` wires it, and that registry.
pub fn with_server_registry(mut app: TestApp) -> (TestApp, Arc<ModelRegistry>) {
    let registry = wire::model_registry(&app.storage);
    app.state.models = registry.clone();
    app.router = fb_http::router(app.state.clone());
    (app, registry)
}

fn served(registry: &ModelRegistry) -> Option<(u32, Arc<Model>)> {
    registry
        .active(ModelKind::Rul, PUMP)
        .map(|m| (m.model.version, m.loaded.model.clone()))
}

#[tokio::test]
async fn trained_models_are_promoted_loaded_and_rolled_back_end_to_end() {
    let (app, registry) = with_server_registry(TestApp::new().await);
    let first = tiny_model(ModelKind::Rul, 1);
    let second = tiny_model(ModelKind::Rul, 2);
    let v1 = register(&*registry, &first, PUMP).await;
    let v2 = register(&*registry, &second, PUMP).await;
    assert_eq!(v1.format, "factorybrain.predict.model/1");
    assert_eq!(v1.features, first.meta.features);
    assert_eq!(v1.data_hash, first.meta.data_hash);
    assert!(v1.metrics["rmse"] > 0.0, "{:?}", v1.metrics);
    assert_eq!(v1.params["live.sample_secs"], "60");
    let admin = app.admin_token().await;

    let listed = app.get("/api/v1/models", Some(&admin)).await;
    assert_eq!(
        listed.body["readable_formats"],
        json!(["factorybrain.predict.model/1"])
    );
    for (id, version, model) in [(v1.id, 1, &first), (v2.id, 2, &second)] {
        let promoted = app
            .post(
                &format!("/api/v1/models/{id}/promote"),
                Some(&admin),
                json!({}),
            )
            .await;
        assert_eq!(promoted.status, StatusCode::OK, "{}", promoted.body);
        let (serving, loaded) = served(&registry).unwrap();
        assert_eq!(serving, version);
        assert_eq!(
            *loaded, *model,
            "the node serves the model file it was given"
        );
    }
    let back = app
        .post(
            "/api/v1/models/rollback",
            Some(&admin),
            json!({"kind": "rul", "machine_type": PUMP}),
        )
        .await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.body);
    let (serving, loaded) = served(&registry).unwrap();
    assert_eq!((serving, &*loaded), (1, &first));

    // Another node (or a restart) loads the active model from the store.
    let other = wire::model_registry(&app.storage);
    assert_eq!(other.reload().await.unwrap().loaded, 1);
    assert_eq!(*served(&other).unwrap().1, first);
    app.finish().await;
}

#[tokio::test]
async fn a_model_file_that_does_not_match_its_registration_is_never_made_active() {
    let (app, registry) = with_server_registry(TestApp::new().await);
    let model = tiny_model(ModelKind::Failure, 1);
    // Registered as a RUL model: the loader reads the file and refuses it.
    let mut wrong = draft(&model, PUMP, &LIVE, None);
    wrong.kind = ModelKind::Rul;
    let stored = registry
        .register(
            &Principal::system(),
            wrong,
            model.to_json().unwrap().into_bytes(),
        )
        .await
        .unwrap();
    let admin = app.admin_token().await;
    let refused = app
        .post(
            &format!("/api/v1/models/{}/promote", stored.id),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(
        (refused.status, refused.code()),
        (StatusCode::CONFLICT, "model_payload_invalid"),
        "{}",
        refused.body
    );
    assert!(registry.active(ModelKind::Rul, PUMP).is_none());
    // What the loader reads is what the live path runs.
    let good = register(&*registry, &model, PUMP).await;
    let live = LiveModel::load(
        &good,
        &app.storage
            .models
            .model_payload(good.id)
            .await
            .unwrap()
            .unwrap(),
    )
    .unwrap();
    assert_eq!((*live.model == model, live.live), (true, LIVE));
    app.finish().await;
}

/// The fleet as the documented training CSV: unit, time (hours), sensors, failed.
fn fleet_csv(history: &History) -> String {
    let mut out = String::from("unit,time,vibration,temperature,failed\n");
    for unit in &history.units {
        let last = unit.observations.len() - 1;
        for (i, o) in unit.observations.iter().enumerate() {
            let failed = u8::from(i == last && unit.failed_at.is_some());
            out.push_str(&format!(
                "{},{},{},{},{failed}\n",
                unit.id, o.time, o.sensors[0], o.sensors[1]
            ));
        }
    }
    out
}

#[test]
fn model_train_learns_a_csv_history_registers_and_promotes_it() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (app, registry) = with_server_registry(runtime.block_on(TestApp::new()));
    let file = app.data_dir().join("pumps.csv");
    std::fs::write(&file, fleet_csv(&fleet(24, 3))).unwrap();
    let data = file.display().to_string();
    let run = |args: &[&str]| {
        let output = app.cli(args, &[]);
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let small = ["--candidates", "1", "--folds", "3", "--threads", "1"];

    let mut args = vec![
        "model",
        "train",
        "--kind",
        "failure",
        "--data",
        &data,
        "--machine-type",
        PUMP,
        "--horizon",
        "0.5",
        "--json",
        "--promote",
    ];
    args.extend(small);
    let (ok, out, err) = run(&args);
    assert!(ok, "{out}{err}");
    let answer: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(answer["kind"], "failure");
    assert_eq!(answer["machine_type"], PUMP);
    assert_eq!(
        (answer["version"].clone(), answer["active"].clone()),
        (json!(1), json!(true))
    );
    assert_eq!(answer["units"], 24);
    assert_eq!(answer["format"], "factorybrain.predict.model/1");
    assert!(answer["metrics"]["f1"].as_f64().unwrap() > 0.5, "{answer}");
    // One observation a minute: the history's median step, in seconds.
    assert_eq!(answer["params"]["live.sample_secs"], "60");
    assert_eq!(answer["params"]["target.horizon"], "0.5");

    // The server loads what the command registered and promoted.
    runtime.block_on(registry.reload()).unwrap();
    let active = registry.active(ModelKind::Failure, PUMP).unwrap();
    assert_eq!(active.model.id.to_string(), answer["id"].as_str().unwrap());
    assert_eq!(active.loaded.live, LIVE);

    // Text output, a second version, not active.
    let mut args = vec![
        "model",
        "train",
        "--kind",
        "rul",
        "--data",
        &data,
        "--machine-type",
        PUMP,
        "--cap",
        "2",
    ];
    args.extend(small);
    let (ok, out, err) = run(&args);
    assert!(ok, "{out}{err}");
    assert!(
        out.starts_with(&format!("registered rul model for {PUMP}: version 1 ("))
            && out.contains("not active")
            && out.contains("rmse="),
        "{out}"
    );

    // Bad options and bad files are refused, naming the flag, the line and the column.
    for (args, expected) in [
        (
            vec!["model", "train", "--kind", "rul", "--data", data.as_str()],
            "--machine-type: is required with --format csv",
        ),
        (
            vec![
                "model",
                "train",
                "--kind",
                "rul",
                "--data",
                &data,
                "--machine-type",
                PUMP,
                "--horizon",
                "3",
            ],
            "--horizon: is for --kind failure",
        ),
        (
            vec![
                "model",
                "train",
                "--kind",
                "failure",
                "--data",
                &data,
                "--machine-type",
                PUMP,
                "--horizon",
                "0",
            ],
            "--horizon: must be a positive number",
        ),
        (
            vec![
                "model",
                "train",
                "--kind",
                "rul",
                "--data",
                "/nonexistent.csv",
                "--machine-type",
                PUMP,
            ],
            "cannot read the history /nonexistent.csv",
        ),
    ] {
        let (ok, out, err) = run(&args);
        assert!(!ok && err.contains(expected), "{args:?}: {out}{err}");
    }
    let broken = app.data_dir().join("broken.csv");
    std::fs::write(
        &broken,
        "unit,time,vibration,failed\na,1,2.0,0\na,2,lots,1\n",
    )
    .unwrap();
    let broken = broken.display().to_string();
    let (ok, _, err) = run(&[
        "model",
        "train",
        "--kind",
        "rul",
        "--data",
        &broken,
        "--machine-type",
        PUMP,
    ]);
    assert!(
        !ok && err.contains("line 3, column vibration: \"lots\" is not a finite number"),
        "{err}"
    );

    // Each registration and the promotion are in the audit log.
    let records = runtime.block_on(async {
        let admin = app.admin_token().await;
        app.get("/api/v1/audit?limit=100", Some(&admin)).await.body["records"]
            .as_array()
            .unwrap()
            .clone()
    });
    let actions: Vec<(&str, &str)> = records
        .iter()
        .filter(|r| r["actor"].as_str().unwrap().starts_with("cli:"))
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("model.register", "success"),
            ("model.promote", "success"),
            ("model.register", "success"),
        ]
    );
    runtime.block_on(app.finish());
}

#[test]
fn model_train_reads_cmapss_training_files() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(TestApp::new());
    // Eight engines in C-MAPSS's layout (unit, cycle, three settings, 21 sensors), one sensor
    // wearing towards failure.
    let mut rng = SplitMix64::new(5);
    let mut text = String::new();
    for unit in 1..=8 {
        let life = 60 + unit * 5;
        for cycle in 1..=life {
            let wear = (cycle as f64 / life as f64).powi(2);
            let mut row = vec![
                unit.to_string(),
                cycle.to_string(),
                "0".into(),
                "0".into(),
                "100".into(),
            ];
            for s in 0..21 {
                let value = if s == 3 { 1400.0 + 30.0 * wear } else { 500.0 };
                row.push(format!("{:.3}", value + rng.next_f64()));
            }
            text.push_str(&row.join(" "));
            text.push('\n');
        }
    }
    let file = app.data_dir().join("train_FD001.txt");
    std::fs::write(&file, text).unwrap();
    let output = app.cli(
        &[
            "model",
            "train",
            "--kind",
            "rul",
            "--format",
            "cmapss",
            "--data",
            &file.display().to_string(),
            "--cap",
            "40",
            "--candidates",
            "1",
            "--folds",
            "2",
            "--json",
        ],
        &[],
    );
    let out = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(answer["machine_type"], "turbofan");
    assert_eq!(answer["units"], 8);
    // A cycle counts as an hour unless told otherwise; one observation per cycle.
    assert_eq!(answer["params"]["live.sample_secs"], "3600");
    assert_eq!(answer["params"]["live.secs_per_unit"], "3600");
    runtime.block_on(app.finish());
}

fn pump_machine(id: &str) -> serde_json::Value {
    json!({
        "id": id,
        "name": id,
        "machine_type": PUMP,
        "location": {"site": "plant-a"},
        "sensors": [
            {"key": "temperature", "kind": "temperature", "unit": "C", "physical_min": -40, "physical_max": 250},
            {"key": "vibration", "kind": "vibration", "unit": "mm/s", "physical_min": 0, "physical_max": 100}
        ]
    })
}

/// Both pumps' figures as stored on the machines: (failure probability, RUL hours).
type Figures = [(f64, f64); 2];

/// Registers and promotes the tiny models, runs the server's prediction task, posts forty
/// minutes of readings from yesterday (every 10 s: "pump-new" near the start of its bearing's
/// life, "pump-worn" ten minutes from failure) and waits for both machines' figures.
async fn predict_live(app: &TestApp, registry: Arc<ModelRegistry>) -> Figures {
    let admin = app.admin_token().await;
    for id in ["pump-new", "pump-worn"] {
        let created = app
            .post("/api/v1/machines", Some(&admin), pump_machine(id))
            .await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    }
    for kind in [ModelKind::Failure, ModelKind::Rul] {
        let stored = register(&*registry, &tiny_model(kind, 1), PUMP).await;
        registry
            .promote(&Principal::system(), stored.id)
            .await
            .unwrap();
    }
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let task = wire::spawn_prediction(&app.settings, &app.storage, &app.state, registry, stop)
        .unwrap()
        .unwrap();
    let start = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let mut rng = SplitMix64::new(11);
    let mut batch = Vec::new();
    for step in 0..240 {
        let ts = start + time::Duration::seconds(step * 10);
        let ts = ts
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap();
        for (id, life) in [("pump-new", 5.0), ("pump-worn", 190.0)] {
            let [vibration, temperature] = pump(life + step as f64 / 6.0, &mut rng);
            batch.push(json!({"machine": id, "sensor": "vibration", "ts": ts, "value": vibration}));
            batch.push(
                json!({"machine": id, "sensor": "temperature", "ts": ts, "value": temperature}),
            );
        }
    }
    let posted = app
        .post(
            "/api/v1/readings",
            Some(&admin),
            serde_json::Value::Array(batch),
        )
        .await;
    assert_eq!(posted.status, StatusCode::OK, "{}", posted.body);
    let figures = |id: &'static str| {
        let admin = &admin;
        async move {
            let m = app
                .get(&format!("/api/v1/machines/{id}"), Some(admin))
                .await;
            (
                m.body["failure_probability"].as_f64(),
                m.body["rul_hours"].as_f64(),
            )
        }
    };
    let mut found = None;
    for _ in 0..300 {
        let (a, b) = (figures("pump-new").await, figures("pump-worn").await);
        if let ((Some(pa), Some(ra)), (Some(pb), Some(rb))) = (a, b) {
            found = Some([(pa, ra), (pb, rb)]);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = stop_tx.send(true);
    task.await.unwrap();
    found.expect("both machines' predictions were never stored")
}

fn fast_prediction() -> Vec<(String, String)> {
    vec![
        ("FB__PREDICTION__EVERY_SECS".into(), "1".into()),
        ("FB__PREDICTION__STORE_EVERY_SECS".into(), "1".into()),
    ]
}

#[tokio::test]
async fn readings_posted_over_http_become_predictions_on_the_machine_and_in_metrics() {
    let (app, registry) = with_server_registry(TestApp::with_env(fast_prediction()).await);
    let [(p_new, rul_new), (p_worn, rul_worn)] = predict_live(&app, registry).await;
    assert!(p_new < 0.2 && p_worn > 0.6, "new {p_new}, worn {p_worn}");
    assert!(rul_new > rul_worn + 0.5, "{rul_new} {rul_worn}");

    let admin = app.admin_token().await;
    let metrics = app.get("/metrics", Some(&admin)).await;
    let text = metrics.body.as_str().unwrap().to_owned();
    for line in [
        "fb_machine_failure_probability{machine=\"pump-worn\"}",
        "fb_machine_rul_hours{machine=\"pump-new\"}",
        "fb_predictions_total",
    ] {
        assert!(text.contains(line), "{line} missing from /metrics");
    }
    app.finish().await;
}

/// A KServe v2 model server on 127.0.0.1 that answers `value` for every row, or fails with
/// `status`; the number of calls it got.
async fn fake_model_server(
    value: f64,
    status: axum::http::StatusCode,
) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use axum::extract::State;
    use axum::response::IntoResponse;
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let app = axum::Router::new()
        .route(
            "/v2/models/{name}/infer",
            axum::routing::post(
                move |State(calls): State<Arc<std::sync::atomic::AtomicUsize>>,
                      axum::Json(body): axum::Json<serde_json::Value>| async move {
                    calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if status != StatusCode::OK {
                        return (status, "no").into_response();
                    }
                    let rows = body["inputs"][0]["shape"][0].as_u64().unwrap() as usize;
                    axum::Json(json!({"outputs": [{"name": "p", "shape": [rows], "datatype": "FP64", "data": vec![value; rows]}]}))
                        .into_response()
                },
            ),
        )
        .with_state(calls.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), calls)
}

fn with_remote(url: &str) -> Vec<(String, String)> {
    let mut env = fast_prediction();
    env.push(("FB__PREDICTION__REMOTE__URL".into(), url.into()));
    // Far above any answer's time here, so that the answering server is never cut off.
    env.push(("FB__PREDICTION__REMOTE__TIMEOUT_MS".into(), "5000".into()));
    env
}

#[tokio::test]
async fn a_remote_model_server_answers_for_the_local_models() {
    let (url, calls) = fake_model_server(0.4242, StatusCode::OK).await;
    let (app, registry) = with_server_registry(TestApp::with_env(with_remote(&url)).await);
    let [(p_new, rul_new), (p_worn, rul_worn)] = predict_live(&app, registry).await;
    // Its numbers are used as they are: a probability, and a RUL in the model's unit (hours).
    assert_eq!((p_new, p_worn), (0.4242, 0.4242));
    assert_eq!((rul_new, rul_worn), (0.42, 0.42));
    assert!(calls.load(std::sync::atomic::Ordering::SeqCst) >= 2);
    app.finish().await;
}

#[tokio::test]
async fn the_local_models_answer_when_the_remote_fails() {
    let (url, calls) = fake_model_server(0.4242, StatusCode::SERVICE_UNAVAILABLE).await;
    let (app, registry) = with_server_registry(TestApp::with_env(with_remote(&url)).await);
    let [(p_new, _), (p_worn, _)] = predict_live(&app, registry).await;
    assert!(p_new < 0.2 && p_worn > 0.6, "new {p_new}, worn {p_worn}");
    assert!(calls.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    app.finish().await;
}

#[test]
fn remote_settings_are_checked_when_they_load() {
    let problems = |env: &[(&str, &str)]| {
        fb_server::settings::Settings::load(&fb_server::settings::Layers {
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            ..Default::default()
        })
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
    };
    let text = problems(&[("FB__PREDICTION__REMOTE__URL", "http://169.254.169.254/")]);
    assert!(text.contains("prediction.remote.url"), "{text}");
    let text = problems(&[("FB__PREDICTION__REMOTE__URL", "ftp://models.local/")]);
    assert!(text.contains("prediction.remote.url"), "{text}");
    let text = problems(&[("FB__PREDICTION__REMOTE__TIMEOUT_MS", "0")]);
    assert!(text.contains("prediction.remote.timeout_ms"), "{text}");
    let text = problems(&[("FB__PREDICTION__REMOTE__PROTOCOL", "grpc")]);
    assert!(text.contains("prediction.remote.protocol"), "{text}");
    assert!(problems(&[("FB__PREDICTION__REMOTE__URL", "http://10.0.0.5:8080")]).is_empty());
}
