//! Detection for one machine: every detector of every sensor, and the machine's sensors
//! together, turned into one score per reading and into findings that alerts follow.
//!
//! Per sensor, on every reading:
//!
//! | detector | needs warm-up | finds | severity |
//! |---|---|---|---|
//! | limits (warning / critical) | no | the sensor's process kind | warning; critical from the 2nd reading in a row |
//! | ISO 10816 zone (vibration sensors of a classed machine) | no | vibration | zone C warning; zone D critical from the 2nd reading |
//! | statistical, adaptive threshold ([`crate::rules::shift`]) | yes | the sensor's process kind | warning |
//! | novelty (the NAB detector) | yes | marks the reading; weighs on health; no alert by itself | — |
//! | stuck value | 50 readings | stuck sensor | warning |
//! | spike: far out, back on the next reading | yes | spike (confirmed: opens an alert at once) | warning |
//!
//! Per machine: the multivariate detector on each complete row of sensor values, the
//! recognition of changes of operating point ([`crate::rules::mode`]: while the machine settles
//! into one, the statistical and multivariate detectors learn without judging), and on
//! [`MachineDetector::tick`] the silence of each sensor (no data). Readings refused at ingest
//! as outside the physical range are reported with [`MachineDetector::refused`].
//!
//! A critical limit needs two readings in a row so that one corrupt reading is called a spike,
//! not an emergency; the first counts as a warning. The score of a reading is the largest of
//! its detectors' scores, each scaled so that 0.5 is that detector's own alarm level, so
//! `anomaly = score ≥ 0.5` means "some detector alarmed on this reading".

mod sensor;

use fb_core::detection::{AnomalyKind, DetectorKind, Evidence, HealthSignals, Severity};
use fb_core::plant::{Machine, MachineId, SensorKey, SensorKind};
use serde::{Deserialize, Serialize};

use crate::detector::DetectorError;
use crate::rules::limits::VibrationZones;
use crate::rules::mode::ModeWatch;
use crate::rules::multivariate::{Mahalanobis, MultivariateConfig, MultivariateVerdict};
use sensor::SensorDetector;

/// Settings shared by every machine's detection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectionConfig {
    /// Readings (per sensor) and rows (per machine) the learning detectors train on first.
    pub warmup: usize,
    /// A sensor silent for longer than this (and than five of its usual intervals) has no data.
    pub no_data_secs: u64,
    /// Shortest run of one repeated value that can count as a stuck sensor.
    pub stuck_min_run: u32,
    /// Runs the novelty detector (the NAB one) on each sensor: about 10 µs and 83 KB per
    /// sensor; off, scores come from the other detectors only.
    pub novelty: bool,
    /// After a change of operating point (see [`crate::rules::mode`]), the statistical and
    /// multivariate detectors only learn until every sensor settled, for at most this long;
    /// 0 turns recognition off.
    pub mode_settle_secs: u64,
    pub vibration_zones: VibrationZones,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        Self {
            warmup: 300,
            no_data_secs: 30,
            stuck_min_run: 10,
            novelty: true,
            mode_settle_secs: 3600,
            vibration_zones: VibrationZones::default(),
        }
    }
}

impl DetectionConfig {
    pub fn validate(&self) -> Result<(), DetectorError> {
        let bad = |field, reason| Err(DetectorError::InvalidConfig { field, reason });
        if !(10..=100_000).contains(&self.warmup) {
            return bad("warmup", "must be between 10 and 100000 readings");
        }
        if self.no_data_secs == 0 {
            return bad("no_data_secs", "must be at least one second");
        }
        if self.mode_settle_secs > 86_400 {
            return bad("mode_settle_secs", "must be at most 86400 seconds");
        }
        if self.stuck_min_run < 2 {
            return bad("stuck_min_run", "must be at least 2 readings");
        }
        if self.vibration_zones.invalid_class().is_some() {
            return bad(
                "vibration_zones",
                "each class needs increasing positive bounds a_b < b_c < c_d",
            );
        }
        Ok(())
    }
}

/// Readings (rows, for the multivariate detector) a learning detector must be out in a row
/// before its finding counts: the few readings it takes to recognise a change of operating
/// point, in which every load-driven sensor leaves its baseline at once (see
/// [`crate::rules::mode`]). The reading's score is not delayed.
pub(crate) const LEARNED_CONFIRM: usize = 5;

/// The score detection gives one reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PointScore {
    /// In [0, 1]; 0.5 is the alarm level of every detector.
    pub score: f32,
    pub anomaly: bool,
}

