//! Every detector of one sensor.

use fb_core::detection::{AnomalyKind, DetectorKind, Evidence, Severity};
use fb_core::plant::SensorSpec;

use super::{DetectionConfig, Finding, KindSet, LEARNED_CONFIRM, Signal};
use crate::detector::{DetectorError, NoveltyConfig, NoveltyDetector, StreamingDetector};
use crate::rules::faults::{Cadence, SPIKE_Z, SpikeCheck, StuckDetector};
use crate::rules::limits::{LimitZone, VibrationZone, ZoneBounds, limit_zone};
use crate::rules::shift::{ShiftConfig, ShiftDetector};

/// Robust spread is recomputed every this many readings (it walks half the window).
const SPREAD_EVERY: u32 = 32;
const MAD_TO_SIGMA: f64 = 1.482_602_218_505_602;
/// A reading this many robust standard deviations from the baseline is away from it, for
/// the recognition of operating-point changes (the statistical detector's own threshold).
const AWAY_Z: f64 = 6.0;

pub(super) struct SensorDetector {
    spec: SensorSpec,
    kind: AnomalyKind,
    zones: Option<ZoneBounds>,
    novelty: Option<NoveltyDetector>,
    novelty_alarm: f64,
    shift: ShiftDetector,
    stuck: StuckDetector,
    spike: SpikeCheck,
    cadence: Cadence,
    /// Robust standard deviation of recent values (cached).
    spread: Option<f64>,
    since_spread: u32,
    /// Severity of the limit or zone the last reading was in; critical needs two in a row.
    zone: Option<Severity>,
    previous_critical: bool,
    holding: KindSet,
    /// While the machine settles into a new operating point: this sensor's level is back near
    /// its new baseline.
    settled: bool,
    stuck_now: bool,
    silent: bool,
    refused: bool,
}

impl SensorDetector {
    pub(super) fn new(
        spec: SensorSpec,
        zones: Option<ZoneBounds>,
        cfg: &DetectionConfig,
    ) -> Result<Self, DetectorError> {
        let novelty_cfg = NoveltyConfig::new(cfg.warmup);
        let novelty_alarm = novelty_cfg.alarm_score();
        let novelty = cfg
            .novelty
            .then(|| NoveltyDetector::new(novelty_cfg))
            .transpose()?;
        Ok(Self {
            kind: AnomalyKind::of_sensor(spec.kind),
            spec,
            zones,
            novelty,
            novelty_alarm,
            shift: ShiftDetector::new(ShiftConfig::new(cfg.warmup)),
            stuck: StuckDetector::new(cfg.stuck_min_run),
            spike: SpikeCheck::default(),
            cadence: Cadence::default(),
            spread: None,
            since_spread: 0,
            zone: None,
            previous_critical: false,
            holding: KindSet::default(),
            settled: true,
            stuck_now: false,
            silent: false,
            refused: false,
        })
    }

    /// See [`super::MachineDetector::set_sensitivity`].
    pub(super) fn set_sensitivity(&mut self, factor: f64) {
        self.shift.set_sensitivity(factor);
    }

    pub(super) fn spec(&self) -> &SensorSpec {
        &self.spec
    }

    pub(super) fn holding(&self) -> KindSet {
        self.holding
    }

    pub(super) fn zone_severity(&self) -> Option<Severity> {
        self.zone
    }

    pub(super) fn has_fault(&self) -> bool {
        self.stuck_now || self.silent || self.refused
    }

    pub(super) fn memory_bytes(&self) -> usize {
        size_of::<Self>()
            + self.novelty.as_ref().map_or(0, |n| n.memory_bytes())
            + self.shift.heap_bytes()
    }

    /// Whether `value` is away from the sensor's baseline (its statistical detector is out, or
    /// the value alone is far); `None` until the sensor has a baseline.
    pub(super) fn away(&self, value: f64) -> Option<bool> {
        if !self.shift.is_warm() {
            return None;
        }
        if self.shift.is_out() {
            return Some(true);
        }
        let (baseline, spread) = (self.shift.baseline()?, self.spread?);
        Some(((value - baseline) / spread).abs() >= AWAY_Z)
    }

    /// The machine changed its operating point: the baseline starts over (see
    /// [`crate::rules::mode`]).
    pub(super) fn restart_baseline(&mut self) {
        self.shift.restart();
        self.spread = None;
        self.since_spread = 0;
        // A spike candidate judged against the old baseline means nothing against the new.
        self.spike = SpikeCheck::default();
        self.settled = false;
    }

    /// Settled into the new operating point: a baseline again, and the level within half the
    /// statistical threshold of it.
    pub(super) fn settled(&self) -> bool {
        self.settled
    }

