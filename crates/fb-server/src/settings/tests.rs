use std::io::Write;

use serde_json::json;

use super::*;

fn layers() -> Layers {
    Layers::default()
}

fn file(yaml: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(yaml.as_bytes()).unwrap();
    f
}

fn paths(errors: &SettingsErrors) -> Vec<&str> {
    errors.0.iter().map(|e| e.path.as_str()).collect()
}

/// The sorted paths of every problem settings `yaml` over the defaults have.
fn refused_paths(yaml: &str) -> Vec<String> {
    let f = file(yaml);
    let errors = Settings::load(&Layers {
        file: Some(f.path().to_owned()),
        ..layers()
    })
    .unwrap_err();
    let mut found: Vec<String> = paths(&errors).into_iter().map(str::to_owned).collect();
    found.sort();
    found
}

#[test]
fn defaults_load_and_validate() {
    let s = Settings::load(&layers()).unwrap();
    assert_eq!(s.server.listen, "127.0.0.1:8080");
    assert_eq!(s.auth.access_token_ttl_secs, 3600);
    assert_eq!(s.log.format, LogFormat::Json);
    assert_eq!(
        s.storage_target().unwrap(),
        StorageTarget::SqliteFile("./data/factorybrain.db".into())
    );
}

#[test]
fn every_default_key_is_commented() {
    let lines: Vec<&str> = DEFAULTS_YAML.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let is_section = !line.starts_with(' ');
        if is_section {
            continue;
        }
        // A leaf key: the nearest non-blank line above must be a comment or another leaf that
        // shares a comment with it (issuer/audience).
        let above = lines[..i]
            .iter()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap();
        assert!(
            above.trim_start().starts_with('#') || lines[i - 1].trim_start().starts_with("issuer"),
            "defaults.yaml line {} has no comment: {line}",
            i + 1
        );
    }
}

#[test]
fn file_then_env_then_flags() {
    let f = file(
        "server:\n  listen: 0.0.0.0:9000\n  request_timeout_secs: 5\nlog:\n  format: pretty\n",
    );
    let layers = Layers {
        file: Some(f.path().to_owned()),
        env: vec![
            ("FB__SERVER__REQUEST_TIMEOUT_SECS".into(), "7".into()),
            ("FB__SERVER__LISTEN".into(), "0.0.0.0:9100".into()),
            ("PATH".into(), "/usr/bin".into()),
        ],
        flags: vec![("server.listen".into(), json!("127.0.0.1:9200"))],
    };
    let s = Settings::load(&layers).unwrap();
    assert_eq!(
        s.server.listen, "127.0.0.1:9200",
        "flag beats env beats file"
    );
    assert_eq!(s.server.request_timeout_secs, 7, "env beats file");
    assert_eq!(s.log.format, LogFormat::Pretty, "file beats defaults");
    assert_eq!(
        s.server.shutdown_grace_secs, 20,
        "untouched keys keep their default"
    );
}

#[test]
fn unknown_keys_from_every_layer_are_reported_together() {
    let f = file("server:\n  lisen: 0.0.0.0:9000\nstorag:\n  url: x\n");
    let layers = Layers {
        file: Some(f.path().to_owned()),
        env: vec![("FB__AUTH__TTL".into(), "5".into())],
        flags: vec![("server.nope".into(), json!(1))],
    };
    let errors = Settings::load(&layers).unwrap_err();
    assert_eq!(
        paths(&errors),
        [
            "server.lisen",
            "storag",
            "FB__AUTH__TTL (auth.ttl)",
            "server.nope"
        ]
    );
    assert!(
        errors.0[0].message.contains("listen"),
        "lists the valid keys: {}",
        errors.0[0].message
    );
}

#[test]
fn type_errors_are_all_reported_with_their_path() {
    let f =
        file("server:\n  max_body_bytes: lots\n  request_timeout_secs: -1\nlog:\n  format: xml\n");
    let errors = Settings::load(&Layers {
        file: Some(f.path().to_owned()),
        ..layers()
    })
    .unwrap_err();
    assert_eq!(
        paths(&errors),
        [
            "log.format",
            "server.max_body_bytes",
            "server.request_timeout_secs"
        ]
    );
    assert!(errors.0[0].message.contains("xml"));
}

