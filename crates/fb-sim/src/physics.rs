use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use time::{Duration, OffsetDateTime};

use fb_core::plant::{Machine, MachineId, Reading, SensorKey};

use crate::MachineKind;

/// What went wrong, as a detector should see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// Vibration rises over hours, then temperature follows.
    BearingWear,
    /// Temperature climbs well above its running level.
    Overheating,
    /// Pressure (and flow) fall.
    PressureLeak,
    /// One sensor repeats the same value.
    StuckSensor,
    /// The machine sends nothing.
    Dropout,
    /// One absurd reading of one sensor.
    Spike,
}

impl FaultKind {
    const ALL: [FaultKind; 6] = [
        FaultKind::BearingWear,
        FaultKind::Overheating,
        FaultKind::PressureLeak,
        FaultKind::StuckSensor,
        FaultKind::Dropout,
        FaultKind::Spike,
    ];

    /// Duration range in seconds.
    fn duration(self) -> (i64, i64) {
        match self {
            FaultKind::BearingWear => (2 * 3600, 6 * 3600),
            FaultKind::Overheating => (600, 1800),
            FaultKind::PressureLeak => (1200, 3600),
            FaultKind::StuckSensor => (300, 1800),
            FaultKind::Dropout => (60, 300),
            FaultKind::Spike => (0, 0),
        }
    }
}

/// A labelled fault: the ground truth for scoring detectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    pub machine: MachineId,
    pub kind: FaultKind,
    /// The sensor a sensor fault (stuck, spike) affects.
    pub sensor: Option<SensorKey>,
    pub start: OffsetDateTime,
    pub end: OffsetDateTime,
}

const SENSORS: [&str; 5] = ["temperature", "vibration", "pressure", "flow", "power"];
/// The production sensors (units per hour): made, and rejected.
const OUTPUT: &str = fb_core::kpi::OUTPUT_SENSOR;
const SCRAP: &str = fb_core::kpi::SCRAP_SENSOR;
/// Mixed into the seed for the production sensors' own random stream.
const PRODUCTION_STREAM: u64 = 0x9e37_79b9_7f4a_7c15;
/// Temperature follows load with this time constant.
const THERMAL_TAU_SECS: f64 = 600.0;

struct SimMachine {
    id: MachineId,
    kind: MachineKind,
    ranges: Vec<(f64, f64)>,
    temperature: f64,
    wear: f64,
    leak: f64,
    fault: Option<(FaultKind, OffsetDateTime, Option<usize>, f64)>,
    /// The values last reported, where a stuck sensor freezes.
    last: [f64; SENSORS.len()],
    /// A load set from outside (a machine left idling), instead of the shift's.
    pinned_load: Option<f64>,
    /// Physical ranges of the output and scrap sensors, when the machine has them.
    production: Option<((f64, f64), (f64, f64))>,
}

/// A fault to inject at a chosen time rather than at random (the demo's scenario, tests).
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedFault {
    pub machine: MachineId,
    pub kind: FaultKind,
    /// For sensor faults (stuck, spike): which sensor; `None` picks the first.
    pub sensor: Option<SensorKey>,
    pub start: OffsetDateTime,
    pub duration: Duration,
}

pub struct Simulator {
    rng: StdRng,
    /// The output and scrap noise: a stream of its own, so that the other sensors' readings
    /// and the faults are the same as before the production sensors came.
    production_rng: StdRng,
    machines: Vec<SimMachine>,
    now: OffsetDateTime,
    faults: Vec<Fault>,
    /// Expected faults per machine per hour.
    fault_rate: f64,
    planned: Vec<PlannedFault>,
}