    /// Runs every detector on the reading; pushes what holds and returns the reading's score.
    /// While the machine `settling`s into a new operating point the statistical detector only
    /// learns. The caller emits clears for kinds this sensor stopped holding.
    pub(super) fn observe(
        &mut self,
        index: usize,
        ts: i64,
        value: f64,
        settling: bool,
        out: &mut Vec<Signal>,
    ) -> f64 {
        self.cadence.update(ts);
        self.silent = false;
        self.refused = false;
        let mut found = Found::default();
        let mut score: f64 = 0.0;

        // Static limits and vibration zones: no warm-up.
        let (zone, limit) = limit_zone(&self.spec, value);
        let vib = self.zones.map(|z| (z.zone(value), z));
        let critical_now =
            zone == LimitZone::Critical || vib.is_some_and(|(z, _)| z == VibrationZone::D);
        let confirmed_critical = critical_now && self.previous_critical;
        self.previous_critical = critical_now;
        let limit_severity = match zone {
            LimitZone::Critical if confirmed_critical => Some(Severity::Critical),
            LimitZone::Critical | LimitZone::Warning => Some(Severity::Warning),
            LimitZone::Normal => None,
        };
        if let (Some(severity), Some(limit)) = (limit_severity, limit) {
            score = score.max(if zone == LimitZone::Critical {
                0.9
            } else {
                0.6
            });
            found.add(Finding {
                sensor: Some(index),
                kind: self.kind,
                detector: DetectorKind::Limits,
                severity,
                ts_micros: ts,
                score: if zone == LimitZone::Critical {
                    0.9
                } else {
                    0.6
                },
                evidence: vec![
                    Evidence::number("value", value),
                    Evidence::number("limit", limit),
                    Evidence::text(
                        "zone",
                        if zone == LimitZone::Critical {
                            "critical"
                        } else {
                            "warning"
                        },
                    ),
                ],
                confirmed: false,
                onset: false,
                alerting: true,
            });
        }
        let mut zone_severity = limit_severity;
        if let Some((vz, bounds)) = vib
            && vz >= VibrationZone::C
        {
            let severity = if vz == VibrationZone::D && confirmed_critical {
                Severity::Critical
            } else {
                Severity::Warning
            };
            let s = if vz == VibrationZone::D { 0.9 } else { 0.6 };
            score = score.max(s);
            zone_severity = zone_severity.max(Some(severity));
            found.add(Finding {
                sensor: Some(index),
                kind: AnomalyKind::Vibration,
                detector: DetectorKind::VibrationZone,
                severity,
                ts_micros: ts,
                score: s,
                evidence: vec![
                    Evidence::number("rms_mm_s", value),
                    Evidence::text("iso_10816_zone", vz.as_str()),
                    Evidence::number("zone_starts_at", bounds.lower_bound(vz).unwrap_or(0.0)),
                ],
                confirmed: false,
                onset: false,
                alerting: true,
            });
        }
        self.zone = zone_severity;

        // Spikes: judged against the robust spread before the value joins the baseline.
        if let (Some(baseline), Some(spread)) = (self.shift.baseline(), self.spread_now()) {
            let z = (value - baseline) / spread;
            if z.abs() >= SPIKE_Z {
                score = score.max(0.8);
            }
            if let Some(spike) = self.spike.update(ts, value, z, baseline) {
                found.add(Finding {
                    sensor: Some(index),
                    kind: AnomalyKind::Spike,
                    detector: DetectorKind::Spike,
                    severity: Severity::Warning,
                    ts_micros: spike.ts_micros,
                    score: 0.8,
                    evidence: vec![
                        Evidence::number("value", spike.value),
                        Evidence::number("baseline", spike.baseline),
                        Evidence::number("robust_z", spike.z),
                        Evidence::number("next_value", value),
                    ],
                    confirmed: true,
                    onset: true,
                    alerting: true,
                });
            }
        }

        // Adaptive statistical threshold.
        let verdict = if settling {
            let would = self.shift.learn(value);
            let calm = 0.5 * self.shift.threshold();
            self.settled = would.is_some_and(|v| v.z.abs() < calm);
            None
        } else {
            self.shift.update(value)
        };
        if let Some(v) = verdict {
            // 0.5 is the alarm level, wherever the (sensitivity-scaled) threshold lies.
            let s = (0.5 * v.z.abs() / self.shift.threshold()).min(1.0);
            score = score.max(s);
            if v.out && self.shift.out_streak() >= LEARNED_CONFIRM {
                found.add(Finding {
                    sensor: Some(index),
                    kind: self.kind,
                    detector: DetectorKind::Statistical,
                    severity: Severity::Warning,
                    ts_micros: ts,
                    score: s,
                    evidence: vec![
                        Evidence::number("level", v.level),
                        Evidence::number("baseline", v.baseline),
                        Evidence::number("z", v.z),
                        Evidence::text(
                            "direction",
                            if v.z > 0.0 {
                                "above baseline"
                            } else {
                                "below baseline"
                            },
                        ),
                    ],
                    confirmed: false,
                    onset: false,
                    alerting: true,
                });
            }
        }

        // Stuck value.
        let stuck = self.stuck.update(value);
        self.stuck_now = stuck.is_some();
        if let Some(run) = stuck {
            score = score.max(0.7);
            found.add(Finding {
                sensor: Some(index),
                kind: AnomalyKind::StuckSensor,
                detector: DetectorKind::Stuck,
                severity: Severity::Warning,
                ts_micros: ts,
                score: 0.7,
                evidence: vec![
                    Evidence::number("value", value),
                    Evidence::number("repeated_readings", f64::from(run)),
                    Evidence::number(
                        "plausible_run",
                        f64::from(self.stuck.needed_run().unwrap_or(run)),
                    ),
                ],
                confirmed: false,
                onset: false,
                alerting: true,
            });
        }

        let before = self.holding;
        self.holding = KindSet::default();
        for mut f in found.into_strongest() {
            self.holding.insert(f.kind);
            f.onset = f.onset || !before.contains(f.kind);
            out.push(Signal::Holds(f));
        }
        // The spike is over once found: it does not hold.
        self.holding.remove(AnomalyKind::Spike);
        score
    }

