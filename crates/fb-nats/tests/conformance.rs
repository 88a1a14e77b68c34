//! The bus conformance suite on the NATS server at 127.0.0.1:4222 (`FB_TEST_NATS_URL`
//! overrides it): each case gets a stream and subject prefix of its own, so cases run in
//! parallel, and deletes its stream when it passes.

// Test code: a failed expectation should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use fb_core::events::SubjectPrefix;
use fb_core::ports::{ConsumerName, ConsumerSpec, EventBus, Published};
use fb_nats::{NatsBus, Options};

fn nats_url() -> String {
    std::env::var("FB_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned())
}

fn options() -> Options {
    let unique = uuid::Uuid::now_v7().simple().to_string();
    Options {
        url: nats_url(),
        stream: format!("FBTEST_{unique}"),
        prefix: SubjectPrefix::parse("prefix", &format!("fbtest.{unique}")).unwrap(),
        max_events: 1000,
        client_name: "fb-nats-tests".to_owned(),
    }
}

struct Fixture {
    bus: Arc<dyn EventBus>,
    nats: NatsBus,
    options: Options,
}

impl Fixture {
    /// Another connection to the same stream, as a restarted node would open.
    async fn reopen(&self) -> Arc<dyn EventBus> {
        Arc::new(NatsBus::connect(&self.options).await.unwrap())
    }

    async fn finish(self) {
        self.nats.delete_stream().await.unwrap();
    }
}

async fn open_bus() -> Fixture {
    let options = options();
    let nats = NatsBus::connect(&options).await.unwrap();
    Fixture {
        bus: Arc::new(nats.clone()),
        nats,
        options,
    }
}

fb_testkit::bus_conformance!();

#[tokio::test]
async fn a_full_stream_refuses_new_events_and_keeps_the_waiting_ones() {
    let mut options = options();
    options.max_events = 2;
    let bus = NatsBus::connect(&options).await.unwrap();
    let mut consumer = bus
        .consumer(&ConsumerSpec {
            name: ConsumerName::parse("name", "slow").unwrap(),
            filter: fb_core::events::SubjectFilter::all(),
            ack_wait: Duration::from_secs(600),
            max_deliver: 3,
        })
        .await
        .unwrap();
    let first = fb_testkit::conformance::opened("plant-a", "m1");
    for machine in ["m1", "m2"] {
        let e = if machine == "m1" {
            first.clone()
        } else {
            fb_testkit::conformance::opened("plant-a", machine)
        };
        assert_eq!(bus.publish(&e).await.unwrap(), Published::New);
    }
    let refused = bus
        .publish(&fb_testkit::conformance::opened("plant-a", "m3"))
        .await;
    assert!(
        matches!(&refused, Err(fb_core::ports::BusError::Full(m)) if m.contains("bus.max_events")),
        "{refused:?}"
    );
    let d = consumer
        .next(fb_testkit::conformance::PATIENCE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.id(), first.id(), "the oldest waiting event was kept");
    d.ack().await.unwrap();
    bus.delete_stream().await.unwrap();
}

#[tokio::test]
async fn a_message_that_is_not_an_event_is_terminated_and_skipped() {
    let options = options();
    let bus = NatsBus::connect(&options).await.unwrap();
    let mut consumer = bus
        .consumer(&ConsumerSpec {
            name: ConsumerName::parse("name", "strict").unwrap(),
            filter: fb_core::events::SubjectFilter::all(),
            ack_wait: Duration::from_secs(1),
            max_deliver: 5,
        })
        .await
        .unwrap();
    // Someone else writes garbage, and a real event under another event's subject.
    let client = async_nats::connect(nats_url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let garbage = options.prefix.join("alerts.opened.plant-a.m1");
    js.publish(garbage.clone(), "not json".into())
        .await
        .unwrap()
        .await
        .unwrap();
    let lying = fb_testkit::conformance::opened("plant-a", "m1");
    js.publish(
        options.prefix.join("alerts.opened.plant-b.m1"),
        serde_json::to_vec(&lying).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    let good = fb_testkit::conformance::opened("plant-a", "m2");
    bus.publish(&good).await.unwrap();
    // Only the good one arrives; the others were terminated, so even after ack_wait nothing
    // else comes before a second good event.
    let d = consumer
        .next(fb_testkit::conformance::PATIENCE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.id(), good.id());
    d.ack().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let marker = fb_testkit::conformance::opened("plant-a", "marker");
    bus.publish(&marker).await.unwrap();
    let d = consumer
        .next(fb_testkit::conformance::PATIENCE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.id(), marker.id());
    d.ack().await.unwrap();
    bus.delete_stream().await.unwrap();
}
