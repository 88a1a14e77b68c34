//! Failure prediction on the copies in ../shared/datasets: C-MAPSS FD001 (RUL) and AI4I 2020
//! (failure modes), trained and scored as `factorybrain eval cmapss` / `eval ai4i` do.

// Test code: a failed expectation should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::PathBuf;

use fb_eval::{ai4i, cmapss};
use fb_predict::gbdt::BoostParams;
use fb_predict::metrics;
use fb_predict::train::SearchSpec;

fn datasets() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets")
}

/// The CLI's search (8 candidates × 5 folds, about 2 minutes) picks these parameters on
/// FD001's training file, by-unit cross-validation only; the test trains them directly
/// (1 candidate × 5 folds) to stay fast. Same features, target and regimes as the CLI.
fn fd001_config() -> fb_predict::TrainConfig {
    let mut config = fb_predict::TrainConfig::rul(125.0);
    config.boost = BoostParams {
        num_leaves: 7,
        max_depth: 8,
        min_data_in_leaf: 10,
        feature_fraction: 0.7,
        row_fraction: 0.8,
        lambda_l2: 5.0,
        ..BoostParams::default()
    };
    config.search = SearchSpec {
        candidates: 1,
        folds: 5,
        threads: 2,
    };
    config
}

#[test]
fn fd001_rmse_beats_the_dcnn_of_li_et_al() {
    let subset = cmapss::read_subset(&datasets().join("cmapss"), "FD001").unwrap();
    assert_eq!(subset.train.units.len(), 100);
    assert_eq!(subset.train.observations(), 20_631);
    assert_eq!(subset.test.units.len(), 100);
    let (report, model) = cmapss::evaluate(&subset, &fd001_config(), &mut |_| {}).unwrap();
    eprintln!(
        "FD001: RMSE {:.2} (capped {:.2}), PHM08 {:.1}, trained in {:.1} s, observe {:.0} ns, predict {:.0} ns",
        report.rmse,
        report.rmse_capped,
        report.phm08_score,
        report.train_seconds,
        report.observe_ns,
        report.predict_ns
    );
    // One operating condition: a single regime, and the sensors the literature keeps.
    assert_eq!(report.regimes, 1);
    assert_eq!(report.sensors_kept.len(), 14);
    assert!(report.rmse <= 12.5, "{report:?}");
    // The PHM08 score recomputed from the predictions and the published RUL.
    let score = metrics::phm08_score(&report.predictions, &subset.test_rul);
    assert!((score - report.phm08_score).abs() < 1e-9);
    assert!(report.phm08_score < 400.0, "{}", report.phm08_score);
    // The model file round-trips and predicts the same for a test unit.
    let loaded = fb_predict::Model::from_json(&model.to_json().unwrap()).unwrap();
    let unit = &subset.test.units[0].observations;
    assert_eq!(
        loaded.predict_last(unit).unwrap(),
        model.predict_last(unit).unwrap()
    );
}

#[test]
fn ai4i_failure_modes_are_predicted_from_physical_features() {
    let operations = ai4i::read(&datasets().join("ai4i2020/ai4i2020.csv")).unwrap();
    assert_eq!(operations.len(), 10_000);
    let counts: Vec<usize> = (0..6)
        .map(|l| operations.iter().filter(|o| o.labels[l]).count())
        .collect();
    assert_eq!(counts, [339, 46, 115, 95, 98, 19]);
    let mut config = ai4i::config();
    config.search.candidates = 2;
    let (report, _) =
        ai4i::evaluate(&operations, ai4i::Split::default(), &config, &mut |_, _| {}).unwrap();
    let f1 = |label: &str| {
        let mode = report.modes.iter().find(|m| m.label == label).unwrap();
        eprintln!("{label}: {:?}", mode.test);
        assert!(
            mode.test_positives > 0,
            "{label} has no failures in the test part"
        );
        mode.test.f1
    };
    // Heat dissipation, power and overstrain are deterministic functions of the derived
    // quantities (temperature difference and speed, power, strain and quality): a model given
    // them finds each limit; F1 0.85 leaves room for the few operations on a boundary.
    for mode in ["HDF", "PWF", "OSF"] {
        assert!(f1(mode) >= 0.85, "{mode}");
    }
    // "Machine failure" includes tool-wear failures (at a random wear between 200 and 240
    // minutes) and random failures (0.1 % of operations, whatever the readings), which no
    // model can foresee: they are 23 % of the failures, so the bar is lower.
    assert!(f1("Machine failure") >= 0.75);
}
