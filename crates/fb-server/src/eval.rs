//! `factorybrain eval`: the product's detectors scored on public benchmarks and on labelled
//! histories (B5), and its failure predictors on C-MAPSS and AI4I 2020 (B4). Reads files,
//! needs no settings or store.

use std::path::Path;

use anyhow::Context;

use fb_eval::csv::{CsvOptions, Figures, parse_separator, read_histories};
use fb_eval::nab::{Warmup, evaluate, read_corpus};

use crate::cli::{EvalAi4iArgs, EvalCmapssArgs, EvalCsvArgs, SearchArgs};

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

/// The RUL configuration every subset gets (no per-file settings), with the search's budget.
pub(crate) fn search_config(
    mut config: fb_predict::TrainConfig,
    args: &SearchArgs,
) -> fb_predict::TrainConfig {
    config.search.candidates = args.candidates;
    config.search.folds = args.folds;
    config.search.threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    config.seed = args.seed;
    config
}

/// A one-line progress bar on stderr while training, when stderr is a terminal.
pub(crate) struct ProgressBar {
    draw: bool,
}

impl ProgressBar {
    pub(crate) fn new() -> Self {
        use std::io::IsTerminal;
        Self {
            draw: std::io::stderr().is_terminal(),
        }
    }

    #[allow(clippy::print_stderr)] // The bar is the command's interface while it trains.
    pub(crate) fn update(&self, label: &str, progress: fb_predict::Progress) {
        if !self.draw {
            return;
        }
        const WIDTH: usize = 30;
        let filled = WIDTH * progress.done / progress.total.max(1);
        let stage = match progress.stage {
            fb_predict::train::Stage::Features => "features".to_owned(),
            fb_predict::train::Stage::Fit { candidate, fold } => {
                format!("candidate {} fold {}", candidate + 1, fold + 1)
            }
        };
        eprint!(
            "\r{label} [{}{}] {}/{} {stage:<24}",
            "#".repeat(filled),
            ".".repeat(WIDTH - filled),
            progress.done,
            progress.total
        );
        if progress.done == progress.total {
            eprintln!();
        }
    }
}

/// Trains on a C-MAPSS subset's training file, scores its test file, prints the figures.
#[allow(clippy::print_stdout)] // The command's output is its interface.
pub(crate) fn cmapss(args: &EvalCmapssArgs) -> anyhow::Result<()> {
    let subset = fb_eval::cmapss::read_subset(&args.data, &args.subset).with_context(|| {
        format!(
            "cannot read C-MAPSS {} in {}",
            args.subset,
            args.data.display()
        )
    })?;
    let config = search_config(fb_predict::TrainConfig::rul(125.0), &args.search);
    let bar = ProgressBar::new();
    let (report, model) =
        fb_eval::cmapss::evaluate(&subset, &config, &mut |p| bar.update(&subset.name, p))?;
    if let Some(path) = &args.save_model {
        std::fs::write(path, model.to_json()?)
            .with_context(|| format!("cannot write the model to {}", path.display()))?;
    }
    if args.search.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    let p = &report.chosen_params;
    println!(
        "C-MAPSS {}: trained on {} engines, scored the last cycle of {} test engines",
        report.subset, report.train_units, report.test_units
    );
    println!(
        "  operating regimes found: {}; sensors kept: {}",
        report.regimes,
        report.sensors_kept.join(", ")
    );
    println!(
        "  RMSE                   {:7.2}  (against the published RUL)",
        report.rmse
    );
    println!(
        "  RMSE, RUL capped 125   {:7.2}  (the convention of most published tables)",
        report.rmse_capped
    );
    println!("  PHM08 score            {:7.1}", report.phm08_score);
    println!("  MAE                    {:7.2}", report.mae);
    println!(
        "  cross-validated RMSE   {:7.2}  (training file, by engine)",
        report.cv_rmse
    );
    println!(
        "  model: {} trees; chosen: {} leaves, depth {}, {} rows per leaf, features {}, rows {}, L2 {}",
        report.trees,
        p.num_leaves,
        p.max_depth,
        p.min_data_in_leaf,
        p.feature_fraction,
        p.row_fraction,
        p.lambda_l2
    );
    println!(
        "  trained in {:.1} s; live: {:.2} µs per reading, {:.1} µs per prediction, {} bytes per machine; model file {} KiB",
        report.train_seconds,
        report.observe_ns / 1000.0,
        report.predict_ns / 1000.0,
        report.bytes_per_machine,
        report.model_bytes / 1024
    );
    Ok(())
}

/// Trains a failure model per AI4I label and prints precision, recall and F1 on the test part.
#[allow(clippy::print_stdout)] // The command's output is its interface.
pub(crate) fn ai4i(args: &EvalAi4iArgs) -> anyhow::Result<()> {
    let operations = fb_eval::ai4i::read(&args.data)
        .with_context(|| format!("cannot read AI4I 2020 from {}", args.data.display()))?;
    let config = search_config(fb_eval::ai4i::config(), &args.search);
    let bar = ProgressBar::new();
    let (report, _) = fb_eval::ai4i::evaluate(
        &operations,
        fb_eval::ai4i::Split::default(),
        &config,
        &mut |label, p| bar.update(fb_eval::ai4i::LABELS[label], p),
    )?;
    if args.search.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "AI4I 2020: {} operations; the first {:.0} % of every {} train ({}), the rest test",
        report.operations,
        100.0 * report.split.train_share,
        report.split.block,
        report.train_operations
    );
    println!(
        "  {:<16} {:>9} {:>9} {:>9} {:>6} {:>6} {:>9} {:>7}",
        "label", "failures", "precision", "recall", "F1", "TP", "threshold", "train s"
    );
    for m in &report.modes {
        println!(
            "  {:<16} {:>9} {:>9.3} {:>9.3} {:>6.3} {:>6} {:>9.3} {:>7.1}",
            m.label,
            m.test_positives,
            m.test.precision,
            m.test.recall,
            m.test.f1,
            m.test.true_positives,
            m.threshold,
            m.train_seconds
        );
    }
    Ok(())
}
