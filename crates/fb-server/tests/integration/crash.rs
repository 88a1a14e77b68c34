//! The crash test: numbered QoS 1 readings go through Mosquitto while the real server is killed
//! with SIGKILL several times and restarted; at the end every reading is stored exactly once.
//! Bounded: about 2,000 messages over some 15 seconds.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rumqttc::{Client, MqttOptions, QoS};
use serde_json::Value;
use time::OffsetDateTime;

const BIN: &str = env!("CARGO_BIN_EXE_factorybrain");
const MESSAGES: usize = 2000;
const KILLS: usize = 3;

struct Running {
    child: Child,
    base: String,
    password: Option<String>,
}

fn start(data_dir: &Path, prefix: &str, client_id: &str) -> Running {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .env_remove("FB__STORAGE__URL")
        .env("FB__MQTT__ENABLED", "true")
        .env("FB__MQTT__TOPIC_PREFIX", prefix)
        .env("FB__MQTT__CLIENT_ID", client_id)
        .env("FB__MQTT__BATCH_MAX", "50")
        .env("FB__INGEST__AUTO_REGISTER", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let out = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let err = BufReader::new(child.stderr.take().unwrap());
    let (etx, erx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in err.lines().map_while(Result::ok) {
            let _ = etx.send(line);
        }
    });
    let mut base = None;
    let mut announced = false;
    while base.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("server start");
        let event: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        announced |= event["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("First admin created"));
        if event["message"] == "Listening." {
            base = Some(format!("http://{}", event["addr"].as_str().unwrap()));
        }
    }
    let password = announced.then(|| {
        loop {
            let line = erx.recv_timeout(Duration::from_secs(10)).unwrap();
            if let Some(p) = line.trim().strip_prefix("password:") {
                break p.trim().to_owned();
            }
        }
    });
    Running {
        child,
        base: base.unwrap(),
        password,
    }
}

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

#[test]
fn every_acknowledged_reading_survives_kill_9_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let prefix = format!("fbcrash-{run_id}");
    let client_id = format!("fb-crash-{run_id}");
    let mut server = start(dir.path(), &prefix, &client_id);
    let password = server
        .password
        .clone()
        .expect("first start prints the admin password");

    // The publisher: QoS 1, its own session; numbered readings 10 ms apart in event time.
    let mut options = MqttOptions::new(format!("fb-crash-pub-{run_id}"), "127.0.0.1", 1883);
    options.set_keep_alive(Duration::from_secs(10));
    let (publisher, mut connection) = Client::new(options, 256);
    std::thread::spawn(move || for _ in connection.iter() {});
    std::thread::sleep(Duration::from_millis(500));
    let base = OffsetDateTime::now_utc() - time::Duration::hours(1);
    let topic = format!("{prefix}/site/crash-m/counter");
    let publisher_thread = std::thread::spawn(move || {
        for i in 0..MESSAGES {
            let ts = base + time::Duration::milliseconds(10 * i as i64);
            let payload = serde_json::json!({"ts": rfc3339(ts), "value": i}).to_string();
            publisher
                .publish(topic.clone(), QoS::AtLeastOnce, false, payload)
                .unwrap();
            std::thread::sleep(Duration::from_millis(6));
        }
    });

    // Kill the server hard a few times while the stream runs, restarting it at once.
    for _ in 0..KILLS {
        std::thread::sleep(Duration::from_millis(2500));
        server.child.kill().unwrap(); // SIGKILL
        server.child.wait().unwrap();
        server = start(dir.path(), &prefix, &client_id);
    }
    publisher_thread.join().unwrap();

    // Log in and wait until the last redeliveries are in.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let token = crate::support::http_login(&agent, &server.base, "admin", &password);
    let url = format!(
        "{}/api/v1/machines/crash-m/readings?sensor=counter&from={}&to={}",
        server.base,
        rfc3339(base - time::Duration::minutes(1)),
        rfc3339(base + time::Duration::minutes(10))
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let values = loop {
        let mut r = agent
            .get(&url)
            .header("authorization", &format!("Bearer {token}"))
            .call()
            .unwrap();
        let body: Value = r.body_mut().read_json().unwrap_or(Value::Null);
        let values: Vec<i64> = body["points"].as_array().map_or_else(Vec::new, |p| {
            p.iter()
                .map(|x| x["value"].as_f64().unwrap() as i64)
                .collect()
        });
        if values.len() >= MESSAGES || Instant::now() > deadline {
            break values;
        }
        std::thread::sleep(Duration::from_millis(250));
    };
    server.child.kill().unwrap();
    server.child.wait().unwrap();

    let mut sorted = values.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), values.len(), "a reading was stored twice");
    let missing: Vec<i64> = (0..MESSAGES as i64)
        .filter(|i| sorted.binary_search(i).is_err())
        .collect();
    assert!(
        missing.is_empty(),
        "{} readings lost after {KILLS} kills, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}