    /// The novelty detector's part: marks the reading, raises no alert of its own. Returns the
    /// reading's novelty score (0 when the detector is off).
    pub(super) fn observe_novelty(
        &mut self,
        index: usize,
        ts: i64,
        value: f64,
        out: &mut Vec<Signal>,
    ) -> f64 {
        let Some(n) = self.novelty.as_mut() else {
            return 0.0;
        };
        let raw = n.update(ts, value);
        let a = self.novelty_alarm;
        let s = if raw < a {
            0.5 * raw / a
        } else {
            0.5 + 0.5 * (raw - a) / (1.0 - a)
        };
        if raw >= a {
            out.push(Signal::Holds(Finding {
                sensor: Some(index),
                kind: self.kind,
                detector: DetectorKind::Novelty,
                severity: Severity::Warning,
                ts_micros: ts,
                score: s,
                evidence: vec![
                    Evidence::number("value", value),
                    Evidence::number("novelty_score", raw),
                ],
                confirmed: false,
                onset: true,
                alerting: false,
            }));
        }
        s
    }

    pub(super) fn refused(&mut self, index: usize, ts: i64, value: f64, out: &mut Vec<Signal>) {
        self.refused = true;
        self.holding.insert(AnomalyKind::OutOfRange);
        out.push(Signal::Holds(Finding {
            sensor: Some(index),
            kind: AnomalyKind::OutOfRange,
            detector: DetectorKind::Range,
            severity: Severity::Warning,
            ts_micros: ts,
            score: 1.0,
            evidence: vec![
                Evidence::number("value", value),
                Evidence::number("physical_min", self.spec.physical_min),
                Evidence::number("physical_max", self.spec.physical_max),
            ],
            confirmed: false,
            onset: true,
            alerting: true,
        }));
    }

    pub(super) fn heard(&mut self, at_micros: i64) {
        self.cadence.heard(at_micros);
    }

    pub(super) fn check_silence(
        &mut self,
        index: usize,
        now: i64,
        no_data: i64,
        out: &mut Vec<Signal>,
    ) {
        let Some(silence) = self.cadence.silence(now, no_data) else {
            return;
        };
        let onset = !self.silent;
        self.silent = true;
        self.holding.insert(AnomalyKind::NoData);
        out.push(Signal::Holds(Finding {
            sensor: Some(index),
            kind: AnomalyKind::NoData,
            detector: DetectorKind::Gap,
            severity: Severity::Warning,
            ts_micros: now,
            score: 1.0,
            evidence: vec![
                Evidence::number("silent_secs", silence as f64 / 1e6),
                Evidence::number(
                    "usual_interval_secs",
                    self.cadence.interval_micros().unwrap_or(0.0) / 1e6,
                ),
            ],
            confirmed: false,
            onset,
            alerting: true,
        }));
    }

    fn spread_now(&mut self) -> Option<f64> {
        if !self.shift.is_warm() {
            return None;
        }
        self.since_spread += 1;
        if self.spread.is_none() || self.since_spread >= SPREAD_EVERY {
            self.since_spread = 0;
            let baseline = self.shift.baseline()?;
            let floor = 1e-3 * baseline.abs() + 1e-9;
            self.spread = self
                .shift
                .spread()
                .map(|mad| (mad * MAD_TO_SIGMA).max(floor));
        }
        self.spread
    }
}

/// Findings of one reading, at most one per kind: the most severe (then the first found, in
/// the order limits, zone, spike, statistical, stuck).
#[derive(Default)]
struct Found(Vec<Finding>);

impl Found {
    fn add(&mut self, f: Finding) {
        match self.0.iter_mut().find(|g| g.kind == f.kind) {
            Some(g) if f.severity > g.severity => *g = f,
            Some(_) => {}
            None => self.0.push(f),
        }
    }

    fn into_strongest(self) -> Vec<Finding> {
        self.0
    }
}
