//! `eval csv` on two small fixture files (tests/data): semicolon-separated, a BOM and quoted
//! names, ISO times without offset, a text column, a missing cell and a second label column.

// Test code: a failed expectation should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use fb_eval::csv::{CsvOptions, evaluate, read_histories};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn options() -> CsvOptions {
    let mut opts = CsvOptions::new("Time", "Label");
    opts.separator = b';';
    opts.exclude = vec!["OtherLabel".into()];
    opts
}

#[test]
fn two_files_are_two_machines_scored_together() {
    let files = [fixture("press_a.csv"), fixture("press_b.csv")];
    let histories = read_histories(&files, &options()).unwrap();
    for h in &histories {
        assert_eq!(h.sensors, ["Pressure [bar]", "Flow [l/min]"]);
        assert_eq!(h.ignored_columns, ["Batch"]);
        assert_eq!(h.rows(), 60);
    }
    assert!(histories[0].row(17)[0].is_nan(), "line 19 has no pressure");
    let report = evaluate(&histories, Some(20)).unwrap();
    assert_eq!(
        (report.files, report.rows, report.scored_rows),
        (2, 120, 80)
    );
    assert_eq!(report.ignored_columns, ["Batch"]);
    assert_eq!(report.positive_rows, 2);
    // The pressure step of 30 standard deviations in press_a is found.
    assert_eq!(report.figures.counts.events, 1);
    assert_eq!(report.figures.counts.detected_events, 1);
    assert_eq!(report.per_file[1].figures.counts.events, 0);
    assert_eq!(report.per_file[1].figures.recall, None);
    let json = serde_json::to_value(&report).unwrap();
    for key in [
        "tp",
        "fp",
        "tn",
        "fn",
        "precision",
        "recall",
        "f1",
        "false_alarm_rate",
        "missed_alarm_rate",
        "events",
        "detected_events",
        "false_alarm_episodes",
        "ns_per_reading",
        "bytes_per_machine",
    ] {
        assert!(json.get(key).is_some(), "{key} in {json}");
    }
    assert_eq!(json["per_file"][0]["train_rows"], 20);
}

#[test]
fn unknown_exclusions_and_unreadable_files_are_errors() {
    let mut opts = options();
    opts.exclude.push("OtherLable".into());
    let e = read_histories(&[fixture("press_a.csv")], &opts)
        .unwrap_err()
        .to_string();
    assert_eq!(e, "--exclude names no column of any file: OtherLable");
    let e = read_histories(&[fixture("missing.csv")], &options())
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("cannot read ") && e.contains("missing.csv"),
        "{e}"
    );
    let e = read_histories(&[fixture("press_a.csv")], &CsvOptions::new("Time", "Label"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("press_a.csv: line 1: no time column \"Time\""),
        "{e}"
    );
}
