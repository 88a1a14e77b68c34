//! The demo's prediction models (`serve --demo`): when no model is active for a demo machine
//! type, the demo trains one failure and one RUL model per type on simulated run-to-failure
//! histories, registers and promotes them, before its plant starts streaming. Seeded: every
//! start trains the same models. A few seconds in all, on the blocking pool.
//!
//! **The histories.** For each machine type, the simulator ([`fb_sim`]) runs machines of that
//! type, each from a random time of day, a reading per sensor every two seconds: most with a
//! bearing wearing out (the simulator's bearing-wear fault, from a random initial wear until the
//! wear reaches [`FAILURE_WEAR`], which is the unit's failure), some healthy and still running
//! (censored). Readings go through the same [`Resampler`] the live predictors use, one
//! observation a minute (the mean of each sensor's readings), time in hours. So a demo
//! machine's live predictor sees what the models saw in training.
//!
//! **The models.** Failure within [`HORIZON_HOURS`] hours and RUL capped at [`RUL_CAP_HOURS`],
//! with the condition features (window statistics and EWMAs of the five sensors; no age, since
//! a live predictor starts in the middle of a machine's life), one parameter set, three folds
//! by unit. In the demo, sim-compressor-7 starts with a worn bearing (0.4) that keeps wearing
//! (0.14 an hour): its RUL falls from about three hours and its failure probability rises past
//! the failure-risk threshold within the first half hour (measured in the README); the other
//! machines stay new, with a low probability and the RUL near its cap.

use std::time::Instant;

use time::OffsetDateTime;

use fb_app::auth::SystemPrincipal;
use fb_app::models::Registry;
use fb_core::identity::Principal;
use fb_core::model::ModelKind;
use fb_core::plant::{MachineId, to_micros};
use fb_core::ports::ModelFilter;
use fb_core::rng::SplitMix64;
use fb_predict::data::{History, Observation, Schema, Unit};
use fb_predict::gbdt::BoostParams;
use fb_predict::train::SearchSpec;
use fb_predict::{FeatureSpec, LiveSpec, Model, Resampled, Resampler, TrainConfig};
use fb_sim::{FaultKind, MachineKind, PlannedFault, Simulator, plant_machines};

/// One observation a minute; time in hours.
pub const LIVE: LiveSpec = LiveSpec {
    sample_secs: 60.0,
    secs_per_unit: 3600.0,
};
/// A bearing this worn has failed (vibration about six times its nominal level).
pub const FAILURE_WEAR: f64 = 0.9;
/// Failure models: the probability of failing within this many hours.
pub const HORIZON_HOURS: f64 = 3.0;
/// RUL models: the remaining life is capped at this many hours.
pub const RUL_CAP_HOURS: f64 = 8.0;
/// Units per machine type: wearing out, and healthy.
const FAILING_UNITS: usize = 16;
const HEALTHY_UNITS: usize = 6;
/// Healthy units run this long (past the RUL cap, so that they teach "at least the cap").
const HEALTHY_HOURS: i64 = 10;
const SEED: u64 = 4242;
/// The simulator's step: a reading per sensor every 2 s, 30 to a minute's mean (the live demo
/// sends one a second; the means differ only in their noise, √2 smaller live).
const STEP_SECS: i64 = 2;

/// Simulated run-to-failure histories of one machine type.
pub fn history(kind: MachineKind, seed: u64) -> History {
    let mut rng = SplitMix64::derive(seed, kind as u64);
    let base =
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let mut units = Vec::with_capacity(FAILING_UNITS + HEALTHY_UNITS);
    let mut schema = None;
    for u in 0..FAILING_UNITS + HEALTHY_UNITS {
        let failing = u < FAILING_UNITS;
        // Each unit starts at its own time of day (the shifts' load), days apart.
        let start = base
            + time::Duration::days(u as i64)
            + time::Duration::minutes(rng.below(24 * 60) as i64);
        let Some((mut machine, _)) = plant_machines(5, start)
            .into_iter()
            .find(|(_, k)| *k == kind)
        else {
            continue;
        };
        machine.id = MachineId(format!("unit-{u}"));
        // The models read the five condition sensors; the production rates are the plant
        // optimizer's (and without them the simulator's other readings stay as they were).
        machine.sensors.retain(|s| {
            s.key.0 != fb_core::kpi::OUTPUT_SENSOR && s.key.0 != fb_core::kpi::SCRAP_SENSOR
        });
        let keys: Vec<String> = machine.sensors.iter().map(|s| s.key.0.clone()).collect();
        schema.get_or_insert_with(|| Schema {
            settings: vec![],
            sensors: keys,
        });
        let mut sim =
            Simulator::new(rng.next_u64(), &[(machine.clone(), kind)], start).with_fault_rate(0.0);
        let initial = if failing {
            rng.next_f64() * 0.5
        } else {
            rng.next_f64() * 0.25
        };
        sim.set_wear(&machine.id, initial);
        if failing {
            sim.plan(PlannedFault {
                machine: machine.id.clone(),
                kind: FaultKind::BearingWear,
                sensor: None,
                start,
                duration: time::Duration::days(2),
            });
        }
        let index = |key: &str| machine.sensors.iter().position(|s| s.key.0 == key);
        let mut resampler = Resampler::new(machine.sensors.len(), LIVE.sample_secs);
        let mut row = Vec::new();
        let mut observations = Vec::new();
        let mut failed_at = None;
        let end = start + time::Duration::hours(HEALTHY_HOURS);
        while failed_at.is_none() && (failing || sim.now() < end) {
            for reading in sim.step(time::Duration::seconds(STEP_SECS)) {
                let Some(i) = index(&reading.sensor.0) else {
                    continue;
                };
                if let Resampled::Closed { at_micros } =
                    resampler.push(i, to_micros(reading.ts), reading.value, &mut row)
                    && row.iter().all(|v| v.is_finite())
                {
                    observations.push(Observation {
                        time: LIVE.time(at_micros),
                        settings: vec![],
                        sensors: row.clone(),
                    });
                }
            }
            if failing && sim.wear(&machine.id).is_some_and(|w| w >= FAILURE_WEAR) {
                failed_at = observations.last().map(|o: &Observation| o.time);
            }
        }
        if !observations.is_empty() {
            units.push(Unit {
                id: format!("{}-{u}", kind.name()),
                observations,
                failed_at,
            });
        }
    }
    History {
        schema: schema.unwrap_or(Schema {
            settings: vec![],
            sensors: vec![],
        }),
        units,
    }
}

