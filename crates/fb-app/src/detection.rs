//! Detection as a service (B1–B3): it follows every batch that ingest stored, scores each
//! reading, stores the scores and the anomalies, tells the alerts what holds and what cleared,
//! and keeps each machine's health score live on the machine and in `/metrics`.
//!
//! One task owns every machine's detection state (see [`fb_detect::pipeline`]), so there is
//! no lock on the hot path. Each batch gets the alerting detectors at once, and the alerts are
//! told; the novelty detector (ten times the cost, and no alert of its own) then completes the
//! scores a few readings at a time, between looks at newly stored batches, so an alert never
//! waits behind it. When the task falls behind ingest by more than the channel holds, it skips
//! batches rather than slow ingest down (they stay stored, unscored;
//! `fb_detection_skipped_batches_total`); when novelty alone falls behind, the oldest waiting
//! batches keep the alerting detectors' scores (`fb_detection_novelty_skipped_total`).

use std::sync::Arc;
use std::time::Duration;

use rustc_hash::FxHashMap;
use time::OffsetDateTime;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

use fb_core::Clock;
use fb_core::alerts::{AlertKind, Condition};
use fb_core::detection::{
    Anomaly, AnomalyKind, DetectorKind, HealthSignals, Severity, health_score,
};
use fb_core::plant::{
    MachineClass, MachineId, ReadingBatch, ScoreBatch, ScoreSample, SensorSpec, SeriesIdx,
    from_micros, to_micros,
};
use fb_core::ports::{AnomalyStore, MachineStore, ScoreStore, StoreError};
use fb_detect::pipeline::{DetectionConfig, Finding, MachineDetector, PointScore, Signal};

use crate::alerts::{self, Observation};
use crate::ingest::Refused;

mod sensitivity;

pub use sensitivity::{MIN_FACTOR, Sensitivity};

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub detection: DetectionConfig,
    /// Health under this opens a low-health warning; it clears 5 points above.
    pub low_health: f64,
    /// A failure probability (the machine's, as prediction stores it) above this opens a
    /// failure-risk warning; it clears 0.1 below.
    pub failure_risk: f64,
    /// How often silences are checked and alerts resolve or escalate.
    pub tick: Duration,
    /// How often health scores are recomputed and stored.
    pub health_every: Duration,
    /// How often a tracked machine's record is read again (its sensors, limits and failure
    /// probability, which other nodes and prediction change).
    pub spec_recheck: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            detection: DetectionConfig::default(),
            low_health: 70.0,
            failure_risk: 0.7,
            tick: Duration::from_secs(1),
            health_every: Duration::from_secs(5),
            spec_recheck: SPEC_RECHECK,
        }
    }
}

/// A health move this large is stored at once; a smaller one after `HEALTH_STORE_EVERY`.
const HEALTH_STORE_STEP: f64 = 1.0;
const HEALTH_STORE_EVERY: time::Duration = time::Duration::minutes(1);
/// Health must rise this far above the threshold before a low-health alert clears.
const HEALTH_HYSTERESIS: f64 = 5.0;
/// A failure probability must fall this far under the threshold before its alert clears.
const FAILURE_RISK_HYSTERESIS: f64 = 0.1;
/// Machines whose record is read again at most this often by default (see
/// `Options::spec_recheck`).
const SPEC_RECHECK: Duration = Duration::from_secs(30);

enum Event {
    Readings(Result<Arc<ReadingBatch>, broadcast::error::RecvError>),
    Backlog,
    Refused(Result<Arc<Vec<Refused>>, broadcast::error::RecvError>),
    Tick,
    Health,
}

pub struct Sources {
    pub readings: broadcast::Receiver<Arc<ReadingBatch>>,
    pub refused: broadcast::Receiver<Arc<Vec<Refused>>>,
}

/// Every machine's health as detection recomputed it (every `health_every`), rounded to a
/// tenth as on the machine record.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthUpdate {
    pub at: OffsetDateTime,
    pub machines: Vec<(MachineId, f64)>,
}

/// Where detection announces health for live consumers (the event stream). A listener more
/// than a few updates behind misses the oldest; the machines keep the stored value.
#[derive(Debug, Clone)]
pub struct HealthFeed(broadcast::Sender<Arc<HealthUpdate>>);

impl Default for HealthFeed {
    fn default() -> Self {
        Self(broadcast::channel(16).0)
    }
}

impl HealthFeed {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<HealthUpdate>> {
        self.0.subscribe()
    }

    fn publish(&self, update: HealthUpdate) {
        // Nobody listening is the common case, not an error.
        if self.0.receiver_count() > 0 {
            let _ = self.0.send(Arc::new(update));
        }
    }
}

/// Where detection announces the anomalies it stored, for live consumers (the event bus's
/// publisher; wired by `fb-server`). A listener more than 1024 batches behind misses the oldest
/// (counted by the listener); the store keeps them all.
#[derive(Debug, Clone)]
pub struct AnomalyFeed(broadcast::Sender<Arc<Vec<Anomaly>>>);

