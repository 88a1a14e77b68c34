use fb_core::plant::{
    Location, Machine, MachineClass, MachineId, MachineStatus, SensorKey, SensorKind, SensorSpec,
};
use time::OffsetDateTime;

use super::*;
use crate::detector::math::SplitMix64;

const SEC: i64 = 1_000_000;

fn spec(key: &str, kind: SensorKind, range: (f64, f64), warn: f64, crit: f64) -> SensorSpec {
    SensorSpec {
        key: SensorKey(key.into()),
        kind,
        unit: String::new(),
        physical_min: range.0,
        physical_max: range.1,
        warning_low: None,
        warning_high: Some(warn),
        critical_low: None,
        critical_high: Some(crit),
    }
}

fn machine() -> Machine {
    Machine {
        id: MachineId("pump-1".into()),
        name: "Pump 1".into(),
        machine_type: "pump".into(),
        machine_class: Some(MachineClass::Class2),
        location: Location {
            site: "s".into(),
            area: None,
            line: None,
            cell: None,
        },
        status: MachineStatus::Running,
        active: true,
        sensors: vec![
            spec(
                "temperature",
                SensorKind::Temperature,
                (-40.0, 250.0),
                80.0,
                95.0,
            ),
            spec("vibration", SensorKind::Vibration, (0.0, 100.0), 50.0, 60.0),
            spec("power", SensorKind::Power, (0.0, 200.0), 120.0, 150.0),
        ],
        last_maintenance: None,
        next_maintenance: None,
        health_score: None,
        failure_probability: None,
        rul_hours: None,
        created_at: OffsetDateTime::UNIX_EPOCH,
        updated_at: OffsetDateTime::UNIX_EPOCH,
    }
}

fn normal(rng: &mut SplitMix64) -> f64 {
    (0..12).map(|_| rng.next_f64()).sum::<f64>() - 6.0
}

struct Plant {
    d: MachineDetector,
    rng: SplitMix64,
    t: i64,
    signals: Vec<Signal>,
}

impl Plant {
    fn new() -> Self {
        let cfg = DetectionConfig {
            warmup: 200,
            ..DetectionConfig::default()
        };
        Self {
            d: MachineDetector::new(&machine(), &cfg).expect("valid"),
            rng: SplitMix64::new(9),
            t: 0,
            signals: Vec::new(),
        }
    }

    /// One second of healthy readings, with `edit` applied to (temperature, vibration, power).
    fn step(&mut self, edit: impl Fn(&mut [f64; 3])) -> Vec<PointScore> {
        self.t += SEC;
        let mut v = [
            50.0 + 0.2 * normal(&mut self.rng),
            1.8 + 0.05 * normal(&mut self.rng),
            60.0 + 0.6 * normal(&mut self.rng),
        ];
        edit(&mut v);
        let mut scores = Vec::new();
        for (i, value) in v.into_iter().enumerate() {
            scores.push(self.d.observe(i, self.t, value, &mut self.signals));
        }
        self.d.tick(self.t, &mut self.signals);
        scores
    }

    fn alerting(&self) -> Vec<&Finding> {
        self.signals
            .iter()
            .filter_map(|s| match s {
                Signal::Holds(f) if f.alerting => Some(f),
                _ => None,
            })
            .collect()
    }

    fn warm(mut self) -> Self {
        for _ in 0..600 {
            self.step(|_| {});
        }
        self.signals.clear();
        self
    }
}

#[test]
fn a_healthy_machine_holds_nothing() {
    let mut p = Plant::new();
    let mut anomalies = 0;
    for _ in 0..3000 {
        anomalies += p.step(|_| {}).iter().filter(|s| s.anomaly).count();
    }
    assert!(p.alerting().is_empty(), "{:?}", p.alerting().first());
    // The novelty detector may mark a handful of readings out of 9000.
    assert!(anomalies < 20, "{anomalies} anomalous readings");
    let h = p.d.health();
    assert_eq!(
        (h.warning_zones, h.critical_zones, h.sensor_faults),
        (0, 0, 0)
    );
    assert!(fb_core::detection::health_score(&h) > 95.0);
}

