//! `factorybrain eval`: the product's detectors scored on public benchmarks and on labelled
//! histories (B5). Reads files, needs no settings or store.

use std::path::Path;

use anyhow::Context;

use fb_eval::nab::{Warmup, evaluate, read_corpus};

/// Runs NAB and prints its three normalised scores, or one JSON object with `json`.
#[allow(clippy::print_stdout)] // The command's output is its interface.
pub(crate) fn nab(data: &Path, warmup: Option<usize>, json: bool) -> anyhow::Result<()> {
    let corpus = read_corpus(data).with_context(|| {
        format!(
            "cannot read the NAB corpus in {} (it needs data/ and labels/combined_windows.json)",
            data.display()
        )
    })?;
    anyhow::ensure!(!corpus.is_empty(), "the NAB label file names no data files");
    let warmup = warmup.map_or(Warmup::Probationary, Warmup::Fixed);
    let (report, _) = evaluate(&corpus, warmup)?;
    if json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let setting = match warmup {
        Warmup::Probationary => {
            "warm-up: each file's probationary period (15 %, at most 750 points)".to_owned()
        }
        Warmup::Fixed(n) => format!("warm-up: {n} points"),
    };
    println!(
        "NAB v1.1: {} files, {} points, one setting for every file ({setting})",
        report.files, report.points
    );
    for (name, score) in [
        ("standard", report.standard),
        ("reward_low_FP_rate", report.reward_low_fp_rate),
        ("reward_low_FN_rate", report.reward_low_fn_rate),
    ] {
        let threshold = report.thresholds.get(name).copied().unwrap_or(f64::NAN);
        println!("  {name:<20} {score:6.2}   (threshold {threshold:.4})");
    }
    println!(
        "  detector: {:.0} ns per point on one core, {} bytes per sensor",
        report.ns_per_point, report.bytes_per_sensor
    );
    Ok(())
}
