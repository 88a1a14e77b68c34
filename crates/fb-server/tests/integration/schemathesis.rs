//! schemathesis (property-based API testing, from PyPI) against the real binary: every
//! operation of the served `/api/v1/openapi.json` is called with generated valid and invalid
//! input within a bounded budget, and the test fails on any server error (5xx), on any answer
//! the document does not describe (status, headers, content type, body), on a protected
//! operation that ignores its credentials, and on an undocumented method that is not 405.
//!
//! schemathesis comes from `FB_SCHEMATHESIS` (an executable) or from a virtual environment in
//! the target directory, `schemathesis-venv`, made with `python3 -m venv` and `pip install
//! schemathesis==VERSION` on first use and reused after. Installing needs Python 3 with venv and
//! PyPI; when it fails, the test fails and says why.

// The test says what it installs and runs, from its helpers too (clippy allows printing in
// #[test] functions only).
#![allow(clippy::print_stdout)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::e2e::{agent, cli, start_with};

/// The schemathesis release the test runs: pinned, so that a new release cannot change what
/// passes.
const VERSION: &str = "4.32.5";

/// Test cases per operation and phase, and the seed they are generated from: the same run
/// each time. About 40 s of requests on two cores; raise `MAX_EXAMPLES` locally to dig deeper.
const MAX_EXAMPLES: &str = "40";
const SEED: &str = "20261202";

/// Longest the run may take before it is stopped and the test fails.
const DEADLINE: Duration = Duration::from_secs(150);

/// The checks: no 5xx; every answer's status, headers, content type and body as documented;
/// protected operations refuse missing and wrong credentials, undocumented methods are 405,
/// and what was deleted is gone and what was created can be read. Not run:
/// `positive_data_acceptance` and `negative_data_rejection`, which take the schema for the
/// whole of validation. Rules across fields (a sensor's range, a key's expiry in the future)
/// are not in a schema, and a readings batch answers 200 and dead-letters each bad reading
/// by design.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
                      response_headers_conformance,response_schema_conformance,\
                      missing_required_header,unsupported_method,allow_header_conformance,\
                      ignored_auth,use_after_free,ensure_resource_availability";

/// The target directory (`…/target`, or `CARGO_TARGET_DIR`), where the test binary's
/// sibling `factorybrain` lives one profile directory down.
fn target_dir() -> PathBuf {
    let binary = Path::new(env!("CARGO_BIN_EXE_factorybrain"));
    binary
        .ancestors()
        .nth(2)
        .expect("the binary lies in <target>/<profile>/")
        .to_owned()
}

