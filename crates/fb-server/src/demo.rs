//! `serve --demo`: a simulated plant feeding the server in-process, so that a fresh laptop
//! shows live readings within seconds, and alerts for faults within a minute of each.
//!
//! The plant first replays its last ten minutes (so that the learning detectors are warm when
//! live data starts), then streams every second. Faults follow a fixed scenario, repeated every
//! half hour, so that what the dashboard shows can be checked against what was injected; four
//! machines stay healthy throughout (see [`SCENARIO`]).

use std::sync::Arc;
use std::time::Duration;

use fb_app::auth::SystemPrincipal;
use fb_app::ingest::{self, Item, Origin, RawBytes, RawReading, RawTime, RawValue};
use fb_app::plant;
use fb_core::identity::Principal;
use fb_core::plant::{MachineId, NewMachine, SensorKey};
use fb_sim::{FaultKind, PlannedFault, Simulator, plant_machines};
use tokio::sync::watch;

const DEMO_MACHINES: usize = 10;
const DEMO_SEED: u64 = 42;
const TICK: Duration = Duration::from_secs(1);
/// History replayed at start, one sample a second.
const BACKFILL_SECS: i64 = 600;
const BACKFILL: time::Duration = time::Duration::seconds(BACKFILL_SECS);
/// The scenario repeats with this period.
const CYCLE: time::Duration = time::Duration::minutes(30);

/// (machine, fault, sensor, seconds after the cycle starts, duration in seconds). Machines
/// sim-pump-1, sim-press-8, sim-cnc-mill-9 and sim-conveyor-10 have no fault.
pub const SCENARIO: &[(&str, FaultKind, Option<&str>, i64, i64)] = &[
    (
        "sim-cnc-mill-4",
        FaultKind::Spike,
        Some("temperature"),
        10,
        0,
    ),
    ("sim-press-3", FaultKind::Overheating, None, 15, 900),
    (
        "sim-conveyor-5",
        FaultKind::StuckSensor,
        Some("vibration"),
        20,
        900,
    ),
    ("sim-compressor-2", FaultKind::PressureLeak, None, 25, 1200),
    ("sim-pump-6", FaultKind::Dropout, None, 30, 180),
    // Bearing wear shows over hours, so the demo opens with one already under way (its
    // vibration in ISO 10816 zone C) and lets it progress towards zone D.
    (
        "sim-compressor-7",
        FaultKind::BearingWear,
        None,
        -BACKFILL_SECS,
        3600,
    ),
];

/// Bearing wear of sim-compressor-7 when the demo starts (0 new, 1 worn out).
const WORN_BEARING: (&str, f64) = ("sim-compressor-7", 0.4);

/// Machines the scenario leaves healthy.
pub const HEALTHY: &[&str] = &[
    "sim-pump-1",
    "sim-press-8",
    "sim-cnc-mill-9",
    "sim-conveyor-10",
];

fn plan_cycle(sim: &mut Simulator, cycle_start: time::OffsetDateTime) {
    for &(machine, kind, sensor, offset, duration) in SCENARIO {
        sim.plan(PlannedFault {
            machine: MachineId(machine.into()),
            kind,
            sensor: sensor.map(|s| SensorKey(s.into())),
            start: cycle_start + time::Duration::seconds(offset),
            duration: time::Duration::seconds(duration),
        });
    }
}

/// The demo's plant from `start - BACKFILL`, with the scenario's first cycle planned at `start`.
fn simulator(
    machines: &[(fb_core::plant::Machine, fb_sim::MachineKind)],
    start: time::OffsetDateTime,
) -> Simulator {
    // Only the scenario's faults: healthy machines stay healthy.
    let mut sim = Simulator::new(DEMO_SEED, machines, start - BACKFILL).with_fault_rate(0.0);
    sim.set_wear(&MachineId(WORN_BEARING.0.into()), WORN_BEARING.1);
    plan_cycle(&mut sim, start);
    sim
}

fn items(readings: Vec<fb_core::plant::Reading>) -> Vec<Item> {
    readings
        .into_iter()
        .map(|r| Item::Parsed {
            raw: RawBytes::default(),
            reading: RawReading {
                ts: RawTime::Micros(fb_core::plant::to_micros(r.ts)),
                machine: r.machine.0,
                sensor: r.sensor.0,
                value: RawValue::Number(r.value),
                unit: None,
            },
        })
        .collect()
}

