//! The event bus end to end on NATS JetStream (127.0.0.1:4222, or `FB_TEST_NATS_URL`): readings
//! posted to the API cross a machine's critical limit, detection opens an alert, and the alert
//! and the anomaly arrive as events on the bus for a consumer on another connection, as an
//! agent on another node would read them; a person's acknowledgement through the API follows.
//! The stream and subject prefix are the test's own, deleted when it passes.

use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::json;

use fb_core::events::{Event, SubjectFilter};
use fb_core::identity::Role;
use fb_core::ports::{ConsumerName, ConsumerSpec, Delivery, EventBus, EventConsumer};
use fb_server::wire;

use crate::events::{press, reading};
use crate::support::TestApp;

/// Longest wait for one expected event: far beyond what any step takes.
const PATIENCE: Duration = Duration::from_secs(60);

fn nats_url() -> String {
    std::env::var("FB_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

async fn consumer(bus: &Arc<dyn EventBus>, name: &str, filter: &str) -> Box<dyn EventConsumer> {
    bus.consumer(&ConsumerSpec {
        name: ConsumerName::parse("name", name).unwrap(),
        filter: SubjectFilter::parse("filter", filter).unwrap(),
        ack_wait: Duration::from_secs(30),
        max_deliver: 5,
    })
    .await
    .unwrap()
}

/// The next delivery whose event `wanted` accepts, acknowledging every one on the way.
async fn next_matching(
    consumer: &mut Box<dyn EventConsumer>,
    wanted: impl Fn(&Event) -> bool,
) -> Delivery {
    let find = async {
        loop {
            let d = consumer.next(PATIENCE).await.unwrap().expect("an event");
            if wanted(d.envelope().event()) {
                return d;
            }
            d.ack().await.unwrap();
        }
    };
    tokio::time::timeout(PATIENCE, find)
        .await
        .expect("the expected event within the patience")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_opened_by_readings_arrives_on_the_nats_bus_with_its_anomaly_and_acknowledgement()
{
    let unique = uuid::Uuid::now_v7().simple().to_string();
    let prefix = format!("fbtest.{unique}");
    let app = TestApp::with_env(vec![
        ("FB__BUS__KIND".into(), "nats".into()),
        ("FB__BUS__URL".into(), nats_url()),
        ("FB__BUS__STREAM".into(), format!("FBTEST_{unique}")),
        ("FB__BUS__SUBJECT_PREFIX".into(), prefix.clone()),
    ])
    .await;
    // The server's bus, and an agent's: another connection to the same stream.
    let bus = wire::open_bus(&app.settings).await.unwrap();
    assert_eq!(bus.backend(), "nats");
    let agent = wire::open_bus(&app.settings).await.unwrap();
    let mut alerts = consumer(&agent, "alerts-agent", "alerts.*.plant-a.press-01").await;
    let mut anomalies = consumer(&agent, "anomaly-agent", "anomalies.>").await;

    let (stop, stopped) = tokio::sync::watch::channel(false);
    let publisher = wire::spawn_bus_publisher(&app.storage, &app.state, bus, stopped.clone());
    let detection =
        wire::spawn_detection(&app.settings, &app.storage, &app.state, stopped).unwrap();

    let admin = app.admin_token().await;
    let created = app
        .post("/api/v1/machines", Some(&admin), press("press-01"))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let batch = json!([reading("press-01", 2, 120.0), reading("press-01", 1, 121.5)]);
    let ingested = app.post("/api/v1/readings", Some(&admin), batch).await;
    assert_eq!(ingested.body["accepted"], 2, "{}", ingested.body);

    // Silent sensors raise no_data alerts of their own on a slow machine: look for overheating.
    let opened = next_matching(
        &mut alerts,
        |e| matches!(e, Event::AlertOpened(a) if a.kind == fb_core::alerts::AlertKind::Overheating),
    )
    .await;
    let envelope = opened.envelope().clone();
    assert_eq!(envelope.subject(), "alerts.opened.plant-a.press-01");
    assert_eq!(
        (envelope.site(), envelope.source()),
        (Some("plant-a"), "alerts")
    );
    assert_eq!(opened.attempt(), 1);
    let Event::AlertOpened(alert) = envelope.event() else {
        unreachable!()
    };
    assert_eq!(alert.severity, fb_core::detection::Severity::Critical);
    let stored = app
        .get(&format!("/api/v1/alerts/{}", alert.alert), Some(&admin))
        .await;
    assert_eq!(
        stored.body["status"], "open",
        "the event names the stored alert"
    );
    opened.ack().await.unwrap();

    let anomaly = next_matching(&mut anomalies, |e| {
        matches!(e, Event::AnomalyDetected(a) if a.kind == fb_core::detection::AnomalyKind::Overheating)
    })
    .await;
    assert_eq!(
        anomaly.envelope().subject(),
        "anomalies.detected.plant-a.press-01"
    );
    anomaly.ack().await.unwrap();

    let operator = app.token_for("otto", Role::Operator).await;
    let acked = app
        .post(
            &format!("/api/v1/alerts/{}/acknowledge", alert.alert),
            Some(&operator),
            json!({"comment": "on it"}),
        )
        .await;
    assert_eq!(acked.status, StatusCode::OK, "{}", acked.body);
    let acknowledged = next_matching(
        &mut alerts,
        |e| matches!(e, Event::AlertAcknowledged(a) if a.alert == alert.alert),
    )
    .await;
    let Event::AlertAcknowledged(a) = acknowledged.envelope().event() else {
        unreachable!()
    };
    assert_eq!(a.acknowledged.as_ref().unwrap().by, "user:otto");
    acknowledged.ack().await.unwrap();

    let metrics = app.state.metrics.render();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("fb_bus_published_total{")
                && l.contains("event=\"alert.opened\"")
                && l.contains("outcome=\"published\"")
                && l.contains("backend=\"nats\"")),
        "published events are counted"
    );

    stop.send(true).unwrap();
    detection.await.unwrap();
    publisher.await.unwrap();
    let options = fb_nats::Options {
        url: nats_url(),
        stream: format!("FBTEST_{unique}"),
        prefix: fb_core::events::SubjectPrefix::parse("prefix", &prefix).unwrap(),
        max_events: 100,
        client_name: "cleanup".into(),
    };
    fb_nats::NatsBus::connect(&options)
        .await
        .unwrap()
        .delete_stream()
        .await
        .unwrap();
    app.finish().await;
}
