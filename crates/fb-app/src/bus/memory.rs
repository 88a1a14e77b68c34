//! The in-process event bus: the default [`EventBus`], for a single node.
//!
//! Durable within the process: consumers are kept by name in the bus, so a consumer dropped
//! and opened again (an agent restarted by its supervisor) resumes where it was; nothing
//! survives the process. Plants with several nodes, or that need events to outlive a restart,
//! use NATS JetStream (`fb-nats`).
//!
//! Memory is bounded by `max_events`: an event is stored only if a consumer wants it, and only
//! until every consumer that wanted it acknowledged it or gave it up (or [`RETENTION`] passed).
//! When `max_events` are stored, publishing is refused with [`BusError::Full`] (the publisher
//! counts and logs it) until consumers catch up: an event a consumer waits for is never dropped
//! to make room. An event costs its envelope (about 1 KiB) plus a few dozen bytes per
//! consumer; the ids remembered to refuse duplicates are bounded by `max_events` too.
//!
//! Redelivery needs no timer task: a consumer waiting in [`EventConsumer::next`] sleeps until
//! the earliest of its deliveries falls due (`ack_wait` after it was delivered) or until it is
//! woken by a publish or a nak, whichever comes first.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio::time::Instant;

use fb_core::events::{Envelope, EventId, SubjectFilter};
use fb_core::ports::{
    Acknowledge, BusError, ConsumerSpec, DUPLICATE_WINDOW, Delivery, EventBus, EventConsumer,
    Published, RETENTION, validate_consumer,
};

/// The in-process bus. Clones share the bus.
#[derive(Clone)]
pub struct InProcessBus {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    max_events: usize,
}

#[derive(Default)]
struct State {
    /// Stored events by sequence number (publish order).
    events: BTreeMap<u64, Stored>,
    next_seq: u64,
    /// Event ids published within the duplicate window, oldest first.
    seen: HashMap<EventId, Instant>,
    seen_order: VecDeque<(Instant, EventId)>,
    consumers: HashMap<String, Consumer>,
}

struct Stored {
    envelope: Envelope,
    at: Instant,
    /// Consumers that wanted it and have neither acknowledged nor given it up.
    owed: u32,
}

struct Consumer {
    filter: SubjectFilter,
    ack_wait: Duration,
    max_deliver: u32,
    /// The first sequence number this consumer has not looked at yet.
    cursor: u64,
    /// Delivered, not acknowledged: attempts so far and when it is due again.
    pending: BTreeMap<u64, Pending>,
    wake: Arc<Notify>,
}

struct Pending {
    attempt: u32,
    due: Instant,
}

