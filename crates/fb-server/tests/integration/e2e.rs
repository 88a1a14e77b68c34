//! The real `factorybrain` binary: start on a fresh data dir, serve, administer, stop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_factorybrain");

pub(crate) struct Server {
    child: Child,
    pub(crate) base: String,
    admin_password: Option<String>,
    admin: std::sync::OnceLock<String>,
    stdout: mpsc::Receiver<String>,
    stderr: mpsc::Receiver<String>,
}

impl Drop for Server {
    /// A test that fails before `stop` leaves no server behind.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What a stopped server printed after start-up.
pub(crate) struct Output {
    pub(crate) stdout: Vec<String>,
    pub(crate) stderr: Vec<String>,
}

/// Starts `factorybrain serve` on a free port and waits until it listens.
fn start(data_dir: &Path) -> Server {
    start_with(data_dir, &[])
}

pub(crate) fn start_with(data_dir: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(extra)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("FB__STORAGE__URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, stdout) = mpsc::channel();
    let out = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let (err_tx, stderr) = mpsc::channel();
    let err = BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || {
        for line in err.lines().map_while(Result::ok) {
            let _ = err_tx.send(line);
        }
    });
    let mut base = None;
    let mut admin_created = false;
    while base.is_none() {
        let line = stdout
            .recv_timeout(Duration::from_secs(60))
            .expect("the server did not start");
        let event: Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not a JSON log line: {line}"));
        if event["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("First admin created"))
        {
            admin_created = true;
        }
        if event["message"] == "Listening." {
            base = Some(format!("http://{}", event["addr"].as_str().unwrap()));
        }
    }
    // The password is printed to stderr before the log line that announces it, so once the
    // announcement is seen, the password line is waited for; without it, none is expected.
    let admin_password = admin_created.then(|| {
        loop {
            let line = stderr
                .recv_timeout(Duration::from_secs(10))
                .expect("the admin password was announced but not printed");
            if let Some(p) = line.trim().strip_prefix("password:") {
                break p.trim().to_owned();
            }
        }
    });
    Server {
        child,
        base: base.unwrap(),
        admin_password,
        admin: std::sync::OnceLock::new(),
        stderr,
        stdout,
    }
}

impl Server {
    pub(crate) fn stop(mut self) -> Output {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(
            exit.success(),
            "the server exited with {exit} after SIGTERM"
        );
        // The reader threads end at end of file, which the exit guarantees: collect every line.
        Output {
            stdout: self.stdout.iter().collect(),
            stderr: self.stderr.iter().collect(),
        }
    }
}

pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into()
}

/// Logs the first admin in over HTTP with the password the server printed, enrolling the
/// second factor admins need; once per server (a TOTP code works once).
pub(crate) fn admin_token(server: &Server) -> String {
    server
        .admin
        .get_or_init(|| {
            let password = server.admin_password.clone().unwrap();
            crate::support::http_login(&agent(), &server.base, "admin", &password)
        })
        .clone()
}

fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut request = agent().get(url);
    if let Some(token) = token {
        request = request.header("authorization", &format!("Bearer {token}"));
    }
    let mut response = request.call().unwrap();
    (
        response.status().as_u16(),
        response.body_mut().read_to_string().unwrap(),
    )
}

pub(crate) fn cli(data_dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("FB__STORAGE__URL")
        .output()
        .unwrap()
}

#[test]
fn serves_on_a_fresh_data_dir_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("plant-data");
    let server = start(&data_dir);
    assert_eq!(get(&format!("{}/healthz", server.base), None).0, 200);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&data_dir), 0o700, "the data dir holds secrets");
        assert_eq!(mode(&data_dir.join("factorybrain.db")), 0o600);
    }
    assert_eq!(get(&format!("{}/readyz", server.base), None).0, 200);

    assert!(
        server.admin_password.is_some(),
        "the first admin's password is printed"
    );
    let token = admin_token(&server);
    let (status, body) = get(&format!("{}/api/v1/auth/me", server.base), Some(&token));
    assert_eq!(
        (status, body.contains("\"role\":\"admin\"")),
        (200, true),
        "{body}"
    );
    assert_eq!(get(&format!("{}/api/v1/auth/me", server.base), None).0, 401);

    let (status, metrics) = get(&format!("{}/metrics", server.base), Some(&token));
    assert_eq!(status, 200);
    assert!(
        metrics.contains("fb_http_request_duration_seconds_bucket"),
        "{metrics}"
    );
    assert!(metrics.contains("fb_store_query_duration_seconds_bucket"));

    let logs = server.stop().stdout;
    assert!(
        logs.iter().any(|l| l.contains("Shutdown complete.")),
        "{logs:?}"
    );
    // Every request log line carries an op id.
    let requests: Vec<Value> = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| e["message"] == "Request handled.")
        .collect();
    assert!(!requests.is_empty());
    assert!(
        requests.iter().all(|e| e["span"]["op_id"].is_string()),
        "{requests:?}"
    );

    // A second start finds the admin and does not print a password again.
    let again = start(&data_dir);
    assert_eq!(again.admin_password, None);
    let output = again.stop();
    assert!(
        !output.stderr.iter().any(|l| l.contains("password:")),
        "{:?}",
        output.stderr
    );
}

