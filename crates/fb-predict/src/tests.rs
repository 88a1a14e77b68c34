//! End-to-end tests of the crate on synthetic run-to-failure fleets whose truth is known.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use fb_core::rng::SplitMix64;

use crate::data::{History, Observation, Schema, Unit};
use crate::features::{FeatureSpec, SensorFeature};
use crate::gbdt::BoostParams;
use crate::model::{Model, Prediction};
use crate::stream::MachinePredictor;
use crate::train::{self, SearchSpec, TrainConfig, assign_folds};
use crate::{PredictError, Reading};

const CONDITIONS: [[f64; 2]; 6] = [
    [0.0, 100.0],
    [10.0, 100.0],
    [20.0, 60.0],
    [25.0, 100.0],
    [35.0, 60.0],
    [42.0, 100.0],
];

/// Units flying six conditions at random, each cycle; two sensors carry wear (growing
/// exponentially towards failure) on top of a large per-condition offset; a third is noise.
/// `lives` sets each unit's length.
fn fleet(units: usize, seed: u64, conditions: usize) -> History {
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::with_capacity(units);
    for u in 0..units {
        let life = 120 + rng.below(160);
        let observations = (1..=life)
            .map(|cycle| {
                let c = CONDITIONS[rng.below(conditions)];
                let wear = (-((life - cycle) as f64) / 40.0).exp();
                let noise = |rng: &mut SplitMix64| rng.next_f64() - 0.5;
                Observation {
                    time: cycle as f64,
                    settings: vec![c[0] + 0.001 * noise(&mut rng), c[1]],
                    sensors: vec![
                        600.0 + 8.0 * c[0] - c[1] + 6.0 * wear + noise(&mut rng),
                        40.0 - 0.3 * c[0] - 4.0 * wear + 0.5 * noise(&mut rng),
                        10.0 + c[1] / 10.0 + noise(&mut rng),
                    ],
                }
            })
            .collect();
        out.push(Unit {
            id: format!("u{u}"),
            observations,
            failed_at: Some(life as f64),
        });
    }
    History {
        schema: Schema {
            settings: vec!["altitude".into(), "throttle".into()],
            sensors: vec!["t50".into(), "ps30".into(), "noise".into()],
        },
        units: out,
    }
}

fn small_config() -> TrainConfig {
    TrainConfig {
        boost: BoostParams {
            learning_rate: 0.1,
            max_rounds: 300,
            max_bins: 63,
            ..BoostParams::default()
        },
        search: SearchSpec {
            candidates: 2,
            folds: 3,
            threads: 1,
        },
        ..TrainConfig::rul(100.0)
    }
}

fn rmse_on(model: &Model, history: &History) -> f64 {
    let (mut predicted, mut truth) = (Vec::new(), Vec::new());
    for unit in &history.units {
        let predictions = model.predict_history(&unit.observations).unwrap();
        for (o, p) in unit.observations.iter().zip(predictions) {
            predicted.push(p.value());
            truth.push((unit.failed_at.unwrap() - o.time).min(100.0));
        }
    }
    crate::metrics::rmse(&predicted, &truth)
}

#[test]
fn learns_rul_across_six_operating_conditions() {
    let train = fleet(40, 1, 6);
    let test = fleet(15, 2, 6);
    let mut progress = Vec::new();
    let model = train::train(&train, &small_config(), &mut |p| progress.push(p.done)).unwrap();
    assert_eq!(model.meta.report.regimes, 6);
    // Every step reported once, in order, ending at the total.
    let total = 1 + 2 * 3;
    assert_eq!(progress, (1..=total).collect::<Vec<_>>());
    let rmse = rmse_on(&model, &test);
    // Without normalisation the condition offsets (hundreds) drown the wear signal (units);
    // with it, the error is a fraction of the 100-cycle target range.
    assert!(rmse < 15.0, "rmse {rmse}");
    let mut unnormalised = small_config();
    unnormalised.regimes.max_regimes = 1;
    let blind = train::train(&train, &unnormalised, &mut |_| {}).unwrap();
    assert_eq!(blind.meta.report.regimes, 1);
    let blind_rmse = rmse_on(&blind, &test);
    assert!(
        blind_rmse > rmse * 1.3,
        "normalised {rmse} vs not {blind_rmse}"
    );
}

#[test]
fn folds_never_split_a_unit() {
    let history = fleet(23, 3, 1);
    let config = small_config();
    let pipeline = train::fit_pipeline(&history, &config).unwrap();
    let data = train::dataset(&history, &pipeline, &config.target);
    let folds = assign_folds(&data.unit_of_row, history.units.len(), 5, 11);
    let mut sizes = [0usize; 5];
    for fold in folds.iter().flatten() {
        sizes[*fold] += 1;
    }
    assert_eq!(sizes.iter().sum::<usize>(), 23);
    assert!(sizes.iter().all(|&s| s == 4 || s == 5), "{sizes:?}");
    // A row's fold is its unit's: no unit has rows on both sides of any split.
    for f in 0..5 {
        let mut train_units = std::collections::BTreeSet::new();
        let mut valid_units = std::collections::BTreeSet::new();
        for &u in &data.unit_of_row {
            if folds[u] == Some(f) {
                valid_units.insert(u);
            } else {
                train_units.insert(u);
            }
        }
        assert!(train_units.is_disjoint(&valid_units));
        assert!(!valid_units.is_empty());
    }
    assert_ne!(
        folds,
        assign_folds(&data.unit_of_row, history.units.len(), 5, 12)
    );
}