/// Runs a set-up command; a failure fails the test with the command's own words.
fn set_up(what: &str, command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: could not run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The version an executable reports (`schemathesis, version 4.32.5`), if it runs.
fn installed_version(executable: &Path) -> Option<String> {
    let output = Command::new(executable).arg("--version").output().ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    text.trim().rsplit(' ').next().map(str::to_owned)
}

/// The schemathesis executable to run, installed first if need be.
fn schemathesis() -> PathBuf {
    if let Some(given) = std::env::var_os("FB_SCHEMATHESIS") {
        let given = PathBuf::from(given);
        println!("schemathesis: {} (FB_SCHEMATHESIS)", given.display());
        return given;
    }
    let venv = target_dir().join("schemathesis-venv");
    let executable = venv.join("bin").join("schemathesis");
    if installed_version(&executable).as_deref() == Some(VERSION) {
        println!("schemathesis {VERSION}: {}", executable.display());
        return executable;
    }
    println!(
        "schemathesis {VERSION}: installing into {} (python3 -m venv, then pip from PyPI)",
        venv.display()
    );
    set_up(
        "creating the venv (Debian and Ubuntu need the python3-venv package)",
        Command::new("python3")
            .args(["-m", "venv", "--clear"])
            .arg(&venv),
    );
    set_up(
        "installing schemathesis from PyPI",
        Command::new(venv.join("bin").join("pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("schemathesis=={VERSION}"),
        ]),
    );
    let found = installed_version(&executable);
    assert_eq!(found.as_deref(), Some(VERSION), "{}", executable.display());
    executable
}

/// POSTs to the running server as the admin API key; returns the answer's body.
fn post(base: &str, key: &str, path: &str, body: Value) -> Value {
    let mut response = agent()
        .post(&format!("{base}{path}"))
        .header("authorization", &format!("Bearer {key}"))
        .send_json(&body)
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.body_mut().read_json().unwrap_or(Value::Null);
    assert!((200..300).contains(&status), "POST {path}: {status} {body}");
    body
}

/// A user's access token, by logging in.
fn login(base: &str, username: &str, password: &str) -> String {
    let mut response = agent()
        .post(&format!("{base}/api/v1/auth/login"))
        .send_json(json!({"username": username, "password": password}))
        .unwrap();
    let body: Value = response.body_mut().read_json().unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

/// Real objects for the operations to find (machines with readings and an alert, users, a
/// key), and the credentials the run needs. Returns the schemathesis configuration.
fn plant(base: &str, key: &str) -> String {
    let now = time::OffsetDateTime::now_utc();
    for id in ["press-01", "pump-02"] {
        let machine = json!({
            "id": id, "name": id, "machine_type": "press", "machine_class": "class2",
            "location": {"site": "plant-a", "area": "stamping"},
            "sensors": [{"key": "temperature", "kind": "temperature", "unit": "C",
                         "physical_min": -40, "physical_max": 250,
                         "warning_high": 80, "critical_high": 95}]
        });
        post(base, key, "/api/v1/machines", machine);
        // Two readings over the critical limit open an alert.
        let readings: Vec<Value> = (0..3)
            .map(|i| {
                let at = now - time::Duration::seconds(30 - i);
                let ts = at.format(&time::format_description::well_known::Rfc3339);
                json!({"machine": id, "sensor": "temperature", "ts": ts.unwrap(), "value": 120.0})
            })
            .collect();
        post(base, key, "/api/v1/readings", json!(readings));
    }
    let user = |name: &str, role: &str| {
        let password = format!("{name}-password-123");
        let body = json!({"username": name, "role": role, "password": password});
        post(base, key, "/api/v1/users", body);
        password
    };
    let own_password = user("st-self", "viewer");
    let sessions_password = user("st-sessions", "viewer");
    user("st-target", "operator");
    let spare = post(
        base,
        key,
        "/api/v1/api_keys",
        json!({"name": "st-spare", "role": "viewer"}),
    );
    let spare = spare["api_key"]["prefix"].as_str().unwrap().to_owned();
    let own = login(base, "st-self", &own_password);
    let sessions = login(base, "st-sessions", &sessions_password);
    let logout = login(base, "st-sessions", &sessions_password);
    // Every operation runs as the admin API key (given on the command line) but these:
    format!(
        r#"
# A caller's own account (second factor, password) needs a user session: one of its own.
[[operations]]
include-path-regex = "^/api/v1/auth/(mfa|password)"
headers = {{ Authorization = "Bearer {own}" }}

# Listing and ending sessions ends them: another user's, so the one above stays.
[[operations]]
include-path-regex = "^/api/v1/auth/sessions"
headers = {{ Authorization = "Bearer {sessions}" }}

# Logging out works once per session: a session for it alone.
[[operations]]
include-path = "/api/v1/auth/logout"
headers = {{ Authorization = "Bearer {logout}" }}

# Disabling a user, ending its sessions or resetting its factor: a user kept for it, so that
# the sessions above are never ended by the run itself.
[[operations]]
include-path-regex = "^/api/v1/users/\\{{user\\}}"
parameters = {{ user = "st-target" }}

# Revoking a key: a key kept for it, never the one the run uses.
[[operations]]
include-path = "/api/v1/api_keys/{{key}}/revoke"
parameters = {{ key = "{spare}" }}
"#
    )
}

/// Runs schemathesis, at most until the deadline; returns whether it passed and its report.
fn run(executable: &Path, dir: &Path, base: &str, key: &str, config: &Path) -> (bool, String) {
    let mut command = Command::new(executable);
    command
        .arg("--config-file")
        .arg(config)
        .args(["run", &format!("{base}/api/v1/openapi.json")])
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args(["--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
        .args(["--generation-database", "none", "--request-timeout", "10"])
        .args(["--no-color"])
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The key is a secret, even a test's: shown redacted.
    let shown = format!("{command:?}").replace(key, "<admin API key>");
    println!("running {shown}");
    let mut child = command.spawn().unwrap();
    let read = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = read(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = read(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let report = stdout.join().unwrap() + &stderr.join().unwrap();
    match status {
        Some(status) => (status.success(), report),
        None => (false, format!("{report}\nstopped after {DEADLINE:?}")),
    }
}

/// The whole API under schemathesis: no 5xx, nothing the document does not describe.
#[test]
fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let executable = schemathesis();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let created = cli(
        &data_dir,
        &[
            "apikey",
            "create",
            "--name",
            "schemathesis",
            "--role",
            "admin",
        ],
    );
    let stdout = String::from_utf8_lossy(&created.stdout);
    let key = stdout
        .lines()
        .find_map(|l| l.strip_prefix("key (shown once): "))
        .unwrap_or_else(|| panic!("no key in {stdout}"))
        .to_owned();
    // Rate limits off (a burst of 0): thousands of requests from one address in a minute,
    // logins among them, would be 429 after the first few and reach nothing behind. The
    // limits have tests of their own (ratelimit.rs, owasp.rs).
    let policies = [
        "per_ip",
        "per_principal",
        "login_per_ip",
        "login_per_ip_and_user",
        "login_per_user",
    ];
    let off: String = policies
        .iter()
        .map(|policy| format!("  {policy}: {{ burst: 0, period_secs: 1 }}\n"))
        .collect();
    let settings = dir.path().join("factorybrain.yaml");
    std::fs::write(&settings, format!("rate_limits:\n{off}")).unwrap();
    let server = start_with(&data_dir, &["--config", settings.to_str().unwrap()]);
    let config = dir.path().join("schemathesis.toml");
    std::fs::write(&config, plant(&server.base, &key)).unwrap();

    let started = Instant::now();
    let (passed, report) = run(&executable, dir.path(), &server.base, &key, &config);
    let took = started.elapsed();
    let logs = server.stop().stdout;
    let answered: Vec<Value> = logs
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["message"] == "Request handled.")
        .collect();
    let server_errors: Vec<&Value> = answered
        .iter()
        .filter(|event| event["status"].as_u64().is_some_and(|s| s >= 500))
        .collect();
    let summary = report.lines().rev().take(25).collect::<Vec<_>>();
    println!(
        "schemathesis: {} requests answered in {took:.1?}; report ends:\n{}",
        answered.len(),
        summary.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    assert!(passed, "schemathesis found problems:\n{report}");
    assert!(server_errors.is_empty(), "server errors: {server_errors:?}");
}
