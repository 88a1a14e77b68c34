//! The event bus conformance suite: the guarantees of [`fb_core::ports::EventBus`], written
//! once and run against the in-process bus and NATS JetStream.
//!
//! Nothing here is timed: waits are bounds that only a broken bus reaches ([`PATIENCE`]).
//! "Nothing more comes" is shown by publishing a marker event and seeing it arrive next (a bus
//! delivers due redeliveries before new events, so a redelivery that should not happen would
//! come first). Redelivery after `ack_wait` is the one case that waits for time to pass (one
//! second, [`SHORT_ACK_WAIT`]); everywhere else `ack_wait` is long enough that no redelivery
//! can interfere however slow the machine is.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use fb_core::alerts::{AlertId, AlertKind, AlertStatus};
use fb_core::detection::{AnomalyKind, DetectorKind, Severity};
use fb_core::events::{AlertEvent, AnomalyEvent, Envelope, Event, EventId, SubjectFilter};
use fb_core::plant::MachineId;
use fb_core::ports::{
    BusError, ConsumerName, ConsumerSpec, Delivery, EventBus, EventConsumer, Published,
};

/// The longest any step may take on a working bus.
pub const PATIENCE: Duration = Duration::from_secs(20);
/// The `ack_wait` of the redelivery cases.
pub const SHORT_ACK_WAIT: Duration = Duration::from_secs(1);
/// The `ack_wait` everywhere else: no redelivery within a case.
const LONG_ACK_WAIT: Duration = Duration::from_secs(600);

/// Generates one test per bus conformance case. Expects `async fn open_bus()` in scope,
/// returning a fixture with a `bus: Arc<dyn EventBus>` field, `async fn reopen(&self) ->
/// Arc<dyn EventBus>` (another handle on the same bus, as a restarted process or another node
/// would open it) and `async fn finish(self)`.
#[macro_export]
macro_rules! bus_conformance {
    () => {
        $crate::bus_conformance!(@cases
            bus_delivers_in_order_and_acknowledged_events_stay_acknowledged,
            bus_redelivers_what_was_not_acknowledged_with_a_higher_attempt,
            bus_nak_redelivers_at_once,
            bus_a_reopened_consumer_resumes_after_its_last_ack,
            bus_a_duplicate_publish_is_delivered_once,
            bus_filters_choose_events_by_subject,
            bus_max_deliver_gives_an_event_up,
            bus_consumers_receive_what_was_published_after_they_were_created,
            bus_consumer_specs_are_checked,
        );
    };
    (@cases $($case:ident),+ $(,)?) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let fixture = open_bus().await;
                let reopened = fixture.reopen().await;
                $crate::conformance::$case(fixture.bus.clone(), reopened).await;
                fixture.finish().await;
            }
        )+
    };
}

fn spec(name: &str, filter: &str, ack_wait: Duration, max_deliver: u32) -> ConsumerSpec {
    ConsumerSpec {
        name: ConsumerName::parse("name", name).unwrap(),
        filter: SubjectFilter::parse("filter", filter).unwrap(),
        ack_wait,
        max_deliver,
    }
}

fn alert_event(status: AlertStatus, machine: &str) -> AlertEvent {
    AlertEvent {
        alert: AlertId(Uuid::now_v7()),
        machine: MachineId(machine.to_owned()),
        kind: AlertKind::Overheating,
        severity: Severity::Critical,
        status,
        title: format!("Overheating on {machine}"),
        evidence: Vec::new(),
        opened_at: OffsetDateTime::now_utc(),
        escalation_level: 0,
        acknowledged: None,
        resolved: None,
        version: 1,
    }
}

/// An alert-opened event of `machine` at `site`.
pub fn opened(site: &str, machine: &str) -> Envelope {
    Envelope::new(
        "conformance",
        Some(site),
        OffsetDateTime::now_utc(),
        Event::AlertOpened(alert_event(AlertStatus::Open, machine)),
    )
}

fn resolved(site: &str, machine: &str) -> Envelope {
    Envelope::new(
        "conformance",
        Some(site),
        OffsetDateTime::now_utc(),
        Event::AlertResolved(alert_event(AlertStatus::Resolved, machine)),
    )
}

fn anomaly(site: &str, machine: &str) -> Envelope {
    Envelope::new(
        "conformance",
        Some(site),
        OffsetDateTime::now_utc(),
        Event::AnomalyDetected(AnomalyEvent {
            anomaly: Uuid::now_v7(),
            machine: MachineId(machine.to_owned()),
            sensor: None,
            kind: AnomalyKind::Vibration,
            detector: DetectorKind::Multivariate,
            severity: Severity::Warning,
            at: OffsetDateTime::now_utc(),
            score: 0.8,
            evidence: Vec::new(),
        }),
    )
}

async fn publish(bus: &Arc<dyn EventBus>, e: &Envelope) {
    assert_eq!(bus.publish(e).await.unwrap(), Published::New, "{e:?}");
}