/// The binary serves with each connection's address: trusting loopback as a proxy, clients named
/// in X-Forwarded-For get a budget each (without the address, all would share one).
#[test]
fn served_requests_are_rate_limited_by_their_connections_address() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("limits.yaml");
    std::fs::write(
        &config,
        "server:\n  trusted_proxies: [\"127.0.0.1\"]\n\
         rate_limits:\n  per_ip: { burst: 1, period_secs: 3600 }\n",
    )
    .unwrap();
    let server = start_with(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let openapi = |client: &str| {
        let response = agent()
            .get(&format!("{}/api/v1/openapi.json", server.base))
            .header("x-forwarded-for", client)
            .call()
            .unwrap();
        let limit = response
            .headers()
            .get("ratelimit")
            .map(|v| v.to_str().unwrap().to_owned());
        (response.status().as_u16(), limit)
    };
    assert_eq!(
        openapi("198.51.100.1"),
        (200, Some("\"per_ip\";r=0;t=3600".to_owned()))
    );
    assert_eq!(openapi("198.51.100.1").0, 429);
    assert_eq!(openapi("198.51.100.2").0, 200);
    server.stop();
}

#[test]
fn cli_administers_users_and_api_keys_against_a_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let migrated = cli(dir.path(), &["migrate"]);
    assert!(
        migrated.status.success(),
        "{}",
        String::from_utf8_lossy(&migrated.stderr)
    );
    assert!(String::from_utf8_lossy(&migrated.stdout).contains("migrations applied (sqlite)"));

    let added = cli(
        dir.path(),
        &["user", "add", "marta", "--role", "supervisor"],
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    assert!(String::from_utf8_lossy(&added.stdout).contains("password (shown once):"));
    let bad_role = cli(dir.path(), &["user", "add", "nina", "--role", "root"]);
    assert!(!bad_role.status.success());
    assert!(String::from_utf8_lossy(&bad_role.stderr).contains("--role"));

    let created = cli(
        dir.path(),
        &[
            "apikey",
            "create",
            "--name",
            "prometheus",
            "--role",
            "supervisor",
        ],
    );
    let out = String::from_utf8_lossy(&created.stdout).into_owned();
    let key = out
        .lines()
        .find_map(|l| l.strip_prefix("key (shown once): "))
        .unwrap()
        .to_owned();

    let server = start(dir.path());
    assert_eq!(get(&format!("{}/metrics", server.base), Some(&key)).0, 200);
    let revoked = cli(
        dir.path(),
        &["apikey", "revoke", key.split('_').nth(1).unwrap()],
    );
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    assert_eq!(get(&format!("{}/metrics", server.base), Some(&key)).0, 401);

    let listed = String::from_utf8_lossy(&cli(dir.path(), &["user", "list"]).stdout).into_owned();
    assert!(
        listed.contains("marta") && listed.contains("supervisor"),
        "{listed}"
    );
    // A user existed before the first start, so no admin was bootstrapped.
    assert!(!listed.contains("admin"), "{listed}");
    let disabled = cli(dir.path(), &["user", "disable", "marta"]);
    assert!(String::from_utf8_lossy(&disabled.stdout).contains("user marta disabled"));
    let keys = String::from_utf8_lossy(&cli(dir.path(), &["apikey", "list"]).stdout).into_owned();
    assert!(
        keys.contains("revoked") && keys.contains("prometheus"),
        "{keys}"
    );
    server.stop();
}

