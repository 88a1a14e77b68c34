//! `factorybrain eval`: the product's detectors scored on public benchmarks and on labelled
//! histories (B5). Reads files, needs no settings or store.

use std::path::Path;

use anyhow::Context;

use fb_eval::csv::{CsvOptions, Figures, parse_separator, read_histories};
use fb_eval::nab::{Warmup, evaluate, read_corpus};

use crate::cli::EvalCsvArgs;

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

/// Scores labelled CSV histories and prints the point-wise and event-wise figures, or one JSON
/// object with `--json`.
#[allow(clippy::print_stdout)] // The command's output is its interface.
pub(crate) fn csv(args: &EvalCsvArgs) -> anyhow::Result<()> {
    let separator = parse_separator(&args.sep).map_err(|e| anyhow::anyhow!("--sep: {e}"))?;
    let opts = CsvOptions {
        separator,
        exclude: args.exclude.clone(),
        ..CsvOptions::new(&args.time_column, &args.label_column)
    };
    let histories = read_histories(&args.files, &opts)?;
    let report = fb_eval::csv::evaluate(&histories, args.train_rows)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let plural = |n: usize, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
    println!(
        "{}, {} rows, {} scored (the first rows of each file only train the detectors)",
        plural(report.files, "file"),
        report.rows,
        report.scored_rows
    );
    for f in &report.per_file {
        let c = &f.figures.counts;
        println!(
            "  {}: {} rows, {} train; {}: {}",
            f.path,
            f.rows,
            f.train_rows,
            plural(f.sensors.len(), "sensor"),
            f.sensors.join(", ")
        );
        if !f.ignored_columns.is_empty() {
            println!(
                "    ignored (not numeric): {}",
                f.ignored_columns.join(", ")
            );
        }
        if report.files > 1 {
            println!(
                "    TP {}  FP {}  TN {}  FN {}; events {}, detected {}; false-alarm episodes {}",
                c.tp, c.fp, c.tn, c.fn_, c.events, c.detected_events, c.false_alarm_episodes
            );
        }
    }
    print_figures(&report.figures, report.positive_rows, report.flagged_rows);
    println!(
        "  detector: {:.0} ns per reading on one core, {} bytes per machine",
        report.ns_per_reading, report.bytes_per_machine
    );
    Ok(())
}

#[allow(clippy::print_stdout)]
fn print_figures(f: &Figures, positive: usize, flagged: usize) {
    let c = &f.counts;
    let number = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.3}"));
    let percent =
        |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{:.2} %", 100.0 * v));
    println!(
        "  point-wise over the scored rows ({positive} labelled anomalous, {flagged} flagged):"
    );
    println!("    precision          {}", number(f.precision));
    println!("    recall             {}", number(f.recall));
    println!("    F1                 {}", number(f.f1));
    println!("    false-alarm rate   {}", percent(f.false_alarm_rate));
    println!("    missed-alarm rate  {}", percent(f.missed_alarm_rate));
    println!("    TP {}  FP {}  TN {}  FN {}", c.tp, c.fp, c.tn, c.fn_);
    let share = if c.events == 0 {
        String::new()
    } else {
        format!(
            " ({:.1} %)",
            100.0 * c.detected_events as f64 / c.events as f64
        )
    };
    println!(
        "  events: {} labelled, {} detected{share}; {} false-alarm episodes",
        c.events, c.detected_events, c.false_alarm_episodes
    );
}
