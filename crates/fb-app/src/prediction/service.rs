//! The live predictors: see the module docs of [`crate::prediction`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustc_hash::FxHashMap;
use tokio::sync::{broadcast, watch};

use fb_core::Clock;
use fb_core::model::{ModelId, ModelKind};
use fb_core::plant::{MachineId, ReadingBatch, SensorSpec};
use fb_core::ports::{InferenceError, InferenceRequest, MachineStore, RemoteInference, StoreError};
use fb_predict::{InputMap, LiveSpec, MachinePredictor, Resampled, Resampler};

use super::{ActiveModels, LiveModel};
use crate::models::LoadedModel;

/// The remote model server and how long a tick waits for it.
#[derive(Clone)]
pub struct Remote {
    pub client: Arc<dyn RemoteInference>,
    /// The remote model's name for a line: `{kind}` and `{machine_type}` are replaced.
    pub model_name: String,
    /// The latency budget: past it the local prediction stands.
    pub budget: Duration,
}

impl Remote {
    pub fn name_for(&self, kind: ModelKind, machine_type: &str) -> String {
        self.model_name
            .replace("{kind}", kind.as_str())
            .replace("{machine_type}", machine_type)
    }
}

#[derive(Clone)]
pub struct Options {
    /// How often predictions are made (for machines with a new observation) and the active
    /// models are compared with the predictors'.
    pub tick: Duration,
    /// A machine's record is written at most this often.
    pub store_every: Duration,
    /// How often a tracked machine's record is read again (type and sensors).
    pub spec_recheck: Duration,
    pub remote: Option<Remote>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(5),
            store_every: Duration::from_secs(10),
            spec_recheck: Duration::from_secs(30),
            remote: None,
        }
    }
}

/// The predictions of one machine, as last made.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MachinePrediction {
    pub failure_probability: Option<f64>,
    pub rul_hours: Option<f64>,
}

const KINDS: [ModelKind; 2] = [ModelKind::Failure, ModelKind::Rul];

fn slot_of(kind: ModelKind) -> usize {
    match kind {
        ModelKind::Failure => 0,
        ModelKind::Rul => 1,
    }
}

/// One model's predictor on one machine.
struct Slot {
    model_id: ModelId,
    live: LiveSpec,
    predictor: MachinePredictor,
    inputs: InputMap,
    resampler: Resampler,
    /// An observation arrived since the last prediction.
    fresh: bool,
}

struct Tracked {
    machine_type: String,
    sensors: Vec<SensorSpec>,
    checked_at: Instant,
    slots: [Option<Slot>; 2],
    /// Models this machine cannot use (an input missing), so that they are not tried and
    /// logged on every tick.
    unusable: Vec<ModelId>,
    current: MachinePrediction,
    stored: Option<(MachinePrediction, Instant)>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Service {
    machines: Arc<dyn MachineStore>,
    models: Arc<dyn ActiveModels>,
    clock: Arc<dyn Clock>,
    options: Options,
    tracked: FxHashMap<MachineId, Tracked>,
    unknown: FxHashMap<MachineId, Instant>,
    /// Scratch, reused across readings.
    row: Vec<f64>,
    settings: Vec<f64>,
    sensors: Vec<f64>,
}

impl Service {
    pub fn new(
        machines: Arc<dyn MachineStore>,
        models: Arc<dyn ActiveModels>,
        clock: Arc<dyn Clock>,
        options: Options,
    ) -> Self {
        Self {
            machines,
            models,
            clock,
            options,
            tracked: FxHashMap::default(),
            unknown: FxHashMap::default(),
            row: Vec::new(),
            settings: Vec::new(),
            sensors: Vec::new(),
        }
    }

