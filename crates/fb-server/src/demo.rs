//! `serve --demo`: a simulated plant feeding the server in-process, so that a fresh laptop
//! shows live readings within seconds.

use std::sync::Arc;
use std::time::Duration;

use fb_app::auth::SystemPrincipal;
use fb_app::ingest::{self, Item, Origin, RawBytes, RawReading, RawTime, RawValue};
use fb_app::plant;
use fb_core::identity::Principal;
use fb_core::plant::NewMachine;
use fb_sim::{Simulator, plant_machines};
use tokio::sync::watch;

const DEMO_MACHINES: usize = 10;
const DEMO_SEED: u64 = 42;
const TICK: Duration = Duration::from_secs(1);

/// Registers the demo machines (if missing) and streams simulated readings every second until
/// `stop` turns true.
pub(crate) async fn run(
    plant: Arc<plant::Service>,
    ingest: Arc<ingest::Service>,
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
    tracing::info!(
        machines = DEMO_MACHINES,
        "Demo: simulated plant running; readings every second."
    );
    let mut sim = Simulator::new(DEMO_SEED, &machines, start);
    let origin = Origin {
        source: "demo".into(),
        content_type: "application/x-simulator".into(),
    };
    let mut ticker = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        let now = time::OffsetDateTime::now_utc();
        let readings = sim.step(now - sim.now());
        let items = readings
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
            .collect();
        if let Err(e) = ingest.ingest(&system, &origin, items).await {
            tracing::warn!(error = %e, "Demo: a batch of simulated readings was not stored.");
        }
    }
}
