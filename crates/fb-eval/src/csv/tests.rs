use std::fmt::Write as _;

use super::*;

fn read(text: &str) -> Result<History, EvalError> {
    read_with(text, &CsvOptions::new("time", "label"))
}

fn read_with(text: &str, opts: &CsvOptions) -> Result<History, EvalError> {
    read_history_from(text.as_bytes(), Path::new("plant.csv"), opts)
}

fn error(text: &str) -> String {
    read(text).expect_err("refused").to_string()
}

#[test]
fn header_names_lose_bom_quotes_and_spaces_and_text_columns_are_ignored() {
    let h = read(
        "\u{feff}\"time\" , label,\"Air temperature [K]\",Type, speed ,id,blank\n\
         0,0,300.1,L,1500,a1,\n\
         1,1,300.2,M,,a2,\n\
         2,false,300.3,L,1490,3,\n",
    )
    .unwrap();
    assert_eq!(h.sensors, ["Air temperature [K]", "speed"]);
    assert_eq!(h.ignored_columns, ["Type", "id", "blank"]);
    assert_eq!(h.timestamps, [0, 1_000_000, 2_000_000]);
    assert_eq!(h.labels, [false, true, false]);
    assert_eq!(h.row(0), [300.1, 1500.0]);
    assert!(h.row(1)[1].is_nan(), "an empty cell is a missing reading");
}

#[test]
fn separator_and_exclusions_apply() {
    let mut opts = CsvOptions::new("ts", "failure");
    opts.separator = b';';
    opts.exclude = vec!["TWF".into()];
    let h = read_with(
        "ts;failure;torque;TWF;code\n\
         2024-05-01T10:00:00Z;0;40.5;0;1,5\n\
         2024-05-01 10:00:10;TRUE;41;1;2\n",
        &opts,
    )
    .unwrap();
    assert_eq!(h.sensors, ["torque"]);
    assert_eq!(h.excluded_columns, ["TWF"]);
    assert_eq!(h.ignored_columns, ["code"], "1,5 is not a number");
    assert_eq!(h.timestamps[1] - h.timestamps[0], 10_000_000);
    assert_eq!(h.labels, [false, true]);
}

#[test]
fn times_are_rfc3339_iso_unix_or_seconds_from_the_start() {
    let t0 = 1_714_557_600_000_000; // 2024-05-01T10:00:00Z
    assert_eq!(parse_time("2024-05-01T10:00:00Z"), Some(t0));
    assert_eq!(parse_time("2024-05-01T12:00:00+02:00"), Some(t0));
    assert_eq!(parse_time("2024-05-01 10:00:00"), Some(t0));
    assert_eq!(parse_time("2024-05-01T10:00"), Some(t0));
    assert_eq!(parse_time("2024-05-01 10:00:00.5"), Some(t0 + 500_000));
    assert_eq!(parse_time("2024-05-01"), Some(t0 - 10 * 3_600_000_000));
    assert_eq!(parse_time("1714557600"), Some(t0));
    assert_eq!(parse_time("1714557600000"), Some(t0), "milliseconds");
    assert_eq!(parse_time("42"), Some(42_000_000), "a row index");
    assert_eq!(parse_time("0.25"), Some(250_000));
    for bad in ["", "yesterday", "2024-13-01", "NaN", "2024-05-01T25:00:00"] {
        assert_eq!(parse_time(bad), None, "{bad}");
    }
}

#[test]
fn labels_separators_and_default_train_rows() {
    for (text, want) in [
        ("1", Some(true)),
        ("true", Some(true)),
        ("True", Some(true)),
        ("0", Some(false)),
        ("FALSE", Some(false)),
        ("yes", None),
        ("2", None),
        ("", None),
    ] {
        assert_eq!(parse_label(text), want, "{text:?}");
    }
    assert_eq!(parse_separator(";"), Ok(b';'));
    assert_eq!(parse_separator("\\t"), Ok(b'\t'));
    assert_eq!(parse_separator("\t"), Ok(b'\t'));
    assert!(
        parse_separator(";;")
            .unwrap_err()
            .contains("one ASCII character")
    );
    assert_eq!(default_train_rows(30), 10);
    assert_eq!(default_train_rows(1000), 150);
    assert_eq!(default_train_rows(4032), 604);
    assert_eq!(default_train_rows(10_000), 750);
}

#[test]
fn errors_name_the_file_line_and_column() {
    let e = error("time,value\n0,1\n");
    assert!(
        e.starts_with("plant.csv: line 1: no label column \"label\"; the columns are: time, value"),
        "{e}"
    );
    let e = read_with("t,label,v\n0,0,1\n", &CsvOptions::new("time", "label"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 1: no time column \"time\""), "{e}");
    let e = error("time,label,v\n0,0,1\n1,0\n");
    assert_eq!(e, "plant.csv: line 3: 2 fields, but the header has 3");
    let e = error("time,label,v\n0,0,1\n1,yes,2\n");
    assert_eq!(
        e,
        "plant.csv: line 3, column \"label\": label \"yes\" is not 0, 1, true or false"
    );
    let e = error("time,label,v\n0,0,1\n1,,2\n");
    assert!(e.contains("line 3, column \"label\": label \"\""), "{e}");
    let e = error("time,label,v\n5,0,1\n4,0,2\n");
    assert_eq!(
        e,
        "plant.csv: line 3, column \"time\": \"4\" is earlier than the row before; rows must be \
         in time order"
    );
    let e = error("time,label,v\n0,0,1\nnoon,0,2\n");
    assert!(
        e.starts_with("plant.csv: line 3, column \"time\": \"noon\" is not a time"),
        "{e}"
    );
    let e = error("time,label,v\n");
    assert_eq!(e, "plant.csv: no data rows after the header");
    let e = error("time,label,name\n0,0,pump\n");
    assert!(e.contains("no sensor columns") && e.contains("name"), "{e}");
}