    /// Runs until `stop` turns true, following `readings` (ingest's stored batches).
    pub async fn run(
        mut self,
        mut readings: broadcast::Receiver<Arc<ReadingBatch>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(self.options.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            enum Event {
                Batch(Result<Arc<ReadingBatch>, broadcast::error::RecvError>),
                Tick,
            }
            let event = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break,
                // The tick before the readings: a queue that never empties (ingest faster than
                // prediction) must not starve the predictions.
                _ = tick.tick() => Event::Tick,
                batch = readings.recv() => Event::Batch(batch),
            };
            let result = match event {
                Event::Batch(Ok(batch)) => self.accept(&batch).await,
                Event::Batch(Err(broadcast::error::RecvError::Lagged(skipped))) => {
                    metrics::counter!("fb_prediction_skipped_batches_total").increment(skipped);
                    tracing::warn!(
                        skipped,
                        "Prediction fell behind ingest; batches were left out."
                    );
                    Ok(())
                }
                Event::Batch(Err(broadcast::error::RecvError::Closed)) => break,
                Event::Tick => self.tick().await.map(|_| ()),
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "Prediction could not store its results; it goes on.");
            }
        }
    }

    /// Feeds a stored batch to the machines' predictors.
    pub async fn accept(&mut self, batch: &ReadingBatch) -> Result<(), Error> {
        // Where each series of the batch goes: (machine, sensor index), looked up once.
        let mut places: Vec<Option<(MachineId, usize)>> = Vec::with_capacity(batch.series().len());
        for name in batch.series() {
            let place = match self.track(&name.machine).await? {
                Some(t) if t.slots.iter().any(Option::is_some) => t
                    .sensors
                    .iter()
                    .position(|s| s.key == name.sensor)
                    .map(|i| (name.machine.clone(), i)),
                _ => None,
            };
            places.push(place);
        }
        let (row, settings, sensors) = (&mut self.row, &mut self.settings, &mut self.sensors);
        for sample in batch.samples() {
            let Some((machine, sensor)) = &places[sample.series.get()] else {
                continue;
            };
            let Some(tracked) = self.tracked.get_mut(machine) else {
                continue;
            };
            for slot in tracked.slots.iter_mut().flatten() {
                observe(
                    slot,
                    *sensor,
                    sample.ts_micros,
                    sample.value,
                    row,
                    settings,
                    sensors,
                );
            }
        }
        Ok(())
    }

    /// Swaps in newly active models, predicts for every machine with a new observation, and
    /// stores what changed. Returns the number of predictions made.
    pub async fn tick(&mut self) -> Result<usize, Error> {
        let started = Instant::now();
        self.follow_models();
        // Local predictions first: always available, and the fallback.
        let mut due: Vec<(MachineId, ModelKind)> = Vec::new();
        for (id, tracked) in &mut self.tracked {
            for kind in KINDS {
                let Some(slot) = tracked.slots[slot_of(kind)].as_mut() else {
                    continue;
                };
                if !slot.fresh {
                    continue;
                }
                slot.fresh = false;
                let Some(prediction) = slot.predictor.predict() else {
                    continue;
                };
                set(&mut tracked.current, kind, prediction.value(), &slot.live);
                due.push((id.clone(), kind));
            }
        }
        let predicted = due.len();
        if let Some(remote) = self.options.remote.clone()
            && !due.is_empty()
        {
            self.ask_remote(&remote, &due).await;
        }
        if predicted > 0 {
            metrics::histogram!("fb_prediction_tick_seconds")
                .record(started.elapsed().as_secs_f64());
            metrics::counter!("fb_predictions_total").increment(predicted as u64);
        }
        self.store().await?;
        Ok(predicted)
    }

    /// The predictions of a machine, as last made (None for a machine not followed).
    pub fn prediction(&self, machine: &MachineId) -> Option<MachinePrediction> {
        self.tracked.get(machine).map(|t| t.current)
    }

    /// The model a machine's predictor of `kind` serves and the features of its last
    /// prediction.
    pub fn serving(&self, machine: &MachineId, kind: ModelKind) -> Option<(ModelId, &[f64])> {
        let slot = self.tracked.get(machine)?.slots[slot_of(kind)].as_ref()?;
        Some((slot.model_id, slot.predictor.features()))
    }

    /// Bytes of predictor state held for all machines (the shared models not counted).
    pub fn state_bytes(&self) -> usize {
        self.tracked
            .values()
            .flat_map(|t| t.slots.iter().flatten())
            .map(|s| s.predictor.state_bytes())
            .sum()
    }

    /// The machine's state, read (again) from the store when due. `None` for a machine the
    /// store does not know.
    async fn track(&mut self, id: &MachineId) -> Result<Option<&Tracked>, Error> {
        let due = match self.tracked.get(id) {
            Some(t) => t.checked_at.elapsed() >= self.options.spec_recheck,
            None => self
                .unknown
                .get(id)
                .is_none_or(|at| at.elapsed() >= self.options.spec_recheck),
        };
        if due {
            match self.machines.machine(id).await? {
                Some(machine) => {
                    self.unknown.remove(id);
                    let same = self.tracked.get(id).is_some_and(|t| {
                        t.machine_type == machine.machine_type && t.sensors == machine.sensors
                    });
                    if same {
                        if let Some(t) = self.tracked.get_mut(id) {
                            t.checked_at = Instant::now();
                        }
                    } else {
                        let previous = self.tracked.remove(id);
                        // Sensors edited: the figures stand until the new predictors answer.
                        // Another type: they are cleared unless its models answer.
                        let current = previous
                            .as_ref()
                            .filter(|p| p.machine_type == machine.machine_type)
                            .map_or_else(MachinePrediction::default, |p| p.current);
                        let mut tracked = Tracked {
                            machine_type: machine.machine_type.clone(),
                            sensors: machine.sensors.clone(),
                            checked_at: Instant::now(),
                            slots: [None, None],
                            unusable: Vec::new(),
                            current,
                            stored: previous.and_then(|p| p.stored),
                        };
                        refresh_slots(&*self.models, id, &mut tracked);
                        self.tracked.insert(id.clone(), tracked);
                    }
                }
                None => {
                    self.tracked.remove(id);
                    self.unknown.insert(id.clone(), Instant::now());
                }
            }
        }
        Ok(self.tracked.get(id))
    }

    fn follow_models(&mut self) {
        for (id, tracked) in &mut self.tracked {
            refresh_slots(&*self.models, id, tracked);
        }
    }

    /// Sends every due machine's features to the remote, one request per model line, all at
    /// once, and keeps the answers that came back in time and make sense.
    async fn ask_remote(&mut self, remote: &Remote, due: &[(MachineId, ModelKind)]) {
        struct Group {
            kind: ModelKind,
            name: String,
            features: Vec<String>,
            values: Vec<f64>,
            machines: Vec<MachineId>,
        }
        let mut groups: FxHashMap<ModelId, Group> = FxHashMap::default();
        for (id, kind) in due {
            let Some(tracked) = self.tracked.get(id) else {
                continue;
            };
            let Some(slot) = tracked.slots[slot_of(*kind)].as_ref() else {
                continue;
            };
            let group = groups.entry(slot.model_id).or_insert_with(|| Group {
                kind: *kind,
                name: remote.name_for(*kind, &tracked.machine_type),
                features: slot.predictor.model().meta.features.clone(),
                values: Vec::new(),
                machines: Vec::new(),
            });
            group.values.extend_from_slice(slot.predictor.features());
            group.machines.push(id.clone());
        }
        // One task per model line, all started before any is awaited: the budget bounds the
        // tick, not each line in turn.
        let mut calls = tokio::task::JoinSet::new();
        for group in groups.into_values() {
            let client = remote.client.clone();
            let budget = remote.budget;
            calls.spawn(async move {
                let request = InferenceRequest {
                    model: &group.name,
                    kind: group.kind,
                    features: &group.features,
                    values: &group.values,
                };
                let answer = match tokio::time::timeout(budget, client.infer(request)).await {
                    Ok(answer) => answer,
                    Err(_) => Err(InferenceError::Timeout),
                };
                (group, answer)
            });
        }
        while let Some(joined) = calls.join_next().await {
            let Ok((group, answer)) = joined else {
                continue;
            };
            let outcome = match answer {
                Ok(values) if values.len() == group.machines.len() => {
                    let mut used = 0usize;
                    for (machine, value) in group.machines.iter().zip(values) {
                        let Some(tracked) = self.tracked.get_mut(machine) else {
                            continue;
                        };
                        let Some(slot) = tracked.slots[slot_of(group.kind)].as_ref() else {
                            continue;
                        };
                        if plausible(group.kind, value) {
                            set(&mut tracked.current, group.kind, value, &slot.live);
                            used += 1;
                        }
                    }
                    if used == group.machines.len() {
                        "used"
                    } else {
                        "bad_answer"
                    }
                }
                Ok(values) => {
                    tracing::debug!(
                        target_name = remote.client.target(),
                        expected = group.machines.len(),
                        got = values.len(),
                        "Remote inference answered the wrong number of values; local predictions stand."
                    );
                    "bad_answer"
                }
                Err(e) => {
                    tracing::debug!(target_name = remote.client.target(), model = %group.name, error = %e, "Remote inference failed; local predictions stand.");
                    match e {
                        InferenceError::Timeout => "timeout",
                        InferenceError::CircuitOpen => "circuit_open",
                        InferenceError::Failed(_) => "failed",
                        InferenceError::BadAnswer(_) => "bad_answer",
                    }
                }
            };
            metrics::counter!("fb_prediction_remote_total", "outcome" => outcome).increment(1);
        }
    }

    /// Exports every machine's figures and writes those that changed, at most once per
    /// `store_every` per machine.
    async fn store(&mut self) -> Result<(), Error> {
        let now = self.clock.now();
        let mut writes = Vec::new();
        for (id, tracked) in &mut self.tracked {
            let current = tracked.current;
            // A cleared figure is NaN in /metrics, not its last value.
            metrics::gauge!("fb_machine_failure_probability", "machine" => id.0.clone())
                .set(current.failure_probability.unwrap_or(f64::NAN));
            metrics::gauge!("fb_machine_rul_hours", "machine" => id.0.clone())
                .set(current.rul_hours.unwrap_or(f64::NAN));
            // Nothing predicted yet, and nothing stored before to clear.
            if current == MachinePrediction::default() && tracked.stored.is_none() {
                continue;
            }
            let due = match tracked.stored {
                None => true,
                Some((stored, at)) => stored != current && at.elapsed() >= self.options.store_every,
            };
            if due {
                writes.push((id.clone(), current));
            }
        }
        // A figure counts as stored only once its write succeeded; a failed one is tried
        // again at the next tick, and one failure does not hold back the other machines.
        let mut failed = None;
        for (id, p) in writes {
            let rounded = |v: Option<f64>, digits: i32| {
                v.map(|v| (v * 10f64.powi(digits)).round() / 10f64.powi(digits))
            };
            let written = self
                .machines
                .set_machine_prediction(
                    &id,
                    rounded(p.failure_probability, 4),
                    rounded(p.rul_hours, 2),
                    now,
                )
                .await;
            match written {
                Ok(_) => {
                    if let Some(tracked) = self.tracked.get_mut(&id) {
                        tracked.stored = Some((p, Instant::now()));
                    }
                }
                Err(e) => failed = Some(e),
            }
        }
        if let Some(e) = failed {
            return Err(e.into());
        }
        Ok(())
    }
}