/// Registers the demo machines (if missing), seeds their spare parts, suppliers and stock
/// ([`crate::demo_procurement`]), makes sure their types have active prediction models
/// (trained on simulated histories when missing, see [`crate::demo_models`]), and streams
/// simulated readings every second until `stop` turns true.
pub(crate) async fn run(
    plant: Arc<plant::Service>,
    ingest: Arc<ingest::Service>,
    models: Arc<dyn fb_app::models::Registry>,
    procurement: Arc<fb_app::procurement::Service>,
    mut stop: watch::Receiver<bool>,
) {
    let system = Principal::system();
    let start = time::OffsetDateTime::now_utc();
    let machines = plant_machines(DEMO_MACHINES, start);
    for (m, _) in &machines {
        let new = NewMachine {
            id: m.id.0.clone(),
            name: m.name.clone(),
            machine_type: m.machine_type.clone(),
            machine_class: m.machine_class,
            location: m.location.clone(),
            status: m.status,
            active: m.active,
            sensors: m.sensors.clone(),
            last_maintenance: None,
            next_maintenance: None,
        };
        match plant.create(&system, new).await {
            Ok(_) | Err(plant::Error::Exists(_)) => {}
            Err(e) => {
                tracing::error!(error = %e, "Demo: cannot register the simulated machines.");
                return;
            }
        }
    }
    if let Err(e) = crate::demo_procurement::seed(&procurement).await {
        tracing::warn!(error = %e, "Demo: the procurement catalogue could not be seeded.");
    }
    let mut kinds: Vec<fb_sim::MachineKind> = Vec::new();
    for (_, kind) in &machines {
        if !kinds.contains(kind) {
            kinds.push(*kind);
        }
    }
    if let Err(e) = crate::demo_models::ensure(&*models, &kinds).await {
        tracing::warn!(error = %e, "Demo: prediction models could not be trained; the plant runs without predictions.");
    }
    let origin = Origin {
        source: "demo".into(),
        content_type: "application/x-simulator".into(),
    };
    let mut sim = simulator(&machines, start);
    let mut cycle_start = start;
    let mut history = Vec::new();
    while sim.now() + time::Duration::seconds(1) < start {
        history.extend(sim.step(time::Duration::seconds(1)));
        if history.len() >= 3000 || sim.now() + time::Duration::seconds(1) >= start {
            let batch = items(std::mem::take(&mut history));
            if let Err(e) = ingest.ingest(&system, &origin, batch).await {
                tracing::warn!(error = %e, "Demo: replayed history was not stored.");
            }
        }
    }
    tracing::info!(
        machines = DEMO_MACHINES,
        "Demo: simulated plant running; readings every second, faults every half hour."
    );
    let mut ticker = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let now = time::OffsetDateTime::now_utc();
        if now - cycle_start >= CYCLE {
            cycle_start += CYCLE;
            plan_cycle(&mut sim, cycle_start);
        }
        let readings = sim.step(now - sim.now());
        if let Err(e) = ingest.ingest(&system, &origin, items(readings)).await {
            tracing::warn!(error = %e, "Demo: a batch of simulated readings was not stored.");
        }
    }
}

#[cfg(test)]
mod tests {
    use fb_core::alerts::{AlertChange, AlertKind, AlertPolicy, AlertTracker, Condition};
    use fb_core::plant::{from_micros, to_micros};
    use fb_detect::pipeline::{DetectionConfig, MachineDetector, Signal};
    use std::collections::HashMap as FxHashMap;

    use super::*;

    /// Runs the demo's first ten minutes of history and two live minutes through detection
    /// and the alert rules, without a server: which alerts open, when.
    fn opened(start: time::OffsetDateTime) -> Vec<(String, AlertKind, i64)> {
        opened_during(start, time::Duration::minutes(2))
    }