#[test]
fn equal_times_are_in_order() {
    let h = read("time,label,v\n1,0,1\n1,0,2\n").unwrap();
    assert_eq!(h.rows(), 2);
}

#[test]
fn point_and_event_counts() {
    let l = [
        false, true, true, false, false, true, false, false, false, true,
    ];
    let f = [
        true, false, true, false, true, false, false, true, true, false,
    ];
    let t = tally(&l, &f);
    assert_eq!((t.tp, t.fp, t.tn, t.fn_), (1, 4, 2, 3));
    // Events: rows 1-2 (found at 2), row 5 (missed), row 9 (missed).
    assert_eq!((t.events, t.detected_events), (3, 1));
    // Flagged runs: 0 (false), 2 (on an event), 4 (false), 7-8 (false).
    assert_eq!(t.false_alarm_episodes, 3);
    let fig = Figures::from(t);
    assert_eq!(fig.precision, Some(0.2));
    assert_eq!(fig.recall, Some(0.25));
    assert_eq!(fig.f1, Some(2.0 / 9.0));
    assert_eq!(fig.false_alarm_rate, Some(4.0 / 6.0));
    assert_eq!(fig.missed_alarm_rate, Some(0.75));

    let calm = Figures::from(tally(&[false; 4], &[false; 4]));
    assert_eq!((calm.precision, calm.recall, calm.f1), (None, None, None));
    assert_eq!(calm.false_alarm_rate, Some(0.0));
    assert_eq!(calm.missed_alarm_rate, None);
    let json = serde_json::to_value(calm).unwrap();
    assert!(json["precision"].is_null() && json["fn"] == 0, "{json}");

    let mut sum = tally(&[true], &[true]);
    sum += tally(&[true], &[false]);
    assert_eq!(
        (sum.tp, sum.fn_, sum.events, sum.detected_events),
        (1, 1, 2, 1)
    );
}

/// Deterministic noise, about N(0, 1).
struct Noise(u64);

impl Noise {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        (0..12).map(|_| self.uniform()).sum::<f64>() - 6.0
    }
}

/// A machine whose temperature and power follow its load, with noise; rows 2400-2419 have the
/// temperature 5 K too high for the load, labelled.
fn synthetic_csv() -> String {
    let mut noise = Noise(7);
    let mut text = String::from("timestamp,anomaly,load_pct,temperature,power,vibration,mode\n");
    for i in 0..3000u32 {
        let load = 0.5 + 0.3 * (f64::from(i) / 150.0).sin();
        let fault = (2400..2420).contains(&i);
        let temperature = 20.0 + 60.0 * load + 0.3 * noise.normal() + if fault { 5.0 } else { 0.0 };
        let power = 100.0 * load + 0.5 * noise.normal();
        let vibration = 2.0 + 0.05 * noise.normal();
        let load_pct = 100.0 * load + 0.2 * noise.normal();
        writeln!(
            text,
            "{},{},{load_pct:.3},{temperature:.3},{power:.3},{vibration:.4},auto",
            1_714_557_600 + 10 * u64::from(i),
            u8::from(fault),
        )
        .unwrap();
    }
    text
}

#[test]
fn a_clear_labelled_anomaly_is_found_and_normal_noise_rarely_flagged() {
    let h = read_with(&synthetic_csv(), &CsvOptions::new("timestamp", "anomaly")).unwrap();
    assert_eq!(h.sensors, ["load_pct", "temperature", "power", "vibration"]);
    assert_eq!(h.ignored_columns, ["mode"]);
    let report = evaluate(&[h], None).unwrap();
    let f = &report.figures;
    assert_eq!(report.per_file[0].train_rows, 450);
    assert_eq!(report.scored_rows, 2550);
    assert_eq!(
        (f.counts.events, f.counts.detected_events),
        (1, 1),
        "{report:?}"
    );
    assert!(f.recall.unwrap() >= 0.8, "{report:?}");
    assert!(f.false_alarm_rate.unwrap() < 0.01, "{report:?}");
    assert!(report.ns_per_reading > 0.0 && report.bytes_per_machine > 10_000);
}

#[test]
fn train_rows_out_of_range_are_refused() {
    let h = read("time,label,v\n0,0,1\n1,0,2\n").unwrap();
    let e = evaluate(&[h], Some(5)).unwrap_err().to_string();
    assert_eq!(e, "train rows must be between 10 and 100000, got 5");
}