/// A value the remote may answer for this kind.
fn plausible(kind: ModelKind, value: f64) -> bool {
    match kind {
        ModelKind::Failure => (0.0..=1.0).contains(&value),
        ModelKind::Rul => value.is_finite() && value >= 0.0,
    }
}

fn set(current: &mut MachinePrediction, kind: ModelKind, value: f64, live: &LiveSpec) {
    match kind {
        ModelKind::Failure => current.failure_probability = Some(value),
        ModelKind::Rul => current.rul_hours = Some(live.hours(value)),
    }
}

/// One reading into one predictor: added to the interval, and when it closed an interval, that
/// observation goes to the model.
fn observe(
    slot: &mut Slot,
    sensor: usize,
    ts_micros: i64,
    value: f64,
    row: &mut Vec<f64>,
    settings: &mut Vec<f64>,
    sensors: &mut Vec<f64>,
) {
    if let Resampled::Closed { at_micros } = slot.resampler.push(sensor, ts_micros, value, row) {
        slot.inputs.assemble(row, settings, sensors);
        let reading = fb_predict::Reading {
            time: slot.live.time(at_micros),
            settings,
            sensors,
        };
        // Refused when an input has not reported yet (NaN): the predictor starts once every
        // input has.
        if slot.predictor.observe(reading).is_ok() {
            slot.fresh = true;
        }
    }
}