#[test]
fn a_loaded_model_predicts_identically_and_bad_files_are_refused() {
    let history = fleet(12, 4, 6);
    let model = train::train(&history, &small_config(), &mut |_| {}).unwrap();
    // Threads change how fast, never what is learned.
    let mut threaded = small_config();
    threaded.search.threads = 3;
    let parallel = train::train(&history, &threaded, &mut |_| {}).unwrap();
    assert!(parallel.ensemble == model.ensemble && parallel.meta.report == model.meta.report);
    let json = model.to_json().unwrap();
    let loaded = Model::from_json(&json).unwrap();
    assert_eq!(loaded, model);
    let probe = fleet(3, 5, 6);
    for unit in &probe.units {
        let a = model.predict_history(&unit.observations).unwrap();
        let b = loaded.predict_history(&unit.observations).unwrap();
        let bits = |v: &[Prediction]| v.iter().map(|p| p.value().to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b));
    }
    assert_eq!(loaded.meta.data_hash, history.data_hash());
    assert_eq!(loaded.meta.features, loaded.pipeline.names);

    let refused = |text: &str| matches!(Model::from_json(text), Err(PredictError::Format(_)));
    assert!(refused("{}"));
    assert!(refused(
        &json.replace("factorybrain.predict.model", "other")
    ));
    assert!(refused(&json.replacen(
        "\"format_version\":1",
        "\"format_version\":2",
        1
    )));
    // A tree pointing at a feature the model does not have.
    let mut broken = model.clone();
    broken.ensemble[0].trees[0].nodes[0].0 = 10_000;
    assert!(refused(&broken.to_json().unwrap()));
    // A scaler that would divide by zero.
    let mut broken = model.clone();
    broken.pipeline.scalers.spread[0][0] = 0.0;
    assert!(refused(&broken.to_json().unwrap()));
}

/// The features written out directly from their definitions over the whole history so far:
/// an implementation independent of the ring buffer and running sums of [`FeatureState`].
fn reference_features(model: &Model, normalised: &[Vec<f64>], ages: &[f64], at: usize) -> Vec<f64> {
    let spec = &model.pipeline.spec;
    let mut out = Vec::new();
    for series in normalised {
        let seen = &series[..=at];
        let tail = |w: usize| &seen[seen.len().saturating_sub(w)..];
        for f in &spec.sensor_features {
            out.push(match *f {
                SensorFeature::Last => seen[at],
                SensorFeature::Mean { window } => crate::features::mean(tail(window)),
                SensorFeature::Std { window } => crate::features::std_dev(tail(window)),
                SensorFeature::Min { window } => {
                    tail(window).iter().copied().fold(f64::MAX, f64::min)
                }
                SensorFeature::Max { window } => {
                    tail(window).iter().copied().fold(f64::MIN, f64::max)
                }
                SensorFeature::Slope { window } => crate::features::slope(tail(window)),
                SensorFeature::Ewma { alpha } => {
                    // Closed form: weights α(1−α)^k, the first value carrying the remainder.
                    let n = seen.len();
                    let mut v = seen[0] * (1.0 - alpha).powi(n as i32 - 1);
                    for (k, x) in seen[1..].iter().enumerate() {
                        v += alpha * (1.0 - alpha).powi((n - 2 - k) as i32) * x;
                    }
                    v
                }
                SensorFeature::DriftFromStart { window } => {
                    let start = &seen[..seen.len().min(window)];
                    crate::features::mean(tail(window)) - crate::features::mean(start)
                }
            });
        }
    }
    if spec.age {
        out.push(ages[at]);
    }
    out
}

