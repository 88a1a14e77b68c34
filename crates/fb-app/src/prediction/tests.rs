//! Live prediction on a small synthetic fleet whose truth is known: a pump's vibration and
//! temperature rise as its bearing wears out; models trained by fb-predict, registered and
//! promoted through the real registry on the in-memory store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Mutex;

use async_trait::async_trait;
use fb_core::identity::Principal;
use fb_core::plant::{Machine, Reading, SensorKey};
use fb_core::ports::Storage;
use fb_core::rng::SplitMix64;
use fb_predict::data::{History, Observation, Schema, Unit};
use fb_predict::gbdt::BoostParams;
use fb_predict::train::SearchSpec;
use fb_predict::{FeatureSpec, TrainConfig};
use fb_testkit::FakeClock;
use fb_testkit::fakes::MemoryStore;

use super::*;
use crate::auth::SystemPrincipal;
use crate::models::{Registry, Service as Registry_};
use fb_core::model::ModelId;
use fb_core::plant::{MachineId, ReadingBatch, SensorSpec};
use fb_core::ports::{InferenceError, InferenceRequest, RemoteInference};
use std::time::Duration;

const TYPE: &str = "test_pump";
/// One observation a minute, time in hours.
const LIVE: LiveSpec = LiveSpec {
    sample_secs: 60.0,
    secs_per_unit: 3600.0,
};
/// Minutes from a new bearing to failure.
const LIFE: u64 = 240;

/// (vibration, temperature) of a pump `minutes` into a bearing life of `LIFE` minutes.
fn pump(minutes: f64, rng: &mut SplitMix64) -> [f64; 2] {
    let wear = (minutes / LIFE as f64).clamp(0.0, 1.0);
    let noise = |rng: &mut SplitMix64| rng.next_f64() - 0.5;
    [
        2.0 * (1.0 + 6.0 * wear * wear) + 0.1 * noise(rng),
        50.0 + 20.0 * wear * wear + 0.5 * noise(rng),
    ]
}

fn schema() -> Schema {
    Schema {
        settings: vec![],
        sensors: vec!["vibration".into(), "temperature".into()],
    }
}

/// Run-to-failure units starting at a random point of their life, and a few healthy units
/// that stay new (censored).
fn fleet(units: usize, seed: u64) -> History {
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::new();
    for u in 0..units {
        let failing = u % 4 != 3;
        let start = rng.below(100) as f64;
        let length = if failing { LIFE as f64 - start } else { 200.0 };
        let observations: Vec<Observation> = (1..=length as u64)
            .map(|m| {
                let minutes = if failing { start + m as f64 } else { 10.0 };
                Observation {
                    time: (u as f64 * 1000.0 + m as f64) / 60.0,
                    settings: vec![],
                    sensors: pump(minutes, &mut rng).to_vec(),
                }
            })
            .collect();
        let end = observations.last().map(|o| o.time);
        out.push(Unit {
            id: format!("u{u}"),
            observations,
            failed_at: if failing { end } else { None },
        });
    }
    History {
        schema: schema(),
        units: out,
    }
}