impl Default for AnomalyFeed {
    fn default() -> Self {
        Self(broadcast::channel(1024).0)
    }
}

impl AnomalyFeed {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Vec<Anomaly>>> {
        self.0.subscribe()
    }

    fn publish(&self, anomalies: Vec<Anomaly>) {
        // Nobody listening is the common case without a bus publisher, not an error.
        if self.0.receiver_count() > 0 {
            let _ = self.0.send(Arc::new(anomalies));
        }
    }
}

/// Readings the novelty detector gets to between two looks at what else arrived (about a
/// millisecond of work).
const NOVELTY_CHUNK: usize = 64;
/// Batches waiting for the novelty detector before the oldest keeps its alerting scores only.
const BACKLOG_MAX: usize = 256;

/// Results waiting for the writer task.
const WRITER_QUEUE: usize = 64;

enum Write {
    Scores(ScoreBatch),
    Anomalies(Vec<Anomaly>),
    Health(Vec<(MachineId, f64)>, OffsetDateTime),
}

/// Where results are stored, and where stored anomalies are announced.
#[derive(Clone)]
struct Sinks {
    machines: Arc<dyn MachineStore>,
    scores: Arc<dyn ScoreStore>,
    anomalies: Arc<dyn AnomalyStore>,
    anomaly_feed: AnomalyFeed,
}

impl Write {
    async fn apply(self, sinks: &Sinks) -> Result<(), Error> {
        match self {
            Write::Scores(batch) => sinks.scores.append_scores(&batch).await?,
            Write::Anomalies(list) => {
                sinks.anomalies.insert_anomalies(&list).await?;
                sinks.anomaly_feed.publish(list);
            }
            Write::Health(changed, at) => {
                for (id, health) in changed {
                    sinks.machines.set_machine_health(&id, health, at).await?;
                }
            }
        }
        Ok(())
    }
}

/// A batch the alerting detectors have seen, waiting for the novelty detector.
struct Pending {
    batch: Arc<ReadingBatch>,
    /// (machine, sensor index, detector generation) of each series of the batch.
    places: Vec<Option<(MachineId, usize, u64)>>,
    /// The alerting detectors' score of each sample.
    rules: Vec<Option<PointScore>>,
    next: usize,
    scores: ScoreBatch,
    score_series: Vec<SeriesIdx>,
}

impl Pending {
    /// Completes the scores from the alerting detectors alone; returns how many readings the
    /// novelty detector skipped.
    fn finish_without_novelty(&mut self) -> usize {
        let samples = self.batch.samples();
        let skipped = samples.len() - self.next;
        for (sample, rules) in samples.iter().zip(&self.rules).skip(self.next) {
            if let Some(rules) = rules {
                self.scores.push_sample(ScoreSample {
                    series: self.score_series[sample.series.get()],
                    ts_micros: sample.ts_micros,
                    score: rules.score,
                    anomaly: rules.anomaly,
                });
            }
        }
        self.next = samples.len();
        skipped
    }
}

struct Tracked {
    detector: MachineDetector,
    /// Changes each time the detector is rebuilt.
    generation: u64,
    /// What the detector was built from: a change to it (not to health or name) rebuilds it.
    spec: (Option<MachineClass>, Vec<SensorSpec>),
    checked_at: std::time::Instant,
    /// The health last stored on the machine, and when.
    health: Option<(f64, OffsetDateTime)>,
    low_health: bool,
    /// The machine's failure probability as last read with its spec (prediction writes it).
    failure_probability: Option<f64>,
    failure_risk: bool,
}

pub struct Service {
    /// The stores results go to; machines are also where specs are read.
    sinks: Sinks,
    alerts: Arc<alerts::Service>,
    clock: Arc<dyn Clock>,
    options: Options,
    tracked: FxHashMap<MachineId, Tracked>,
    /// Machines the store does not know (readings of deleted machines still in flight).
    unknown: FxHashMap<MachineId, std::time::Instant>,
    signals: Vec<Signal>,
    backlog: std::collections::VecDeque<Pending>,
    generations: u64,
    /// Set while [`Service::run`] runs: results go to its writer task.
    writer: Option<tokio::sync::mpsc::Sender<Write>>,
    health_feed: HealthFeed,
    sensitivity: Arc<Sensitivity>,
    /// What was last applied from `sensitivity`: its version, the earliest end of an override
    /// in force, and the machines not at the normal factor (with theirs).
    sensitivity_seen: u64,
    sensitivity_next_end: Option<OffsetDateTime>,
    sensitive: FxHashMap<MachineId, f64>,
}