impl InProcessBus {
    /// A bus that stores at most `max_events` events (at least 1).
    pub fn new(max_events: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                max_events: max_events.max(1),
            }),
        }
    }

    /// Events stored now (for tests and metrics).
    pub fn stored(&self) -> usize {
        self.shared.lock().events.len()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the maps consistent (every change is a single
        // insert or remove), so the state is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl State {
    /// A consumer is done with `seq`: the event goes when nobody owes it any more.
    fn release(&mut self, seq: u64) {
        if let Some(stored) = self.events.get_mut(&seq) {
            stored.owed = stored.owed.saturating_sub(1);
            if stored.owed == 0 {
                self.events.remove(&seq);
            }
        }
    }

    fn forget_old_ids(&mut self, now: Instant, max: usize) {
        while let Some(&(at, id)) = self.seen_order.front() {
            if now.duration_since(at) < DUPLICATE_WINDOW && self.seen_order.len() <= max {
                break;
            }
            self.seen_order.pop_front();
            if self.seen.get(&id) == Some(&at) {
                self.seen.remove(&id);
            }
        }
    }

    /// Drops events older than [`RETENTION`] that some consumer never finished.
    fn drop_expired(&mut self, now: Instant) {
        while let Some((&seq, stored)) = self.events.first_key_value() {
            if now.duration_since(stored.at) < RETENTION {
                break;
            }
            self.events.remove(&seq);
            for consumer in self.consumers.values_mut() {
                consumer.pending.remove(&seq);
            }
            metrics::counter!("fb_bus_expired_total").increment(1);
        }
    }
}

#[async_trait]
impl EventBus for InProcessBus {
    fn backend(&self) -> &'static str {
        "in_process"
    }

    async fn publish(&self, envelope: &Envelope) -> Result<Published, BusError> {
        let now = Instant::now();
        let mut state = self.shared.lock();
        let max = self.shared.max_events;
        state.forget_old_ids(now, max);
        if state.seen.contains_key(&envelope.id()) {
            return Ok(Published::Duplicate);
        }
        state.drop_expired(now);
        let subject = envelope.subject();
        let wanted: Vec<Arc<Notify>> = state
            .consumers
            .values()
            .filter(|c| c.filter.matches(subject))
            .map(|c| c.wake.clone())
            .collect();
        if !wanted.is_empty() {
            if state.events.len() >= max {
                return Err(BusError::Full(format!(
                    "{max} events are waiting for their consumers (bus.max_events)"
                )));
            }
            let seq = state.next_seq;
            state.events.insert(
                seq,
                Stored {
                    envelope: envelope.clone(),
                    at: now,
                    owed: u32::try_from(wanted.len()).unwrap_or(u32::MAX),
                },
            );
        }
        // Sequence numbers also mark where a consumer created now starts.
        state.next_seq += 1;
        state.seen.insert(envelope.id(), now);
        state.seen_order.push_back((now, envelope.id()));
        drop(state);
        for wake in wanted {
            wake.notify_one();
        }
        Ok(Published::New)
    }

    async fn consumer(&self, spec: &ConsumerSpec) -> Result<Box<dyn EventConsumer>, BusError> {
        validate_consumer(spec)?;
        let mut state = self.shared.lock();
        let cursor = state.next_seq;
        let State {
            events, consumers, ..
        } = &mut *state;
        let consumer = consumers
            .entry(spec.name.as_str().to_owned())
            .or_insert_with(|| Consumer {
                filter: spec.filter.clone(),
                ack_wait: spec.ack_wait,
                max_deliver: spec.max_deliver,
                cursor,
                pending: BTreeMap::new(),
                wake: Arc::new(Notify::new()),
            });
        if consumer.filter != spec.filter {
            // Events not looked at yet follow the new filter: what the old one wanted and the
            // new one does not is no longer owed; what only the new one wants (and is stored
            // for another consumer) is owed now.
            let mut emptied = Vec::new();
            for (&seq, stored) in events.range_mut(consumer.cursor..) {
                let subject = stored.envelope.subject();
                match (
                    consumer.filter.matches(subject),
                    spec.filter.matches(subject),
                ) {
                    (true, false) => {
                        stored.owed = stored.owed.saturating_sub(1);
                        if stored.owed == 0 {
                            emptied.push(seq);
                        }
                    }
                    (false, true) => stored.owed += 1,
                    _ => {}
                }
            }
            for seq in emptied {
                events.remove(&seq);
            }
            consumer.filter = spec.filter.clone();
        }
        consumer.ack_wait = spec.ack_wait;
        consumer.max_deliver = spec.max_deliver;
        let wake = consumer.wake.clone();
        Ok(Box::new(InProcessConsumer {
            shared: self.shared.clone(),
            name: spec.name.as_str().to_owned(),
            wake,
        }))
    }
}

struct InProcessConsumer {
    shared: Arc<Shared>,
    name: String,
    wake: Arc<Notify>,
}