fn config(target: TrainConfig, seed: u64) -> TrainConfig {
    TrainConfig {
        features: FeatureSpec::condition(),
        boost: BoostParams {
            max_rounds: 80,
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
    }
}

fn train(kind: ModelKind, seed: u64) -> Model {
    let target = match kind {
        // Fails within the next half hour; RUL capped at two hours.
        ModelKind::Failure => TrainConfig::failure(0.5),
        ModelKind::Rul => TrainConfig::rul(2.0),
    };
    fb_predict::train(&fleet(24, 3), &config(target, seed), &mut |_| {}).unwrap()
}

fn machine(id: &str, machine_type: &str) -> Machine {
    let mut m = fb_testkit::fixtures::machine(id);
    m.machine_type = machine_type.to_owned();
    (m.failure_probability, m.rul_hours) = (None, None);
    let template = m.sensors[0].clone();
    m.sensors = ["temperature", "vibration", "pressure"]
        .iter()
        .map(|key| SensorSpec {
            key: SensorKey((*key).into()),
            physical_min: -1000.0,
            physical_max: 1000.0,
            ..template.clone()
        })
        .collect();
    m
}

struct World {
    storage: Storage,
    clock: Arc<FakeClock>,
    registry: Arc<Registry_<PredictLoader>>,
}

impl World {
    fn new() -> Self {
        let storage = Storage::from_backend(Arc::new(MemoryStore::new()));
        let clock = Arc::new(FakeClock::new());
        let registry = Arc::new(Registry_::new(
            storage.models.clone(),
            clock.clone(),
            PredictLoader::default(),
        ));
        Self {
            storage,
            clock,
            registry,
        }
    }

    async fn promote(&self, model: &Model) -> StoredModel {
        let payload = model.to_json().unwrap().into_bytes();
        let system = Principal::system();
        let stored = self
            .registry
            .register(&system, draft(model, TYPE, &LIVE, None), payload)
            .await
            .unwrap();
        self.registry.promote(&system, stored.id).await.unwrap()
    }

    fn service(&self, remote: Option<Remote>) -> Service {
        Service::new(
            self.storage.machines.clone(),
            self.registry.clone(),
            self.clock.clone(),
            Options {
                store_every: Duration::ZERO,
                spec_recheck: Duration::from_secs(3600),
                remote,
                ..Options::default()
            },
        )
    }
}

/// Readings every 10 s for `minutes` minutes from minute `from` of the pumps' lives (a machine
/// id and the minute of its life it is at when the feed starts).
fn feed(machines: &[(&str, f64)], start_minute: i64, minutes: i64, seed: u64) -> ReadingBatch {
    let mut rng = SplitMix64::new(seed);
    let base = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let mut readings = Vec::new();
    for step in 0..minutes * 6 {
        let at = base + time::Duration::seconds((start_minute * 6 + step) * 10);
        for (id, life) in machines {
            let [vibration, temperature] = pump(life + step as f64 / 6.0, &mut rng);
            for (sensor, value) in [("vibration", vibration), ("temperature", temperature)] {
                readings.push(Reading {
                    machine: MachineId((*id).into()),
                    sensor: SensorKey(sensor.into()),
                    ts: at,
                    value,
                });
            }
        }
    }
    ReadingBatch::from_readings(&readings)
}

#[tokio::test]
async fn a_promoted_model_predicts_from_live_readings_onto_the_machine() {
    let world = World::new();
    for (id, machine_type) in [("new", TYPE), ("worn", TYPE), ("other", "press")] {
        world
            .storage
            .machines
            .insert_machine(&machine(id, machine_type))
            .await
            .unwrap();
    }
    let failure = world.promote(&train(ModelKind::Failure, 1)).await;
    world.promote(&train(ModelKind::Rul, 1)).await;
    let mut service = world.service(None);
    // 40 minutes: "new" stays near the start of its life, "worn" ends 10 minutes from failure.
    let batch = feed(&[("new", 5.0), ("worn", 190.0), ("other", 190.0)], 0, 40, 7);
    service.accept(&batch).await.unwrap();
    service.tick().await.unwrap();

    let new = service.prediction(&MachineId("new".into())).unwrap();
    let worn = service.prediction(&MachineId("worn".into())).unwrap();
    let (p_new, p_worn) = (
        new.failure_probability.unwrap(),
        worn.failure_probability.unwrap(),
    );
    assert!(p_new < 0.2 && p_worn > 0.6, "new {p_new}, worn {p_worn}");
    let (rul_new, rul_worn) = (new.rul_hours.unwrap(), worn.rul_hours.unwrap());
    assert!(
        rul_new > 1.5 && rul_worn < 0.7,
        "new {rul_new} h, worn {rul_worn} h"
    );
    // A type without models gets nothing.
    assert_eq!(
        service.prediction(&MachineId("other".into())),
        Some(MachinePrediction::default())
    );

    // Written on the machines, where the failure-risk rule reads them.
    let stored = world
        .storage
        .machines
        .machine(&MachineId("worn".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.failure_probability,
        Some((p_worn * 1e4).round() / 1e4)
    );
    assert_eq!(stored.rul_hours, Some((rul_worn * 100.0).round() / 100.0));
    let other = world
        .storage
        .machines
        .machine(&MachineId("other".into()))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((other.failure_probability, other.rul_hours), (None, None));

    // The live answer is the model's answer on the same observations (minute means).
    let loaded = world.registry.active(ModelKind::Failure, TYPE).unwrap();
    assert_eq!(loaded.model.id, failure.id);
    assert!(service.state_bytes() > 0);
}

#[tokio::test]
async fn a_promotion_is_followed_without_a_restart_and_keeps_the_machines_history() {
    let world = World::new();
    world
        .storage
        .machines
        .insert_machine(&machine("worn", TYPE))
        .await
        .unwrap();
    let first = train(ModelKind::Failure, 1);
    world.promote(&first).await;
    let mut service = world.service(None);
    service
        .accept(&feed(&[("worn", 170.0)], 0, 30, 7))
        .await
        .unwrap();
    service.tick().await.unwrap();
    let before = service
        .prediction(&MachineId("worn".into()))
        .unwrap()
        .failure_probability
        .unwrap();

    // Another seed: other trees, the same feature pipeline, so the state carries over and the
    // new model answers at the next tick without a new reading.
    let second = train(ModelKind::Failure, 2);
    assert_eq!(second.pipeline, first.pipeline);
    assert_ne!(second.ensemble, first.ensemble);
    let promoted = world.promote(&second).await;
    assert_eq!(promoted.version, 2);
    service.tick().await.unwrap();
    let after = service
        .prediction(&MachineId("worn".into()))
        .unwrap()
        .failure_probability
        .unwrap();
    let (serving, features) = service
        .serving(&MachineId("worn".into()), ModelKind::Failure)
        .unwrap();
    assert_eq!(serving, promoted.id);
    let expected = second.predict_features(features).value();
    assert_eq!(after, expected);
    assert_ne!(after, before);
}

/// A remote model server as the port sees it, answering as told.
struct FakeRemote {
    answer: Mutex<Result<Vec<f64>, InferenceError>>,
    delay: Duration,
    asked: Mutex<Vec<(String, usize, usize)>>,
}

impl FakeRemote {
    fn new(answer: Result<Vec<f64>, InferenceError>, delay: Duration) -> Arc<Self> {
        Arc::new(Self {
            answer: Mutex::new(answer),
            delay,
            asked: Mutex::new(Vec::new()),
        })
    }
}

#[async_trait]
impl RemoteInference for FakeRemote {
    fn target(&self) -> &str {
        "fake"
    }

    async fn infer(&self, request: InferenceRequest<'_>) -> Result<Vec<f64>, InferenceError> {
        self.asked.lock().unwrap().push((
            request.model.to_owned(),
            request.rows(),
            request.features.len(),
        ));
        tokio::time::sleep(self.delay).await;
        self.answer.lock().unwrap().clone()
    }
}

async fn with_remote(remote: Arc<FakeRemote>) -> (f64, f64) {
    let world = World::new();
    world
        .storage
        .machines
        .insert_machine(&machine("worn", TYPE))
        .await
        .unwrap();
    let model = train(ModelKind::Failure, 1);
    world.promote(&model).await;
    let mut service = world.service(Some(Remote {
        client: remote,
        model_name: "fb-{kind}-{machine_type}".to_owned(),
        budget: Duration::from_millis(50),
    }));
    service
        .accept(&feed(&[("worn", 170.0)], 0, 30, 7))
        .await
        .unwrap();
    service.tick().await.unwrap();
    let used = service
        .prediction(&MachineId("worn".into()))
        .unwrap()
        .failure_probability
        .unwrap();
    let (_, features) = service
        .serving(&MachineId("worn".into()), ModelKind::Failure)
        .unwrap();
    (used, model.predict_features(features).value())
}

#[tokio::test]
async fn the_remote_answer_is_used_when_it_comes_in_time_and_makes_sense() {
    let remote = FakeRemote::new(Ok(vec![0.4242]), Duration::ZERO);
    let (used, local) = with_remote(remote.clone()).await;
    assert_eq!(used, 0.4242);
    assert_ne!(local, 0.4242);
    let asked = remote.asked.lock().unwrap().clone();
    let features = train(ModelKind::Failure, 1).meta.features.len();
    assert_eq!(asked, [("fb-failure-test_pump".to_owned(), 1, features)]);
}

#[tokio::test(start_paused = true)]
async fn the_local_model_answers_when_the_remote_is_slow_failing_or_makes_no_sense() {
    for (answer, delay) in [
        // Past the 50 ms budget.
        (Ok(vec![0.4242]), Duration::from_millis(200)),
        (
            Err(InferenceError::Failed("HTTP 503".into())),
            Duration::ZERO,
        ),
        (Err(InferenceError::CircuitOpen), Duration::ZERO),
        (
            Err(InferenceError::BadAnswer("not JSON".into())),
            Duration::ZERO,
        ),
        // Not a probability, and not one value per machine.
        (Ok(vec![1.7]), Duration::ZERO),
        (Ok(vec![0.1, 0.2]), Duration::ZERO),
    ] {
        let label = format!("{answer:?} after {delay:?}");
        let (used, local) = with_remote(FakeRemote::new(answer, delay)).await;
        assert_eq!(used, local, "{label}");
    }
}

#[tokio::test]
async fn the_loader_reads_only_consistent_models_with_their_live_parameters() {
    let model = train(ModelKind::Failure, 1);
    let payload = model.to_json().unwrap().into_bytes();
    let stored = |draft: fb_core::model::ModelDraft| StoredModel {
        id: ModelId(uuid::Uuid::now_v7()),
        kind: draft.kind,
        machine_type: draft.machine_type,
        version: 1,
        format: draft.format,
        created_at: time::OffsetDateTime::UNIX_EPOCH,
        created_by: "system".into(),
        data_hash: draft.data_hash,
        features: draft.features,
        metrics: draft.metrics,
        params: draft.params,
        note: None,
        payload_bytes: payload.len() as u64,
        payload_sha256: String::new(),
        active: false,
        activated_at: None,
    };
    let good = draft(&model, TYPE, &LIVE, None);
    assert_eq!(good.format, fb_predict::REGISTRY_FORMAT);
    assert!(good.metrics.contains_key("log_loss") && good.metrics.contains_key("f1"));
    assert_eq!(good.params[PARAM_SAMPLE_SECS], "60");
    assert!(fb_core::model::validate_draft(&good, payload.len()).is_empty());
    let loaded = LiveModel::load(&stored(good.clone()), &payload).unwrap();
    assert_eq!(loaded.live, LIVE);

    let refused = |mut d: fb_core::model::ModelDraft,
                   edit: &dyn Fn(&mut fb_core::model::ModelDraft)| {
        edit(&mut d);
        LiveModel::load(&stored(d), &payload).unwrap_err()
    };
    let e = refused(good.clone(), &|d| d.kind = ModelKind::Rul);
    assert!(e.contains("failure model, registered as rul"), "{e}");
    let e = refused(good.clone(), &|d| {
        d.params.remove(PARAM_SECS_PER_UNIT);
    });
    assert!(e.contains("params.live.secs_per_unit is missing"), "{e}");
    let e = refused(good.clone(), &|d| {
        d.params.insert(PARAM_SAMPLE_SECS.into(), "0".into());
    });
    assert!(e.contains("sample_secs"), "{e}");
    let e = refused(good.clone(), &|d| d.features.reverse());
    assert!(e.contains("features differ"), "{e}");
    let e = LiveModel::load(
        &stored(good),
        b"{\"format\": \"other\", \"format_version\": 1}",
    )
    .unwrap_err();
    assert!(e.contains("not \"factorybrain.predict.model\""), "{e}");
}

#[tokio::test]
async fn a_machine_moved_to_a_type_without_models_loses_its_figures() {
    let world = World::new();
    world
        .storage
        .machines
        .insert_machine(&machine("worn", TYPE))
        .await
        .unwrap();
    world.promote(&train(ModelKind::Failure, 1)).await;
    let mut service = Service::new(
        world.storage.machines.clone(),
        world.registry.clone(),
        world.clock.clone(),
        Options {
            store_every: Duration::ZERO,
            spec_recheck: Duration::ZERO,
            ..Options::default()
        },
    );
    service
        .accept(&feed(&[("worn", 170.0)], 0, 30, 7))
        .await
        .unwrap();
    assert_eq!(service.tick().await.unwrap(), 1);
    let id = MachineId("worn".into());
    let stored = |world: &World| {
        let machines = world.storage.machines.clone();
        let id = id.clone();
        async move { machines.machine(&id).await.unwrap().unwrap() }
    };
    assert!(stored(&world).await.failure_probability.is_some());

    // Re-typed: the next reading re-reads it; no model serves the new type.
    world
        .storage
        .machines
        .update_machine(&machine("worn", "press"))
        .await
        .unwrap();
    service
        .accept(&feed(&[("worn", 200.0)], 30, 1, 8))
        .await
        .unwrap();
    assert_eq!(service.tick().await.unwrap(), 0);
    assert_eq!(service.prediction(&id), Some(MachinePrediction::default()));
    let after = stored(&world).await;
    assert_eq!((after.failure_probability, after.rul_hours), (None, None));
}
