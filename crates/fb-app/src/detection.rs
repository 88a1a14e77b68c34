//! Detection as a service (B1–B3): it follows every batch that ingest stored, scores each
//! reading, stores the scores and the anomalies, tells the alerts what holds and what cleared,
//! and keeps each machine's health score live on the machine and in `/metrics`.
//!
//! One task owns every machine's detection state (see [`fb_detect::pipeline`]), so there is
//! no lock on the hot path. When it falls behind ingest by more than the channel holds, it
//! skips batches rather than slow ingest down; the skipped readings stay stored, unscored, and
//! `fb_detection_skipped_batches_total` counts them.

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
use fb_detect::pipeline::{DetectionConfig, Finding, MachineDetector, Signal};

use crate::alerts::{self, Observation};
use crate::ingest::Refused;

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub detection: DetectionConfig,
    /// Health under this opens a low-health warning; it clears 5 points above.
    pub low_health: f64,
    /// How often silences are checked and alerts resolve or escalate.
    pub tick: Duration,
    /// How often health scores are recomputed and stored.
    pub health_every: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            detection: DetectionConfig::default(),
            low_health: 70.0,
            tick: Duration::from_secs(1),
            health_every: Duration::from_secs(5),
        }
    }
}

/// Health must rise this far above the threshold before a low-health alert clears.
const HEALTH_HYSTERESIS: f64 = 5.0;
/// Machines whose detection state is rebuilt at most this often when their spec changes.
const SPEC_RECHECK: Duration = Duration::from_secs(30);

enum Event {
    Readings(Result<Arc<ReadingBatch>, broadcast::error::RecvError>),
    Refused(Result<Arc<Vec<Refused>>, broadcast::error::RecvError>),
    Tick,
    Health,
}

pub struct Sources {
    pub readings: broadcast::Receiver<Arc<ReadingBatch>>,
    pub refused: broadcast::Receiver<Arc<Vec<Refused>>>,
}

struct Tracked {
    detector: MachineDetector,
    /// What the detector was built from: a change to it (not to health or name) rebuilds it.
    spec: (Option<MachineClass>, Vec<SensorSpec>),
    checked_at: std::time::Instant,
    health: Option<f64>,
    low_health: bool,
}