impl Service {
    pub fn new(
        machines: Arc<dyn MachineStore>,
        scores: Arc<dyn ScoreStore>,
        anomalies: Arc<dyn AnomalyStore>,
        alerts: Arc<alerts::Service>,
        clock: Arc<dyn Clock>,
        options: Options,
    ) -> Result<Self, fb_detect::detector::DetectorError> {
        options.detection.validate()?;
        Ok(Self {
            sinks: Sinks {
                machines,
                scores,
                anomalies,
                anomaly_feed: AnomalyFeed::default(),
            },
            alerts,
            clock,
            options,
            tracked: FxHashMap::default(),
            unknown: FxHashMap::default(),
            signals: Vec::new(),
            backlog: std::collections::VecDeque::new(),
            generations: 0,
            writer: None,
            health_feed: HealthFeed::default(),
            sensitivity: Arc::new(Sensitivity::new()),
            sensitivity_seen: 0,
            sensitivity_next_end: None,
            sensitive: FxHashMap::default(),
        })
    }

    /// Follows `sensitivity`'s per-machine overrides ("increase monitoring", set by the plant
    /// optimizer through the same handle).
    pub fn with_sensitivity(mut self, sensitivity: Arc<Sensitivity>) -> Self {
        self.sensitivity = sensitivity;
        self.sensitivity_seen = u64::MAX;
        self
    }

    /// Applies changed or ended sensitivity overrides to the machines' detectors: an atomic
    /// load and a comparison when nothing changed, which is every batch but a few.
    fn follow_sensitivity(&mut self) {
        let now = self.clock.now();
        let version = self.sensitivity.version();
        if version == self.sensitivity_seen && self.sensitivity_next_end.is_none_or(|end| now < end)
        {
            return;
        }
        let (version, active, next_end) = self.sensitivity.active(now);
        self.sensitivity_seen = version;
        self.sensitivity_next_end = next_end;
        let active: FxHashMap<MachineId, f64> = active.into_iter().collect();
        for (machine, tracked) in &mut self.tracked {
            let factor = active.get(machine).copied().unwrap_or(1.0);
            if tracked.detector.sensitivity() != factor {
                tracked.detector.set_sensitivity(factor);
            }
        }
        self.sensitive = active;
    }

    /// The sensitivity overrides this detection follows (share it with the plant optimizer).
    pub fn sensitivity(&self) -> Arc<Sensitivity> {
        self.sensitivity.clone()
    }

    /// Announces every health update on `feed` too.
    pub fn publish_health_to(mut self, feed: HealthFeed) -> Self {
        self.health_feed = feed;
        self
    }

    /// Announces every stored batch of anomalies on `feed` too.
    pub fn publish_anomalies_to(mut self, feed: AnomalyFeed) -> Self {
        self.sinks.anomaly_feed = feed;
        self
    }

    /// Stores scores, anomalies or health: at once, or through the writer task while [`run`] runs, so
    /// that detection never waits for a store's commit between two batches.
    ///
    /// [`run`]: Self::run
    async fn write(&self, write: Write) -> Result<(), Error> {
        match &self.writer {
            Some(tx) => {
                // Bounded: if the store cannot keep up, detection slows down rather than
                // holding ever more results in memory.
                if tx.send(write).await.is_err() {
                    tracing::warn!("Detection's writer stopped; results are not stored.");
                }
                Ok(())
            }
            None => write.apply(&self.sinks).await,
        }
    }

    /// Runs until `stop` turns true.
    pub async fn run(mut self, mut sources: Sources, mut stop: watch::Receiver<bool>) {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Write>(WRITER_QUEUE);
        self.writer = Some(tx);
        let sinks = self.sinks.clone();
        let writer = tokio::spawn(async move {
            while let Some(write) = rx.recv().await {
                if let Err(e) = write.apply(&sinks).await {
                    tracing::warn!(error = %e, "Detection could not store its results; it goes on.");
                }
            }
        });
        self.run_until_stopped(&mut sources, &mut stop).await;
        // Dropping the sender lets the writer drain what is queued, then end.
        self.writer = None;
        let _ = writer.await;
    }

