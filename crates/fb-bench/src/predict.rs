//! `fb-bench predict`: what live prediction costs, and whether it slows ingest.
//!
//! 1. **Cost per update**, one core: the demo's models (one failure and one RUL model per
//!    machine type, trained on simulated histories as `serve --demo` does) active for a
//!    simulated plant of 100 machines × 5 sensors; an hour of its readings, one a second per
//!    sensor, goes through the server's prediction service in batches of a second (the ingest
//!    path: resampling into minute observations and feeding the predictors), with a tick every
//!    five simulated seconds (the predictions and the machines' writes to SQLite). The first
//!    half hour warms the windows and is not timed. Predictor state per machine beside it.
//! 2. **Ingest with and without prediction**: the HTTP → SQLite benchmark (gateway senders) run
//!    with the prediction task following ingest, the models active for the benchmark's
//!    machines, ticking every second, against the same run without it; medians of three runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use fb_app::auth::SystemPrincipal;
use fb_app::models::Registry;
use fb_core::identity::Principal;
use fb_core::model::ModelKind;
use fb_core::plant::ReadingBatch;
use fb_predict::Model;
use fb_server::demo_models;
use fb_server::settings::{Layers, Settings};
use fb_server::wire;
use fb_sim::MachineKind;
use time::OffsetDateTime;

use super::{RUNS, Server, http_run, json_payloads, repeat, workload};

const PLANT: usize = 100;
const WARMUP_SECS: i64 = 1800;
const TIMED_SECS: i64 = 3600;
const TICK_SECS: i64 = 5;
const KINDS: [MachineKind; 5] = [
    MachineKind::Pump,
    MachineKind::Compressor,
    MachineKind::Press,
    MachineKind::CncMill,
    MachineKind::Conveyor,
];

/// The demo's models of every machine type: (type, failure model, RUL model).
fn models() -> anyhow::Result<Vec<(MachineKind, Model, Model)>> {
    KINDS
        .iter()
        .map(|&kind| {
            let history = demo_models::history(kind, 4242);
            Ok((
                kind,
                demo_models::train(kind, ModelKind::Failure, &history)?,
                demo_models::train(kind, ModelKind::Rul, &history)?,
            ))
        })
        .collect()
}

async fn promote(
    registry: &dyn Registry,
    machine_type: &str,
    models: [&Model; 2],
) -> anyhow::Result<()> {
    let system = Principal::system();
    for model in models {
        let draft = fb_app::prediction::draft(model, machine_type, &demo_models::LIVE, None);
        let stored = registry
            .register(&system, draft, model.to_json()?.into_bytes())
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        registry
            .promote(&system, stored.id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(())
}

pub(crate) async fn run(readings: usize) -> anyhow::Result<()> {
    let started = Instant::now();
    let models = models()?;
    println!(
        "trained the demo's models (5 machine types x failure and RUL) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    cost(&models).await?;
    ingest(&models, readings).await
}

async fn cost(models: &[(MachineKind, Model, Model)]) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let settings = Settings::load(&Layers {
        env: vec![(
            "FB__SERVER__DATA_DIR".into(),
            dir.path().display().to_string(),
        )],
        ..Layers::default()
    })
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let storage = wire::open_storage(&settings).await?;
    let registry = wire::model_registry(&storage);
    for (kind, failure, rul) in models {
        promote(&*registry, kind.name(), [failure, rul]).await?;
    }
    let start = OffsetDateTime::now_utc() - time::Duration::days(1);
    let machines = fb_sim::plant_machines(PLANT, start);
    for (m, _) in &machines {
        storage.machines.insert_machine(m).await?;
    }
    let mut service = fb_app::prediction::Service::new(
        storage.machines.clone(),
        registry.clone(),
        Arc::new(fb_core::SystemClock),
        fb_app::prediction::Options {
            store_every: Duration::from_secs(10),
            ..fb_app::prediction::Options::default()
        },
    );
    // Random faults at the simulator's default rate, and one machine wearing out.
    let mut sim = fb_sim::Simulator::new(7, &machines, start);
    sim.set_wear(&machines[1].0.id, 0.5);
    let (mut accept, mut tick) = (Duration::ZERO, Duration::ZERO);
    let (mut timed_readings, mut predictions) = (0usize, 0usize);
    for second in 1..=WARMUP_SECS + TIMED_SECS {
        let batch = ReadingBatch::from_readings(&sim.step(time::Duration::seconds(1)));
        let timed = second > WARMUP_SECS;
        let t = Instant::now();
        service.accept(&batch).await?;
        if timed {
            accept += t.elapsed();
            timed_readings += batch.len();
        }
        if second % TICK_SECS == 0 {
            let t = Instant::now();
            let made = service.tick().await?;
            if timed {
                tick += t.elapsed();
                predictions += made;
            }
        }
    }
    let bytes = service.state_bytes() as f64 / PLANT as f64;
    println!(
        "prediction cost on one core ({PLANT} machines, {timed_readings} readings timed): {:.0} ns per reading (resampling, observations into the predictors); {:.1} us per prediction ({predictions} predictions, the machines' writes included); {bytes:.0} bytes of predictor state per machine (two models)",
        accept.as_nanos() as f64 / timed_readings.max(1) as f64,
        tick.as_secs_f64() * 1e6 / predictions.max(1) as f64,
    );
    storage.health.close().await;
    Ok(())
}

async fn ingest(models: &[(MachineKind, Model, Model)], readings: usize) -> anyhow::Result<()> {
    let rows = workload(readings);
    let payloads = json_payloads(&rows, super::Senders::GatewayPerMachines);
    let plain = repeat(|| http_run(&payloads, readings, Vec::new(), None)).await?;
    // The benchmark's machines have the simulated plant's five sensors: the pump's models
    // serve them.
    let pump = models
        .iter()
        .find(|(k, ..)| *k == MachineKind::Pump)
        .map(|(_, f, r)| [f, r])
        .ok_or_else(|| anyhow::anyhow!("no pump models"))?;
    let env = vec![("FB__PREDICTION__EVERY_SECS".into(), "1".into())];
    let predicting = repeat(|| http_run(&payloads, readings, env.clone(), Some(pump))).await?;
    println!(
        "HTTP JSON -> SQLite ({readings} readings, median of {RUNS}): {:.0} readings/s without prediction [{:.0}..{:.0}], {:.0} with the prediction task following ingest [{:.0}..{:.0}] ({:+.1} %); request p99 {:.1} ms without, {:.1} ms with",
        plain.median.rate,
        plain.low,
        plain.high,
        predicting.median.rate,
        predicting.low,
        predicting.high,
        100.0 * (predicting.median.rate / plain.median.rate - 1.0),
        plain.median.p99_ms,
        predicting.median.p99_ms
    );
    Ok(())
}

/// Registers the pump's models for the benchmark's machines (type `bench`) on the server's
/// store and starts the prediction task; stop it with the sender.
pub(super) async fn start_prediction(
    server: &Server,
    models: [&Model; 2],
) -> anyhow::Result<(
    tokio::sync::watch::Sender<bool>,
    tokio::task::JoinHandle<()>,
)> {
    let registry = wire::model_registry(&server.storage);
    promote(&*registry, "bench", models).await?;
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let task = wire::spawn_prediction(
        &server.settings,
        &server.storage,
        &server.state,
        registry,
        stop,
    )?
    .ok_or_else(|| anyhow::anyhow!("prediction is disabled"))?;
    Ok((stop_tx, task))
}