impl InProcessConsumer {
    /// The delivery due now, or else when the earliest pending delivery falls due (if any).
    fn look(&self, now: Instant) -> Result<Delivery, Option<Instant>> {
        let mut state = self.shared.lock();
        state.drop_expired(now);
        let State {
            events, consumers, ..
        } = &mut *state;
        let Some(consumer) = consumers.get_mut(&self.name) else {
            return Err(None);
        };
        // Redeliveries that are due come first, oldest event first.
        let mut given_up = Vec::new();
        let mut found = None;
        for (&seq, pending) in &mut consumer.pending {
            if pending.due > now {
                continue;
            }
            if pending.attempt >= consumer.max_deliver {
                given_up.push(seq);
                continue;
            }
            pending.attempt += 1;
            pending.due = now + consumer.ack_wait;
            found = Some((seq, pending.attempt));
            break;
        }
        for seq in &given_up {
            consumer.pending.remove(seq);
        }
        // Then the next new event the filter wants.
        if found.is_none() {
            let mut cursor = consumer.cursor;
            for (&seq, stored) in events.range(consumer.cursor..) {
                cursor = seq + 1;
                if consumer.filter.matches(stored.envelope.subject()) {
                    consumer.pending.insert(
                        seq,
                        Pending {
                            attempt: 1,
                            due: now + consumer.ack_wait,
                        },
                    );
                    found = Some((seq, 1));
                    break;
                }
            }
            consumer.cursor = consumer.cursor.max(cursor);
        }
        let max_deliver = consumer.max_deliver;
        let earliest = consumer.pending.values().map(|p| p.due).min();
        let delivery = found.and_then(|(seq, attempt)| {
            events.get(&seq).map(|stored| {
                Delivery::new(
                    stored.envelope.clone(),
                    attempt,
                    max_deliver,
                    Box::new(InProcessAck {
                        shared: self.shared.clone(),
                        consumer: self.name.clone(),
                        seq,
                    }),
                )
            })
        });
        if !given_up.is_empty() {
            metrics::counter!("fb_bus_given_up_total", "consumer" => self.name.clone())
                .increment(given_up.len() as u64);
            tracing::warn!(
                consumer = %self.name,
                events = given_up.len(),
                "Events were delivered max_deliver times without an acknowledgement; the consumer gave them up."
            );
            for seq in given_up {
                state.release(seq);
            }
        }
        delivery.ok_or(earliest)
    }
}

#[async_trait]
impl EventConsumer for InProcessConsumer {
    async fn next(&mut self, wait: Duration) -> Result<Option<Delivery>, BusError> {
        let deadline = Instant::now() + wait;
        loop {
            let now = Instant::now();
            let due = match self.look(now) {
                Ok(d) => return Ok(Some(d)),
                Err(due) => due,
            };
            if now >= deadline {
                return Ok(None);
            }
            let until = due.map_or(deadline, |d| d.min(deadline));
            // A publish or nak between the look and here left a permit: no wake-up is lost.
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep_until(until) => {}
            }
        }
    }
}

struct InProcessAck {
    shared: Arc<Shared>,
    consumer: String,
    seq: u64,
}

#[async_trait]
impl Acknowledge for InProcessAck {
    async fn ack(&self) -> Result<(), BusError> {
        let mut state = self.shared.lock();
        let done = state
            .consumers
            .get_mut(&self.consumer)
            .and_then(|c| c.pending.remove(&self.seq))
            .is_some();
        if done {
            state.release(self.seq);
        }
        Ok(())
    }

