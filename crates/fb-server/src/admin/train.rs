//! `factorybrain model train`: a history in, a registered model out. Reading the file and
//! training run on the blocking pool; the model enters the registry (and, with `--promote`,
//! becomes active) through the same use case as everything else, recorded in the audit log
//! (`model.register`, `model.promote`).

use std::time::Instant;

use anyhow::Context;
use serde_json::json;

use fb_app::auth::SystemPrincipal;
use fb_app::models::Registry;
use fb_core::error::FieldError;
use fb_core::identity::Principal;
use fb_core::model::{ModelKind, StoredModel};
use fb_core::plant::validate_machine_type;
use fb_predict::data::History;
use fb_predict::{FeatureSpec, LiveSpec, TrainConfig};

use super::{CommandAudit, describe, println_out};
use crate::cli::{FeatureSet, HistoryFormat, ModelTrainArgs};
use crate::wire::ModelRegistry;

/// The machine type C-MAPSS engines are registered for unless told otherwise.
const CMAPSS_MACHINE_TYPE: &str = "turbofan";
const DEFAULT_HORIZON: f64 = 30.0;
const DEFAULT_CAP: f64 = 125.0;

/// What the options say, checked: every problem names its flag.
struct Plan {
    kind: ModelKind,
    machine_type: String,
    config: TrainConfig,
    secs_per_unit: f64,
}

fn plan(args: &ModelTrainArgs) -> Result<Plan, Vec<FieldError>> {
    let mut problems = Vec::new();
    let kind = ModelKind::from(args.kind);
    let machine_type = match (&args.machine_type, args.format) {
        (Some(t), _) => t.trim().to_owned(),
        (None, HistoryFormat::Cmapss) => CMAPSS_MACHINE_TYPE.to_owned(),
        (None, HistoryFormat::Csv) => {
            problems.push(FieldError::new(
                "--machine-type",
                "is required with --format csv: the machines' type the model serves",
            ));
            String::new()
        }
    };
    if !machine_type.is_empty() {
        problems.extend(
            validate_machine_type("--machine-type", &machine_type)
                .into_iter()
                .map(|e| FieldError::new("--machine-type", e.reason)),
        );
    }
    let positive = |value: f64| value > 0.0 && value.is_finite();
    let target = match kind {
        ModelKind::Failure => {
            if args.cap.is_some() {
                problems.push(FieldError::new("--cap", "is for --kind rul"));
            }
            let horizon = args.horizon.unwrap_or(DEFAULT_HORIZON);
            if !positive(horizon) {
                problems.push(FieldError::new(
                    "--horizon",
                    "must be a positive number of time units",
                ));
            }
            TrainConfig::failure(horizon)
        }
        ModelKind::Rul => {
            if args.horizon.is_some() {
                problems.push(FieldError::new("--horizon", "is for --kind failure"));
            }
            let cap = args.cap.unwrap_or(DEFAULT_CAP);
            if !positive(cap) {
                problems.push(FieldError::new(
                    "--cap",
                    "must be a positive number of time units",
                ));
            }
            TrainConfig::rul(cap)
        }
    };
    if !positive(args.time_unit_secs) {
        problems.push(FieldError::new(
            "--time-unit-secs",
            "must be a positive number of seconds",
        ));
    }
    if args.format == HistoryFormat::Cmapss
        && !(args.settings.is_empty() && args.exclude.is_empty())
    {
        problems.push(FieldError::new(
            "--settings",
            "--settings and --exclude are for --format csv (C-MAPSS has its own columns)",
        ));
    }
    let features = match args.features.unwrap_or(match args.format {
        HistoryFormat::Csv => FeatureSet::Condition,
        HistoryFormat::Cmapss => FeatureSet::RunToFailure,
    }) {
        FeatureSet::Condition => FeatureSpec::condition(),
        FeatureSet::RunToFailure => FeatureSpec::run_to_failure(),
    };
    let config = TrainConfig {
        features,
        ..crate::eval::search_config(target, &args.search)
    };
    if problems.is_empty() {
        Ok(Plan {
            kind,
            machine_type,
            config,
            secs_per_unit: args.time_unit_secs,
        })
    } else {
        Err(problems)
    }
}

fn invalid(problems: Vec<FieldError>) -> anyhow::Error {
    describe(fb_app::models::Error::Validation(problems))
}

fn read_history(args: &ModelTrainArgs) -> anyhow::Result<History> {
    match args.format {
        HistoryFormat::Cmapss => fb_eval::cmapss::read_units(&args.data, true)
            .with_context(|| format!("cannot read the C-MAPSS file {}", args.data.display())),
        HistoryFormat::Csv => {
            let separator = fb_eval::csv::parse_separator(&args.sep)
                .map_err(|e| invalid(vec![FieldError::new("--sep", e)]))?;
            let options = fb_eval::history::HistoryCsv {
                settings: args.settings.clone(),
                exclude: args.exclude.clone(),
                separator,
                ..fb_eval::history::HistoryCsv::default()
            };
            fb_eval::history::read(&args.data, &options)
                .with_context(|| format!("cannot read the history {}", args.data.display()))
        }
    }
}