/// The next delivery, which must come within the patience.
async fn next(consumer: &mut Box<dyn EventConsumer>) -> Delivery {
    match tokio::time::timeout(PATIENCE, consumer.next(PATIENCE)).await {
        Ok(Ok(Some(d))) => d,
        Ok(Ok(None)) | Err(_) => panic!("nothing delivered within {PATIENCE:?}"),
        Ok(Err(e)) => panic!("the consumer failed: {e}"),
    }
}

fn ids(events: &[&Envelope]) -> Vec<EventId> {
    events.iter().map(|e| e.id()).collect()
}

/// Publishes a marker and checks that it is what `consumer` receives next (so nothing else
/// was due for it), acknowledging it.
async fn only_the_marker_comes(
    bus: &Arc<dyn EventBus>,
    consumer: &mut Box<dyn EventConsumer>,
    marker: Envelope,
) {
    publish(bus, &marker).await;
    let d = next(consumer).await;
    assert_eq!(d.id(), marker.id(), "expected the marker, got {d:?}");
    d.ack().await.unwrap();
}

pub async fn bus_delivers_in_order_and_acknowledged_events_stay_acknowledged(
    bus: Arc<dyn EventBus>,
    _: Arc<dyn EventBus>,
) {
    let mut consumer = bus
        .consumer(&spec("ordered", ">", LONG_ACK_WAIT, 5))
        .await
        .unwrap();
    let (a, b, c) = (
        opened("plant-a", "m1"),
        resolved("plant-a", "m1"),
        anomaly("plant-a", "m2"),
    );
    for e in [&a, &b, &c] {
        publish(&bus, e).await;
    }
    let mut got = Vec::new();
    for _ in 0..3 {
        let d = next(&mut consumer).await;
        assert_eq!(d.attempt(), 1);
        got.push(d.envelope().clone());
        d.ack().await.unwrap();
    }
    assert_eq!(got, [a, b, c], "whole envelopes, in publish order");
    only_the_marker_comes(&bus, &mut consumer, opened("plant-a", "marker")).await;
}

pub async fn bus_redelivers_what_was_not_acknowledged_with_a_higher_attempt(
    bus: Arc<dyn EventBus>,
    _: Arc<dyn EventBus>,
) {
    let mut consumer = bus
        .consumer(&spec("redelivery", ">", SHORT_ACK_WAIT, 5))
        .await
        .unwrap();
    let e = opened("plant-a", "m1");
    publish(&bus, &e).await;
    let first = next(&mut consumer).await;
    assert_eq!((first.id(), first.attempt()), (e.id(), 1));
    assert!(!first.is_last_attempt());
    drop(first); // not acknowledged: due again after ack_wait
    let second = next(&mut consumer).await;
    assert_eq!((second.id(), second.attempt()), (e.id(), 2));
    assert_eq!(second.envelope(), &e);
    second.ack().await.unwrap();
    only_the_marker_comes(&bus, &mut consumer, opened("plant-a", "marker")).await;
}

pub async fn bus_nak_redelivers_at_once(bus: Arc<dyn EventBus>, _: Arc<dyn EventBus>) {
    let mut consumer = bus
        .consumer(&spec("nak", ">", LONG_ACK_WAIT, 5))
        .await
        .unwrap();
    let e = opened("plant-a", "m1");
    publish(&bus, &e).await;
    let first = next(&mut consumer).await;
    first.nak().await.unwrap();
    let second = next(&mut consumer).await;
    assert_eq!((second.id(), second.attempt()), (e.id(), 2));
    second.ack().await.unwrap();
    only_the_marker_comes(&bus, &mut consumer, opened("plant-a", "marker")).await;
}

pub async fn bus_a_reopened_consumer_resumes_after_its_last_ack(
    bus: Arc<dyn EventBus>,
    reopened: Arc<dyn EventBus>,
) {
    let worker = spec("resume", "alerts.>", SHORT_ACK_WAIT, 5);
    let mut consumer = bus.consumer(&worker).await.unwrap();
    let (a, b, c) = (
        opened("plant-a", "m1"),
        opened("plant-a", "m2"),
        opened("plant-a", "m3"),
    );
    for e in [&a, &b, &c] {
        publish(&bus, e).await;
    }
    let d = next(&mut consumer).await;
    assert_eq!(d.id(), a.id());
    d.ack().await.unwrap();
    let d = next(&mut consumer).await;
    assert_eq!(d.id(), b.id());
    // The process stops with b received but not acknowledged.
    drop(d);
    drop(consumer);

    // Restarted (another connection for a networked bus): b again, then c, never a.
    let mut consumer = reopened.consumer(&worker).await.unwrap();
    let (mut again, mut rest) = (None, None);
    while again.is_none() || rest.is_none() {
        let d = next(&mut consumer).await;
        assert_ne!(d.id(), a.id(), "an acknowledged event came back");
        if d.id() == b.id() {
            assert_eq!(d.attempt(), 2, "b was delivered once before");
            again = Some(d);
        } else {
            assert_eq!((d.id(), d.attempt()), (c.id(), 1));
            rest = Some(d);
        }
    }
    for d in [again, rest].into_iter().flatten() {
        d.ack().await.unwrap();
    }
    only_the_marker_comes(&reopened, &mut consumer, opened("plant-a", "marker")).await;
}

