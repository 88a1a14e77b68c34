//! `/api/v1/machines` bodies.

use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;

use fb_core::plant;

wire_enum!(
    /// Operating state of a machine.
    MachineStatus <=> plant::MachineStatus { Running, Idle, Maintenance, Fault, Offline }
);
wire_enum!(
    /// ISO 10816-3 group, which sets the vibration severity zones.
    MachineClass <=> plant::MachineClass { Class1, Class2, Class3, Class4 }
);
wire_enum!(
    /// What a sensor measures.
    SensorKind <=> plant::SensorKind { Temperature, Vibration, Pressure, Flow, Power, Current, Speed, Level, Other }
);

/// ISA-95 location: site / area / line / cell; a level needs the one above it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Location {
    #[schema(example = "plant-a")]
    pub site: String,
    #[serde(default)]
    pub area: Option<String>,
    #[serde(default)]
    pub line: Option<String>,
    #[serde(default)]
    pub cell: Option<String>,
}

impl From<plant::Location> for Location {
    fn from(l: plant::Location) -> Self {
        Self {
            site: l.site,
            area: l.area,
            line: l.line,
            cell: l.cell,
        }
    }
}

impl From<Location> for plant::Location {
    fn from(l: Location) -> Self {
        Self {
            site: l.site,
            area: l.area,
            line: l.line,
            cell: l.cell,
        }
    }
}

/// A sensor of a machine. Readings outside `[physical_min, physical_max]` are refused as sensor
/// faults; the warning and critical limits drive alerts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Sensor {
    #[schema(example = "temperature")]
    pub key: String,
    pub kind: SensorKind,
    #[schema(example = "°C")]
    pub unit: String,
    pub physical_min: f64,
    pub physical_max: f64,
    #[serde(default)]
    pub warning_low: Option<f64>,
    #[serde(default)]
    pub warning_high: Option<f64>,
    #[serde(default)]
    pub critical_low: Option<f64>,
    #[serde(default)]
    pub critical_high: Option<f64>,
}

impl From<plant::SensorSpec> for Sensor {
    fn from(s: plant::SensorSpec) -> Self {
        Self {
            key: s.key.0,
            kind: s.kind.into(),
            unit: s.unit,
            physical_min: s.physical_min,
            physical_max: s.physical_max,
            warning_low: s.warning_low,
            warning_high: s.warning_high,
            critical_low: s.critical_low,
            critical_high: s.critical_high,
        }
    }
}

impl From<Sensor> for plant::SensorSpec {
    fn from(s: Sensor) -> Self {
        Self {
            key: plant::SensorKey(s.key),
            kind: s.kind.into(),
            unit: s.unit,
            physical_min: s.physical_min,
            physical_max: s.physical_max,
            warning_low: s.warning_low,
            warning_high: s.warning_high,
            critical_low: s.critical_low,
            critical_high: s.critical_high,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Machine {
    #[schema(example = "press-01")]
    pub id: String,
    pub name: String,
    pub machine_type: String,
    pub machine_class: Option<MachineClass>,
    pub location: Location,
    /// `site/area/line/cell`, as far as it is known.
    #[schema(example = "plant-a/stamping/line-1")]
    pub location_path: String,
    pub status: MachineStatus,
    pub active: bool,
    pub sensors: Vec<Sensor>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_maintenance: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_maintenance: Option<OffsetDateTime>,
    /// 0–100; filled by detection.
    pub health_score: Option<f64>,
    /// 0–1; filled by prediction.
    pub failure_probability: Option<f64>,
    /// Remaining useful life in hours; filled by prediction.
    pub rul_hours: Option<f64>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<plant::Machine> for Machine {
    fn from(m: plant::Machine) -> Self {
        Self {
            location_path: m.location.path(),
            id: m.id.0,
            name: m.name,
            machine_type: m.machine_type,
            machine_class: m.machine_class.map(Into::into),
            location: m.location.into(),
            status: m.status.into(),
            active: m.active,
            sensors: m.sensors.into_iter().map(Into::into).collect(),
            last_maintenance: m.last_maintenance,
            next_maintenance: m.next_maintenance,
            health_score: m.health_score,
            failure_probability: m.failure_probability,
            rul_hours: m.rul_hours,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MachineList {
    pub machines: Vec<Machine>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMachineRequest {
    /// 1–64 letters, digits, `.`, `_`, `-`: it appears in MQTT topics and URLs.
    #[schema(example = "press-01")]
    pub id: String,
    pub name: String,
    #[schema(example = "hydraulic_press")]
    pub machine_type: String,
    #[serde(default)]
    pub machine_class: Option<MachineClass>,
    pub location: Location,
    #[serde(default = "default_status")]
    pub status: MachineStatus,
    #[serde(default = "default_true")]
    pub active: bool,
    #[serde(default)]
    pub sensors: Vec<Sensor>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_maintenance: Option<OffsetDateTime>,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub next_maintenance: Option<OffsetDateTime>,
}

fn default_status() -> MachineStatus {
    MachineStatus::Running
}

fn default_true() -> bool {
    true
}

impl From<CreateMachineRequest> for plant::NewMachine {
    fn from(r: CreateMachineRequest) -> Self {
        Self {
            id: r.id,
            name: r.name,
            machine_type: r.machine_type,
            machine_class: r.machine_class.map(Into::into),
            location: r.location.into(),
            status: r.status.into(),
            active: r.active,
            sensors: r.sensors.into_iter().map(Into::into).collect(),
            last_maintenance: r.last_maintenance,
            next_maintenance: r.next_maintenance,
        }
    }
}

/// A partial update: absent fields stay as they are; `null` clears an optional field.
/// Operators may change `status`, `active`, `sensors` and the maintenance dates; the other
/// fields need `plant.manage`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMachineRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub machine_type: Option<String>,
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<MachineClass>)]
    pub machine_class: Option<Option<MachineClass>>,
    #[serde(default)]
    pub location: Option<Location>,
    #[serde(default)]
    pub status: Option<MachineStatus>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub sensors: Option<Vec<Sensor>>,
    #[serde(default, deserialize_with = "present_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_maintenance: Option<Option<OffsetDateTime>>,
    #[serde(default, deserialize_with = "present_time")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_maintenance: Option<Option<OffsetDateTime>>,
}

/// Tells "absent" (the outer `None`, from `default`) from "null" (`Some(None)`).
pub(super) fn present<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

fn present_time<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<OffsetDateTime>>, D::Error> {
    time::serde::rfc3339::option::deserialize(d).map(Some)
}

impl From<UpdateMachineRequest> for plant::MachinePatch {
    fn from(r: UpdateMachineRequest) -> Self {
        Self {
            name: r.name,
            machine_type: r.machine_type,
            machine_class: r.machine_class.map(|c| c.map(Into::into)),
            location: r.location.map(Into::into),
            status: r.status.map(Into::into),
            active: r.active,
            sensors: r.sensors.map(|s| s.into_iter().map(Into::into).collect()),
            last_maintenance: r.last_maintenance,
            next_maintenance: r.next_maintenance,
        }
    }
}
