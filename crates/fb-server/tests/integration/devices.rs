//! Device credentials: the API and command line that manage them, and the embedded broker that
//! asks them (with `--features embedded-broker`).

use axum::http::StatusCode;
use serde_json::json;

use crate::support::TestApp;

#[tokio::test]
async fn admins_create_list_and_revoke_devices_and_each_step_is_audited() {
    let app = TestApp::new().await;
    let admin = app.admin_token().await;
    let created = app
        .post(
            "/api/v1/devices",
            Some(&admin),
            json!({"name": "press-01", "machine": "press-01", "site": "plant-a"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let password = created.body["password"].as_str().unwrap().to_owned();
    assert!(password.starts_with("fbd_"), "{password}");
    assert_eq!(created.body["device"]["machine"], "press-01");

    let again = app
        .post("/api/v1/devices", Some(&admin), json!({"name": "press-01"}))
        .await;
    assert_eq!(
        (again.status, again.code()),
        (StatusCode::CONFLICT, "device_exists")
    );
    let bad = app
        .post(
            "/api/v1/devices",
            Some(&admin),
            json!({"name": "press/01", "site": "a+b"}),
        )
        .await;
    assert_eq!(
        (bad.status, bad.code()),
        (StatusCode::BAD_REQUEST, "invalid_field")
    );
    let fields: Vec<&str> = bad.body["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["name", "site"]);

    let list = app.get("/api/v1/devices", Some(&admin)).await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.body["devices"][0]["name"], "press-01");
    assert!(
        !list.body.to_string().contains(&password[4..]),
        "a list never shows a secret"
    );

    let operator = app
        .token_for("floor", fb_core::identity::Role::Operator)
        .await;
    let denied = app.get("/api/v1/devices", Some(&operator)).await;
    assert_eq!(
        (denied.status, denied.code()),
        (StatusCode::FORBIDDEN, "permission_denied")
    );

    let revoked = app
        .post("/api/v1/devices/press-01/revoke", Some(&admin), json!({}))
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    assert!(revoked.body["revoked_at"].is_string());
    let twice = app
        .post("/api/v1/devices/press-01/revoke", Some(&admin), json!({}))
        .await;
    assert_eq!(
        (twice.status, twice.code()),
        (StatusCode::CONFLICT, "device_revoked")
    );
    let missing = app
        .post("/api/v1/devices/nobody/revoke", Some(&admin), json!({}))
        .await;
    assert_eq!(
        (missing.status, missing.code()),
        (StatusCode::NOT_FOUND, "device_not_found")
    );

    let audit = app
        .get(
            "/api/v1/audit?target=device:press-01&limit=10",
            Some(&admin),
        )
        .await;
    let actions: Vec<(&str, &str)> = audit.body["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("device.create", "success"),
            ("device.revoke", "success"),
            ("device.revoke", "failure"),
        ]
    );
    assert!(!audit.body.to_string().contains(&password[4..]));
    app.finish().await;
}

#[test]
fn the_command_line_adds_lists_and_revokes_devices() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let app = runtime.block_on(TestApp::new());
    let added = app.cli(&["device", "add", "cnc-9", "--machine", "cnc-9"], &[]);
    let out = String::from_utf8_lossy(&added.stdout);
    assert!(
        added.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let password = out
        .lines()
        .find_map(|l| l.strip_prefix("MQTT password (shown once): "))
        .unwrap()
        .to_owned();
    let connected = runtime.block_on(app.state.devices.authenticate("cnc-9", "cnc-9", &password));
    assert!(connected.is_ok(), "the printed password is the device's");

    let list = app.cli(&["device", "list"], &[]);
    let out = String::from_utf8_lossy(&list.stdout);
    assert!(out.contains("cnc-9") && out.contains("active"), "{out}");
    assert!(!out.contains(&password[4..]));

    let revoked = app.cli(&["device", "revoke", "cnc-9"], &[]);
    assert!(revoked.status.success());
    let refused = runtime.block_on(app.state.devices.authenticate("cnc-9", "cnc-9", &password));
    assert!(matches!(
        refused,
        Err(fb_app::devices::Error::InvalidCredentials)
    ));
    let again = app.cli(&["device", "revoke", "cnc-9"], &[]);
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("device_revoked"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    runtime.block_on(app.finish());
}

#[cfg(feature = "embedded-broker")]
pub(crate) mod embedded {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::http::StatusCode;
    use rumqttc::{AsyncClient, ConnectReturnCode, Event, MqttOptions, Packet, QoS};
    use serde_json::json;

    use fb_app::auth::SystemPrincipal;
    use fb_core::identity::Principal;
    use fb_server::settings::{Layers, Settings};

    use crate::support::TestApp;

    /// Whether a client with these credentials gets a successful CONNACK (or is cut off).
    pub(crate) async fn connects(port: u16, client_id: &str, login: Option<(&str, &str)>) -> bool {
        let mut options = MqttOptions::new(client_id, "127.0.0.1", port);
        if let Some((user, password)) = login {
            options.set_credentials(user, password);
        }
        let (_client, mut eventloop) = AsyncClient::new(options, 10);
        tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        break ack.code == ConnectReturnCode::Success;
                    }
                    Ok(_) => {}
                    Err(_) => break false,
                }
            }
        })
        .await
        .expect("the broker answers or hangs up")
    }

    /// The app's embedded broker, started from the settings `env` says.
    pub(crate) fn start_broker(
        app: &TestApp,
        env: Vec<(String, String)>,
    ) -> (Settings, fb_server::wire::EmbeddedMqtt) {
        let settings = Settings::load(&Layers {
            env,
            ..Layers::default()
        })
        .unwrap();
        let embedded =
            fb_server::wire::start_embedded_broker(&settings, &app.state.devices, &app.state.audit)
                .unwrap()
                .expect("the broker is enabled");
        (settings, embedded)
    }

    /// Log lines of this test's thread (the test runtime, where device checks run).
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
        }
    }

    /// The whole path: a device with its credential publishes and the reading is stored; a
    /// wrong password, an unknown device and an anonymous client are refused; revoking the
    /// device drops its connection and refuses it from then on; its secret is in no log line
    /// and not in the database file.
    #[tokio::test]
    async fn the_embedded_broker_admits_devices_by_their_own_credentials_only() {
        let log = Captured::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::DEBUG)
            .with_ansi(false)
            .finish();
        let _logging = tracing::subscriber::set_default(subscriber);

        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let run_id = uuid::Uuid::now_v7().simple().to_string();
        let env: Vec<(String, String)> = vec![
            ("FB__MQTT__EMBEDDED_BROKER".into(), "true".into()),
            (
                "FB__MQTT__EMBEDDED_LISTEN".into(),
                format!("127.0.0.1:{port}"),
            ),
            ("FB__MQTT__CLIENT_ID".into(), format!("fb-ingest-{run_id}")),
            ("FB__MQTT__BATCH_LINGER_MS".into(), "10".into()),
        ];
        let app = TestApp::with_env(env.clone()).await;
        let admin = app.admin_token().await;
        let machine = json!({
            "id": "pump-7", "name": "Pump 7", "machine_type": "pump", "location": {"site": "site-b"},
            "sensors": [{"key": "pressure", "kind": "pressure", "unit": "bar", "physical_min": 0, "physical_max": 40}]
        });
        let created = app.post("/api/v1/machines", Some(&admin), machine).await;
        assert_eq!(created.status, StatusCode::CREATED);
        let device = app
            .post(
                "/api/v1/devices",
                Some(&admin),
                json!({"name": "pump-7", "machine": "pump-7", "site": "site-b"}),
            )
            .await;
        assert_eq!(device.status, StatusCode::CREATED, "{}", device.body);
        let password = device.body["password"].as_str().unwrap().to_owned();

        let (settings, embedded) = start_broker(&app, env);
        let options = fb_server::wire::mqtt_options(&settings, Some(&embedded))
            .unwrap()
            .unwrap();
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let service = tokio::spawn(fb_mqtt::run(options, app.state.ingest.clone(), stop_rx));

        assert!(
            !connects(
                port,
                &format!("pump-7:a-{run_id}"),
                Some(("pump-7", "fbd_guess"))
            )
            .await,
            "a wrong password must not connect"
        );
        assert!(
            !connects(
                port,
                &format!("pump-8:b-{run_id}"),
                Some(("pump-8", &password))
            )
            .await,
            "an unknown device must not connect"
        );
        assert!(
            !connects(port, &format!("c-{run_id}"), None).await,
            "an anonymous client must not connect"
        );

        assert!(
            !connects(
                port,
                &format!("fb-ingest-{run_id}"),
                Some(("pump-7", &password))
            )
            .await,
            "a device must not take another client's id (here ingest's own)"
        );

        // The device, connected, publishing; its connection's events come out of the pump.
        let mut options = MqttOptions::new(format!("pump-7:{run_id}"), "127.0.0.1", port);
        options.set_credentials("pump-7", password.as_str());
        let (publisher, mut eventloop) = AsyncClient::new(options, 10);
        let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
        let pump = tokio::spawn(async move {
            loop {
                let event = match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                        Some(ack.code == ConnectReturnCode::Success)
                    }
                    Ok(_) => None,
                    Err(_) => Some(false),
                };
                if let Some(connected) = event {
                    if events_tx.send(connected).is_err() {
                        break;
                    }
                    if !connected {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        });
        assert_eq!(
            events.recv().await,
            Some(true),
            "the device connects: {}",
            log.text()
        );
        // Ingest subscribes on its own connection; give it a moment to have done so.
        tokio::time::sleep(Duration::from_millis(500)).await;
        publisher
            .publish(
                "factorybrain/site-b/pump-7/pressure",
                QoS::AtLeastOnce,
                false,
                "12.5",
            )
            .await
            .unwrap();
        let system = Principal::system();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            let latest = app.state.plant.latest(&system, "pump-7").await.unwrap();
            if latest.iter().any(|r| r.value == 12.5) {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the reading did not arrive through the embedded broker"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let listed = app.get("/api/v1/devices", Some(&admin)).await;
        assert!(
            listed.body["devices"][0]["last_connected_at"].is_string(),
            "{}",
            listed.body
        );

        let revoked = app
            .post("/api/v1/devices/pump-7/revoke", Some(&admin), json!({}))
            .await;
        assert_eq!(revoked.status, StatusCode::OK);
        let dropped = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(connected) = events.recv().await {
                if !connected {
                    return true;
                }
            }
            false
        })
        .await
        .expect("the revoked device's connection is dropped");
        assert!(dropped);
        assert!(
            !connects(
                port,
                &format!("pump-7:d-{run_id}"),
                Some(("pump-7", &password))
            )
            .await,
            "a revoked device must not connect"
        );
        pump.abort();

        let logged = log.text();
        let refusals = |device: &str| {
            logged
                .lines()
                .filter(|l| l.contains("Device refused by the embedded broker"))
                .filter(|l| l.contains(&format!("device={device}")))
                .count()
        };
        // Wrong password and revoked: pump-7; unknown: pump-8. (An anonymous client is refused
        // by the broker before any check is asked.)
        assert!(
            refusals("pump-7") >= 2 && refusals("pump-8") >= 1,
            "{logged}"
        );
        assert!(!logged.contains(&password[4..]), "the secret was logged");
        let mut stored = Vec::new();
        for file in ["factorybrain.db", "factorybrain.db-wal"] {
            if let Ok(bytes) = std::fs::read(app.data_dir().join(file)) {
                stored.extend(bytes);
            }
        }
        assert!(!stored.is_empty());
        assert!(
            !stored
                .windows(password.len())
                .any(|w| w == password.as_bytes()),
            "the secret is stored in clear"
        );

        stop_tx.send(true).unwrap();
        service.await.unwrap().unwrap();
        app.finish().await;
    }

    /// `mqtt.embedded_allow_anonymous` is the one way to an open broker, and it says so.
    #[tokio::test]
    async fn anonymous_clients_connect_only_when_the_setting_allows_them() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let env: Vec<(String, String)> = vec![
            ("FB__MQTT__EMBEDDED_BROKER".into(), "true".into()),
            (
                "FB__MQTT__EMBEDDED_LISTEN".into(),
                format!("127.0.0.1:{port}"),
            ),
            ("FB__MQTT__EMBEDDED_ALLOW_ANONYMOUS".into(), "true".into()),
        ];
        let app = TestApp::with_env(env.clone()).await;
        let (_, embedded) = start_broker(&app, env);
        assert_eq!(embedded.ingest_credentials, None, "nobody is asked");
        let client = format!("anonymous-{}", uuid::Uuid::now_v7().simple());
        assert!(connects(port, &client, None).await);
        app.finish().await;
    }
}
