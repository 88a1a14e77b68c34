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
