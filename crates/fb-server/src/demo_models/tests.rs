//! The demo's models tell a worn machine from a new one, live.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use fb_predict::{InputMap, MachinePredictor};

use super::*;

/// Feeds `minutes` of a simulated machine of `kind` (bearing wear `wear`, wearing on when
/// `degrading`) through the live path: the resampler, the input map, a predictor per model.
fn live(
    kind: MachineKind,
    wear: f64,
    degrading: bool,
    minutes: i64,
    models: &[Arc<Model>],
) -> Vec<f64> {
    // Yesterday's day shift, as the demo would run.
    let start = OffsetDateTime::from_unix_timestamp(1_800_000_000)
        .unwrap()
        .replace_time(time::Time::from_hms(9, 0, 0).unwrap());
    let (machine, _) = plant_machines(5, start)
        .into_iter()
        .find(|(_, k)| *k == kind)
        .unwrap();
    let mut sim = Simulator::new(7, &[(machine.clone(), kind)], start).with_fault_rate(0.0);
    sim.set_wear(&machine.id, wear);
    if degrading {
        sim.plan(PlannedFault {
            machine: machine.id.clone(),
            kind: FaultKind::BearingWear,
            sensor: None,
            start,
            duration: time::Duration::days(1),
        });
    }
    let mut predictors: Vec<(MachinePredictor, InputMap)> = models
        .iter()
        .map(|m| {
            let map = InputMap::new(&m.pipeline.schema, &machine.sensors).unwrap();
            (MachinePredictor::new(m.clone()), map)
        })
        .collect();
    let mut resampler = Resampler::new(machine.sensors.len(), LIVE.sample_secs);
    let (mut row, mut settings, mut sensors) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..minutes * 60 {
        for r in sim.step(time::Duration::seconds(1)) {
            let i = machine
                .sensors
                .iter()
                .position(|s| s.key == r.sensor)
                .unwrap();
            if let Resampled::Closed { at_micros } =
                resampler.push(i, to_micros(r.ts), r.value, &mut row)
            {
                for (predictor, map) in &mut predictors {
                    map.assemble(&row, &mut settings, &mut sensors);
                    let reading = fb_predict::Reading {
                        time: LIVE.time(at_micros),
                        settings: &settings,
                        sensors: &sensors,
                    };
                    predictor.observe(reading).unwrap();
                }
            }
        }
    }
    predictors
        .iter_mut()
        .map(|(p, _)| p.predict().unwrap().value())
        .collect()
}

#[test]
fn the_demo_models_give_a_worn_machine_a_higher_failure_probability_and_a_shorter_life() {
    let kind = MachineKind::Compressor;
    let history = history(kind, SEED);
    assert!(history.problems().is_empty());
    let failed = history
        .units
        .iter()
        .filter(|u| u.failed_at.is_some())
        .count();
    assert_eq!(
        (failed, history.units.len()),
        (FAILING_UNITS, FAILING_UNITS + HEALTHY_UNITS)
    );
    let failure = Arc::new(train(kind, ModelKind::Failure, &history).unwrap());
    let rul = Arc::new(train(kind, ModelKind::Rul, &history).unwrap());
    let models = [failure, rul];

    // Forty minutes of a new compressor, and of one like the demo's sim-compressor-7 an hour
    // in (its bearing at 0.55 and wearing on).
    let new = live(kind, 0.05, false, 40, &models);
    let worn = live(kind, 0.55, true, 40, &models);
    let (p_new, p_worn) = (new[0], worn[0]);
    let (rul_new, rul_worn) = (LIVE.hours(new[1]), LIVE.hours(worn[1]));
    assert!(
        p_new < 0.2 && p_worn > 0.7,
        "failure probability: new {p_new:.3}, worn {p_worn:.3}"
    );
    assert!(
        rul_new > 6.0 && rul_worn < 4.0,
        "RUL: new {rul_new:.2} h, worn {rul_worn:.2} h"
    );
}
