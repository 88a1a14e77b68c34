use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::error::FieldError;

/// A machine's id as it appears in MQTT topics and URLs: 1–64 characters of letters, digits,
/// `.`, `_` and `-` (never `/`, `+` or `#`, which are MQTT topic syntax).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MachineId(pub String);

/// A sensor's key within its machine, e.g. `temperature` or `bearing_vibration`; same rules.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SensorKey(pub String);

pub const ID_MAX: usize = 64;

fn valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= ID_MAX
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

impl MachineId {
    pub fn parse(s: &str) -> Option<Self> {
        valid_id(s).then(|| Self(s.to_owned()))
    }

    /// Whether `s` follows the id rules (without allocating the id).
    pub fn is_valid(s: &str) -> bool {
        valid_id(s)
    }
}

impl SensorKey {
    pub fn parse(s: &str) -> Option<Self> {
        valid_id(s).then(|| Self(s.to_owned()))
    }

    pub fn is_valid(s: &str) -> bool {
        valid_id(s)
    }
}

// Registries keyed by id can be searched with the `&str` of a payload, without allocating.
impl std::borrow::Borrow<str> for MachineId {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for SensorKey {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for MachineId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for SensorKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// ISA-95 location: site / area / line / cell. Site is required; the rest narrow it down.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Location {
    pub site: String,
    pub area: Option<String>,
    pub line: Option<String>,
    pub cell: Option<String>,
}

impl Location {
    /// `site/area/line/cell`, stopping at the first missing level.
    pub fn path(&self) -> String {
        let mut parts = vec![self.site.as_str()];
        for level in [&self.area, &self.line, &self.cell] {
            match level {
                Some(l) => parts.push(l),
                None => break,
            }
        }
        parts.join("/")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineStatus {
    Running,
    Idle,
    Maintenance,
    Fault,
    Offline,
}

impl MachineStatus {
    pub const ALL: [MachineStatus; 5] = [
        MachineStatus::Running,
        MachineStatus::Idle,
        MachineStatus::Maintenance,
        MachineStatus::Fault,
        MachineStatus::Offline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MachineStatus::Running => "running",
            MachineStatus::Idle => "idle",
            MachineStatus::Maintenance => "maintenance",
            MachineStatus::Fault => "fault",
            MachineStatus::Offline => "offline",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

/// ISO 10816-1 machine classes, which set the vibration severity zones of rotating machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MachineClass {
    /// Small machines, up to 15 kW.
    Class1,
    /// Medium machines, 15–75 kW, or up to 300 kW on special foundations.
    Class2,
    /// Large machines on rigid foundations.
    Class3,
    /// Large machines on flexible foundations.
    Class4,
}

impl MachineClass {
    pub const ALL: [MachineClass; 4] = [
        MachineClass::Class1,
        MachineClass::Class2,
        MachineClass::Class3,
        MachineClass::Class4,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MachineClass::Class1 => "class1",
            MachineClass::Class2 => "class2",
            MachineClass::Class3 => "class3",
            MachineClass::Class4 => "class4",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorKind {
    Temperature,
    Vibration,
    Pressure,
    Flow,
    Power,
    Current,
    Speed,
    Level,
    Other,
}

/// A sensor of a machine: what it measures, its unit, the physically possible range (readings
/// outside it are rejected as sensor faults) and the warning and critical limits (alerts).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorSpec {
    pub key: SensorKey,
    pub kind: SensorKind,
    pub unit: String,
    pub physical_min: f64,
    pub physical_max: f64,
    pub warning_low: Option<f64>,
    pub warning_high: Option<f64>,
    pub critical_low: Option<f64>,
    pub critical_high: Option<f64>,
}

impl SensorSpec {
    fn validate(&self, at: &str, errors: &mut Vec<FieldError>) {
        let finite = |v: f64| v.is_finite();
        if !finite(self.physical_min) || !finite(self.physical_max) {
            errors.push(FieldError::new(
                format!("{at}.physical_min"),
                "limits must be finite numbers",
            ));
        } else if self.physical_min >= self.physical_max {
            errors.push(FieldError::new(
                format!("{at}.physical_max"),
                "must be greater than physical_min",
            ));
        }
        if self.unit.trim().is_empty() || self.unit.len() > 32 {
            errors.push(FieldError::new(
                format!("{at}.unit"),
                "must be 1 to 32 characters",
            ));
        }
        for (name, limit) in [
            ("warning_low", self.warning_low),
            ("warning_high", self.warning_high),
            ("critical_low", self.critical_low),
            ("critical_high", self.critical_high),
        ] {
            if let Some(v) = limit
                && (!v.is_finite() || v < self.physical_min || v > self.physical_max)
            {
                errors.push(FieldError::new(
                    format!("{at}.{name}"),
                    "must lie within the physical range",
                ));
            }
        }
        // Critical limits lie outside the warning limits they pair with.
        if let (Some(w), Some(c)) = (self.warning_high, self.critical_high)
            && c < w
        {
            errors.push(FieldError::new(
                format!("{at}.critical_high"),
                "must be at least warning_high",
            ));
        }
        if let (Some(w), Some(c)) = (self.warning_low, self.critical_low)
            && c > w
        {
            errors.push(FieldError::new(
                format!("{at}.critical_low"),
                "must be at most warning_low",
            ));
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub id: MachineId,
    pub name: String,
    pub machine_type: String,
    pub machine_class: Option<MachineClass>,
    pub location: Location,
    pub status: MachineStatus,
    pub active: bool,
    pub sensors: Vec<SensorSpec>,
    pub last_maintenance: Option<OffsetDateTime>,
    pub next_maintenance: Option<OffsetDateTime>,
    /// 0–100, filled by detection (a later issue).
    pub health_score: Option<f64>,
    /// 0–1, filled by prediction (a later issue).
    pub failure_probability: Option<f64>,
    /// Remaining useful life in hours, filled by prediction (a later issue).
    pub rul_hours: Option<f64>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

impl Machine {
    pub fn sensor(&self, key: &str) -> Option<&SensorSpec> {
        self.sensors.iter().find(|s| s.key.0 == key)
    }
}

/// What a client supplies to create a machine.
#[derive(Debug, Clone, PartialEq)]
pub struct NewMachine {
    pub id: String,
    pub name: String,
    pub machine_type: String,
    pub machine_class: Option<MachineClass>,
    pub location: Location,
    pub status: MachineStatus,
    pub active: bool,
    pub sensors: Vec<SensorSpec>,
    pub last_maintenance: Option<OffsetDateTime>,
    pub next_maintenance: Option<OffsetDateTime>,
}

/// A partial update; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MachinePatch {
    pub name: Option<String>,
    pub machine_type: Option<String>,
    pub machine_class: Option<Option<MachineClass>>,
    pub location: Option<Location>,
    pub status: Option<MachineStatus>,
    pub active: Option<bool>,
    pub sensors: Option<Vec<SensorSpec>>,
    pub last_maintenance: Option<Option<OffsetDateTime>>,
    pub next_maintenance: Option<Option<OffsetDateTime>>,
}

impl MachinePatch {
    /// Whether the patch touches only what an operator may change: status, activity, sensor
    /// metadata and maintenance dates. Identity, type, class and location are the admin's.
    pub fn is_operational(&self) -> bool {
        self.name.is_none()
            && self.machine_type.is_none()
            && self.machine_class.is_none()
            && self.location.is_none()
    }

    pub fn apply(self, m: &mut Machine) {
        if let Some(v) = self.name {
            m.name = v;
        }
        if let Some(v) = self.machine_type {
            m.machine_type = v;
        }
        if let Some(v) = self.machine_class {
            m.machine_class = v;
        }
        if let Some(v) = self.location {
            m.location = v;
        }
        if let Some(v) = self.status {
            m.status = v;
        }
        if let Some(v) = self.active {
            m.active = v;
        }
        if let Some(v) = self.sensors {
            m.sensors = v;
        }
        if let Some(v) = self.last_maintenance {
            m.last_maintenance = v;
        }
        if let Some(v) = self.next_maintenance {
            m.next_maintenance = v;
        }
    }
}

fn check_text(field: &str, value: &str, max: usize, errors: &mut Vec<FieldError>) {
    let len = value.trim().chars().count();
    if len == 0 || len > max {
        errors.push(FieldError::new(
            field,
            format!("must be 1 to {max} characters"),
        ));
    } else if value.chars().any(char::is_control) {
        errors.push(FieldError::new(
            field,
            "must not contain control characters",
        ));
    }
}

/// The rules of a machine type (`Machine.machine_type`, e.g. `centrifugal_pump`), reported
/// under `field`: 1 to 100 characters, no control characters. Models name the machines they
/// serve by it, so the same rules apply there.
pub fn validate_machine_type(field: &str, machine_type: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_text(field, machine_type, 100, &mut errors);
    errors
}

/// The rules of a site name (`Location.site`), reported under `field`: 1 to 100 characters, no
/// control characters, no '/'. Site scopes of users and API keys name sites by the same rules,
/// so that every site a machine can be in can be granted.
pub fn validate_site(field: &str, site: &str) -> Vec<FieldError> {
    let mut errors = Vec::new();
    check_text(field, site, 100, &mut errors);
    if site.contains('/') {
        errors.push(FieldError::new(field, "must not contain '/'"));
    }
    errors
}

/// Every problem with a machine, each with its field path.
pub fn validate_machine(m: &Machine) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if !valid_id(&m.id.0) {
        errors.push(FieldError::new(
            "id",
            format!("must be 1 to {ID_MAX} letters, digits, '.', '_' or '-'"),
        ));
    }
    check_text("name", &m.name, 200, &mut errors);
    errors.extend(validate_machine_type("machine_type", &m.machine_type));
    errors.extend(validate_site("location.site", &m.location.site));
    let levels = [
        ("area", &m.location.area),
        ("line", &m.location.line),
        ("cell", &m.location.cell),
    ];
    let mut missing_above = None;
    for (name, level) in levels {
        match level {
            Some(value) => {
                check_text(&format!("location.{name}"), value, 100, &mut errors);
                if value.contains('/') {
                    errors.push(FieldError::new(
                        format!("location.{name}"),
                        "must not contain '/'",
                    ));
                }
                if let Some(above) = missing_above {
                    errors.push(FieldError::new(
                        format!("location.{name}"),
                        format!("needs location.{above} (ISA-95 levels nest)"),
                    ));
                }
            }
            None => missing_above = missing_above.or(Some(name)),
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, sensor) in m.sensors.iter().enumerate() {
        let at = format!("sensors[{i}]");
        if !valid_id(&sensor.key.0) {
            errors.push(FieldError::new(
                format!("{at}.key"),
                format!("must be 1 to {ID_MAX} letters, digits, '.', '_' or '-'"),
            ));
        }
        if !seen.insert(&sensor.key.0) {
            errors.push(FieldError::new(
                format!("{at}.key"),
                "is used by another sensor of this machine",
            ));
        }
        sensor.validate(&at, &mut errors);
    }
    if m.sensors.len() > 256 {
        errors.push(FieldError::new(
            "sensors",
            "at most 256 sensors per machine",
        ));
    }
    for (name, value, max) in [
        ("health_score", m.health_score, 100.0),
        ("failure_probability", m.failure_probability, 1.0),
    ] {
        if let Some(v) = value
            && !(0.0..=max).contains(&v)
        {
            errors.push(FieldError::new(
                name,
                format!("must be between 0 and {max}"),
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn spec(key: &str) -> SensorSpec {
        SensorSpec {
            key: SensorKey(key.into()),
            kind: SensorKind::Temperature,
            unit: "°C".into(),
            physical_min: -40.0,
            physical_max: 200.0,
            warning_low: None,
            warning_high: Some(80.0),
            critical_low: None,
            critical_high: Some(95.0),
        }
    }

    fn machine() -> Machine {
        Machine {
            id: MachineId("press-01".into()),
            name: "Press 1".into(),
            machine_type: "hydraulic_press".into(),
            machine_class: Some(MachineClass::Class2),
            location: Location {
                site: "plant-a".into(),
                area: Some("stamping".into()),
                line: Some("line-1".into()),
                cell: None,
            },
            status: MachineStatus::Running,
            active: true,
            sensors: vec![spec("temperature")],
            last_maintenance: None,
            next_maintenance: None,
            health_score: None,
            failure_probability: None,
            rul_hours: None,
            created_at: OffsetDateTime::UNIX_EPOCH,
            updated_at: OffsetDateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_good_machine_validates() {
        assert_eq!(validate_machine(&machine()), vec![]);
        assert_eq!(machine().location.path(), "plant-a/stamping/line-1");
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let mut m = machine();
        m.id = MachineId("bad/id".into());
        m.location.area = None; // line without area
        let mut s = spec("temperature");
        s.physical_min = 300.0;
        m.sensors.push(s);
        m.sensors.push(spec("bad key"));
        let fields: Vec<String> = validate_machine(&m).into_iter().map(|e| e.field).collect();
        assert!(fields.contains(&"id".to_owned()), "{fields:?}");
        assert!(fields.contains(&"location.line".to_owned()), "{fields:?}");
        assert!(
            fields.contains(&"sensors[1].key".to_owned()),
            "duplicate key: {fields:?}"
        );
        assert!(
            fields.contains(&"sensors[1].physical_max".to_owned()),
            "{fields:?}"
        );
        assert!(fields.contains(&"sensors[2].key".to_owned()), "{fields:?}");
    }

    #[test]
    fn limits_must_lie_in_the_physical_range_and_nest() {
        let mut m = machine();
        m.sensors[0].critical_high = Some(70.0); // below warning_high 80
        m.sensors[0].warning_low = Some(-100.0); // below physical_min
        let fields: Vec<String> = validate_machine(&m).into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            ["sensors[0].warning_low", "sensors[0].critical_high"]
        );
    }

    #[test]
    fn ids_are_topic_safe() {
        assert!(MachineId::parse("CNC-01.a_b").is_some());
        for bad in ["", "a/b", "a+b", "a#b", "a b", &"x".repeat(65)] {
            assert!(MachineId::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn operational_patches_leave_identity_alone() {
        let op = MachinePatch {
            status: Some(MachineStatus::Maintenance),
            ..Default::default()
        };
        assert!(op.is_operational());
        let admin = MachinePatch {
            location: Some(Location::default()),
            ..Default::default()
        };
        assert!(!admin.is_operational());
        let mut m = machine();
        op.apply(&mut m);
        assert_eq!(m.status, MachineStatus::Maintenance);
    }
}