/// Makes each slot of a machine serve the active model of its kind, if any.
fn refresh_slots(models: &dyn ActiveModels, id: &MachineId, tracked: &mut Tracked) {
    for kind in KINDS {
        let index = slot_of(kind);
        let active = models.active(kind, &tracked.machine_type);
        let current = tracked.slots[index].as_ref().map(|s| s.model_id);
        match (active, current) {
            (None, None) => {}
            (None, Some(_)) => {
                tracked.slots[index] = None;
                clear(&mut tracked.current, kind);
            }
            (Some(active), Some(current)) if active.model.id == current => {}
            (Some(active), _) => {
                if tracked.unusable.contains(&active.model.id) {
                    continue;
                }
                let previous = tracked.slots[index].take();
                match new_slot(&active, tracked, previous) {
                    Ok(slot) => {
                        tracing::info!(
                            machine = %id,
                            kind = %kind,
                            version = active.model.version,
                            "Prediction: the machine follows the active model."
                        );
                        tracked.slots[index] = Some(slot);
                    }
                    Err(missing) => {
                        tracing::warn!(
                            machine = %id,
                            kind = %kind,
                            machine_type = %tracked.machine_type,
                            version = active.model.version,
                            missing = %missing,
                            "Prediction: the active model needs inputs this machine lacks; no prediction for it."
                        );
                        tracked.unusable.push(active.model.id);
                        clear(&mut tracked.current, kind);
                    }
                }
            }
        }
    }
}