#[test]
fn config_example_is_complete_and_config_check_reports_every_problem() {
    let example = Command::new(BIN)
        .args(["config", "example"])
        .output()
        .unwrap();
    assert!(example.status.success());
    let text = String::from_utf8(example.stdout).unwrap();
    for key in [
        "listen:",
        "data_dir:",
        "url:",
        "jwt_secret:",
        "access_token_ttl_secs:",
        "format:",
    ] {
        assert!(text.contains(key), "config example lacks {key}");
    }

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("factorybrain.yaml");
    std::fs::write(&file, "server:\n  listen: nowhere\n  colour: blue\n").unwrap();
    let check = Command::new(BIN)
        .args(["config", "check", "--config"])
        .arg(&file)
        .env("FB__AUTH__ACCESS_TOKEN_TTL_SECS", "999999")
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(2));
    let errors = String::from_utf8_lossy(&check.stderr);
    assert!(
        errors.starts_with("error: invalid settings (3 problems):"),
        "{errors}"
    );
    assert!(errors.contains("server.colour: unknown key"), "{errors}");
    assert!(
        errors.contains("server.listen:") && errors.contains("auth.access_token_ttl_secs:"),
        "{errors}"
    );
}

#[test]
fn help_is_available_for_every_command() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["migrate", "--help"],
        vec!["config", "example", "--help"],
        vec!["user", "add", "--help"],
        vec!["apikey", "create", "--help"],
        vec!["device", "add", "--help"],
        vec!["device", "revoke", "--help"],
        vec!["simulate", "--help"],
        vec!["audit", "verify", "--help"],
        vec!["audit", "head", "--help"],
        vec!["model", "list", "--help"],
        vec!["model", "promote", "--help"],
        vec!["model", "rollback", "--help"],
        vec!["model", "history", "--help"],
        vec!["version", "--help"],
        vec!["eval", "nab", "--help"],
        vec!["eval", "csv", "--help"],
        vec!["eval", "cmapss", "--help"],
        vec!["eval", "ai4i", "--help"],
    ] {
        let out = Command::new(BIN).args(&args).output().unwrap();
        assert!(out.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage:"),
            "{args:?}"
        );
    }
    let version = Command::new(BIN).arg("version").output().unwrap();
    assert!(String::from_utf8_lossy(&version.stdout).contains("storage backends: sqlite"));
}