pub(super) async fn train(
    registry: &ModelRegistry,
    audit: &CommandAudit,
    args: ModelTrainArgs,
) -> anyhow::Result<()> {
    let plan = plan(&args).map_err(invalid)?;
    let args = std::sync::Arc::new(args);
    let history = {
        let args = args.clone();
        tokio::task::spawn_blocking(move || read_history(&args)).await??
    };
    let sample_secs = match args.sample_secs {
        Some(secs) => secs,
        // To the millisecond: times written in fractions of hours carry rounding noise.
        None => {
            let step = fb_eval::history::median_step(&history).unwrap_or(1.0);
            (step * plan.secs_per_unit * 1000.0).round() / 1000.0
        }
    };
    let live = LiveSpec {
        sample_secs,
        secs_per_unit: plan.secs_per_unit,
    };
    if let Some(problem) = live.problems().into_iter().next() {
        let flag = match problem.field.as_str() {
            "sample_secs" => "--sample-secs",
            _ => "--time-unit-secs",
        };
        return Err(invalid(vec![FieldError::new(flag, problem.reason)]));
    }
    let label = format!("{} {}", plan.kind, plan.machine_type);
    let config = plan.config.clone();
    let (model, seconds) = tokio::task::spawn_blocking(move || {
        let bar = crate::eval::ProgressBar::new();
        let started = Instant::now();
        let model = fb_predict::train(&history, &config, &mut |p| bar.update(&label, p));
        (model, started.elapsed().as_secs_f64())
    })
    .await?;
    let mut model = model.map_err(describe)?;
    model.meta.training_seconds = Some(seconds);
    let payload = model.to_json().map_err(describe)?.into_bytes();
    let draft = fb_app::prediction::draft(&model, &plan.machine_type, &live, args.note.clone());
    let system = Principal::system();
    let registered = registry.register(&system, draft, payload).await;
    audit
        .record(
            "model.register",
            registered.as_ref().ok().map(|m| format!("model:{}", m.id)),
            &registered,
            &details(registered.as_ref().ok()),
        )
        .await;
    let mut stored = registered.map_err(describe)?;
    if args.promote {
        let promoted = registry.promote(&system, stored.id).await;
        audit
            .record(
                "model.promote",
                Some(format!("model:{}", stored.id)),
                &promoted,
                &details(promoted.as_ref().ok()),
            )
            .await;
        stored = promoted.map_err(describe)?;
    }
    print(&stored, &model, seconds, args.search.json)
}

fn details(model: Option<&StoredModel>) -> Vec<(&'static str, String)> {
    model.map_or_else(Vec::new, |m| {
        vec![
            ("kind", m.kind.as_str().to_owned()),
            ("machine_type", m.machine_type.clone()),
            ("version", m.version.to_string()),
        ]
    })
}

fn print(
    stored: &StoredModel,
    model: &fb_predict::Model,
    seconds: f64,
    json: bool,
) -> anyhow::Result<()> {
    let meta = &model.meta;
    if json {
        let out = json!({
            "id": stored.id.to_string(),
            "kind": stored.kind.as_str(),
            "machine_type": stored.machine_type,
            "version": stored.version,
            "active": stored.active,
            "format": stored.format,
            "data_hash": stored.data_hash,
            "units": meta.units,
            "observations": meta.observations,
            "training_seconds": seconds,
            "features": stored.features.len(),
            "metrics": stored.metrics,
            "params": stored.params,
        });
        println_out(&serde_json::to_string(&out)?);
        return Ok(());
    }
    let state = if stored.active {
        "active; running servers switch to it within 5 seconds".to_owned()
    } else {
        format!(
            "not active (make it so with `factorybrain model promote {}`)",
            stored.id
        )
    };
    println_out(&format!(
        "registered {} model for {}: version {} (id {}), {state}",
        stored.kind, stored.machine_type, stored.version, stored.id
    ));
    let report = &meta.report;
    println_out(&format!(
        "  trained on {} units, {} observations ({} labelled) in {:.1} s: {} parameter set(s) × {} folds by unit, {} trees, {} regime(s), sensors kept: {}",
        meta.units,
        meta.observations,
        report.labelled_rows,
        seconds,
        report.candidates.len(),
        report.folds,
        report.trees,
        report.regimes,
        report.sensors_kept.join(", ")
    ));
    // The out-of-fold figures; counts and the in-sample `train.*` ones are in --json.
    const COUNTS: [&str; 6] = [
        "observations",
        "positives",
        "rows",
        "training_seconds",
        "trees",
        "units",
    ];
    let shown: Vec<String> = stored
        .metrics
        .iter()
        .filter(|(name, _)| !name.contains('.') && !COUNTS.contains(&name.as_str()))
        .map(|(name, value)| format!("{name}={}", round(*value)))
        .collect();
    println_out(&format!(
        "  validation (out-of-fold, by unit): {}",
        shown.join(" ")
    ));
    println_out(&format!(
        "  live: one observation per {} s, one time unit = {} s",
        stored.params["live.sample_secs"], stored.params["live.secs_per_unit"]
    ));
    Ok(())
}

fn round(value: f64) -> f64 {
    (value * 1e4).round() / 1e4
}
