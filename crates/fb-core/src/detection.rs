//! What detection finds (B2): anomalies with their kind and the evidence that led to them, and the
//! machine health score computed from them.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::plant::{MachineId, SensorKey, SensorKind};

/// What an anomaly is about. Process kinds follow from the kind of the sensor that shows it;
/// sensor faults are about the measurement itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    Overheating,
    Vibration,
    Pressure,
    Power,
    Flow,
    /// Another process value (speed, level, …) behaving unusually.
    Process,
    /// The sensor repeats one value while it usually moves.
    StuckSensor,
    /// Nothing arrived for longer than the sensor's usual interval allows.
    NoData,
    /// Readings outside the sensor's physical range arrived (and were refused at ingest).
    OutOfRange,
    /// A brief excursion that returns at once: more likely the sensor than the process.
    Spike,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 10] = [
        AnomalyKind::Overheating,
        AnomalyKind::Vibration,
        AnomalyKind::Pressure,
        AnomalyKind::Power,
        AnomalyKind::Flow,
        AnomalyKind::Process,
        AnomalyKind::StuckSensor,
        AnomalyKind::NoData,
        AnomalyKind::OutOfRange,
        AnomalyKind::Spike,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::Overheating => "overheating",
            AnomalyKind::Vibration => "vibration",
            AnomalyKind::Pressure => "pressure",
            AnomalyKind::Power => "power",
            AnomalyKind::Flow => "flow",
            AnomalyKind::Process => "process",
            AnomalyKind::StuckSensor => "stuck_sensor",
            AnomalyKind::NoData => "no_data",
            AnomalyKind::OutOfRange => "out_of_range",
            AnomalyKind::Spike => "spike",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The process anomaly a sensor of this kind shows.
    pub fn of_sensor(kind: SensorKind) -> Self {
        match kind {
            SensorKind::Temperature => AnomalyKind::Overheating,
            SensorKind::Vibration => AnomalyKind::Vibration,
            SensorKind::Pressure => AnomalyKind::Pressure,
            SensorKind::Power | SensorKind::Current => AnomalyKind::Power,
            SensorKind::Flow => AnomalyKind::Flow,
            SensorKind::Speed | SensorKind::Level | SensorKind::Other => AnomalyKind::Process,
        }
    }

    pub fn is_sensor_fault(self) -> bool {
        matches!(
            self,
            AnomalyKind::StuckSensor
                | AnomalyKind::NoData
                | AnomalyKind::OutOfRange
                | AnomalyKind::Spike
        )
    }
}

/// Which detector found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectorKind {
    /// The sensor's warning and critical limits.
    Limits,
    /// ISO 10816 vibration severity zones of the machine's class.
    VibrationZone,
    /// Adaptive statistical thresholds on the sensor's own baseline.
    Statistical,
    /// Pattern novelty against the sensor's own past (the NAB-scored detector).
    Novelty,
    /// The machine's sensors together (Mahalanobis distance from their usual relation).
    Multivariate,
    Stuck,
    Spike,
    /// Time since the last reading.
    Gap,
    /// Readings refused as outside the physical range.
    Range,
}

impl DetectorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DetectorKind::Limits => "limits",
            DetectorKind::VibrationZone => "vibration_zone",
            DetectorKind::Statistical => "statistical",
            DetectorKind::Novelty => "novelty",
            DetectorKind::Multivariate => "multivariate",
            DetectorKind::Stuck => "stuck",
            DetectorKind::Spike => "spike",
            DetectorKind::Gap => "gap",
            DetectorKind::Range => "range",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            DetectorKind::Limits,
            DetectorKind::VibrationZone,
            DetectorKind::Statistical,
            DetectorKind::Novelty,
            DetectorKind::Multivariate,
            DetectorKind::Stuck,
            DetectorKind::Spike,
            DetectorKind::Gap,
            DetectorKind::Range,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// How bad a finding or an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// One named fact that led to a finding: a value, a baseline, a limit, a duration…
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    pub name: String,
    pub value: EvidenceValue,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EvidenceValue {
    Number(f64),
    Text(String),
}

impl Evidence {
    pub fn number(name: &str, value: f64) -> Self {
        Self {
            name: name.to_owned(),
            value: EvidenceValue::Number(value),
        }
    }

    pub fn text(name: &str, value: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            value: EvidenceValue::Text(value.into()),
        }
    }
}

/// A finding of detection about one machine (and one sensor, unless it is about the machine as
/// a whole), with what led to it.
#[derive(Debug, Clone, PartialEq)]
pub struct Anomaly {
    pub id: Uuid,
    pub machine: MachineId,
    pub sensor: Option<SensorKey>,
    pub kind: AnomalyKind,
    pub detector: DetectorKind,
    pub severity: Severity,
    pub at: OffsetDateTime,
    /// In [0, 1].
    pub score: f64,
    pub evidence: Vec<Evidence>,
}

/// What the health score of a machine is made of, over the recent past.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct HealthSignals {
    /// Recent anomaly scores of the machine, smoothed (0 = nothing unusual, 1 = all anomalous).
    pub anomaly_pressure: f64,
    /// Sensors now in their warning zone (limits, or vibration zone C).
    pub warning_zones: u32,
    /// Sensors now in their critical zone (limits, or vibration zone D).
    pub critical_zones: u32,
    /// Sensors with an active fault (stuck, silent, out of range).
    pub sensor_faults: u32,
}

/// Health 0–100 (100: nothing unusual). Critical zones weigh most, then warning zones, then the
/// recent anomaly scores, then sensor faults (which say more about the measurement than about
/// the machine). Documented in the README; monotone in every signal.
pub fn health_score(s: &HealthSignals) -> f64 {
    let penalty = 40.0 * s.anomaly_pressure.clamp(0.0, 1.0)
        + 15.0 * f64::from(s.warning_zones)
        + 35.0 * f64::from(s.critical_zones)
        + 10.0 * f64::from(s.sensor_faults);
    (100.0 - penalty).clamp(0.0, 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_follow_sensors() {
        for k in AnomalyKind::ALL {
            assert_eq!(AnomalyKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(
            AnomalyKind::of_sensor(SensorKind::Temperature),
            AnomalyKind::Overheating
        );
        assert_eq!(
            AnomalyKind::of_sensor(SensorKind::Current),
            AnomalyKind::Power
        );
        assert!(AnomalyKind::Spike.is_sensor_fault());
        assert!(!AnomalyKind::Pressure.is_sensor_fault());
    }

    #[test]
    fn health_falls_with_every_signal_and_stays_in_range() {
        let calm = HealthSignals::default();
        assert_eq!(health_score(&calm), 100.0);
        let warm = HealthSignals {
            warning_zones: 1,
            ..calm
        };
        let hot = HealthSignals {
            critical_zones: 1,
            ..calm
        };
        assert!(health_score(&hot) < health_score(&warm));
        assert!(health_score(&warm) < 100.0);
        assert!(
            health_score(&HealthSignals {
                anomaly_pressure: 0.5,
                ..calm
            }) < 100.0
        );
        let worst = HealthSignals {
            anomaly_pressure: 5.0,
            warning_zones: 9,
            critical_zones: 9,
            sensor_faults: 9,
        };
        assert_eq!(health_score(&worst), 0.0);
    }
}