impl Simulator {
    /// A plant of `machines` starting at `start`. Same seed, same plant, same readings.
    pub fn new(seed: u64, machines: &[(Machine, MachineKind)], start: OffsetDateTime) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let machines = machines
            .iter()
            .map(|(m, kind)| {
                let wear = rng.random_range(0.0..0.2);
                SimMachine {
                    id: m.id.clone(),
                    kind: *kind,
                    ranges: SENSORS
                        .iter()
                        .map(|s| {
                            m.sensor(s).map_or((f64::MIN, f64::MAX), |spec| {
                                (spec.physical_min, spec.physical_max)
                            })
                        })
                        .collect(),
                    // The plant has been running: temperature starts at its steady state.
                    temperature: ambient(start)
                        + kind.nominal().1 * shift_load(start)
                        + 25.0 * wear * wear,
                    wear,
                    leak: 0.0,
                    fault: None,
                    last: [0.0; SENSORS.len()],
                    pinned_load: None,
                    production: m.sensor(OUTPUT).zip(m.sensor(SCRAP)).map(|(o, s)| {
                        (
                            (o.physical_min, o.physical_max),
                            (s.physical_min, s.physical_max),
                        )
                    }),
                }
            })
            .collect();
        Self {
            rng,
            production_rng: StdRng::seed_from_u64(seed ^ PRODUCTION_STREAM),
            machines,
            now: start,
            faults: Vec::new(),
            fault_rate: 0.05,
            planned: Vec::new(),
        }
    }

    /// Injects a fault at `fault.start` (or as soon after as the machine has no other fault).
    /// Planned faults are labelled in [`faults`](Self::faults) like random ones once they begin.
    pub fn plan(&mut self, fault: PlannedFault) {
        self.planned.push(fault);
    }

    /// Sets a machine's bearing wear (0 new, 1 worn out), e.g. to start a demo with a
    /// degradation already under way: real wear takes hours to show.
    pub fn set_wear(&mut self, machine: &MachineId, wear: f64) {
        if let Some(m) = self.machines.iter_mut().find(|m| m.id == *machine) {
            m.wear = wear.clamp(0.0, 1.0);
        }
    }

    /// A machine's bearing wear now (0 new, 1 worn out): the ground truth a run-to-failure
    /// history is labelled with.
    pub fn wear(&self, machine: &MachineId) -> Option<f64> {
        self.machines
            .iter()
            .find(|m| m.id == *machine)
            .map(|m| m.wear)
    }

    /// Holds a machine at `load` (0 to 1; 0.05 is a machine left idling) instead of following
    /// the shifts, or lets it follow them again with `None`.
    pub fn pin_load(&mut self, machine: &MachineId, load: Option<f64>) {
        if let Some(m) = self.machines.iter_mut().find(|m| m.id == *machine) {
            m.pinned_load = load.map(|l| l.clamp(0.0, 1.0));
        }
    }

    /// Expected faults per machine per hour (default 0.05).
    pub fn with_fault_rate(mut self, per_machine_per_hour: f64) -> Self {
        self.fault_rate = per_machine_per_hour.max(0.0);
        self
    }

    pub fn now(&self) -> OffsetDateTime {
        self.now
    }

    /// Every fault injected so far.
    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }

    /// Advances the clock by `dt` and returns one reading per sensor of each machine that is
    /// not in a dropout.
    pub fn step(&mut self, dt: Duration) -> Vec<Reading> {
        self.now += dt;
        let now = self.now;
        let dt_secs = dt.as_seconds_f64().max(0.001);
        let load_base = shift_load(now);
        let ambient = ambient(now);
        let mut readings = Vec::with_capacity(self.machines.len() * SENSORS.len());
        for index in 0..self.machines.len() {
            self.start_planned_fault(index);
            self.maybe_start_fault(index, dt_secs);
            let noise = |rng: &mut StdRng, sd: f64| gaussian(rng) * sd;
            let shift = (load_base + noise(&mut self.rng, 0.03)).clamp(0.05, 1.0);
            let m = &mut self.machines[index];
            let load = m.pinned_load.unwrap_or(shift);
            let (rated, rise, vib, pressure, flow) = m.kind.nominal();
            let fault = m.fault.filter(|(_, end, _, _)| *end >= now);
            if fault.is_none() {
                m.fault = None;
            }
            let kind = fault.map(|f| f.0);

            m.wear += dt_secs
                * if kind == Some(FaultKind::BearingWear) {
                    4e-5
                } else {
                    2e-8
                };
            m.wear = m.wear.min(1.0);
            m.leak = if kind == Some(FaultKind::PressureLeak) {
                // A seal gives way (6 % of the pressure lost at once), then the leak grows.
                (m.leak.max(0.06) + dt_secs * 2e-4).min(0.4)
            } else {
                (m.leak - dt_secs * 1e-3).max(0.0)
            };
            let overheat = if kind == Some(FaultKind::Overheating) {
                45.0
            } else {
                0.0
            };
            let target = ambient + rise * load + 25.0 * m.wear * m.wear + overheat;
            m.temperature += (target - m.temperature) * (1.0 - (-dt_secs / THERMAL_TAU_SECS).exp());
            let efficiency = 0.92 - 0.25 * m.wear;

            if kind == Some(FaultKind::Dropout) {
                continue;
            }
            let mut values = [
                m.temperature,
                vib * (0.6 + 0.4 * load) * (1.0 + 6.0 * m.wear * m.wear),
                pressure * (0.5 + 0.5 * load) * (1.0 - m.leak),
                flow * load * (1.0 - 0.5 * m.leak),
                rated * load / efficiency,
            ];
            let sds = [0.2, 0.04 * vib, 0.01 * pressure, 0.01 * flow, 0.01 * rated];
            for (v, sd) in values.iter_mut().zip(sds) {
                *v += gaussian(&mut self.rng) * sd;
            }
            let m = &mut self.machines[index];
            match fault {
                Some((FaultKind::StuckSensor, _, Some(sensor), stuck)) => values[sensor] = stuck,
                Some((FaultKind::Spike, _, Some(sensor), _)) => {
                    values[sensor] = m.ranges[sensor].1 * 0.95;
                    m.fault = None;
                }
                _ => {}
            }
            for (i, value) in values.into_iter().enumerate() {
                let (min, max) = m.ranges[i];
                m.last[i] = value.clamp(min, max);
                readings.push(Reading {
                    machine: m.id.clone(),
                    sensor: SensorKey(SENSORS[i].into()),
                    ts: now,
                    value: value.clamp(min, max),
                });
            }
            if let Some((output_range, scrap_range)) = m.production {
                // How badly the fault hurts production, 0 to 1.
                let severity = match kind {
                    Some(FaultKind::BearingWear) => m.wear * m.wear,
                    Some(FaultKind::Overheating) => 0.5,
                    Some(FaultKind::PressureLeak) => (2.0 * m.leak).min(1.0),
                    _ => 0.3 * m.wear * m.wear,
                };
                let (output, scrap) = production(
                    m.kind.ideal_rate(),
                    load,
                    severity,
                    &mut self.production_rng,
                );
                for (key, value, (min, max)) in
                    [(OUTPUT, output, output_range), (SCRAP, scrap, scrap_range)]
                {
                    readings.push(Reading {
                        machine: m.id.clone(),
                        sensor: SensorKey(key.into()),
                        ts: now,
                        value: value.clamp(min, max),
                    });
                }
            }
        }
        readings
    }

    fn start_planned_fault(&mut self, index: usize) {
        if self.machines[index].fault.is_some() {
            return;
        }
        let (now, id) = (self.now, &self.machines[index].id);
        let Some(position) = self
            .planned
            .iter()
            .position(|p| p.machine == *id && p.start <= now)
        else {
            return;
        };
        let plan = self.planned.remove(position);
        let sensor = matches!(plan.kind, FaultKind::StuckSensor | FaultKind::Spike).then(|| {
            plan.sensor
                .as_ref()
                .and_then(|key| SENSORS.iter().position(|s| *s == key.0))
                .unwrap_or(0)
        });
        self.begin_fault(index, plan.kind, sensor, self.now + plan.duration);
    }

    fn maybe_start_fault(&mut self, index: usize, dt_secs: f64) {
        if self.machines[index].fault.is_some() {
            return;
        }
        let probability = self.fault_rate * dt_secs / 3600.0;
        if !self.rng.random_bool(probability.clamp(0.0, 1.0)) {
            return;
        }
        let kind = FaultKind::ALL[self.rng.random_range(0..FaultKind::ALL.len())];
        let (lo, hi) = kind.duration();
        let secs = if hi > lo {
            self.rng.random_range(lo..hi)
        } else {
            lo
        };
        let sensor = matches!(kind, FaultKind::StuckSensor | FaultKind::Spike)
            .then(|| self.rng.random_range(0..SENSORS.len()));
        let end = self.now + Duration::seconds(secs);
        self.begin_fault(index, kind, sensor, end);
    }

    fn begin_fault(
        &mut self,
        index: usize,
        kind: FaultKind,
        sensor: Option<usize>,
        end: OffsetDateTime,
    ) {
        let m = &mut self.machines[index];
        // A stuck sensor freezes at what it last reported.
        let stuck = sensor.map_or(0.0, |s| if s == 0 { m.temperature } else { m.last[s] });
        m.fault = Some((kind, end, sensor, stuck));
        self.faults.push(Fault {
            machine: m.id.clone(),
            kind,
            sensor: sensor.map(|s| SensorKey(SENSORS[s].into())),
            start: self.now,
            end,
        });
    }
}