#[test]
fn range_and_format_errors_are_all_reported() {
    let f = file(
        "server:\n  listen: nowhere\n  request_timeout_secs: 0\nauth:\n  jwt_secret: short\n  \
         access_token_ttl_secs: 86400\n  bootstrap_admin: Root User\nstorage:\n  url: mysql://x\n  \
         schema: Bad-Name\nlog:\n  level: 'info,=='\n",
    );
    let errors = Settings::load(&Layers {
        file: Some(f.path().to_owned()),
        ..layers()
    })
    .unwrap_err();
    let mut found = paths(&errors);
    found.sort();
    assert_eq!(
        found,
        [
            "auth.access_token_ttl_secs",
            "auth.bootstrap_admin",
            "auth.jwt_secret",
            "log.level",
            "server.listen",
            "server.request_timeout_secs",
            "storage.schema",
            "storage.url",
        ]
    );
    let text = errors.to_string();
    assert!(text.starts_with("invalid settings (8 problems):"), "{text}");
}

#[test]
fn env_values_take_the_type_of_the_default() {
    let layers = Layers {
        env: vec![
            ("FB__AUTH__ISSUER".into(), "1234".into()),
            ("FB__SERVER__MAX_BODY_BYTES".into(), "4096".into()),
        ],
        ..layers()
    };
    let s = Settings::load(&layers).unwrap();
    assert_eq!(s.auth.issuer, "1234");
    assert_eq!(s.server.max_body_bytes, 4096);
}