    async fn run_until_stopped(&mut self, sources: &mut Sources, stop: &mut watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.options.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut health = tokio::time::interval(self.options.health_every);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // The arms only pick what happened; the work runs after the select, so that no
            // borrow of the stop signal lives across it.
            // New readings first (their alerts must not wait), the novelty backlog last.
            let backlog = !self.backlog.is_empty();
            let event = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => break,
                batch = sources.readings.recv() => Event::Readings(batch),
                refused = sources.refused.recv() => Event::Refused(refused),
                _ = tick.tick() => Event::Tick,
                _ = health.tick() => Event::Health,
                () = std::future::ready(()), if backlog => Event::Backlog,
            };
            let result = match event {
                Event::Readings(Ok(batch)) => self.accept(&batch).await,
                Event::Backlog => {
                    // Let the worker's other tasks (requests) run between two chunks.
                    tokio::task::yield_now().await;
                    self.novelty_step().await
                }
                Event::Readings(Err(broadcast::error::RecvError::Lagged(skipped))) => {
                    metrics::counter!("fb_detection_skipped_batches_total").increment(skipped);
                    tracing::warn!(
                        skipped,
                        "Detection fell behind ingest; batches were left unscored."
                    );
                    Ok(())
                }
                Event::Refused(Ok(refused)) => self.refused(&refused).await,
                Event::Refused(Err(broadcast::error::RecvError::Lagged(_))) => Ok(()),
                Event::Readings(Err(broadcast::error::RecvError::Closed))
                | Event::Refused(Err(broadcast::error::RecvError::Closed)) => break,
                Event::Tick => self.tick().await,
                Event::Health => self.update_health().await,
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "Detection could not store its results; it goes on.");
            }
        }
    }

    /// Scores a stored batch completely and acts on what detection found (what [`run`] does
    /// for each batch, without interleaving other work).
    ///
    /// [`run`]: Self::run
    pub async fn process(&mut self, batch: &Arc<ReadingBatch>) -> Result<(), Error> {
        self.accept(batch).await?;
        while !self.backlog.is_empty() {
            self.novelty_step().await?;
        }
        Ok(())
    }

    /// The alerting detectors on the whole batch, at once, and the alerts told; the batch then
    /// waits in the backlog for the novelty detector, which costs ten times more and never
    /// alerts by itself, so that a later batch's alert does not wait behind it either.
    async fn accept(&mut self, batch: &Arc<ReadingBatch>) -> Result<(), Error> {
        let started = std::time::Instant::now();
        self.follow_sensitivity();
        // Where each series of the batch lives: (machine, sensor index), looked up once.
        let mut places: Vec<Option<(MachineId, usize, u64)>> =
            Vec::with_capacity(batch.series().len());
        for name in batch.series() {
            let place = match self.detector(&name.machine).await? {
                Some((d, generation)) => d
                    .sensor_index(&name.sensor.0)
                    .map(|i| (name.machine.clone(), i, generation)),
                None => None,
            };
            places.push(place);
        }
        // Each series arrived now: silence is judged from arrival as well as from the
        // readings' own times, so that late or replayed history is not called a silence.
        let arrived = to_micros(self.clock.now());
        for (machine, sensor, _) in places.iter().flatten() {
            if let Some(tracked) = self.tracked.get_mut(machine) {
                tracked.detector.heard(*sensor, arrived);
            }
        }
        let mut signals = std::mem::take(&mut self.signals);
        let mut per_machine: FxHashMap<MachineId, Vec<Signal>> = FxHashMap::default();
        let mut rules = Vec::with_capacity(batch.len());
        for sample in batch.samples() {
            let Some((machine, sensor, _)) = &places[sample.series.get()] else {
                rules.push(None);
                continue;
            };
            let Some(tracked) = self.tracked.get_mut(machine) else {
                rules.push(None);
                continue;
            };
            rules.push(Some(tracked.detector.observe_rules(
                *sensor,
                sample.ts_micros,
                sample.value,
                &mut signals,
            )));
            gather(&mut per_machine, machine, &mut signals);
        }
        self.signals = signals;
        for (machine, signals) in per_machine {
            self.act(&machine, signals).await?;
        }
        metrics::histogram!("fb_detection_alerting_seconds")
            .record(started.elapsed().as_secs_f64());
        let mut scores = ScoreBatch::with_capacity(batch.len());
        let score_series = batch
            .series()
            .iter()
            .map(|n| scores.add_series(n.machine.clone(), n.sensor.clone()))
            .collect();
        self.backlog.push_back(Pending {
            batch: batch.clone(),
            places,
            rules,
            next: 0,
            scores,
            score_series,
        });
        // Overloaded: the oldest batches keep the scores of the alerting detectors only.
        while self.backlog.len() > BACKLOG_MAX {
            if let Some(mut oldest) = self.backlog.pop_front() {
                let skipped = oldest.finish_without_novelty();
                metrics::counter!("fb_detection_novelty_skipped_total").increment(skipped as u64);
                self.store_scores(oldest).await?;
            }
        }
        Ok(())
    }

    /// Runs the novelty detector on the next few readings of the oldest waiting batch; stores
    /// its scores once the batch is complete.
    async fn novelty_step(&mut self) -> Result<(), Error> {
        let Some(pending) = self.backlog.front_mut() else {
            return Ok(());
        };
        let mut signals = std::mem::take(&mut self.signals);
        let mut per_machine: FxHashMap<MachineId, Vec<Signal>> = FxHashMap::default();
        let samples = pending.batch.samples();
        let end = (pending.next + NOVELTY_CHUNK).min(samples.len());
        for (sample, rules) in samples[pending.next..end]
            .iter()
            .zip(&pending.rules[pending.next..end])
        {
            let (Some((machine, sensor, generation)), Some(rules)) =
                (&pending.places[sample.series.get()], *rules)
            else {
                continue;
            };
            // A detector rebuilt since (its machine's sensors changed) starts afresh.
            let Some(tracked) = self
                .tracked
                .get_mut(machine)
                .filter(|t| t.generation == *generation)
            else {
                continue;
            };
            let point = tracked.detector.observe_novelty(
                *sensor,
                sample.ts_micros,
                sample.value,
                rules,
                &mut signals,
            );
            pending.scores.push_sample(ScoreSample {
                series: pending.score_series[sample.series.get()],
                ts_micros: sample.ts_micros,
                score: point.score,
                anomaly: point.anomaly,
            });
            gather(&mut per_machine, machine, &mut signals);
        }
        pending.next = end;
        let done = end >= samples.len();
        self.signals = signals;
        for (machine, signals) in per_machine {
            self.act(&machine, signals).await?;
        }
        if done && let Some(pending) = self.backlog.pop_front() {
            self.store_scores(pending).await?;
        }
        Ok(())
    }

    async fn store_scores(&mut self, pending: Pending) -> Result<(), Error> {
        metrics::counter!("fb_detection_readings_total").increment(pending.scores.len() as u64);
        if !pending.scores.is_empty() {
            self.write(Write::Scores(pending.scores)).await?;
        }
        Ok(())
    }

    async fn refused(&mut self, refused: &[Refused]) -> Result<(), Error> {
        let mut per_machine: FxHashMap<MachineId, Vec<Signal>> = FxHashMap::default();
        for r in refused {
            if self.detector(&r.machine).await?.is_none() {
                continue;
            }
            if let Some(tracked) = self.tracked.get_mut(&r.machine)
                && let Some(i) = tracked.detector.sensor_index(&r.sensor.0)
            {
                let out = per_machine.entry(r.machine.clone()).or_default();
                tracked.detector.refused(i, r.ts_micros, r.value, out);
            }
        }
        for (machine, signals) in per_machine {
            self.act(&machine, signals).await?;
        }
        Ok(())
    }

    /// Checks silences and lets the alerts resolve and escalate.
    pub async fn tick(&mut self) -> Result<(), Error> {
        self.follow_sensitivity();
        let now = to_micros(self.clock.now());
        let mut per_machine = Vec::new();
        for (id, tracked) in &mut self.tracked {
            let mut out = Vec::new();
            tracked.detector.tick(now, &mut out);
            if !out.is_empty() {
                per_machine.push((id.clone(), out));
            }
        }
        for (machine, signals) in per_machine {
            self.act(&machine, signals).await?;
        }
        self.alerts.tick().await?;
        Ok(())
    }

    /// Recomputes every machine's health; stores and exports it, and raises or clears the
    /// low-health alert.
    pub async fn update_health(&mut self) -> Result<(), Error> {
        let now = self.clock.now();
        let mut observations = Vec::new();
        let mut changed = Vec::new();
        let mut all = Vec::with_capacity(self.tracked.len());
        for (id, tracked) in &mut self.tracked {
            let signals = tracked.detector.health();
            let health = (health_score(&signals) * 10.0).round() / 10.0;
            metrics::gauge!("fb_machine_health", "machine" => id.0.clone()).set(health);
            all.push((id.clone(), health));
            // Stored when it moved by a point or more, or a minute after a smaller move: the
            // gauge is exact every few seconds, the machine record need not be, and one write
            // per machine every few seconds would compete with ingest for the store.
            let due = match tracked.health {
                None => true,
                Some((stored, at)) => {
                    (health - stored).abs() >= HEALTH_STORE_STEP
                        || (health != stored && now - at >= HEALTH_STORE_EVERY)
                }
            };
            if due {
                changed.push((id.clone(), health));
                tracked.health = Some((health, now));
            }
            let threshold = self.options.low_health;
            if health < threshold {
                tracked.low_health = true;
                observations.push(Observation::Holds(low_health_condition(
                    id, health, threshold, &signals, now,
                )));
            } else if tracked.low_health && health >= threshold + HEALTH_HYSTERESIS {
                tracked.low_health = false;
                observations.push(Observation::Clear {
                    machine: id.clone(),
                    kind: AlertKind::LowHealth,
                    at: now,
                });
            }
            if let Some(observation) = failure_risk_observation(
                id,
                tracked.failure_probability,
                self.options.failure_risk,
                &mut tracked.failure_risk,
                now,
            ) {
                observations.push(observation);
            }
        }
        if !changed.is_empty() {
            self.write(Write::Health(changed, now)).await?;
        }
        if !all.is_empty() {
            all.sort_by(|a, b| a.0.cmp(&b.0));
            self.health_feed.publish(HealthUpdate {
                at: now,
                machines: all,
            });
        }
        self.alerts.observe(observations).await?;
        Ok(())
    }

    /// Health and the signals behind it, for every machine detection follows.
    pub fn health(&self) -> Vec<(MachineId, f64, HealthSignals)> {
        self.tracked
            .iter()
            .map(|(id, t)| {
                let s = t.detector.health();
                (id.clone(), health_score(&s), s)
            })
            .collect()
    }

    /// Stores onsets as anomalies and tells the alerts what holds and what cleared.
    async fn act(&mut self, machine: &MachineId, signals: Vec<Signal>) -> Result<(), Error> {
        let Some(tracked) = self.tracked.get(machine) else {
            return Ok(());
        };
        let mut anomalies = Vec::new();
        let mut observations = Vec::new();
        for signal in signals {
            match signal {
                Signal::Holds(f) => {
                    let sensor = f
                        .sensor
                        .and_then(|i| tracked.detector.sensor_key(i))
                        .cloned();
                    if f.alerting {
                        observations.push(Observation::Holds(Condition {
                            machine: machine.clone(),
                            kind: AlertKind::from(f.kind),
                            severity: f.severity,
                            at: from_micros(f.ts_micros),
                            title: title(&f, sensor.as_ref().map(|s| s.0.as_str())),
                            evidence: f.evidence.clone(),
                            confirmed: f.confirmed,
                        }));
                    }
                    if f.onset {
                        anomalies.push(Anomaly {
                            id: Uuid::now_v7(),
                            machine: machine.clone(),
                            sensor,
                            kind: f.kind,
                            detector: f.detector,
                            severity: f.severity,
                            at: from_micros(f.ts_micros),
                            score: f.score,
                            evidence: f.evidence,
                        });
                    }
                }
                Signal::Clears { kind, ts_micros } => {
                    observations.push(Observation::Clear {
                        machine: machine.clone(),
                        kind: AlertKind::from(kind),
                        at: from_micros(ts_micros),
                    });
                }
            }
        }
        if !anomalies.is_empty() {
            metrics::counter!("fb_anomalies_total").increment(anomalies.len() as u64);
            self.write(Write::Anomalies(anomalies)).await?;
        }
        self.alerts.observe(observations).await?;
        Ok(())
    }

    /// The detection state of a machine, built on first sight and rebuilt when its spec
    /// changed (sensors or limits edited). `None` for a machine the store does not know.
    async fn detector(&mut self, id: &MachineId) -> Result<Option<(&MachineDetector, u64)>, Error> {
        let due = match self.tracked.get(id) {
            Some(t) => t.checked_at.elapsed() >= self.options.spec_recheck,
            None => self
                .unknown
                .get(id)
                .is_none_or(|at| at.elapsed() >= self.options.spec_recheck),
        };
        if due {
            match self.sinks.machines.machine(id).await? {
                Some(machine) => {
                    self.unknown.remove(id);
                    let spec = (machine.machine_class, machine.sensors.clone());
                    let rebuild = self.tracked.get(id).is_none_or(|t| t.spec != spec);
                    if rebuild {
                        let mut detector = MachineDetector::new(&machine, &self.options.detection)
                            .map_err(|e| Error::Config(e.to_string()))?;
                        // A detector built while its machine is watched more closely starts so.
                        if let Some(factor) = self.sensitive.get(id) {
                            detector.set_sensitivity(*factor);
                        }
                        let previous = self.tracked.remove(id);
                        self.generations += 1;
                        self.tracked.insert(
                            id.clone(),
                            Tracked {
                                detector,
                                generation: self.generations,
                                spec,
                                checked_at: std::time::Instant::now(),
                                health: previous.as_ref().and_then(|p| p.health),
                                low_health: previous.as_ref().is_some_and(|p| p.low_health),
                                failure_probability: machine.failure_probability,
                                failure_risk: previous.is_some_and(|p| p.failure_risk),
                            },
                        );
                    } else if let Some(t) = self.tracked.get_mut(id) {
                        t.checked_at = std::time::Instant::now();
                        t.failure_probability = machine.failure_probability;
                    }
                }
                None => {
                    self.tracked.remove(id);
                    self.unknown.insert(id.clone(), std::time::Instant::now());
                }
            }
        }
        Ok(self.tracked.get(id).map(|t| (&t.detector, t.generation)))
    }
}