/// Output and scrap rates (units per hour) of a machine with ideal rate `ideal`: below the
/// ideal with the load (97 % of it at full load: minor stops and slow cycles), slowed by up to
/// half and rejecting up to a fifth more of what it makes as a fault's `severity` goes to 1
/// (1 % scrap when healthy). The noise is multiplicative, so that neither rate sits at zero
/// (a stuck value to the detectors).
fn production(ideal: f64, load: f64, severity: f64, rng: &mut StdRng) -> (f64, f64) {
    let severity = severity.clamp(0.0, 1.0);
    let output = ideal
        * 0.97
        * (0.6 + 0.4 * load)
        * (1.0 - 0.5 * severity)
        * (1.0 + 0.01 * gaussian(rng)).max(0.5);
    let scrap = output * (0.01 + 0.2 * severity) * (1.0 + 0.05 * gaussian(rng)).max(0.5);
    (output, scrap)
}

/// Three shifts: days busy, evenings less, nights light.
fn ambient(t: OffsetDateTime) -> f64 {
    20.0 + 3.0 * (day_fraction(t) * std::f64::consts::TAU).sin()
}

fn shift_load(t: OffsetDateTime) -> f64 {
    match t.hour() {
        6..=13 => 0.9,
        14..=21 => 0.75,
        _ => 0.35,
    }
}