fn clear(current: &mut MachinePrediction, kind: ModelKind) {
    match kind {
        ModelKind::Failure => current.failure_probability = None,
        ModelKind::Rul => current.rul_hours = None,
    }
}

/// The slot for `active` on this machine: the previous slot's state carried over when the
/// model reads readings the same way, else a fresh predictor.
fn new_slot(
    active: &LoadedModel<LiveModel>,
    tracked: &Tracked,
    previous: Option<Slot>,
) -> Result<Slot, String> {
    let live = &active.loaded;
    let inputs =
        InputMap::new(&live.model.pipeline.schema, &tracked.sensors).map_err(|missing| {
            missing
                .iter()
                .map(|e| e.reason.clone())
                .collect::<Vec<_>>()
                .join("; ")
        })?;
    if let Some(previous) = previous
        && previous.live == live.live
    {
        let Slot {
            predictor,
            resampler,
            ..
        } = previous;
        if let Ok(predictor) = predictor.with_model(live.model.clone()) {
            return Ok(Slot {
                model_id: active.model.id,
                live: live.live,
                predictor,
                inputs,
                resampler,
                // Predict with the new model at the next tick, from the state so far.
                fresh: true,
            });
        }
    }
    Ok(Slot {
        model_id: active.model.id,
        live: live.live,
        predictor: MachinePredictor::new(live.model.clone()),
        inputs,
        resampler: Resampler::new(tracked.sensors.len(), live.live.sample_secs),
        fresh: false,
    })
}