/// Runs a command that prints one JSON object; its stderr is the failure message.
fn run_json(command: &mut Command) -> Value {
    let out = command.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `eval nab` on the corpus beside the repository: one JSON object with the three scores.
#[test]
fn eval_nab_prints_the_three_scores_as_json() {
    let nab = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets/nab");
    let report = run_json(
        Command::new(BIN)
            .args(["eval", "nab", "--json", "--data"])
            .arg(&nab),
    );
    assert_eq!(report["files"], 58);
    assert!(report["standard"].as_f64().unwrap() >= 70.0, "{report}");
    for profile in [
        "reward_low_fp_rate",
        "reward_low_fn_rate",
        "ns_per_point",
        "bytes_per_sensor",
    ] {
        assert!(report[profile].as_f64().is_some(), "{profile} in {report}");
    }
    let missing = Command::new(BIN)
        .args(["eval", "nab", "--data", "/nonexistent"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read the NAB corpus"));
}

/// `eval ai4i` on the copy beside the repository, with a small search: per-mode figures as JSON;
/// `eval cmapss` names a folder without the subset's files.
#[test]
fn eval_ai4i_prints_per_mode_figures_and_cmapss_names_missing_files() {
    let datasets =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/datasets");
    let report = run_json(
        Command::new(BIN)
            .args([
                "eval",
                "ai4i",
                "--json",
                "--candidates",
                "1",
                "--folds",
                "3",
                "--data",
            ])
            .arg(datasets.join("ai4i2020/ai4i2020.csv")),
    );
    assert_eq!(report["operations"], 10_000);
    assert_eq!(report["train_operations"], 7_000);
    let modes = report["modes"].as_array().unwrap();
    let labels: Vec<&str> = modes.iter().map(|m| m["label"].as_str().unwrap()).collect();
    assert_eq!(
        labels,
        ["Machine failure", "TWF", "HDF", "PWF", "OSF", "RNF"]
    );
    let f1 = |label: &str| {
        modes.iter().find(|m| m["label"] == label).unwrap()["test"]["f1"]
            .as_f64()
            .unwrap()
    };
    assert!(f1("HDF") > 0.8 && f1("Machine failure") > 0.6, "{report}");

    let empty = tempfile::tempdir().unwrap();
    let missing = Command::new(BIN)
        .args(["eval", "cmapss", "--subset", "FD002", "--data"])
        .arg(empty.path())
        .output()
        .unwrap();
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("cannot read C-MAPSS FD002") && stderr.contains("train_FD002.txt"),
        "{stderr}"
    );
}

/// `eval csv` on a generated history: two correlated sensors, a text column, a second label
/// column excluded, and one labelled fault of 10 rows.
#[test]
fn eval_csv_prints_the_figures_as_json_and_names_a_missing_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("line-3.csv");
    let mut text = String::from("\u{feff}UDI;Type;Speed [rpm];Torque [Nm];Machine failure;TWF\n");
    for i in 0..1000u32 {
        let wave = (f64::from(i) * 0.7).sin() + 0.5 * (f64::from(i) * 1.3).cos();
        let fault = (800..810).contains(&i);
        let speed = 1500.0 + 10.0 * wave;
        let torque = 40.0 - 0.2 * wave + if fault { 15.0 } else { 0.0 };
        text.push_str(&format!(
            "{};L;{speed:.2};{torque:.2};{};0\n",
            i + 1,
            u8::from(fault)
        ));
    }
    std::fs::write(&path, text).unwrap();
    let report = run_json(
        Command::new(BIN)
            .args(["eval", "csv"])
            .arg(&path)
            .args(["--time-column", "UDI", "--label-column", "Machine failure"])
            .args(["--sep", ";", "--exclude", "TWF", "--json"]),
    );
    assert_eq!(report["files"], 1);
    assert_eq!(report["rows"], 1000);
    assert_eq!(report["scored_rows"], 850, "15 % train: {report}");
    assert_eq!(report["ignored_columns"], json!(["Type"]));
    assert_eq!(
        report["per_file"][0]["sensors"],
        json!(["Speed [rpm]", "Torque [Nm]"])
    );
    assert_eq!(report["positive_rows"], 10);
    assert_eq!(report["events"], 1);
    assert_eq!(report["detected_events"], 1, "{report}");
    assert!(report["recall"].as_f64().unwrap() >= 0.5, "{report}");
    assert!(
        report["false_alarm_rate"].as_f64().unwrap() < 0.05,
        "{report}"
    );
    let counts: u64 = ["tp", "fp", "tn", "fn"]
        .iter()
        .map(|k| report[k].as_u64().unwrap())
        .sum();
    assert_eq!(counts, 850);
    for key in [
        "precision",
        "f1",
        "missed_alarm_rate",
        "ns_per_reading",
        "bytes_per_machine",
    ] {
        assert!(report[key].as_f64().is_some(), "{key} in {report}");
    }
    assert!(
        report["false_alarm_episodes"].as_u64().is_some(),
        "{report}"
    );

    let missing = Command::new(BIN)
        .args(["eval", "csv"])
        .arg(&path)
        .args([
            "--time-column",
            "UDI",
            "--label-column",
            "Failure",
            "--sep",
            ";",
        ])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(missing.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        stderr.contains("line-3.csv: line 1: no label column \"Failure\"")
            && stderr.contains("Machine failure"),
        "{stderr}"
    );
}

#[test]
fn demo_mode_shows_fresh_readings_and_raises_the_scenarios_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_with(dir.path(), &["--demo"]);
    let token = admin_token(&server);
    let (_, machines) = get(&format!("{}/api/v1/machines", server.base), Some(&token));
    let machines: Value = serde_json::from_str(&machines).unwrap();
    let ids: Vec<String> = machines["machines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 10, "{ids:?}");
    // Within a few seconds every machine has a fresh value for each of its seven sensors (five
    // of its condition, output and scrap). The
    // scenario's clock starts when the plant goes live, after the demo's models are trained
    // (seconds in a debug build, more on a busy machine): the first fresh readings mark it.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut live = None;
    for id in &ids {
        loop {
            let (_, body) = get(
                &format!("{}/api/v1/machines/{id}/latest", server.base),
                Some(&token),
            );
            let latest: Value = serde_json::from_str(&body).unwrap();
            let readings = latest["readings"].as_array().unwrap();
            let fresh = readings.len() == 7
                && readings.iter().all(|r| {
                    let ts = time::OffsetDateTime::parse(
                        r["ts"].as_str().unwrap(),
                        &time::format_description::well_known::Rfc3339,
                    )
                    .unwrap();
                    time::OffsetDateTime::now_utc() - ts < time::Duration::seconds(10)
                });
            if fresh {
                live.get_or_insert_with(std::time::Instant::now);
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no fresh readings for {id}: {body}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let started = live.expect("fresh readings");
    demo_alerts_match_the_scenario(&server, &token, started);
    let (_, machine) = get(
        &format!("{}/api/v1/machines/sim-pump-1", server.base),
        Some(&token),
    );
    let machine: Value = serde_json::from_str(&machine).unwrap();
    assert!(
        machine["health_score"].as_f64().is_some_and(|h| h > 90.0),
        "a healthy machine has its health kept live: {machine}"
    );
    server.stop();
}

/// Every injected fault raises its alert within a minute of its start; healthy machines none.
fn demo_alerts_match_the_scenario(server: &Server, token: &str, started: std::time::Instant) {
    use fb_server::demo::{HEALTHY, SCENARIO};
    use fb_sim::FaultKind;
    let expected: Vec<(&str, &str, i64)> = SCENARIO
        .iter()
        .map(|&(machine, fault, _, offset, _)| {
            let kind = match fault {
                FaultKind::Spike => "spike",
                FaultKind::Overheating => "overheating",
                FaultKind::StuckSensor => "stuck_sensor",
                FaultKind::PressureLeak => "pressure",
                FaultKind::Dropout => "no_data",
                FaultKind::BearingWear => "vibration",
            };
            (machine, kind, offset.max(0))
        })
        .collect();
    let last_fault = expected.iter().map(|e| e.2).max().unwrap_or(0);
    let deadline = started + Duration::from_secs(u64::try_from(last_fault).unwrap() + 60 + 10);
    loop {
        let (_, body) = get(
            &format!("{}/api/v1/alerts?limit=1000", server.base),
            Some(token),
        );
        let alerts: Value = serde_json::from_str(&body).unwrap();
        let alerts = alerts["alerts"].as_array().unwrap().clone();
        let has = |machine: &str, kind: &str| {
            alerts
                .iter()
                .any(|a| a["machine"] == machine && a["kind"] == kind)
        };
        for healthy in HEALTHY {
            let theirs: Vec<&Value> = alerts.iter().filter(|a| a["machine"] == *healthy).collect();
            assert!(
                theirs.is_empty(),
                "healthy {healthy} has alerts: {theirs:?}"
            );
        }
        let missing: Vec<_> = expected
            .iter()
            .filter(|(machine, kind, _)| !has(machine, kind))
            .collect();
        if missing.is_empty() {
            break;
        }
        for (machine, kind, offset) in &missing {
            assert!(
                started.elapsed() < Duration::from_secs(u64::try_from(*offset).unwrap() + 60 + 10),
                "no {kind} alert for {machine} a minute after its fault; alerts: {alerts:#?}"
            );
        }
        assert!(std::time::Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn simulate_feeds_a_running_server_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path());
    let token = admin_token(&server);
    let mut created = agent()
        .post(&format!("{}/api/v1/api_keys", server.base))
        .header("authorization", &format!("Bearer {token}"))
        .send_json(json!({"name": "simulator", "role": "admin"}))
        .unwrap();
    let key = created.body_mut().read_json::<Value>().unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();

    let out = Command::new(BIN)
        .args([
            "simulate",
            "--machines",
            "2",
            "--rate",
            "5",
            "--duration",
            "2s",
            "--target",
            &server.base,
        ])
        .env("FB_API_KEY", &key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("sent "),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let (status, body) = get(
        &format!("{}/api/v1/machines/sim-compressor-2/latest", server.base),
        Some(&token),
    );
    assert_eq!(status, 200, "{body}");
    let latest: Value = serde_json::from_str(&body).unwrap();
    // Five condition sensors, output and scrap.
    assert_eq!(latest["readings"].as_array().unwrap().len(), 7, "{body}");
    server.stop();

    let bad = Command::new(BIN)
        .args(["simulate", "--target", "ftp://x", "--duration", "1s"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--target"));
}

#[test]
fn audit_log_names_the_first_admin_and_real_client_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(&dir.path().join("plant-data"));
    let token = admin_token(&server);
    let (status, body) = get(&format!("{}/api/v1/audit", server.base), Some(&token));
    assert_eq!(status, 200, "{body}");
    let records: Value = serde_json::from_str(&body).unwrap();
    let records = records["records"].as_array().unwrap();
    // The server made the first admin itself, at start; then the login came over the network.
    assert_eq!(records[0]["actor"], "system");
    assert_eq!(records[0]["action"], "user.create");
    assert_eq!(records[0]["target"], "user:admin");
    assert_eq!(records[0]["source"], "local");
    assert_eq!(records[1]["action"], "auth.login");
    assert_eq!(records[1]["outcome"], "success");
    assert_eq!(records[1]["source"], "127.0.0.1", "the peer's address");
    server.stop();
}

/// With Redis unreachable, rate-limit checks fail until the circuit in front of Redis opens, and
/// the served `/metrics` says so (the real binary: a process of its own, so no other test's
/// Redis store shares the gauge).
#[test]
fn metrics_show_the_redis_circuit_open_while_redis_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("redis.yaml");
    // Nothing listens on port 1.
    std::fs::write(
        &config,
        "rate_limits:\n  redis_url: \"redis://127.0.0.1:1\"\n  redis_timeout_ms: 200\n",
    )
    .unwrap();
    let server = start_with(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let token = admin_token(&server);
    let open = "fb_outbound_circuit_state{target=\"redis\"} 2";
    let mut metrics = String::new();
    // Every request is checked against per_ip (and, signed in, per_principal): ten failed checks
    // of ten open the circuit.
    for _ in 0..20 {
        let (status, body) = get(&format!("{}/metrics", server.base), Some(&token));
        assert_eq!(status, 200, "requests never fail for Redis: {body}");
        metrics = body;
        if metrics.contains(open) {
            break;
        }
    }
    assert!(metrics.contains(open), "{metrics}");
    assert!(
        metrics.contains("fb_outbound_circuit_transitions_total{target=\"redis\",to=\"open\"} 1"),
        "{metrics}"
    );
    server.stop();
}

/// `simulate --target mqtt://…` logs in to the built-in broker with a device credential; with a
/// wrong one it stops and says why.
#[cfg(feature = "embedded-broker")]
#[test]
fn simulate_publishes_to_the_embedded_broker_as_a_device() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("broker.yaml");
    std::fs::write(
        &config,
        format!("mqtt:\n  embedded_broker: true\n  embedded_listen: \"127.0.0.1:{port}\"\n"),
    )
    .unwrap();
    let server = start_with(
        &dir.path().join("data"),
        &["--config", config.to_str().unwrap()],
    );
    let token = admin_token(&server);
    let mut created = agent()
        .post(&format!("{}/api/v1/devices", server.base))
        .header("authorization", &format!("Bearer {token}"))
        .send_json(json!({"name": "sim-gateway"}))
        .unwrap();
    let password = created.body_mut().read_json::<Value>().unwrap()["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let target = format!("mqtt://127.0.0.1:{port}");
    let simulate = |password: &str| {
        Command::new(BIN)
            .args(["simulate", "--machines", "1", "--duration", "1s"])
            .args(["--target", &target, "--mqtt-username", "sim-gateway"])
            .env("FB_MQTT_PASSWORD", password)
            .output()
            .unwrap()
    };

    let refused = simulate("fbd_wrong");
    assert!(!refused.status.success());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(message.contains("--mqtt-password"), "{message}");
    assert!(!message.contains("fbd_wrong"), "{message}");

    let sent = simulate(&password);
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    // The simulated machine is not registered, so what arrived is kept as dead letters, with
    // the topic it came in by.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get(
            &format!("{}/api/v1/dead-letters?code=unknown_machine", server.base),
            Some(&token),
        );
        assert_eq!(status, 200, "{body}");
        if body.contains("mqtt:factorybrain/demo-plant/") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing arrived over MQTT: {body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let output = server.stop();
    let logs = output.stdout.join("\n");
    assert!(
        logs.contains("Device refused by the embedded broker"),
        "{logs}"
    );
    assert!(
        !logs.contains(&password[4..]),
        "the device's secret was logged"
    );
}