#[test]
fn secrets_are_redacted_in_debug_output() {
    let layers = Layers {
        env: vec![
            (
                "FB__STORAGE__URL".into(),
                "postgres://fb:hunter2hunter2@db/plant".into(),
            ),
            (
                "FB__AUTH__JWT_SECRET".into(),
                "0123456789abcdef0123456789abcdef-secret".into(),
            ),
        ],
        ..layers()
    };
    let s = Settings::load(&layers).unwrap();
    let debug = format!("{s:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    assert!(!debug.contains("-secret"), "{debug}");
    assert!(debug.contains("[redacted]"));
    assert_eq!(
        s.storage_target().unwrap(),
        StorageTarget::Postgres("postgres://fb:hunter2hunter2@db/plant".into())
    );
}

#[test]
fn unreadable_or_invalid_files_are_reported() {
    let errors = Settings::load(&Layers {
        file: Some("/nonexistent/fb.yaml".into()),
        ..layers()
    })
    .unwrap_err();
    assert!(errors.0[0].message.contains("cannot read"));
    let f = file("server: [unclosed\n");
    let errors = Settings::load(&Layers {
        file: Some(f.path().to_owned()),
        ..layers()
    })
    .unwrap_err();
    assert!(
        errors.0[0].message.contains("not valid YAML"),
        "{}",
        errors.0[0].message
    );
    let f = file("server: 5\n");
    let errors = Settings::load(&Layers {
        file: Some(f.path().to_owned()),
        ..layers()
    })
    .unwrap_err();
    assert_eq!(paths(&errors), ["server"]);
}

#[test]
fn an_empty_file_changes_nothing() {
    let f = file("# nothing yet\n");
    assert!(
        Settings::load(&Layers {
            file: Some(f.path().to_owned()),
            ..layers()
        })
        .is_ok()
    );
}

#[test]
fn unknown_keys_type_errors_and_range_errors_come_in_one_report() {
    let f = file("server:\n  colour: blue\n  max_body_bytes: lots\n  listen: nowhere\n");
    let layers = Layers {
        file: Some(f.path().to_owned()),
        env: vec![("FB__AUTH__ACCESS_TOKEN_TTL_SECS".into(), "999999".into())],
        ..Layers::default()
    };
    let errors = Settings::load(&layers).unwrap_err();
    let mut found = paths(&errors);
    found.sort();
    assert_eq!(
        found,
        [
            "auth.access_token_ttl_secs",
            "server.colour",
            "server.listen",
            "server.max_body_bytes"
        ]
    );
}

#[test]
fn secret_values_are_never_echoed_in_errors() {
    let f = file(
        "storage:\n  url: [\"postgres://fb:hunter2@db/x\"]\nauth:\n  jwt_secret: 123456789012345678901234567890123456\n",
    );
    let errors = Settings::load(&Layers {
        file: Some(f.path().to_owned()),
        ..Layers::default()
    })
    .unwrap_err();
    let text = errors.to_string();
    assert!(!text.contains("hunter2"), "{text}");
    assert_eq!(
        paths(&errors),
        ["storage.url"],
        "an unquoted numeric secret is still a secret: {text}"
    );
}

#[test]
fn retention_cutoffs_follow_the_settings() {
    let s = Settings::load(&Layers::default()).unwrap();
    let now = time::OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
    let c = crate::wire::retention_cutoffs(&s, now);
    assert_eq!(c.raw, Some(now - time::Duration::days(30)));
    assert_eq!(c.minute, Some(now - time::Duration::days(365)));
    assert_eq!(c.hour, None, "hour rollups are kept by default");
    let bad = Layers {
        env: vec![("FB__RETENTION__MINUTE_DAYS".into(), "7".into())],
        ..Layers::default()
    };
    assert_eq!(
        Settings::load(&bad).unwrap_err().0[0].path,
        "retention.minute_days"
    );
}

#[test]
fn the_embedded_broker_needs_its_feature_and_refuses_anonymous_devices_by_default() {
    let env = |pairs: &[(&str, &str)]| Layers {
        env: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..layers()
    };
    let on = Settings::load(&env(&[("FB__MQTT__EMBEDDED_BROKER", "true")]));
    if cfg!(feature = "embedded-broker") {
        assert!(
            !on.unwrap().mqtt.embedded_allow_anonymous,
            "no default secrets, no open door"
        );
    } else {
        assert_eq!(paths(&on.unwrap_err()), ["mqtt.embedded_broker"]);
    }
    let bad = Settings::load(&env(&[("FB__MQTT__EMBEDDED_LISTEN", "nowhere")])).unwrap_err();
    assert_eq!(paths(&bad), ["mqtt.embedded_listen"]);
}

#[test]
fn the_removed_shared_device_login_says_what_replaced_it() {
    let f = file("mqtt:\n  embedded_username: devices\n  embedded_password: s3cret-devices\n");
    let errors = Settings::load(&Layers {
        file: Some(f.path().to_owned()),
        env: vec![("FB__MQTT__EMBEDDED_PASSWORD".into(), "s3cret-env".into())],
        ..layers()
    })
    .unwrap_err();
    assert_eq!(
        paths(&errors),
        [
            "mqtt.embedded_password",
            "mqtt.embedded_username",
            "FB__MQTT__EMBEDDED_PASSWORD (mqtt.embedded_password)",
        ]
    );
    for e in &errors.0 {
        assert!(e.message.contains("factorybrain device add"), "{e}");
    }
    assert!(!errors.to_string().contains("s3cret"));
}

#[test]
fn bus_settings_are_checked_field_by_field() {
    let defaults = Settings::load(&layers()).unwrap();
    assert_eq!(defaults.bus.kind, BusKind::InProcess);
    assert_eq!(defaults.bus.prefix().unwrap().as_str(), "factorybrain");
    let f = file(
        "bus:\n  stream: 'has.dots'\n  subject_prefix: 'fb.*'\n  ack_wait_secs: 0\n  \
         max_deliver: 0\n  max_events: 5\n  url: 'nats://fb:hunter2@169.254.169.254:4222'\n",
    );
    let errors = Settings::load(&Layers {
        file: Some(f.path().to_owned()),
        ..layers()
    })
    .unwrap_err();
    let mut found = paths(&errors);
    found.sort();
    assert_eq!(
        found,
        [
            "bus.ack_wait_secs",
            "bus.max_deliver",
            "bus.max_events",
            "bus.stream",
            "bus.subject_prefix",
            "bus.url",
        ]
    );
    assert!(!errors.to_string().contains("hunter2"), "{errors}");
    let kind = Settings::load(&Layers {
        env: vec![("FB__BUS__KIND".into(), "kafka".into())],
        ..layers()
    })
    .unwrap_err();
    assert_eq!(paths(&kind), ["bus.kind"]);
    let nats = Settings::load(&Layers {
        env: vec![("FB__BUS__KIND".into(), "nats".into())],
        ..layers()
    });
    if cfg!(feature = "nats") {
        let errors = nats.unwrap_err();
        assert_eq!(paths(&errors), ["bus.url"], "nats needs its URL");
        assert!(errors.to_string().contains("is required"), "{errors}");
    } else {
        assert_eq!(paths(&nats.unwrap_err()), ["bus.kind"]);
    }
}

#[test]
fn energy_settings_become_the_domain_and_are_checked_field_by_field() {
    let defaults = Settings::load(&layers()).unwrap();
    let e = &defaults.energy;
    assert!((e.emission_factors().factor("anywhere") - 0.5).abs() < 1e-12);
    let tariff = e.tariff();
    assert_eq!(tariff.windows.len(), 1);
    // Wednesday noon is peak at 0.30; Saturday noon off-peak at 0.12.
    let wed = time::macros::datetime!(2026-12-02 12:00 UTC);
    assert!(tariff.is_peak(wed));
    assert!((tariff.price_at(wed + time::Duration::days(3)) - 0.12).abs() < 1e-12);
    assert_eq!(e.rules().horizon, time::Duration::hours(1));

    let found = refused_paths(
        "energy:\n  emission_factor: -1\n  site_emission_factors: [{ site: 'plant-b', kg_per_kwh: 0.2 }, \
         { site: '', kg_per_kwh: 11 }]\n  baseline_days: 0\n  tariff:\n    \
         off_peak_price: -0.1\n    windows:\n      - { name: '', peak: true, days: ['monday'], \
         start: '25:00', end: '08:00', price_per_kwh: 0.3 }\n      - { name: night, peak: false, \
         days: [], start: '22:00', end: '22:00', price_per_kwh: 0.05 }\n  recommendations:\n    \
         idle_max_kw: 0\n    standby_kw: 1\n    idle_min_minutes: 61\n    efficiency_margin: -1\n    \
         non_critical_types: ['']\n",
    );
    assert_eq!(
        found,
        [
            "energy.baseline_days",
            "energy.emission_factor",
            "energy.recommendations.efficiency_margin",
            "energy.recommendations.idle_max_kw",
            "energy.recommendations.idle_min_minutes",
            "energy.recommendations.non_critical_types[0]",
            "energy.recommendations.standby_kw",
            "energy.site_emission_factors[1].kg_per_kwh",
            "energy.site_emission_factors[1].site",
            "energy.tariff.off_peak_price",
            "energy.tariff.windows[0].days[0]",
            "energy.tariff.windows[0].name",
            "energy.tariff.windows[0].start",
            "energy.tariff.windows[1].end",
        ]
    );
}

#[test]
fn gate_settings_are_checked_field_by_field() {
    let defaults = Settings::load(&layers()).unwrap();
    assert_eq!(defaults.gates.gates(), fb_core::gates::Gates::default());
    let f = file(
        "gates:\n  purchase_order:\n    min_confidence: 1.5\n    max_amount_minor: -1\n    \
         timeout_secs: 0\n  machine_command:\n    allowed_commands: ['']\n    \
         timeout_secs: 9999999\n  sweep_interval_secs: 0\n",
    );
    let errors = Settings::load(&Layers {
        file: Some(f.path().to_owned()),
        ..layers()
    })
    .unwrap_err();
    let mut found = paths(&errors);
    found.sort();
    assert_eq!(
        found,
        [
            "gates.machine_command.allowed_commands",
            "gates.machine_command.timeout_secs",
            "gates.purchase_order.max_amount_minor",
            "gates.purchase_order.min_confidence",
            "gates.purchase_order.timeout_secs",
            "gates.sweep_interval_secs",
        ]
    );
}

#[test]
fn optimizer_settings_rate_the_simulated_plant_and_are_checked_field_by_field() {
    let defaults = Settings::load(&layers()).unwrap();
    let c = defaults.optimizer.config();
    // The defaults rate exactly the simulator's machine types, at the simulator's rates.
    assert_eq!(c.ideal_rates, fb_sim::ideal_rates());
    assert_eq!(c.monitoring_factor, 0.5);
    assert_eq!(c.monitoring_for, time::Duration::hours(1));
    assert_eq!(
        (c.anomaly_burst, c.burst_window),
        (3, time::Duration::minutes(10))
    );

    let found = refused_paths(
        "optimizer:\n  ideal_rates: [{ machine_type: '', units_per_hour: 0 }]\n  \
         monitoring_factor: 0.05\n  monitoring_minutes: 0\n  anomaly_burst: 0\n  \
         burst_window_minutes: 2000\n",
    );
    assert_eq!(
        found,
        [
            "optimizer.anomaly_burst",
            "optimizer.burst_window_minutes",
            "optimizer.ideal_rates[0].machine_type",
            "optimizer.ideal_rates[0].units_per_hour",
            "optimizer.monitoring_factor",
            "optimizer.monitoring_minutes",
        ]
    );
}