#[test]
fn a_rise_in_temperature_is_overheating_within_seconds_and_clears_after() {
    let mut p = Plant::new().warm();
    let mut opened_at = None;
    for s in 0..30 {
        p.step(|v| v[0] += 0.1 * f64::from(s));
        if opened_at.is_none()
            && p.alerting().iter().any(|f| {
                f.kind == AnomalyKind::Overheating && f.detector == DetectorKind::Statistical
            })
        {
            opened_at = Some(s);
        }
    }
    // Out within about ten seconds; the finding counts from its fifth reading out (the time
    // to tell a change of operating point from a fault).
    assert!(opened_at.is_some_and(|s| s <= 20), "{opened_at:?}");
    let onset = p
        .alerting()
        .into_iter()
        .find(|f| f.kind == AnomalyKind::Overheating)
        .expect("held");
    assert!(onset.onset, "the first holding reading is the onset");
    assert!(onset.evidence.iter().any(|e| e.name == "baseline"));
    p.signals.clear();
    for _ in 0..20 {
        p.step(|_| {});
    }
    assert!(p.signals.iter().any(|s| matches!(
        s,
        Signal::Clears {
            kind: AnomalyKind::Overheating,
            ..
        }
    )));
}

#[test]
fn one_wild_reading_is_a_confirmed_spike_not_a_critical_limit() {
    let mut p = Plant::new().warm();
    p.step(|v| v[0] = 237.5);
    assert!(
        !p.alerting()
            .iter()
            .any(|f| f.severity == Severity::Critical),
        "a single reading is never critical"
    );
    p.step(|_| {});
    let spike = p
        .alerting()
        .into_iter()
        .find(|f| f.kind == AnomalyKind::Spike)
        .expect("spike found on the reading after");
    assert!(spike.confirmed && spike.onset);
    assert_eq!(spike.ts_micros, p.t - SEC, "dated at the wild reading");
    assert!(p.signals.iter().any(|s| matches!(
        s,
        Signal::Clears {
            kind: AnomalyKind::Spike,
            ..
        }
    )));
}

#[test]
fn a_critical_limit_held_two_readings_is_critical() {
    let mut p = Plant::new().warm();
    p.step(|v| v[0] = 100.0);
    p.step(|v| v[0] = 100.5);
    let f = p
        .alerting()
        .into_iter()
        .find(|f| f.detector == DetectorKind::Limits && f.severity == Severity::Critical)
        .expect("critical on the second reading");
    assert_eq!(f.kind, AnomalyKind::Overheating);
    assert_eq!(p.d.health().critical_zones, 1);
}

#[test]
fn vibration_in_zone_d_of_its_class_is_critical() {
    let mut p = Plant::new().warm();
    // 7.5 mm/s: under the sensor's own limits (50/60), in zone D for a class II machine.
    p.step(|v| v[1] = 7.5);
    p.step(|v| v[1] = 7.6);
    let f = p
        .alerting()
        .into_iter()
        .find(|f| f.detector == DetectorKind::VibrationZone && f.severity == Severity::Critical)
        .expect("zone D");
    assert_eq!(f.kind, AnomalyKind::Vibration);
    assert!(f.evidence.contains(&Evidence::text("iso_10816_zone", "D")));
}

#[test]
fn a_frozen_value_is_a_stuck_sensor() {
    let mut p = Plant::new().warm();
    for _ in 0..12 {
        p.step(|v| v[1] = 1.8123);
    }
    assert!(
        p.alerting()
            .iter()
            .any(|f| f.kind == AnomalyKind::StuckSensor && f.sensor == Some(1))
    );
    assert_eq!(p.d.health().sensor_faults, 1);
}

#[test]
fn silence_is_no_data_and_a_reading_clears_it() {
    let mut p = Plant::new().warm();
    let mut out = Vec::new();
    p.d.tick(p.t + 31 * SEC, &mut out);
    assert_eq!(
        out.iter()
            .filter(|s| matches!(s, Signal::Holds(f) if f.kind == AnomalyKind::NoData))
            .count(),
        3,
        "every sensor is silent"
    );
    p.t += 31 * SEC;
    p.signals.clear();
    p.step(|_| {});
    assert!(p.signals.iter().any(|s| matches!(
        s,
        Signal::Clears {
            kind: AnomalyKind::NoData,
            ..
        }
    )));
}

#[test]
fn a_broken_relation_between_sensors_is_found_by_the_multivariate_detector() {
    let mut p = Plant::new();
    // Temperature follows power while learning.
    let mut load = 0.5;
    for i in 0..1500 {
        load = 0.5 + 0.3 * (f64::from(i) / 200.0).sin();
        p.step(|v| {
            v[2] = 100.0 * load + 0.5 * v[2] - 30.0;
            v[0] = 20.0 + 60.0 * load + (v[0] - 50.0);
        });
    }
    let l = load;
    // Temperature of full load while the power is that of the current load: the finding
    // counts from the fifth row out in a row.
    for _ in 0..LEARNED_CONFIRM {
        p.signals.clear();
        p.step(|v| {
            v[2] = 100.0 * l + 0.5 * v[2] - 30.0;
            v[0] = 20.0 + 60.0 * l + 4.0;
        });
    }
    assert!(
        p.alerting()
            .iter()
            .any(|f| f.detector == DetectorKind::Multivariate && f.sensor.is_none()),
        "{:?}",
        p.signals
    );
}