/// Something a detector found about a reading, a sensor or the machine.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Index of the sensor in the machine's sensor list; `None` for the machine as a whole.
    pub sensor: Option<usize>,
    pub kind: AnomalyKind,
    pub detector: DetectorKind,
    pub severity: Severity,
    pub ts_micros: i64,
    /// In [0, 1].
    pub score: f64,
    pub evidence: Vec<Evidence>,
    /// The detector confirmed it itself (a spike): an alert opens at once.
    pub confirmed: bool,
    /// The first reading of a spell: worth storing as an anomaly.
    pub onset: bool,
    /// Counts toward alerts. Novelty alarms mark readings and weigh on health only: one odd
    /// reading is not worth waking someone.
    pub alerting: bool,
}

/// What detection tells the alerts: a kind holds (with the finding behind it), or no source on
/// the machine holds it any more.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    Holds(Finding),
    Clears { kind: AnomalyKind, ts_micros: i64 },
}

/// A set of anomaly kinds, as bits in [`AnomalyKind::ALL`] order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct KindSet(u16);

impl KindSet {
    fn bit(kind: AnomalyKind) -> u16 {
        let i = AnomalyKind::ALL
            .iter()
            .position(|k| *k == kind)
            .unwrap_or(0);
        1 << i
    }

    pub(crate) fn insert(&mut self, kind: AnomalyKind) {
        self.0 |= Self::bit(kind);
    }

    pub(crate) fn remove(&mut self, kind: AnomalyKind) {
        self.0 &= !Self::bit(kind);
    }

    pub(crate) fn contains(self, kind: AnomalyKind) -> bool {
        self.0 & Self::bit(kind) != 0
    }

    fn iter(self) -> impl Iterator<Item = AnomalyKind> {
        AnomalyKind::ALL
            .into_iter()
            .filter(move |k| self.contains(*k))
    }

    fn minus(self, other: KindSet) -> KindSet {
        KindSet(self.0 & !other.0)
    }
}

/// Detection state of one machine.
pub struct MachineDetector {
    machine: MachineId,
    no_data_micros: i64,
    sensors: Vec<SensorDetector>,
    /// Kinds the machine-level (multivariate) source holds.
    machine_holding: KindSet,
    multivariate: Option<Mahalanobis>,
    mode: ModeWatch,
    row: Vec<f64>,
    fresh: Vec<bool>,
    have: Vec<bool>,
    /// Exponentially weighted anomaly scores of the machine's readings (0 when all is calm).
    pressure: f64,
    pressure_alpha: f64,
    sensitivity: f64,
}

