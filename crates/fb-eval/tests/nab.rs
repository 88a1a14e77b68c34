//! NAB on the copy in ../shared/datasets/nab: the scorer reproduces NAB's published board from
//! the detectors' per-row outputs, and the product's detector scores at the top of it.

// Test code: a failed expectation should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use fb_detect::nab::{self, Profile};
use fb_eval::nab::{Warmup, evaluate, published_outputs, read_corpus};

/// The data sets sit beside the repository (`../shared`); FB_NAB_DIR points elsewhere.
fn nab_dir() -> PathBuf {
    std::env::var_os("FB_NAB_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/nab"),
        PathBuf::from,
    )
}

fn assert_scores(detector: &str, expected: [f64; 3]) {
    let files = published_outputs(&nab_dir(), detector).unwrap();
    assert_eq!(files.len(), 58);
    let scores = nab::score_corpus(&files, &Profile::nab_v1_1()).unwrap();
    for (profile, want) in scores.profiles.iter().zip(expected) {
        assert!(
            (profile.normalized - want).abs() <= 0.1,
            "{detector} {}: got {:.3}, NAB publishes {want}",
            profile.profile.name,
            profile.normalized
        );
    }
}

#[test]
fn numenta_htm_scores_as_published() {
    assert_scores("numenta", [70.10, 63.12, 74.32]);
}

#[test]
fn windowed_gaussian_scores_as_published() {
    assert_scores("windowedGaussian", [39.65, 20.87, 47.41]);
}

/// At the threshold NAB's own optimiser picked (`config/thresholds.json`), the raw total matches
/// NAB's table to the digits it prints.
#[test]
fn numenta_raw_score_at_nabs_threshold_matches_its_table() {
    let files = published_outputs(&nab_dir(), "numenta").unwrap();
    let prepared = nab::prepare(&files).unwrap();
    let low_fp = nab::score_at_threshold(
        &prepared,
        &Profile::reward_low_fp_rate(),
        0.575_195_503_234_863_6,
    )
    .unwrap();
    assert!(
        (low_fp.raw - 30.431_072_517_1).abs() < 1e-6,
        "{}",
        low_fp.raw
    );
    let standard =
        nab::score_at_threshold(&prepared, &Profile::standard(), 0.542_187_690_734_863_4).unwrap();
    assert!(
        (standard.raw - 46.634_450_197_1).abs() < 1e-6,
        "{}",
        standard.raw
    );
}

/// The product's detector, one setting for every file, with NAB's probationary period as its
/// warm-up: at least Numenta HTM's 70.1 on the standard profile.
#[test]
fn the_product_detector_scores_at_least_70_on_nab() {
    let corpus = read_corpus(&nab_dir()).unwrap();
    assert_eq!(corpus.len(), 58);
    let (report, _) = evaluate(&corpus, Warmup::Probationary).unwrap();
    assert!(report.standard >= 70.0, "{report:?}");
    assert!(report.reward_low_fn_rate >= 74.0, "{report:?}");
}
