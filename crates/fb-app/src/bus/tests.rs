use std::sync::Arc;
use std::time::Duration;

use fb_core::alerts::{AlertKind, AlertPolicy, Condition};
use fb_core::detection::{Anomaly, AnomalyKind, DetectorKind, Evidence, Severity};
use fb_core::events::{Event, SubjectFilter};
use fb_core::identity::Role;
use fb_core::plant::MachineId;
use fb_core::ports::{ConsumerName, ConsumerSpec, EventConsumer, Storage};
use fb_testkit::FakeClock;
use fb_testkit::fakes::MemoryStore;
use fb_testkit::fixtures;

use super::*;
use crate::alerts::{self, Observation};
use crate::detection::AnomalyFeed;

const PATIENCE: Duration = Duration::from_secs(10);

struct Setup {
    storage: Storage,
    alerts: Arc<alerts::Service>,
    bus: Arc<dyn EventBus>,
    clock: Arc<FakeClock>,
}

async fn setup() -> Setup {
    let storage = Storage::from_backend(Arc::new(MemoryStore::new()));
    storage
        .machines
        .insert_machine(&fixtures::machine("press-01"))
        .await
        .unwrap();
    let clock = Arc::new(FakeClock::new());
    let alerts = Arc::new(
        alerts::Service::start(
            storage.alerts.clone(),
            crate::scope::MachineVisibility::new(storage.machines.clone()),
            clock.clone(),
            AlertPolicy::default(),
        )
        .await
        .unwrap(),
    );
    Setup {
        storage,
        alerts,
        bus: Arc::new(InProcessBus::new(100)),
        clock,
    }
}

async fn consumer(bus: &Arc<dyn EventBus>, filter: &str) -> Box<dyn EventConsumer> {
    bus.consumer(&ConsumerSpec {
        name: ConsumerName::parse("name", "test").unwrap(),
        filter: SubjectFilter::parse("filter", filter).unwrap(),
        ack_wait: Duration::from_secs(600),
        max_deliver: 3,
    })
    .await
    .unwrap()
}

async fn next(consumer: &mut Box<dyn EventConsumer>) -> Envelope {
    let d = consumer
        .next(PATIENCE)
        .await
        .unwrap()
        .expect("an event within the patience");
    let envelope = d.envelope().clone();
    d.ack().await.unwrap();
    envelope
}

fn hot(machine: &str, clock: &FakeClock) -> Observation {
    Observation::Holds(Condition {
        machine: MachineId(machine.into()),
        kind: AlertKind::Overheating,
        severity: Severity::Critical,
        at: clock.now_for_tests(),
        title: "Overheating".into(),
        evidence: vec![Evidence::number("value", 121.5)],
        confirmed: false,
    })
}