fn day_fraction(t: OffsetDateTime) -> f64 {
    f64::from(u32::from(t.hour()) * 3600 + u32::from(t.minute()) * 60 + u32::from(t.second()))
        / 86_400.0
}

/// A standard normal sample (Box–Muller).
fn gaussian(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plant_machines;

    fn start() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn run(seed: u64, steps: usize, rate: f64) -> (Vec<Reading>, Vec<Fault>) {
        let machines = plant_machines(5, start());
        let mut sim = Simulator::new(seed, &machines, start()).with_fault_rate(rate);
        let readings = (0..steps)
            .flat_map(|_| sim.step(Duration::seconds(10)))
            .collect();
        (readings, sim.faults().to_vec())
    }

    #[test]
    fn the_same_seed_gives_the_same_plant() {
        assert_eq!(run(7, 200, 2.0), run(7, 200, 2.0));
        assert_ne!(run(7, 200, 2.0).0, run(8, 200, 2.0).0);
    }

    #[test]
    fn a_pinned_machine_idles_while_the_others_follow_the_shift() {
        let machines = plant_machines(5, start());
        let mut sim = Simulator::new(3, &machines, start()).with_fault_rate(0.0);
        let idle = machines[3].0.id.clone();
        sim.pin_load(&idle, Some(0.05));
        let power = |readings: &[Reading], machine: &MachineId| {
            readings
                .iter()
                .find(|r| r.machine == *machine && r.sensor.0 == "power")
                .map(|r| r.value)
                .unwrap()
        };
        let mut idle_kw = Vec::new();
        for _ in 0..60 {
            idle_kw.push(power(&sim.step(Duration::seconds(10)), &idle));
        }
        let (rated, ..) = machines[3].1.nominal();
        let mean = idle_kw.iter().sum::<f64>() / idle_kw.len() as f64;
        // 5 % of rated power over the efficiency of a healthy machine, with noise.
        assert!(mean < 0.1 * rated, "{mean} of {rated}");
        sim.pin_load(&idle, None);
        let mut followed = Vec::new();
        for _ in 0..60 {
            followed.push(power(&sim.step(Duration::seconds(10)), &idle));
        }
        let after = followed.iter().sum::<f64>() / followed.len() as f64;
        assert!(after > mean * 2.0, "{after} vs {mean}");
    }

    #[test]
    fn readings_respect_the_sensor_ranges_and_machine_ids() {
        let machines = plant_machines(5, start());
        let (readings, _) = run(1, 100, 5.0);
        for r in &readings {
            let (machine, _) = machines.iter().find(|(m, _)| m.id == r.machine).unwrap();
            let spec = machine.sensor(&r.sensor.0).unwrap();
            assert!(
                r.value >= spec.physical_min && r.value <= spec.physical_max,
                "{r:?}"
            );
            assert!(r.value.is_finite());
        }
        assert_eq!(machines[0].0.id.0, "sim-pump-1");
    }

    #[test]
    fn temperature_follows_load_with_a_lag() {
        // From night (light load) into the day shift, temperature rises gradually, not at once.
        let night = OffsetDateTime::from_unix_timestamp(1_800_000_000)
            .unwrap()
            .replace_hour(5)
            .unwrap()
            .replace_minute(50)
            .unwrap();
        let machines = plant_machines(1, night);
        let mut sim = Simulator::new(3, &machines, night).with_fault_rate(0.0);
        let temp = |r: &[Reading]| {
            r.iter()
                .find(|x| x.sensor.0 == "temperature")
                .unwrap()
                .value
        };
        for _ in 0..120 {
            sim.step(Duration::seconds(5)); // settle for ten minutes of night
        }
        let before = temp(&sim.step(Duration::seconds(5)));
        let first = temp(&sim.step(Duration::seconds(60)));
        let later: Vec<f64> = (0..60)
            .map(|_| temp(&sim.step(Duration::seconds(60))))
            .collect();
        let after = *later.last().unwrap();
        assert!(
            after > before + 10.0,
            "warms up with the day shift: {before} -> {after}"
        );
        assert!(first - before < 5.0, "but not at once: {before} -> {first}");
    }

    #[test]
    fn faults_are_labelled_and_visible() {
        let (readings, faults) = run(11, 3000, 3.0);
        assert!(!faults.is_empty());
        let kinds: std::collections::HashSet<_> = faults.iter().map(|f| f.kind).collect();
        assert!(kinds.len() >= 3, "{kinds:?}");
        // A dropout means no readings from that machine during it.
        if let Some(d) = faults
            .iter()
            .find(|f| f.kind == FaultKind::Dropout && f.end > f.start)
        {
            let during = readings
                .iter()
                .filter(|r| r.machine == d.machine && r.ts > d.start && r.ts < d.end)
                .count();
            assert_eq!(during, 0, "{d:?}");
        }
        for f in &faults {
            assert!(f.end >= f.start);
            assert_eq!(
                f.sensor.is_some(),
                matches!(f.kind, FaultKind::StuckSensor | FaultKind::Spike)
            );
        }
    }

    #[test]
    fn planned_faults_begin_on_time_and_are_labelled() {
        let machines = plant_machines(2, start());
        let mut sim = Simulator::new(9, &machines, start()).with_fault_rate(0.0);
        let target = machines[1].0.id.clone();
        sim.plan(PlannedFault {
            machine: target.clone(),
            kind: FaultKind::StuckSensor,
            sensor: Some(SensorKey("pressure".into())),
            start: start() + Duration::seconds(30),
            duration: Duration::seconds(60),
        });
        let pressure = |r: &[Reading]| {
            r.iter()
                .find(|x| x.machine == target && x.sensor.0 == "pressure")
                .map(|x| x.value)
        };
        for _ in 0..2 {
            sim.step(Duration::seconds(10));
        }
        assert!(sim.faults().is_empty(), "not yet");
        let stuck: Vec<_> = (0..5)
            .filter_map(|_| pressure(&sim.step(Duration::seconds(10))))
            .collect();
        assert_eq!(sim.faults().len(), 1);
        let fault = &sim.faults()[0];
        assert_eq!(
            (fault.kind, fault.sensor.as_ref().map(|s| s.0.as_str())),
            (FaultKind::StuckSensor, Some("pressure"))
        );
        assert_eq!(fault.end - fault.start, Duration::seconds(60));
        assert!(stuck.windows(2).all(|w| w[0] == w[1]), "{stuck:?}");
    }

    #[test]
    fn output_follows_load_below_the_ideal_and_a_fault_slows_it_and_makes_scrap() {
        let machines = plant_machines(3, start());
        let (press, kind) = &machines[2];
        assert_eq!(*kind, MachineKind::Press);
        let mut sim = Simulator::new(5, &machines, start()).with_fault_rate(0.0);
        let rates = |sim: &mut Simulator| {
            let (mut out, mut scrap, mut n) = (0.0, 0.0, 0.0);
            for _ in 0..60 {
                for r in sim.step(Duration::seconds(10)) {
                    if r.machine == press.id {
                        match r.sensor.0.as_str() {
                            "output" => {
                                out += r.value;
                                n += 1.0;
                            }
                            "scrap" => scrap += r.value,
                            _ => {}
                        }
                    }
                }
            }
            (out / n, scrap / n)
        };
        let (healthy, healthy_scrap) = rates(&mut sim);
        let ideal = kind.ideal_rate();
        assert!(healthy < ideal && healthy > 0.5 * ideal, "{healthy}");
        assert!(
            healthy_scrap > 0.0 && healthy_scrap < 0.03 * healthy,
            "{healthy_scrap}"
        );
        sim.plan(PlannedFault {
            machine: press.id.clone(),
            kind: FaultKind::Overheating,
            sensor: None,
            start: sim.now(),
            duration: Duration::hours(1),
        });
        let (faulty, faulty_scrap) = rates(&mut sim);
        assert!(faulty < 0.8 * healthy, "{healthy} -> {faulty}");
        assert!(
            faulty_scrap > 3.0 * healthy_scrap,
            "{healthy_scrap} -> {faulty_scrap}"
        );
        assert_eq!(crate::ideal_rates()["press"], ideal);
    }

    #[test]
    fn bearing_wear_raises_vibration() {
        let machines = plant_machines(1, start());
        let mut sim = Simulator::new(5, &machines, start()).with_fault_rate(0.0);
        let vib = |r: &[Reading]| {
            r.iter()
                .find(|x| x.sensor.0 == "vibration")
                .map(|x| x.value)
                .unwrap()
        };
        let healthy: f64 = (0..50)
            .map(|_| vib(&sim.step(Duration::seconds(10))))
            .sum::<f64>()
            / 50.0;
        sim.machines[0].fault = Some((
            FaultKind::BearingWear,
            start() + Duration::hours(10),
            None,
            0.0,
        ));
        for _ in 0..360 {
            sim.step(Duration::seconds(30));
        }
        let worn: f64 = (0..50)
            .map(|_| vib(&sim.step(Duration::seconds(10))))
            .sum::<f64>()
            / 50.0;
        assert!(worn > healthy * 1.5, "{healthy} -> {worn}");
    }
}