    /// Like [`opened`], for `span` of live data.
    fn opened_during(
        start: time::OffsetDateTime,
        span: time::Duration,
    ) -> Vec<(String, AlertKind, i64)> {
        let machines = plant_machines(DEMO_MACHINES, start);
        let mut sim = simulator(&machines, start);
        let cfg = DetectionConfig::default();
        let mut detectors: FxHashMap<String, MachineDetector> = machines
            .iter()
            .map(|(m, _)| (m.id.0.clone(), MachineDetector::new(m, &cfg).unwrap()))
            .collect();
        let mut tracker = AlertTracker::new(AlertPolicy::default(), Vec::new());
        let mut opened = Vec::new();
        let end = start + span;
        while sim.now() < end {
            let readings = sim.step(time::Duration::seconds(1));
            let mut signals = Vec::new();
            for r in &readings {
                let d = detectors.get_mut(&r.machine.0).unwrap();
                let i = d.sensor_index(&r.sensor.0).unwrap();
                d.observe(i, to_micros(r.ts), r.value, &mut signals);
                apply(&mut tracker, &r.machine, &mut signals, &mut opened, start);
            }
            for (id, d) in &mut detectors {
                d.tick(to_micros(sim.now()), &mut signals);
                apply(
                    &mut tracker,
                    &MachineId(id.clone()),
                    &mut signals,
                    &mut opened,
                    start,
                );
            }
        }
        opened
    }

    fn apply(
        tracker: &mut AlertTracker,
        machine: &MachineId,
        signals: &mut Vec<Signal>,
        opened: &mut Vec<(String, AlertKind, i64)>,
        start: time::OffsetDateTime,
    ) {
        for s in signals.drain(..) {
            match s {
                Signal::Holds(f) if f.alerting => {
                    let c = Condition {
                        machine: machine.clone(),
                        kind: AlertKind::from(f.kind),
                        severity: f.severity,
                        at: from_micros(f.ts_micros),
                        title: String::new(),
                        evidence: Vec::new(),
                        confirmed: f.confirmed,
                    };
                    if let Some(AlertChange::Opened(a)) = tracker.holds(c) {
                        opened.push((a.machine.0, a.kind, (a.opened_at - start).whole_seconds()));
                    }
                }
                Signal::Holds(_) => {}
                Signal::Clears { kind, ts_micros } => {
                    tracker.clear(machine, AlertKind::from(kind), from_micros(ts_micros));
                }
            }
        }
    }

    #[test]
    fn every_scenario_fault_opens_its_alert_within_a_minute_and_healthy_machines_none() {
        // Night, day and evening shifts: the plant's load differs, the outcome must not.
        for hour in [3, 10, 17] {
            let start = time::OffsetDateTime::UNIX_EPOCH
                + time::Duration::days(20_000)
                + time::Duration::hours(hour);
            let opened = opened(start);
            for healthy in HEALTHY {
                let theirs: Vec<_> = opened.iter().filter(|o| o.0 == *healthy).collect();
                assert!(theirs.is_empty(), "{hour}h: healthy {healthy}: {theirs:?}");
            }
            for &(machine, fault, _, offset, _) in SCENARIO {
                let kind = match fault {
                    FaultKind::Spike => AlertKind::Spike,
                    FaultKind::Overheating => AlertKind::Overheating,
                    FaultKind::StuckSensor => AlertKind::StuckSensor,
                    FaultKind::PressureLeak => AlertKind::Pressure,
                    FaultKind::Dropout => AlertKind::NoData,
                    FaultKind::BearingWear => AlertKind::Vibration,
                };
                let at = opened
                    .iter()
                    .find(|o| o.0 == machine && o.1 == kind)
                    .map(|o| o.2);
                assert!(
                    at.is_some_and(|at| at - offset.max(0) <= 60),
                    "{hour}h: {machine} {kind:?} opened at {at:?} (fault at {offset}); all: {opened:?}"
                );
            }
        }
    }

    #[test]
    fn healthy_machines_ride_through_every_shift_change() {
        // The load steps at 06:00, 14:00 and 22:00: every load-driven sensor moves at once.
        // That is the plant changing its operating point, not a fault.
        for hour in [6, 14, 22] {
            let start = time::OffsetDateTime::UNIX_EPOCH
                + time::Duration::days(20_000)
                + time::Duration::hours(hour)
                - time::Duration::minutes(10);
            let opened = opened_during(start, time::Duration::minutes(50));
            for healthy in HEALTHY {
                let theirs: Vec<_> = opened.iter().filter(|o| o.0 == *healthy).collect();
                assert!(theirs.is_empty(), "{hour}h: healthy {healthy}: {theirs:?}");
            }
        }
    }
}