pub struct Service {
    machines: Arc<dyn MachineStore>,
    scores: Arc<dyn ScoreStore>,
    anomalies: Arc<dyn AnomalyStore>,
    alerts: Arc<alerts::Service>,
    clock: Arc<dyn Clock>,
    options: Options,
    tracked: FxHashMap<MachineId, Tracked>,
    /// Machines the store does not know (readings of deleted machines still in flight).
    unknown: FxHashMap<MachineId, std::time::Instant>,
    signals: Vec<Signal>,
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
            machines,
            scores,
            anomalies,
            alerts,
            clock,
            options,
            tracked: FxHashMap::default(),
            unknown: FxHashMap::default(),
            signals: Vec::new(),
        })
    }

    /// Runs until `stop` turns true.
    pub async fn run(mut self, mut sources: Sources, mut stop: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(self.options.tick);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut health = tokio::time::interval(self.options.health_every);
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            // The arms only pick what happened; the work runs after the select, so that no
            // borrow of the stop signal lives across it.
            let event = tokio::select! {
                batch = sources.readings.recv() => Event::Readings(batch),
                refused = sources.refused.recv() => Event::Refused(refused),
                _ = tick.tick() => Event::Tick,
                _ = health.tick() => Event::Health,
                _ = stop.wait_for(|s| *s) => break,
            };
            let result = match event {
                Event::Readings(Ok(batch)) => self.process(&batch).await,
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

    /// Scores a stored batch and acts on what detection found.
    pub async fn process(&mut self, batch: &ReadingBatch) -> Result<(), Error> {
        let started = std::time::Instant::now();
        // Where each series of the batch lives: (machine, sensor index), looked up once.
        let mut places: Vec<Option<(MachineId, usize)>> = Vec::with_capacity(batch.series().len());
        for name in batch.series() {
            let place = match self.detector(&name.machine).await? {
                Some(d) => d
                    .sensor_index(&name.sensor.0)
                    .map(|i| (name.machine.clone(), i)),
                None => None,
            };
            places.push(place);
        }
        let mut scores = ScoreBatch::with_capacity(batch.len());
        let score_series: Vec<SeriesIdx> = batch
            .series()
            .iter()
            .map(|n| scores.add_series(n.machine.clone(), n.sensor.clone()))
            .collect();
        let mut signals = std::mem::take(&mut self.signals);
        let mut per_machine: FxHashMap<MachineId, Vec<Signal>> = FxHashMap::default();
        // First the detectors that can alert, on the whole batch, and act on what they found:
        // the alert does not wait for the novelty detector, which costs ten times more.
        let mut rules = Vec::with_capacity(batch.len());
        for sample in batch.samples() {
            let Some((machine, sensor)) = &places[sample.series.get()] else {
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
            if !signals.is_empty() {
                per_machine
                    .entry(machine.clone())
                    .or_default()
                    .append(&mut signals);
            }
        }
        for (machine, signals) in per_machine.drain() {
            self.act(&machine, signals).await?;
        }
        // Then novelty completes every reading's score, in the same order.
        for (sample, rules) in batch.samples().iter().zip(rules) {
            let (Some((machine, sensor)), Some(rules)) = (&places[sample.series.get()], rules)
            else {
                continue;
            };
            let Some(tracked) = self.tracked.get_mut(machine) else {
                continue;
            };
            let point = tracked.detector.observe_novelty(
                *sensor,
                sample.ts_micros,
                sample.value,
                rules,
                &mut signals,
            );
            scores.push_sample(ScoreSample {
                series: score_series[sample.series.get()],
                ts_micros: sample.ts_micros,
                score: point.score,
                anomaly: point.anomaly,
            });
            if !signals.is_empty() {
                per_machine
                    .entry(machine.clone())
                    .or_default()
                    .append(&mut signals);
            }
        }
        self.signals = signals;
        metrics::counter!("fb_detection_readings_total").increment(scores.len() as u64);
        metrics::histogram!("fb_detection_batch_seconds").record(started.elapsed().as_secs_f64());
        if !scores.is_empty() {
            self.scores.append_scores(&scores).await?;
        }
        for (machine, signals) in per_machine {
            self.act(&machine, signals).await?;
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
        for (id, tracked) in &mut self.tracked {
            let signals = tracked.detector.health();
            let health = (health_score(&signals) * 10.0).round() / 10.0;
            metrics::gauge!("fb_machine_health", "machine" => id.0.clone()).set(health);
            if tracked.health != Some(health) {
                self.machines.set_machine_health(id, health, now).await?;
                tracked.health = Some(health);
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
            self.anomalies.insert_anomalies(&anomalies).await?;
        }
        self.alerts.observe(observations).await?;
        Ok(())
    }

    /// The detection state of a machine, built on first sight and rebuilt when its spec
    /// changed (sensors or limits edited). `None` for a machine the store does not know.
    async fn detector(&mut self, id: &MachineId) -> Result<Option<&MachineDetector>, Error> {
        let due = match self.tracked.get(id) {
            Some(t) => t.checked_at.elapsed() >= SPEC_RECHECK,
            None => self
                .unknown
                .get(id)
                .is_none_or(|at| at.elapsed() >= SPEC_RECHECK),
        };
        if due {
            match self.machines.machine(id).await? {
                Some(machine) => {
                    self.unknown.remove(id);
                    let spec = (machine.machine_class, machine.sensors.clone());
                    let rebuild = self.tracked.get(id).is_none_or(|t| t.spec != spec);
                    if rebuild {
                        let detector = MachineDetector::new(&machine, &self.options.detection)
                            .map_err(|e| Error::Config(e.to_string()))?;
                        let previous = self.tracked.remove(id);
                        self.tracked.insert(
                            id.clone(),
                            Tracked {
                                detector,
                                spec,
                                checked_at: std::time::Instant::now(),
                                health: previous.as_ref().and_then(|p| p.health),
                                low_health: previous.is_some_and(|p| p.low_health),
                            },
                        );
                    } else if let Some(t) = self.tracked.get_mut(id) {
                        t.checked_at = std::time::Instant::now();
                    }
                }
                None => {
                    self.tracked.remove(id);
                    self.unknown.insert(id.clone(), std::time::Instant::now());
                }
            }
        }
        Ok(self.tracked.get(id).map(|t| &t.detector))
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
