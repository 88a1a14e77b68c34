use time::OffsetDateTime;

use fb_core::plant::{
    Location, Machine, MachineClass, MachineId, MachineStatus, SensorKey, SensorKind, SensorSpec,
};

/// The kinds of machine the simulated plant has, with their nominal operating points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MachineKind {
    Pump,
    Compressor,
    Press,
    CncMill,
    Conveyor,
}

impl MachineKind {
    const ALL: [MachineKind; 5] = [
        MachineKind::Pump,
        MachineKind::Compressor,
        MachineKind::Press,
        MachineKind::CncMill,
        MachineKind::Conveyor,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MachineKind::Pump => "pump",
            MachineKind::Compressor => "compressor",
            MachineKind::Press => "press",
            MachineKind::CncMill => "cnc_mill",
            MachineKind::Conveyor => "conveyor",
        }
    }

    /// (rated power kW, running temperature rise °C, vibration RMS mm/s, pressure bar, flow m3/h).
    /// Vibration of a healthy machine stays in ISO 10816-1 zone B of its class at any load.
    pub(crate) fn nominal(self) -> (f64, f64, f64, f64, f64) {
        match self {
            MachineKind::Pump => (30.0, 35.0, 2.0, 6.0, 120.0),
            MachineKind::Compressor => (75.0, 55.0, 2.0, 8.0, 600.0),
            MachineKind::Press => (110.0, 30.0, 3.0, 210.0, 40.0),
            MachineKind::CncMill => (22.0, 25.0, 1.5, 6.0, 10.0),
            MachineKind::Conveyor => (7.5, 15.0, 1.0, 1.0, 5.0),
        }
    }

    /// Units per hour at rated speed: the ideal rate of the `output` sensor (the plant
    /// optimizer's performance is measured against it).
    pub fn ideal_rate(self) -> f64 {
        match self {
            MachineKind::Pump => 120.0,
            MachineKind::Compressor => 90.0,
            MachineKind::Press => 240.0,
            MachineKind::CncMill => 30.0,
            MachineKind::Conveyor => 600.0,
        }
    }

    fn class(self) -> MachineClass {
        match self.nominal().0 {
            p if p <= 15.0 => MachineClass::Class1,
            p if p <= 75.0 => MachineClass::Class2,
            _ => MachineClass::Class3,
        }
    }
}

fn sensor(
    key: &str,
    kind: SensorKind,
    unit: &str,
    range: (f64, f64),
    warning: f64,
    critical: f64,
) -> SensorSpec {
    SensorSpec {
        key: SensorKey(key.into()),
        kind,
        unit: unit.into(),
        physical_min: range.0,
        physical_max: range.1,
        warning_low: None,
        warning_high: Some(warning),
        critical_low: None,
        critical_high: Some(critical),
    }
}

/// Every machine type's ideal rate (units per hour), keyed by the type's name as machines
/// carry it: what the plant optimizer needs for the simulated plant.
pub fn ideal_rates() -> std::collections::BTreeMap<String, f64> {
    MachineKind::ALL
        .iter()
        .map(|k| (k.name().to_owned(), k.ideal_rate()))
        .collect()
}

/// A production-rate sensor (units per hour) without alarm limits: a low rate is the optimizer's
/// business (performance), not an alert's.
fn rate_sensor(key: &str, max: f64) -> SensorSpec {
    SensorSpec {
        key: SensorKey(key.into()),
        kind: SensorKind::Other,
        unit: "units/h".into(),
        physical_min: 0.0,
        physical_max: max,
        warning_low: None,
        warning_high: None,
        critical_low: None,
        critical_high: None,
    }
}

/// The `n` machines of the simulated plant, ids `sim-<kind>-<i>`, spread over two lines.
pub fn plant_machines(n: usize, now: OffsetDateTime) -> Vec<(Machine, MachineKind)> {
    (0..n)
        .map(|i| {
            let kind = MachineKind::ALL[i % MachineKind::ALL.len()];
            let (power, temp_rise, vib, pressure, flow) = kind.nominal();
            let sensors = vec![
                sensor(
                    "temperature",
                    SensorKind::Temperature,
                    "C",
                    (-40.0, 250.0),
                    20.0 + temp_rise * 1.4,
                    20.0 + temp_rise * 1.8,
                ),
                sensor(
                    "vibration",
                    SensorKind::Vibration,
                    "mm/s",
                    (0.0, 100.0),
                    vib * 2.5,
                    vib * 4.0,
                ),
                sensor(
                    "pressure",
                    SensorKind::Pressure,
                    "bar",
                    (0.0, pressure * 3.0),
                    pressure * 1.3,
                    pressure * 1.5,
                ),
                sensor(
                    "flow",
                    SensorKind::Flow,
                    "m3/h",
                    (0.0, flow * 3.0),
                    flow * 1.4,
                    flow * 1.6,
                ),
                sensor(
                    "power",
                    SensorKind::Power,
                    "kW",
                    (0.0, power * 3.0),
                    power * 1.2,
                    power * 1.4,
                ),
                rate_sensor(fb_core::kpi::OUTPUT_SENSOR, kind.ideal_rate() * 1.5),
                rate_sensor(fb_core::kpi::SCRAP_SENSOR, kind.ideal_rate() * 1.5),
            ];
            let machine = Machine {
                id: MachineId(format!("sim-{}-{}", kind.name().replace('_', "-"), i + 1)),
                name: format!("Simulated {} {}", kind.name().replace('_', " "), i + 1),
                machine_type: kind.name().into(),
                machine_class: Some(kind.class()),
                location: Location {
                    site: "demo-plant".into(),
                    area: Some("production".into()),
                    line: Some(format!("line-{}", i % 2 + 1)),
                    cell: None,
                },
                status: MachineStatus::Running,
                active: true,
                sensors,
                last_maintenance: None,
                next_maintenance: None,
                health_score: None,
                failure_probability: None,
                rul_hours: None,
                created_at: now,
                updated_at: now,
            };
            (machine, kind)
        })
        .collect()
}