/// Moves a reading's signals to its machine's list (most readings have none).
fn gather(
    per_machine: &mut FxHashMap<MachineId, Vec<Signal>>,
    machine: &MachineId,
    signals: &mut Vec<Signal>,
) {
    if !signals.is_empty() {
        per_machine
            .entry(machine.clone())
            .or_default()
            .append(signals);
    }
}

fn title(f: &Finding, sensor: Option<&str>) -> String {
    let what = match f.kind {
        AnomalyKind::Overheating => "Overheating",
        AnomalyKind::Vibration => "Vibration",
        AnomalyKind::Pressure => "Pressure anomaly",
        AnomalyKind::Power => "Power anomaly",
        AnomalyKind::Flow => "Flow anomaly",
        AnomalyKind::Process => "Process anomaly",
        AnomalyKind::StuckSensor => "Stuck sensor",
        AnomalyKind::NoData => "No data",
        AnomalyKind::OutOfRange => "Readings out of physical range",
        AnomalyKind::Spike => "Spike",
    };
    let how = match f.detector {
        DetectorKind::Limits if f.severity == Severity::Critical => "critical limit",
        DetectorKind::Limits => "limit",
        DetectorKind::VibrationZone => "ISO 10816 zone",
        DetectorKind::Statistical => "off its baseline",
        DetectorKind::Multivariate => "sensors out of their usual relation",
        DetectorKind::Novelty => "novel pattern",
        DetectorKind::Stuck | DetectorKind::Spike | DetectorKind::Gap | DetectorKind::Range => "",
    };
    match (sensor, how.is_empty()) {
        (Some(s), true) => format!("{what} on {s}"),
        (Some(s), false) => format!("{what} on {s} ({how})"),
        (None, _) => format!("{what} ({how})"),
    }
}