    async fn nak(&self) -> Result<(), BusError> {
        let state = &mut *self.shared.lock();
        if let Some(consumer) = state.consumers.get_mut(&self.consumer)
            && let Some(pending) = consumer.pending.get_mut(&self.seq)
        {
            pending.due = Instant::now();
            consumer.wake.notify_one();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use fb_core::ports::ConsumerName;

    struct Fixture {
        bus: Arc<dyn EventBus>,
    }

    impl Fixture {
        /// The same bus: in one process, a restarted consumer finds it there.
        async fn reopen(&self) -> Arc<dyn EventBus> {
            self.bus.clone()
        }

        async fn finish(self) {}
    }

    async fn open_bus() -> Fixture {
        Fixture {
            bus: Arc::new(InProcessBus::new(1000)),
        }
    }

    fb_testkit::bus_conformance!();

    fn spec(name: &str, filter: &str) -> ConsumerSpec {
        ConsumerSpec {
            name: ConsumerName::parse("name", name).unwrap(),
            filter: SubjectFilter::parse("filter", filter).unwrap(),
            ack_wait: Duration::from_secs(600),
            max_deliver: 3,
        }
    }

    fn event(machine: &str) -> Envelope {
        fb_testkit::conformance::opened("plant-a", machine)
    }

    #[tokio::test]
    async fn memory_is_bounded_and_a_full_bus_refuses_rather_than_drops() {
        let bus = InProcessBus::new(3);
        let mut consumer = bus.consumer(&spec("slow", ">")).await.unwrap();
        let events: Vec<Envelope> = (0..3).map(|i| event(&format!("m{i}"))).collect();
        for e in &events {
            bus.publish(e).await.unwrap();
        }
        let refused = bus.publish(&event("m3")).await;
        assert!(
            matches!(&refused, Err(BusError::Full(m)) if m.contains("bus.max_events")),
            "{refused:?}"
        );
        assert_eq!(bus.stored(), 3);
        // The consumer catches up: acknowledged events leave and make room.
        let d = consumer
            .next(Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(d.id(), events[0].id());
        d.ack().await.unwrap();
        assert_eq!(bus.stored(), 2);
        assert_eq!(
            bus.publish(&event("m4")).await.unwrap(),
            Published::New,
            "room again"
        );
    }

    #[tokio::test]
    async fn events_nobody_wants_are_not_stored() {
        let bus = InProcessBus::new(10);
        let _alerts = bus.consumer(&spec("alerts", "alerts.>")).await.unwrap();
        let other = Envelope::new(
            "test",
            Some("plant-a"),
            time::OffsetDateTime::now_utc(),
            fb_core::events::Event::AgentDecision(fb_core::events::AgentDecisionEvent {
                decision: uuid::Uuid::now_v7(),
                agent: "energy".into(),
                machine: None,
                inputs: String::new(),
                action: "none".into(),
                reason: "test".into(),
                confidence: 1.0,
                outcome: fb_core::events::DecisionOutcome::Skipped,
                trigger: None,
            }),
        );
        assert_eq!(bus.publish(&other).await.unwrap(), Published::New);
        assert_eq!(bus.stored(), 0);
        bus.publish(&event("m1")).await.unwrap();
        assert_eq!(bus.stored(), 1);
    }

    #[tokio::test]
    async fn an_event_stays_until_every_consumer_that_wanted_it_is_done() {
        let bus = InProcessBus::new(10);
        let mut a = bus.consumer(&spec("a", ">")).await.unwrap();
        let mut b = bus.consumer(&spec("b", "alerts.>")).await.unwrap();
        let e = event("m1");
        bus.publish(&e).await.unwrap();
        let wait = Duration::from_secs(5);
        a.next(wait).await.unwrap().unwrap().ack().await.unwrap();
        assert_eq!(bus.stored(), 1, "b has not acknowledged it");
        let d = b.next(wait).await.unwrap().unwrap();
        assert_eq!(d.id(), e.id());
        d.ack().await.unwrap();
        assert_eq!(bus.stored(), 0);
    }

    #[tokio::test]
    async fn a_consumer_opened_with_another_filter_follows_it_for_what_it_has_not_seen() {
        let bus = InProcessBus::new(10);
        let mut keep = bus.consumer(&spec("keep", ">")).await.unwrap();
        drop(bus.consumer(&spec("moving", "anomalies.>")).await.unwrap());
        let e = event("m1");
        bus.publish(&e).await.unwrap();
        let mut moving = bus.consumer(&spec("moving", "alerts.>")).await.unwrap();
        let d = moving.next(Duration::from_secs(5)).await.unwrap().unwrap();
        assert_eq!(d.id(), e.id());
        d.ack().await.unwrap();
        keep.next(Duration::from_secs(5))
            .await
            .unwrap()
            .unwrap()
            .ack()
            .await
            .unwrap();
        assert_eq!(bus.stored(), 0, "owed exactly once by each");
    }
}