/// The training settings of the demo's models.
pub fn config(kind: ModelKind) -> TrainConfig {
    let target = match kind {
        ModelKind::Failure => TrainConfig::failure(HORIZON_HOURS),
        ModelKind::Rul => TrainConfig::rul(RUL_CAP_HOURS),
    };
    TrainConfig {
        features: FeatureSpec::condition(),
        boost: BoostParams {
            max_rounds: 200,
            early_stopping_rounds: 20,
            min_data_in_leaf: 20,
            ..BoostParams::default()
        },
        search: SearchSpec {
            candidates: 1,
            folds: 3,
            threads: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        },
        seed: SEED,
        ..target
    }
}

/// Trains the demo's model of `kind` for machines of `machine`'s type.
pub fn train(machine: MachineKind, kind: ModelKind, history: &History) -> anyhow::Result<Model> {
    let started = Instant::now();
    let mut model = fb_predict::train(history, &config(kind), &mut |_| {})
        .map_err(|e| anyhow::anyhow!("demo model for {}: {e}", machine.name()))?;
    model.meta.training_seconds = Some(started.elapsed().as_secs_f64());
    Ok(model)
}

/// Makes sure every demo machine type has an active failure and RUL model: the types that
/// lack one get models trained now (on the blocking pool, the types side by side on the cores
/// available), registered and promoted.
pub async fn ensure(registry: &dyn Registry, kinds: &[MachineKind]) -> anyhow::Result<()> {
    let system = Principal::system();
    let mut missing: Vec<(MachineKind, Vec<ModelKind>)> = Vec::new();
    for &machine in kinds {
        let mut lacking = Vec::new();
        for kind in [ModelKind::Failure, ModelKind::Rul] {
            let filter = ModelFilter {
                kind: Some(kind),
                machine_type: Some(machine.name().to_owned()),
            };
            let models = registry
                .list(&system, &filter)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            if !models.iter().any(|m| m.active) {
                lacking.push(kind);
            }
        }
        if !lacking.is_empty() {
            missing.push((machine, lacking));
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let started = Instant::now();
    let trained = tokio::task::spawn_blocking(move || train_all(&missing)).await??;
    for (machine, model) in trained {
        let payload = model.to_json()?.into_bytes();
        let draft = fb_app::prediction::draft(
            &model,
            machine.name(),
            &LIVE,
            Some("serve --demo: trained on simulated run-to-failure histories".to_owned()),
        );
        let stored = registry
            .register(&system, draft, payload)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let promoted = registry
            .promote(&system, stored.id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        tracing::info!(
            machine_type = machine.name(),
            kind = %promoted.kind,
            version = promoted.version,
            "Demo: model trained on simulated histories and made active."
        );
    }
    tracing::info!(
        seconds = started.elapsed().as_secs_f64(),
        "Demo: prediction models ready."
    );
    Ok(())
}

/// Simulates and trains every missing line, one machine type per thread at a time; the
/// models do not depend on the thread count (each type has its own seeds).
fn train_all(
    missing: &[(MachineKind, Vec<ModelKind>)],
) -> anyhow::Result<Vec<(MachineKind, Model)>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZeroUsize::get)
        .min(missing.len());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let work = || -> anyhow::Result<Vec<(usize, MachineKind, Model)>> {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some((machine, kinds)) = missing.get(i) else {
                return Ok(done);
            };
            let history = history(*machine, SEED);
            for &kind in kinds {
                done.push((i, *machine, train(*machine, kind, &history)?));
            }
        }
    };
    let mut all = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads).map(|_| scope.spawn(work)).collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .map_err(|_| anyhow::anyhow!("a demo training thread panicked"))?
            })
            .collect::<anyhow::Result<Vec<_>>>()
    })?
    .into_iter()
    .flatten()
    .collect::<Vec<_>>();
    // Registered in the order of the machine types, whatever thread finished first.
    all.sort_by_key(|(i, _, model)| (*i, model.kind() == fb_predict::ModelKind::Rul));
    Ok(all
        .into_iter()
        .map(|(_, machine, model)| (machine, model))
        .collect())
}

#[cfg(test)]
mod tests;
