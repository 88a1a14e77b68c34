//! MQTT ingest against the Mosquitto broker on this machine (127.0.0.1:1883). Each test uses
//! its own topic prefix and client ids, so tests run in parallel.

use std::time::Duration;

use axum::http::StatusCode;
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::json;
use time::OffsetDateTime;

use fb_app::auth::SystemPrincipal;
use fb_core::identity::Principal;
use fb_core::ports::DeadLetterFilter;

use crate::support::TestApp;

fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// MQTT ingest from the Mosquitto on this machine, under a topic prefix of the test's own.
pub(crate) fn ingest_options(topic_prefix: &str, client_id: &str) -> fb_mqtt::Options {
    fb_mqtt::Options {
        host: "127.0.0.1".into(),
        port: 1883,
        client_id: client_id.to_owned(),
        username: None,
        password: None,
        tls_ca_file: None,
        topic_prefix: topic_prefix.to_owned(),
        batch_max: 100,
        batch_linger: Duration::from_millis(20),
    }
}

#[tokio::test]
async fn readings_published_with_qos1_are_stored_and_bad_ones_dead_lettered() {
    let run_id = uuid::Uuid::now_v7().simple().to_string();
    let prefix = format!("fbtest-{run_id}");
    let app = TestApp::with_env(vec![("FB__MQTT__TOPIC_PREFIX".into(), prefix.clone())]).await;
    let admin = app.admin_token().await;
    let machine = json!({
        "id": "press-01", "name": "Press 1", "machine_type": "press", "location": {"site": "site-a"},
        "sensors": [
            {"key": "temperature", "kind": "temperature", "unit": "C", "physical_min": -40, "physical_max": 250},
            {"key": "vibration", "kind": "vibration", "unit": "mm/s", "physical_min": 0, "physical_max": 50}
        ]
    });
    assert_eq!(
        app.post("/api/v1/machines", Some(&admin), machine)
            .await
            .status,
        StatusCode::CREATED
    );

    let options = ingest_options(&prefix, &format!("fb-ingest-{run_id}"));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let service = tokio::spawn(fb_mqtt::run(options, app.state.ingest.clone(), stop_rx));

    let mut publisher_options = MqttOptions::new(format!("fb-pub-{run_id}"), "127.0.0.1", 1883);
    publisher_options.set_keep_alive(Duration::from_secs(10));
    let (publisher, mut eventloop) = AsyncClient::new(publisher_options, 100);
    let pump = tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    // Give the subscriber time to subscribe: QoS 1 is only delivered to existing subscriptions.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let now = OffsetDateTime::now_utc();
    let publish = |topic: String, payload: String| {
        let publisher = publisher.clone();
        async move {
            publisher
                .publish(topic, QoS::AtLeastOnce, false, payload)
                .await
                .unwrap()
        }
    };
    publish(
        format!("{prefix}/site-a/press-01/temperature"),
        json!({"ts": rfc3339(now), "value": 21.5}).to_string(),
    )
    .await;
    publish(
        format!("{prefix}/site-a/press-01"),
        json!({"ts": rfc3339(now + time::Duration::seconds(1)), "temperature": 22.0, "vibration": 1.25}).to_string(),
    )
    .await;
    publish(format!("{prefix}/site-a/ghost/temperature"), "1.0".into()).await;

    let system = Principal::system();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let letter = loop {
        let latest = app.state.plant.latest(&system, "press-01").await.unwrap();
        let letters = app
            .state
            .ingest
            .dead_letters(
                &system,
                &DeadLetterFilter {
                    limit: 10,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let temperature = latest
            .iter()
            .find(|r| r.sensor.0 == "temperature")
            .map(|r| r.value);
        let vibration = latest
            .iter()
            .find(|r| r.sensor.0 == "vibration")
            .map(|r| r.value);
        if temperature == Some(22.0) && vibration == Some(1.25) && letters.len() == 1 {
            assert_eq!(letters[0].code.as_str(), "unknown_machine");
            assert_eq!(
                letters[0].source,
                format!("mqtt:{prefix}/site-a/ghost/temperature")
            );
            assert_eq!(letters[0].payload, b"1.0");
            break letters[0].id;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "readings did not arrive: {latest:?} {letters:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let stored = app
        .get(
            &format!(
                "/api/v1/machines/press-01/readings?sensor=temperature&from={}&to={}",
                rfc3339(now - time::Duration::minutes(1)),
                rfc3339(now + time::Duration::minutes(1))
            ),
            Some(&admin),
        )
        .await;
    assert_eq!(
        stored.body["points"].as_array().unwrap().len(),
        2,
        "{}",
        stored.body
    );

    // Once the machine exists, the MQTT dead letter replays with the MQTT parser: the machine
    // and sensor come from the topic kept in its source.
    let ghost = json!({
        "id": "ghost", "name": "Ghost", "machine_type": "press", "location": {"site": "site-a"},
        "sensors": [{"key": "temperature", "kind": "temperature", "unit": "C", "physical_min": -40, "physical_max": 250}]
    });
    assert_eq!(
        app.post("/api/v1/machines", Some(&admin), ghost)
            .await
            .status,
        StatusCode::CREATED
    );
    let replay = app
        .post(
            &format!("/api/v1/dead-letters/{letter}/replay"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(replay.status, StatusCode::OK, "{}", replay.body);
    assert_eq!(replay.body["accepted"], 1, "{}", replay.body);
    let latest = app.state.plant.latest(&system, "ghost").await.unwrap();
    assert_eq!(latest.iter().map(|r| r.value).collect::<Vec<_>>(), [1.0]);

    stop_tx.send(true).unwrap();
    service.await.unwrap().unwrap();
    pump.abort();
    app.finish().await;
}