impl MachineDetector {
    pub fn new(machine: &Machine, cfg: &DetectionConfig) -> Result<Self, DetectorError> {
        cfg.validate()?;
        let zones = machine
            .machine_class
            .map(|class| *cfg.vibration_zones.bounds(class));
        let sensors = machine
            .sensors
            .iter()
            .map(|spec| {
                let zones = zones.filter(|_| spec.kind == SensorKind::Vibration);
                SensorDetector::new(spec.clone(), zones, cfg)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let p = sensors.len();
        let multivariate =
            (p >= 2).then(|| Mahalanobis::new(p, MultivariateConfig::new(cfg.warmup)));
        Ok(Self {
            machine: machine.id.clone(),
            no_data_micros: i64::try_from(cfg.no_data_secs)
                .unwrap_or(i64::MAX / 1_000_000)
                .saturating_mul(1_000_000),
            sensors,
            machine_holding: KindSet::default(),
            multivariate,
            mode: ModeWatch::new(p, cfg.mode_settle_secs),
            row: vec![0.0; p],
            fresh: vec![false; p],
            have: vec![false; p],
            pressure: 0.0,
            // Half-life of about 30 readings per sensor.
            pressure_alpha: std::f64::consts::LN_2 / (30.0 * p.max(1) as f64),
            sensitivity: 1.0,
        })
    }

    /// Makes the learning detectors more sensitive ("increase monitoring"): the statistical
    /// threshold of every sensor is multiplied by `factor`, the multivariate distance
    /// threshold by `factor²` (it is a squared distance). 1 is normal; values in (0, 1) are
    /// more sensitive; anything else is ignored (a factor above 1 is taken as 1). Static
    /// limits and ISO zones stay where they are: they are engineering limits, not estimates.
    /// Called when the factor changes, never per reading: judging costs the same either way.
    pub fn set_sensitivity(&mut self, factor: f64) {
        if !(factor.is_finite() && factor > 0.0) {
            return;
        }
        let factor = factor.min(1.0);
        self.sensitivity = factor;
        for s in &mut self.sensors {
            s.set_sensitivity(factor);
        }
        if let Some(m) = self.multivariate.as_mut() {
            m.set_sensitivity(factor * factor);
        }
    }

    /// The sensitivity factor in force (1 normal).
    pub fn sensitivity(&self) -> f64 {
        self.sensitivity
    }

    pub fn machine(&self) -> &MachineId {
        &self.machine
    }

    /// Changes of operating point recognised so far.
    pub fn mode_changes(&self) -> u64 {
        self.mode.changes()
    }

    /// The learning detectors are settling into a new operating point at `ts_micros`.
    pub fn settling(&self, ts_micros: i64) -> bool {
        self.mode.settling(ts_micros)
    }

    /// Settling lasts until every sensor settled, or the settling time ran out.
    fn settling_now(&mut self, ts_micros: i64) -> bool {
        if !self.mode.settling(ts_micros) {
            return false;
        }
        if self.sensors.iter().all(SensorDetector::settled) {
            self.mode.end_settling();
            return false;
        }
        true
    }

    /// Position of a sensor in the machine's list.
    pub fn sensor_index(&self, key: &str) -> Option<usize> {
        self.sensors.iter().position(|s| s.spec().key.0 == key)
    }

    pub fn sensor_key(&self, index: usize) -> Option<&SensorKey> {
        self.sensors.get(index).map(|s| &s.spec().key)
    }

    /// Scores one reading and reports what holds and what cleared: [`observe_rules`] then
    /// [`observe_novelty`].
    ///
    /// [`observe_rules`]: Self::observe_rules
    /// [`observe_novelty`]: Self::observe_novelty
    pub fn observe(
        &mut self,
        sensor: usize,
        ts_micros: i64,
        value: f64,
        out: &mut Vec<Signal>,
    ) -> PointScore {
        let rules = self.observe_rules(sensor, ts_micros, value, out);
        self.observe_novelty(sensor, ts_micros, value, rules, out)
    }

    /// Every detector but novelty: everything that can raise an alert, at about a tenth of the
    /// cost. A caller in a hurry to alert runs this on a whole batch first, acts on what holds,
    /// and then completes each reading's score with [`observe_novelty`](Self::observe_novelty)
    /// in the same order.
    pub fn observe_rules(
        &mut self,
        sensor: usize,
        ts_micros: i64,
        value: f64,
        out: &mut Vec<Signal>,
    ) -> PointScore {
        let settling = self.settling_now(ts_micros);
        let Some(detector) = self.sensors.get_mut(sensor) else {
            return PointScore {
                score: 0.0,
                anomaly: false,
            };
        };
        let first = out.len();
        let before = detector.holding();
        let mut score = detector.observe(sensor, ts_micros, value, settling, out);
        let after = detector.holding();
        if let Some(s) = self.observe_row(sensor, ts_micros, value, out) {
            score = score.max(s);
        }
        self.emit_clears(before.minus(after), ts_micros, out);
        // A confirmed spike is over as soon as it is found.
        if out[first..]
            .iter()
            .any(|s| matches!(s, Signal::Holds(f) if f.kind == AnomalyKind::Spike))
            && !self.held_by_any(AnomalyKind::Spike)
        {
            out.push(Signal::Clears {
                kind: AnomalyKind::Spike,
                ts_micros,
            });
        }
        PointScore {
            score: score.clamp(0.0, 1.0) as f32,
            anomaly: score >= 0.5,
        }
    }

    /// The novelty detector on the reading `rules` scored: the reading's final score. Novelty
    /// alarms come out as findings that do not alert (they mark the reading and weigh on
    /// health).
    pub fn observe_novelty(
        &mut self,
        sensor: usize,
        ts_micros: i64,
        value: f64,
        rules: PointScore,
        out: &mut Vec<Signal>,
    ) -> PointScore {
        let novelty = self
            .sensors
            .get_mut(sensor)
            .map_or(0.0, |d| d.observe_novelty(sensor, ts_micros, value, out));
        let score = f64::from(rules.score).max(novelty);
        let anomaly = score >= 0.5;
        let weight = if anomaly { score } else { 0.0 };
        self.pressure += self.pressure_alpha * (weight - self.pressure);
        PointScore {
            score: score.clamp(0.0, 1.0) as f32,
            anomaly,
        }
    }

    /// A reading of `sensor` was refused at ingest as outside the physical range.
    pub fn refused(&mut self, sensor: usize, ts_micros: i64, value: f64, out: &mut Vec<Signal>) {
        if let Some(detector) = self.sensors.get_mut(sensor) {
            detector.refused(sensor, ts_micros, value, out);
        }
    }

    /// A reading of `sensor` arrived at `at_micros` (server time): see
    /// [`Cadence::heard`](crate::rules::faults::Cadence::heard).
    pub fn heard(&mut self, sensor: usize, at_micros: i64) {
        if let Some(detector) = self.sensors.get_mut(sensor) {
            detector.heard(at_micros);
        }
    }

    /// Time passed: sensors silent for too long have no data.
    pub fn tick(&mut self, now_micros: i64, out: &mut Vec<Signal>) {
        let no_data = self.no_data_micros;
        for (i, detector) in self.sensors.iter_mut().enumerate() {
            detector.check_silence(i, now_micros, no_data, out);
        }
    }

    /// What the machine's health score is made of now.
    pub fn health(&self) -> HealthSignals {
        let mut signals = HealthSignals {
            anomaly_pressure: self.pressure,
            ..HealthSignals::default()
        };
        for s in &self.sensors {
            match s.zone_severity() {
                Some(Severity::Critical) => signals.critical_zones += 1,
                Some(Severity::Warning) => signals.warning_zones += 1,
                None => {}
            }
            if s.has_fault() {
                signals.sensor_faults += 1;
            }
        }
        signals
    }

    /// Bytes this machine's detection holds.
    pub fn memory_bytes(&self) -> usize {
        size_of::<Self>()
            + self
                .sensors
                .iter()
                .map(SensorDetector::memory_bytes)
                .sum::<usize>()
            + self
                .multivariate
                .as_ref()
                .map_or(0, Mahalanobis::heap_bytes)
            + self.mode.heap_bytes()
            + self.row.capacity() * (size_of::<f64>() + 2 * size_of::<bool>())
    }

    fn held_by_any(&self, kind: AnomalyKind) -> bool {
        self.machine_holding.contains(kind)
            || self.sensors.iter().any(|s| s.holding().contains(kind))
    }

    fn emit_clears(&self, dropped: KindSet, ts_micros: i64, out: &mut Vec<Signal>) {
        for kind in dropped.iter() {
            if !self.held_by_any(kind) {
                out.push(Signal::Clears { kind, ts_micros });
            }
        }
    }

    /// Adds the reading to the machine's row; judges the row once every sensor has a fresh
    /// value, or when a sensor repeats before the others reported (a silent sensor must not
    /// stop the multivariate detector: its last value stands in).
    fn observe_row(
        &mut self,
        sensor: usize,
        ts_micros: i64,
        value: f64,
        out: &mut Vec<Signal>,
    ) -> Option<f64> {
        self.multivariate.as_ref()?;
        let mut judged = None;
        if self.fresh[sensor] && self.have.iter().all(|h| *h) {
            judged = self.judge_row(ts_micros, out);
            self.fresh.iter_mut().for_each(|f| *f = false);
        }
        self.row[sensor] = value;
        self.fresh[sensor] = true;
        self.have[sensor] = true;
        if judged.is_none() && self.fresh.iter().all(|f| *f) {
            judged = self.judge_row(ts_micros, out);
            self.fresh.iter_mut().for_each(|f| *f = false);
        }
        let verdict = judged?;
        let before = self.machine_holding;
        let top = &self.sensors[verdict.top];
        let kind = AnomalyKind::of_sensor(top.spec().kind);
        let score = (0.5 * verdict.d2 / verdict.threshold).min(1.0);
        self.machine_holding = KindSet::default();
        let lasting = self
            .multivariate
            .as_ref()
            .is_some_and(|m| m.out_streak() >= LEARNED_CONFIRM);
        if verdict.out && lasting {
            self.machine_holding.insert(kind);
            out.push(Signal::Holds(Finding {
                sensor: None,
                kind,
                detector: DetectorKind::Multivariate,
                severity: Severity::Warning,
                ts_micros,
                score,
                evidence: vec![
                    Evidence::number("mahalanobis_d2", verdict.d2),
                    Evidence::number("threshold", verdict.threshold),
                    Evidence::text("most_unusual_sensor", top.spec().key.0.clone()),
                    Evidence::number("its_share_of_d2", verdict.top_share),
                ],
                confirmed: false,
                onset: !before.contains(kind),
                alerting: true,
            }));
        }
        self.emit_clears(before.minus(self.machine_holding), ts_micros, out);
        Some(score)
    }

    /// One complete row: first, has the machine changed its operating point? Then the
    /// multivariate verdict, unless the machine is settling (the model only learns then).
    fn judge_row(&mut self, ts_micros: i64, out: &mut Vec<Signal>) -> Option<MultivariateVerdict> {
        let away = self.sensors.iter().zip(&self.row).map(|(s, v)| s.away(*v));
        if self.mode.observe_row(ts_micros, away).is_some() {
            self.sensors
                .iter_mut()
                .for_each(SensorDetector::restart_baseline);
            if let Some(model) = self.multivariate.as_mut() {
                model.restart();
            }
            let held = std::mem::take(&mut self.machine_holding);
            self.emit_clears(held, ts_micros, out);
        }
        let settling = self.settling_now(ts_micros);
        let model = self.multivariate.as_mut()?;
        if settling {
            model.learn_only(&self.row);
            return None;
        }
        model.update(&self.row)
    }
}

#[cfg(test)]
mod tests;