/// The failure-risk rule: a warning while the machine's failure probability is above the
/// threshold, cleared once it falls `FAILURE_RISK_HYSTERESIS` under it (or is gone), so that a
/// probability hovering at the threshold keeps one alert.
fn failure_risk_observation(
    id: &MachineId,
    probability: Option<f64>,
    threshold: f64,
    open: &mut bool,
    at: OffsetDateTime,
) -> Option<Observation> {
    use fb_core::detection::Evidence;
    match probability {
        Some(p) if p > threshold => {
            *open = true;
            Some(Observation::Holds(Condition {
                machine: id.clone(),
                kind: AlertKind::FailureRisk,
                severity: Severity::Warning,
                at,
                title: format!(
                    "Failure probability {:.0} % over {:.0} %",
                    p * 100.0,
                    threshold * 100.0
                ),
                evidence: vec![
                    Evidence::number("failure_probability", p),
                    Evidence::number("threshold", threshold),
                ],
                // A model's estimate, not a reading: it holds until it drops, no need to
                // confirm it over several observations.
                confirmed: true,
            }))
        }
        p if *open && p.is_none_or(|p| p <= threshold - FAILURE_RISK_HYSTERESIS) => {
            *open = false;
            Some(Observation::Clear {
                machine: id.clone(),
                kind: AlertKind::FailureRisk,
                at,
            })
        }
        _ => None,
    }
}

