use std::sync::Mutex;

use fb_core::alerts::AlertKind;
use fb_core::detection::Severity;
use fb_core::events::{AlertEvent as AlertPayload, Envelope, Event, EventId};
use fb_testkit::fixtures;

use super::*;
use crate::bus::InProcessBus;

/// An agent that fails the first `retries` deliveries of each event with a passing error,
/// gives up on events of machine `bad`, and records what it handled.
struct Scripted {
    retries: usize,
    seen: Mutex<Vec<EventId>>,
    handled: Mutex<Vec<EventId>>,
}

impl Scripted {
    fn new(retries: usize) -> Arc<Self> {
        Arc::new(Self {
            retries,
            seen: Mutex::new(Vec::new()),
            handled: Mutex::new(Vec::new()),
        })
    }

    fn handled(&self) -> Vec<EventId> {
        self.handled.lock().unwrap().clone()
    }
}

#[async_trait]
impl Agent for Scripted {
    fn name(&self) -> &'static str {
        "scripted"
    }

    fn filter(&self) -> &'static str {
        "alerts.opened.>"
    }

    async fn handle(&self, envelope: &Envelope) -> Result<Handled, AgentError> {
        let Event::AlertOpened(a) = envelope.event() else {
            return Ok(Handled::Nothing);
        };
        let attempts = {
            let mut seen = self.seen.lock().unwrap();
            seen.push(envelope.id());
            seen.iter().filter(|id| **id == envelope.id()).count()
        };
        if a.machine.0 == "bad" {
            return Err(AgentError::Give("no such machine".into()));
        }
        if attempts <= self.retries {
            return Err(AgentError::Retry("store unavailable".into()));
        }
        self.handled.lock().unwrap().push(envelope.id());
        Ok(Handled::Acted("done".into()))
    }
}

fn opened(machine: &str) -> Envelope {
    let alert = fixtures::alert(machine, AlertKind::Overheating, Severity::Critical);
    Envelope::new(
        "alerts",
        Some("plant-a"),
        alert.opened_at,
        Event::AlertOpened(AlertPayload::from(&alert)),
    )
}

const OPTIONS: RunOptions = RunOptions {
    ack_wait: Duration::from_millis(200),
    max_deliver: 5,
    poll: Duration::from_millis(20),
};

/// Runs the agent until `done` holds (at most 10 s), then a little longer so that any
/// redelivery would show, then stops it.
async fn run_until(bus: &Arc<dyn EventBus>, agent: &Arc<Scripted>, done: impl Fn() -> bool) {
    let (stop_tx, stop) = watch::channel(false);
    let task = tokio::spawn(run(bus.clone(), agent.clone(), OPTIONS, stop));
    for _ in 0..500 {
        if done() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_tx.send(true).unwrap();
    task.await.unwrap();
}

#[tokio::test]
async fn events_are_retried_until_handled_and_hopeless_ones_do_not_block_the_rest() {
    let bus: Arc<dyn EventBus> = Arc::new(InProcessBus::new(100));
    let agent = Scripted::new(2);
    // The consumer is durable from its creation: it gets what is published after.
    register(bus.as_ref(), agent.as_ref(), OPTIONS)
        .await
        .unwrap();
    let (bad, good) = (opened("bad"), opened("press-01"));
    bus.publish(&bad).await.unwrap();
    bus.publish(&good).await.unwrap();

    run_until(&bus, &agent, || !agent.handled().is_empty()).await;

    assert_eq!(agent.handled(), [good.id()]);
    let seen = agent.seen.lock().unwrap().clone();
    let attempts = |id| seen.iter().filter(|e| **e == id).count();
    assert_eq!(attempts(bad.id()), 1, "given up at once and acknowledged");
    assert_eq!(
        attempts(good.id()),
        3,
        "two retries, then handled and acknowledged"
    );
}

#[tokio::test]
async fn a_restarted_agent_resumes_where_it_stopped() {
    let bus: Arc<dyn EventBus> = Arc::new(InProcessBus::new(100));
    let agent = Scripted::new(0);
    register(bus.as_ref(), agent.as_ref(), OPTIONS)
        .await
        .unwrap();
    let first = opened("press-01");
    bus.publish(&first).await.unwrap();
    run_until(&bus, &agent, || !agent.handled().is_empty()).await;

    // Published while the agent is down: handled once it is back, and the first not again.
    let second = opened("press-02");
    bus.publish(&second).await.unwrap();
    run_until(&bus, &agent, || agent.handled().len() >= 2).await;
    assert_eq!(agent.handled(), [first.id(), second.id()]);
}