#[tokio::test]
async fn the_alert_lifecycle_is_published_under_the_machines_site() {
    let s = setup().await;
    let mut alerts_out = consumer(&s.bus, "alerts.>").await;
    let feed = AnomalyFeed::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let publisher = EventPublisher::new(s.bus.clone(), s.storage.machines.clone());
    let (_tickets, tickets_rx) = tokio::sync::broadcast::channel(16);
    let task =
        tokio::spawn(publisher.run(s.alerts.subscribe(), feed.subscribe(), tickets_rx, stopped));

    s.alerts
        .observe(vec![hot("press-01", &s.clock)])
        .await
        .unwrap();
    let opened = next(&mut alerts_out).await;
    assert_eq!(opened.subject(), "alerts.opened.plant-a.press-01");
    assert_eq!(opened.site(), Some("plant-a"));
    assert_eq!(opened.source(), ALERTS_SOURCE);
    let Event::AlertOpened(alert) = opened.event() else {
        panic!("{opened:?}")
    };
    assert_eq!(alert.severity, Severity::Critical);

    let operator = fixtures::principal(Role::Operator);
    s.alerts
        .acknowledge(&operator, alert.alert, Some("on it".into()))
        .await
        .unwrap();
    let acked = next(&mut alerts_out).await;
    assert_eq!(acked.subject(), "alerts.acknowledged.plant-a.press-01");
    let Event::AlertAcknowledged(a) = acked.event() else {
        panic!("{acked:?}")
    };
    assert_eq!(
        a.acknowledged.as_ref().unwrap().comment.as_deref(),
        Some("on it")
    );

    s.alerts
        .resolve(&operator, alert.alert, None)
        .await
        .unwrap();
    let resolved = next(&mut alerts_out).await;
    assert_eq!(resolved.subject(), "alerts.resolved.plant-a.press-01");
    assert_ne!(opened.id(), resolved.id());

    stop.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn anomalies_and_alerts_of_unknown_machines_are_published_without_a_site() {
    let s = setup().await;
    let mut all = consumer(&s.bus, ">").await;
    let publisher = EventPublisher::new(s.bus.clone(), s.storage.machines.clone());
    let anomaly = |machine: &str| Anomaly {
        id: uuid::Uuid::now_v7(),
        machine: MachineId(machine.into()),
        sensor: None,
        kind: AnomalyKind::Vibration,
        detector: DetectorKind::Multivariate,
        severity: Severity::Warning,
        at: s.clock.now_for_tests(),
        score: 0.9,
        evidence: Vec::new(),
    };
    let outcomes = publisher
        .anomalies(&[anomaly("press-01"), anomaly("gone-7")])
        .await;
    assert_eq!(outcomes, [Outcome::Published, Outcome::Published]);
    let first = next(&mut all).await;
    assert_eq!(first.subject(), "anomalies.detected.plant-a.press-01");
    assert_eq!(first.source(), DETECTION_SOURCE);
    let second = next(&mut all).await;
    assert_eq!(second.subject(), "anomalies.detected.~.gone-7");
    assert_eq!(second.site(), None);
}

#[tokio::test]
async fn updates_and_escalations_stay_off_the_bus() {
    let s = setup().await;
    let publisher = EventPublisher::new(s.bus.clone(), s.storage.machines.clone());
    let mut events = s.alerts.subscribe();
    s.alerts
        .observe(vec![hot("press-01", &s.clock)])
        .await
        .unwrap();
    let opened = events.recv().await.unwrap();
    assert_eq!(publisher.alert(&opened).await, Some(Outcome::Published));
    let updated = alerts::AlertEvent::Updated(opened.alert().clone());
    let escalated = alerts::AlertEvent::Escalated(opened.alert().clone());
    assert_eq!(publisher.alert(&updated).await, None);
    assert_eq!(publisher.alert(&escalated).await, None);
}

#[tokio::test]
async fn what_was_announced_before_the_stop_is_still_published() {
    let s = setup().await;
    let mut alerts_out = consumer(&s.bus, "alerts.opened.>").await;
    let feed = AnomalyFeed::default();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let publisher = EventPublisher::new(s.bus.clone(), s.storage.machines.clone());
    let (_tickets, tickets_rx) = tokio::sync::broadcast::channel(16);
    let receivers = (s.alerts.subscribe(), feed.subscribe(), tickets_rx);
    // The change is announced, and the stop comes, before the publisher runs at all.
    s.alerts
        .observe(vec![hot("press-01", &s.clock)])
        .await
        .unwrap();
    stop.send(true).unwrap();
    publisher
        .run(receivers.0, receivers.1, receivers.2, stopped)
        .await;
    let opened = next(&mut alerts_out).await;
    assert_eq!(opened.subject(), "alerts.opened.plant-a.press-01");
}

#[tokio::test]
async fn tickets_opened_and_moved_are_published_under_their_own_site() {
    use crate::maintenance::TicketEvent;
    use fb_core::maintenance::{FailureType, Transition};

    let s = setup().await;
    let mut tickets_out = consumer(&s.bus, "tickets.>").await;
    let publisher = EventPublisher::new(s.bus.clone(), s.storage.machines.clone());
    let mut ticket = fb_testkit::fixtures::ticket("press-01", "plant-b", FailureType::Bearing);
    assert_eq!(
        publisher.ticket(&TicketEvent::Opened(ticket.clone())).await,
        Some(Outcome::Published)
    );
    // Edits do not move a ticket: they stay off the bus.
    assert_eq!(
        publisher
            .ticket(&TicketEvent::Updated(ticket.clone()))
            .await,
        None
    );
    ticket.status = fb_core::maintenance::TicketStatus::InProgress;
    assert_eq!(
        publisher
            .ticket(&TicketEvent::Moved {
                ticket: ticket.clone(),
                action: Transition::Start,
            })
            .await,
        Some(Outcome::Published)
    );

    let opened = next(&mut tickets_out).await;
    assert_eq!(opened.subject(), "tickets.open.plant-b.press-01");
    assert_eq!(opened.source(), MAINTENANCE_SOURCE);
    let Event::Ticket(payload) = opened.event() else {
        panic!("a ticket event: {opened:?}")
    };
    assert_eq!(payload.ticket, ticket.id.0);
    assert_eq!(payload.failure_type.as_deref(), Some("bearing"));
    assert_eq!(payload.priority, fb_core::events::TicketPriority::High);
    let started = next(&mut tickets_out).await;
    assert_eq!(started.subject(), "tickets.in_progress.plant-b.press-01");
}