#[test]
fn the_live_predictor_matches_batch_features_and_predictions() {
    let history = fleet(10, 6, 6);
    let model = Arc::new(train::train(&history, &small_config(), &mut |_| {}).unwrap());
    let unit = &fleet(1, 7, 6).units[0];
    let pipeline = &model.pipeline;
    // Normalised kept sensors over the unit, computed from the fitted parts directly.
    let normalised: Vec<Vec<f64>> = pipeline
        .kept
        .iter()
        .map(|&s| {
            unit.observations
                .iter()
                .map(|o| {
                    let regime = pipeline.regimes.assign(&o.settings);
                    pipeline.scalers.normalise(regime, s, o.sensors[s])
                })
                .collect()
        })
        .collect();
    let ages: Vec<f64> = unit.observations.iter().map(|o| o.time - 1.0).collect();
    let batch = model.predict_history(&unit.observations).unwrap();
    let mut live = MachinePredictor::new(model.clone());
    assert_eq!(live.current(), None);
    for (i, o) in unit.observations.iter().enumerate() {
        live.observe(o.reading()).unwrap();
        let p = live.predict().unwrap();
        let want = reference_features(&model, &normalised, &ages, i);
        assert_eq!(live.features().len(), want.len());
        for (k, (got, want)) in live.features().iter().zip(&want).enumerate() {
            assert!(
                (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                "cycle {i}, feature {}: {got} vs {want}",
                model.meta.features[k]
            );
        }
        assert_eq!(p, batch[i]);
        assert_eq!(live.rul(), Some(p.value()));
        assert_eq!(live.failure_probability(), None);
    }
    // Memory does not grow with the history.
    let bytes = live.state_bytes();
    live.observe(Reading {
        time: 10_000.0,
        settings: &[0.0, 100.0],
        sensors: &[600.0, 40.0, 20.0],
    })
    .unwrap();
    live.predict();
    assert_eq!(live.state_bytes(), bytes);
    // A reading back in time or of the wrong shape is refused and changes nothing.
    let before = live.current();
    for bad in [
        Reading {
            time: 5.0,
            settings: &[0.0, 100.0],
            sensors: &[600.0, 40.0, 20.0],
        },
        Reading {
            time: 10_001.0,
            settings: &[0.0],
            sensors: &[600.0, 40.0, 20.0],
        },
        Reading {
            time: 10_001.0,
            settings: &[0.0, 100.0],
            sensors: &[600.0, f64::NAN, 20.0],
        },
    ] {
        assert!(matches!(live.observe(bad), Err(PredictError::Reading(_))));
    }
    assert_eq!(live.current(), before);

    // A model with the same pipeline takes over the state; another one is handed back.
    let retrained = Arc::new(Model {
        ensemble: model.ensemble[..1].to_vec(),
        ..(*model).clone()
    });
    let mut swapped = live.clone().with_model(retrained.clone()).unwrap();
    let p = swapped.predict().unwrap();
    assert_eq!(p, retrained.predict_features(live.features()));
    let other = Arc::new(train::train(&fleet(10, 12, 1), &small_config(), &mut |_| {}).unwrap());
    assert!(live.with_model(other).is_err());
}

#[test]
fn failure_models_give_calibrated_probabilities_that_rise_towards_failure() {
    let history = fleet(40, 8, 1);
    let config = TrainConfig {
        target: crate::Target::FailureWithin { horizon: 30.0 },
        ..small_config()
    };
    let model = train::train(&history, &config, &mut |_| {}).unwrap();
    assert!(model.calibration.is_some());
    let threshold = model.meta.report.decision_threshold.unwrap();
    assert!((0.0..=1.0).contains(&threshold));
    let unit = &fleet(1, 9, 1).units[0];
    let p = model.predict_history(&unit.observations).unwrap();
    let life = unit.observations.len();
    let early = p[..life / 3].iter().map(|p| p.value()).fold(0.0, f64::max);
    let last = p[life - 1].value();
    assert!(early < 0.2 && last > 0.8, "early {early}, last {last}");
    let mut live = MachinePredictor::new(Arc::new(model));
    for o in &unit.observations {
        live.observe(o.reading()).unwrap();
    }
    assert_eq!(live.failure_probability(), Some(last));
    assert_eq!(live.rul(), None);
}

#[test]
fn invalid_training_input_names_every_field() {
    let mut history = fleet(3, 10, 1);
    history.units[1].observations[4].sensors.pop();
    let mut config = small_config();
    config.search.folds = 1;
    config.boost.learning_rate = 0.0;
    config.features = FeatureSpec {
        sensor_features: vec![SensorFeature::Ewma { alpha: 2.0 }],
        ..FeatureSpec::run_to_failure()
    };
    let Err(PredictError::Invalid(problems)) = train::train(&history, &config, &mut |_| {}) else {
        panic!("accepted");
    };
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "units[1].observations[4]",
            "features.sensor_features[0]",
            "boost.learning_rate",
            "search.folds"
        ]
    );
}

#[test]
fn the_registry_format_is_the_files_format_and_version() {
    assert_eq!(
        crate::REGISTRY_FORMAT,
        format!("{}/{}", crate::model::FORMAT, crate::model::FORMAT_VERSION)
    );
    assert!(fb_core::model::validate_format("format", crate::REGISTRY_FORMAT).is_ok());
}

#[test]
fn the_condition_features_leave_out_what_counts_from_the_units_start() {
    let spec = crate::FeatureSpec::condition();
    assert!(!spec.age);
    assert!(
        spec.sensor_features
            .iter()
            .all(|f| !matches!(f, crate::features::SensorFeature::DriftFromStart { .. }))
    );
    assert_eq!(
        spec.sensor_features.len() + 1,
        crate::FeatureSpec::run_to_failure().sensor_features.len()
    );
}