pub async fn bus_a_duplicate_publish_is_delivered_once(
    bus: Arc<dyn EventBus>,
    reopened: Arc<dyn EventBus>,
) {
    let mut consumer = bus
        .consumer(&spec("dedup", ">", LONG_ACK_WAIT, 5))
        .await
        .unwrap();
    let e = opened("plant-a", "m1");
    assert_eq!(bus.publish(&e).await.unwrap(), Published::New);
    // A retry by the same publisher, and the same event from another node.
    assert_eq!(bus.publish(&e).await.unwrap(), Published::Duplicate);
    assert_eq!(reopened.publish(&e).await.unwrap(), Published::Duplicate);
    let d = next(&mut consumer).await;
    assert_eq!((d.id(), d.attempt()), (e.id(), 1));
    d.ack().await.unwrap();
    only_the_marker_comes(&bus, &mut consumer, opened("plant-a", "marker")).await;
}

pub async fn bus_filters_choose_events_by_subject(bus: Arc<dyn EventBus>, _: Arc<dyn EventBus>) {
    let mut alerts = bus
        .consumer(&spec("alerts", "alerts.>", LONG_ACK_WAIT, 5))
        .await
        .unwrap();
    let mut site_b = bus
        .consumer(&spec("site-b", "*.*.plant-b.>", LONG_ACK_WAIT, 5))
        .await
        .unwrap();
    let mut one_machine = bus
        .consumer(&spec("m3", "alerts.*.*.m3", LONG_ACK_WAIT, 5))
        .await
        .unwrap();
    let (a, b, c) = (
        opened("plant-a", "m1"),
        anomaly("plant-b", "m2"),
        resolved("plant-b", "m3"),
    );
    for e in [&a, &b, &c] {
        publish(&bus, e).await;
    }
    let take = async |consumer: &mut Box<dyn EventConsumer>, n: usize| {
        let mut got = Vec::new();
        for _ in 0..n {
            let d = next(consumer).await;
            got.push(d.id());
            d.ack().await.unwrap();
        }
        got
    };
    assert_eq!(take(&mut alerts, 2).await, ids(&[&a, &c]));
    assert_eq!(take(&mut site_b, 2).await, ids(&[&b, &c]));
    assert_eq!(take(&mut one_machine, 1).await, ids(&[&c]));
    // A marker every filter passes comes next to each: nothing else matched.
    let marker = opened("plant-b", "m3");
    publish(&bus, &marker).await;
    for consumer in [&mut alerts, &mut site_b, &mut one_machine] {
        assert_eq!(take(consumer, 1).await, ids(&[&marker]));
    }
}

pub async fn bus_max_deliver_gives_an_event_up(bus: Arc<dyn EventBus>, _: Arc<dyn EventBus>) {
    let mut consumer = bus
        .consumer(&spec("bounded", ">", LONG_ACK_WAIT, 2))
        .await
        .unwrap();
    let poison = opened("plant-a", "m1");
    publish(&bus, &poison).await;
    let first = next(&mut consumer).await;
    assert_eq!((first.id(), first.attempt()), (poison.id(), 1));
    assert!(!first.is_last_attempt());
    first.nak().await.unwrap();
    let second = next(&mut consumer).await;
    assert_eq!((second.id(), second.attempt()), (poison.id(), 2));
    assert!(second.is_last_attempt());
    second.nak().await.unwrap();
    // A third attempt would be due at once and come before the marker.
    only_the_marker_comes(&bus, &mut consumer, opened("plant-a", "marker")).await;
}

pub async fn bus_consumers_receive_what_was_published_after_they_were_created(
    bus: Arc<dyn EventBus>,
    _: Arc<dyn EventBus>,
) {
    let before = opened("plant-a", "m1");
    publish(&bus, &before).await;
    let mut consumer = bus
        .consumer(&spec("late", ">", LONG_ACK_WAIT, 5))
        .await
        .unwrap();
    let after = opened("plant-a", "m2");
    publish(&bus, &after).await;
    let d = next(&mut consumer).await;
    assert_eq!(d.id(), after.id());
    d.ack().await.unwrap();
}

pub async fn bus_consumer_specs_are_checked(bus: Arc<dyn EventBus>, _: Arc<dyn EventBus>) {
    let mut bad = spec("bad", ">", Duration::ZERO, 0);
    let Err(BusError::Invalid(problems)) = bus.consumer(&bad).await.map(|_| ()) else {
        panic!("a zero ack_wait and max_deliver are refused")
    };
    let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["ack_wait", "max_deliver"]);
    bad.ack_wait = LONG_ACK_WAIT;
    bad.max_deliver = 1;
    assert!(bus.consumer(&bad).await.is_ok());
}
