//! Static limits: the warning and critical limits of a sensor, and the ISO 10816 vibration
//! severity zones of the machine's class.

use fb_core::plant::{MachineClass, SensorSpec};
use serde::{Deserialize, Serialize};

/// Where a value sits against a sensor's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LimitZone {
    Normal,
    Warning,
    Critical,
}

/// The zone of `value` against the limits of `spec`, and the limit it crossed.
pub fn limit_zone(spec: &SensorSpec, value: f64) -> (LimitZone, Option<f64>) {
    let above = |limit: Option<f64>| limit.filter(|&l| value >= l);
    let below = |limit: Option<f64>| limit.filter(|&l| value <= l);
    if let Some(l) = above(spec.critical_high).or(below(spec.critical_low)) {
        return (LimitZone::Critical, Some(l));
    }
    if let Some(l) = above(spec.warning_high).or(below(spec.warning_low)) {
        return (LimitZone::Warning, Some(l));
    }
    (LimitZone::Normal, None)
}

/// ISO 10816 evaluation zones of vibration severity (RMS velocity, mm/s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum VibrationZone {
    /// Newly commissioned machines.
    A,
    /// Unrestricted long-term operation.
    B,
    /// Not suitable for long-term operation: a warning.
    C,
    /// Severe enough to cause damage: critical.
    D,
}

impl VibrationZone {
    pub fn as_str(self) -> &'static str {
        match self {
            VibrationZone::A => "A",
            VibrationZone::B => "B",
            VibrationZone::C => "C",
            VibrationZone::D => "D",
        }
    }
}

/// Upper bounds of zones A, B and C (mm/s RMS) for one machine class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ZoneBounds {
    pub a_b: f64,
    pub b_c: f64,
    pub c_d: f64,
}

impl ZoneBounds {
    pub fn zone(&self, rms: f64) -> VibrationZone {
        if rms >= self.c_d {
            VibrationZone::D
        } else if rms >= self.b_c {
            VibrationZone::C
        } else if rms >= self.a_b {
            VibrationZone::B
        } else {
            VibrationZone::A
        }
    }

    /// The bound the zone starts at (`None` for zone A).
    pub fn lower_bound(&self, zone: VibrationZone) -> Option<f64> {
        match zone {
            VibrationZone::A => None,
            VibrationZone::B => Some(self.a_b),
            VibrationZone::C => Some(self.b_c),
            VibrationZone::D => Some(self.c_d),
        }
    }

    fn is_valid(&self) -> bool {
        self.a_b.is_finite() && 0.0 < self.a_b && self.a_b < self.b_c && self.b_c < self.c_d
    }
}

/// The zone table by machine class. The defaults are the general classes of ISO 10816-1
/// (class I small machines up to 15 kW; II medium, 15–75 kW; III large on rigid foundations;
/// IV large on flexible foundations); a site replaces rows to follow a part of the standard
/// for its machine family (e.g. 10816-3 groups) or the maker's figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VibrationZones {
    pub class1: ZoneBounds,
    pub class2: ZoneBounds,
    pub class3: ZoneBounds,
    pub class4: ZoneBounds,
}

impl Default for VibrationZones {
    fn default() -> Self {
        let b = |a_b, b_c, c_d| ZoneBounds { a_b, b_c, c_d };
        Self {
            class1: b(0.71, 1.8, 4.5),
            class2: b(1.12, 2.8, 7.1),
            class3: b(1.8, 4.5, 11.2),
            class4: b(2.8, 7.1, 18.0),
        }
    }
}

impl VibrationZones {
    pub fn bounds(&self, class: MachineClass) -> &ZoneBounds {
        match class {
            MachineClass::Class1 => &self.class1,
            MachineClass::Class2 => &self.class2,
            MachineClass::Class3 => &self.class3,
            MachineClass::Class4 => &self.class4,
        }
    }

    /// The first class whose bounds are not increasing positive numbers.
    pub fn invalid_class(&self) -> Option<MachineClass> {
        MachineClass::ALL
            .into_iter()
            .find(|&c| !self.bounds(c).is_valid())
    }
}

#[cfg(test)]
mod tests {
    use fb_core::plant::{SensorKey, SensorKind};

    use super::*;

    fn spec() -> SensorSpec {
        SensorSpec {
            key: SensorKey("temperature".into()),
            kind: SensorKind::Temperature,
            unit: "C".into(),
            physical_min: -40.0,
            physical_max: 250.0,
            warning_low: Some(5.0),
            warning_high: Some(80.0),
            critical_low: None,
            critical_high: Some(95.0),
        }
    }

    #[test]
    fn limits_name_the_zone_and_the_limit_crossed() {
        let s = spec();
        assert_eq!(limit_zone(&s, 50.0), (LimitZone::Normal, None));
        assert_eq!(limit_zone(&s, 80.0), (LimitZone::Warning, Some(80.0)));
        assert_eq!(limit_zone(&s, 4.0), (LimitZone::Warning, Some(5.0)));
        assert_eq!(limit_zone(&s, 120.0), (LimitZone::Critical, Some(95.0)));
    }

    #[test]
    fn default_zones_follow_iso_10816_1() {
        let zones = VibrationZones::default();
        assert_eq!(zones.invalid_class(), None);
        let medium = zones.bounds(MachineClass::Class2);
        assert_eq!(medium.zone(1.0), VibrationZone::A);
        assert_eq!(medium.zone(2.0), VibrationZone::B);
        assert_eq!(medium.zone(2.8), VibrationZone::C);
        assert_eq!(medium.zone(7.5), VibrationZone::D);
        // The same RMS is worse on a small machine than on a large flexible one.
        assert_eq!(
            zones.bounds(MachineClass::Class1).zone(4.6),
            VibrationZone::D
        );
        assert_eq!(
            zones.bounds(MachineClass::Class4).zone(4.6),
            VibrationZone::B
        );
        let broken = VibrationZones {
            class3: ZoneBounds {
                a_b: 2.0,
                b_c: 1.0,
                c_d: 3.0,
            },
            ..zones
        };
        assert_eq!(broken.invalid_class(), Some(MachineClass::Class3));
    }
}