fn low_health_condition(
    id: &MachineId,
    health: f64,
    threshold: f64,
    s: &HealthSignals,
    at: OffsetDateTime,
) -> Condition {
    use fb_core::detection::Evidence;
    Condition {
        machine: id.clone(),
        kind: AlertKind::LowHealth,
        severity: Severity::Warning,
        at,
        title: format!("Health {health:.0} under {threshold:.0}"),
        evidence: vec![
            Evidence::number("health", health),
            Evidence::number("threshold", threshold),
            Evidence::number("anomaly_pressure", s.anomaly_pressure),
            Evidence::number("warning_zones", f64::from(s.warning_zones)),
            Evidence::number("critical_zones", f64::from(s.critical_zones)),
            Evidence::number("sensor_faults", f64::from(s.sensor_faults)),
        ],
        confirmed: false,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Alerts(#[from] alerts::Error),
    #[error("detection settings: {0}")]
    Config(String),
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use fb_core::alerts::{AlertKind, AlertStatus};
    use fb_core::identity::SiteScope;
    use fb_core::plant::{MachineId, ReadingBatch};
    use fb_core::ports::{AlertFilter, Storage};
    use fb_testkit::FakeClock;
    use fb_testkit::fakes::MemoryStore;

    use super::*;

    /// Detection over an in-memory store holding `machine`, with the alerts it tells.
    async fn detection(
        machine: &fb_core::plant::Machine,
        options: Options,
    ) -> (Service, Storage, Arc<FakeClock>) {
        let storage = Storage::from_backend(Arc::new(MemoryStore::new()));
        let clock = Arc::new(FakeClock::new());
        storage.machines.insert_machine(machine).await.unwrap();
        let alerts = Arc::new(
            alerts::Service::start(
                storage.alerts.clone(),
                crate::scope::MachineVisibility::new(storage.machines.clone()),
                clock.clone(),
                fb_core::alerts::AlertPolicy::default(),
            )
            .await
            .unwrap(),
        );
        let detection = Service::new(
            storage.machines.clone(),
            storage.scores.clone(),
            storage.anomalies.clone(),
            alerts,
            clock.clone(),
            options,
        )
        .unwrap();
        (detection, storage, clock)
    }

    #[tokio::test]
    async fn a_failure_probability_over_the_threshold_raises_one_warning_until_it_falls() {
        let mut machine = fb_testkit::fixtures::machine("press-01");
        machine.failure_probability = Some(0.2);
        let (mut detection, storage, clock) = detection(
            &machine,
            Options {
                spec_recheck: Duration::ZERO,
                ..Options::default()
            },
        )
        .await;
        let reading = |v: f64| {
            ReadingBatch::from_readings(&[fb_core::plant::Reading {
                machine: MachineId("press-01".into()),
                sensor: fb_core::plant::SensorKey("temperature".into()),
                ts: clock.now_for_tests(),
                value: v,
            }])
        };
        let failure_risk = || async {
            storage
                .alerts
                .list_alerts(&AlertFilter {
                    kind: Some(AlertKind::FailureRisk),
                    ..AlertFilter::new(SiteScope::All, 10)
                })
                .await
                .unwrap()
        };
        let step = |p: f64| {
            let mut m = machine.clone();
            m.failure_probability = Some(p);
            m
        };
        for (probability, open) in [(0.2, false), (0.75, true), (0.65, true), (0.72, true)] {
            storage
                .machines
                .update_machine(&step(probability))
                .await
                .unwrap();
            clock.advance(time::Duration::seconds(5));
            detection.process(&Arc::new(reading(50.0))).await.unwrap();
            detection.update_health().await.unwrap();
            let active: Vec<_> = failure_risk()
                .await
                .into_iter()
                .filter(|a| a.status != AlertStatus::Resolved)
                .collect();
            assert_eq!(active.len(), usize::from(open), "at p = {probability}");
        }
        // Hovering around the threshold kept one alert.
        assert_eq!(failure_risk().await.len(), 1);
        // Well under the threshold the condition clears; the alert resolves after clear_after.
        storage.machines.update_machine(&step(0.5)).await.unwrap();
        clock.advance(time::Duration::seconds(5));
        detection.process(&Arc::new(reading(50.0))).await.unwrap();
        detection.update_health().await.unwrap();
        clock.advance(time::Duration::minutes(10));
        detection.tick().await.unwrap();
        let all = failure_risk().await;
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].status, AlertStatus::Resolved);
    }

    /// Readings of press-01 at the clock's time, one second apart: temperature around 50 °C
    /// (σ 0.2) plus `offset`, vibration around 1.8 mm/s.
    struct Feed {
        rng: fb_core::rng::SplitMix64,
        clock: Arc<FakeClock>,
    }

    impl Feed {
        fn normal(&mut self) -> f64 {
            (0..12).map(|_| self.rng.next_f64()).sum::<f64>() - 6.0
        }

        fn batch(&mut self, offset: f64) -> Arc<ReadingBatch> {
            self.clock.advance(time::Duration::seconds(1));
            let ts = self.clock.now_for_tests();
            let reading = |sensor: &str, value: f64| fb_core::plant::Reading {
                machine: MachineId("press-01".into()),
                sensor: fb_core::plant::SensorKey(sensor.into()),
                ts,
                value,
            };
            let (t, v) = (
                50.0 + offset + 0.2 * self.normal(),
                1.8 + 0.05 * self.normal(),
            );
            Arc::new(ReadingBatch::from_readings(&[
                reading("temperature", t),
                reading("vibration", v),
            ]))
        }
    }

    #[tokio::test]
    async fn increased_monitoring_finds_a_borderline_shift_until_it_ends() {
        let machine = fb_testkit::fixtures::machine("press-01");
        let (detection, storage, clock) = detection(&machine, Options::default()).await;
        let sensitivity = Arc::new(Sensitivity::new());
        let mut detection = detection.with_sensitivity(sensitivity.clone());
        let mut feed = Feed {
            rng: fb_core::rng::SplitMix64::new(9),
            clock: clock.clone(),
        };
        let start = clock.now_for_tests();
        let overheating = || async {
            storage
                .anomalies
                .list_anomalies(&fb_core::ports::AnomalyFilter {
                    machine: MachineId("press-01".into()),
                    from: start,
                    to: clock.now_for_tests() + time::Duration::HOUR,
                    after: None,
                    limit: 1000,
                })
                .await
                .unwrap()
                .into_iter()
                // The learning detectors' findings; novelty marks readings of its own.
                .filter(|a| {
                    a.kind == fb_core::detection::AnomalyKind::Overheating
                        && a.detector != DetectorKind::Novelty
                })
                .count()
        };
        for _ in 0..600 {
            detection.process(&feed.batch(0.0)).await.unwrap();
        }
        // A 0.4 °C rise (two σ of the noise): within the statistical threshold.
        for _ in 0..30 {
            detection.process(&feed.batch(0.4)).await.unwrap();
        }
        assert_eq!(overheating().await, 0, "normal sensitivity lets it pass");
        for _ in 0..120 {
            detection.process(&feed.batch(0.0)).await.unwrap();
        }

        // Increased monitoring for ten minutes: the same rise is found.
        let now = clock.now_for_tests();
        sensitivity.increase(
            &MachineId("press-01".into()),
            0.5,
            now,
            now + time::Duration::minutes(10),
        );
        for _ in 0..30 {
            detection.process(&feed.batch(0.4)).await.unwrap();
        }
        let found = overheating().await;
        assert!(found > 0, "increased monitoring finds it");
        for _ in 0..120 {
            detection.process(&feed.batch(0.0)).await.unwrap();
        }

        // Ten minutes on, the override has ended: the rise passes again.
        clock.advance(time::Duration::minutes(10));
        for _ in 0..30 {
            detection.process(&feed.batch(0.4)).await.unwrap();
        }
        assert_eq!(overheating().await, found, "back to normal after `until`");
    }
}