#[test]
fn refused_readings_are_out_of_range_faults() {
    let mut p = Plant::new().warm();
    let mut out = Vec::new();
    p.d.refused(2, p.t, 900.0, &mut out);
    assert!(matches!(&out[0], Signal::Holds(f) if f.kind == AnomalyKind::OutOfRange));
    assert_eq!(p.d.health().sensor_faults, 1);
    p.signals.clear();
    p.step(|_| {});
    assert!(p.signals.iter().any(|s| matches!(
        s,
        Signal::Clears {
            kind: AnomalyKind::OutOfRange,
            ..
        }
    )));
}

#[test]
fn memory_per_machine_is_bounded_and_reported() {
    let p = Plant::new().warm();
    let bytes = p.d.memory_bytes();
    assert!(bytes > 3 * 50_000 && bytes < 3 * 200_000, "{bytes}");
}

#[test]
fn bad_settings_are_refused_with_their_field() {
    let cfg = DetectionConfig {
        warmup: 1,
        ..DetectionConfig::default()
    };
    let err = MachineDetector::new(&machine(), &cfg)
        .err()
        .expect("refused");
    assert!(err.to_string().starts_with("warmup"), "{err}");
}

#[test]
fn a_change_of_operating_point_is_learned_not_alerted_and_a_fault_after_it_is_found() {
    let mut p = Plant::new().warm();
    // A new recipe: every sensor moves at once, and stays; temperature jumps with it, then
    // keeps creeping up for minutes.
    let mut alerting = Vec::new();
    for s in 0..900 {
        p.signals.clear();
        let warming = 3.0 + 3.0 * (1.0 - (-f64::from(s) / 120.0).exp());
        p.step(|v| {
            v[0] += warming;
            v[1] *= 1.3;
            v[2] *= 1.3;
        });
        alerting.extend(p.alerting().into_iter().cloned());
    }
    assert!(alerting.is_empty(), "{:?}", alerting.first());
    assert_eq!(p.d.mode_changes(), 1);
    assert!(
        !p.d.settling(p.t),
        "settled once every sensor is back near its baseline"
    );
    // One sensor leaving on its own afterwards is a fault, judged against the new baseline.
    let mut found = false;
    for _ in 0..30 {
        p.signals.clear();
        p.step(|v| {
            v[0] += 6.0;
            v[1] *= 1.3;
            v[2] = v[2] * 1.3 - 8.0;
        });
        found |= p
            .alerting()
            .iter()
            .any(|f| f.kind == AnomalyKind::Power && f.detector == DetectorKind::Statistical);
    }
    assert!(found, "a drop of power alone is found after the change");
    assert_eq!(p.d.mode_changes(), 1);
}

#[test]
fn increased_monitoring_finds_a_borderline_shift_that_normal_sensitivity_lets_pass() {
    // Temperature 0.4 °C over its baseline (two of its noise's σ): within what the statistical
    // detector tolerates at its threshold, out at half of it.
    let overheating = |p: &mut Plant| {
        p.signals.clear();
        for _ in 0..30 {
            p.step(|v| v[0] += 0.4);
        }
        p.alerting()
            .iter()
            .any(|f| f.kind == AnomalyKind::Overheating)
    };
    let mut normal = Plant::new().warm();
    assert_eq!(normal.d.sensitivity(), 1.0);
    assert!(!overheating(&mut normal), "normal sensitivity lets it pass");

    let mut watched = Plant::new().warm();
    watched.d.set_sensitivity(0.5);
    assert_eq!(watched.d.sensitivity(), 0.5);
    assert!(overheating(&mut watched), "increased monitoring finds it");

    // Back to normal: once the shift is gone and held state cleared, the same borderline
    // shift passes again.
    watched.d.set_sensitivity(1.0);
    for _ in 0..60 {
        watched.step(|_| {});
    }
    assert!(!overheating(&mut watched), "reverted");
    // Nonsense factors change nothing.
    watched.d.set_sensitivity(0.0);
    watched.d.set_sensitivity(f64::INFINITY);
    assert_eq!(watched.d.sensitivity(), 1.0);
}
