//! The event bus port (issue #7, E4): domain events published once, consumed by durable named
//! consumers with explicit acknowledgements.
//!
//! Guarantees every adapter keeps (checked by the conformance suite in `fb-testkit`):
//!
//! - **Publish is idempotent by event id.** Publishing an envelope whose id the bus saw within
//!   its duplicate window ([`DUPLICATE_WINDOW`]) stores nothing and answers
//!   [`Published::Duplicate`], so a publisher may retry a publish whose answer it did not get.
//! - **Durable consumers.** A consumer has a name and a [`SubjectFilter`]. Created once, it
//!   receives every matching event published from then on, whether or not anyone is reading
//!   at the moment; opened again by name (after a restart, on another node) it resumes where
//!   it was: acknowledged events never come back, unacknowledged ones do. Several handles of
//!   one consumer share its events (each event goes to one of them).
//! - **At-least-once delivery with explicit acks.** An event delivered and not acknowledged
//!   within the consumer's `ack_wait` is delivered again, with [`Delivery::attempt`] one
//!   higher; a [`Delivery::nak`] asks for that at once. After `max_deliver` attempts the
//!   consumer gives the event up (the adapter logs or counts it).
//! - **Retention.** An event stays on the bus until every consumer whose filter it matched
//!   when it was published acknowledged it or gave it up, within the adapter's bounds (a cap on
//!   stored events, past which publishing is refused with [`BusError::Full`], and an age,
//!   [`RETENTION`]). An event no consumer wants is not kept.
//!
//! **Exactly-once effect.** Delivery is at least once, so a consumer makes its *effect*
//! happen once: it records what it did keyed by [`Delivery::id`] (the event id) in the same
//! transaction as the effect, skips an event whose id it already recorded, and acknowledges
//! only after the effect is stored. A crash between the effect and the ack redelivers the
//! event, which the record then turns into a no-op; a crash before the effect redelivers it
//! and the effect happens then. Nothing acknowledged is lost; nothing is done twice.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::FieldError;
use crate::events::{Envelope, EventId, SubjectFilter};

/// How long a bus remembers an event id to refuse a duplicate publish (NATS JetStream's
/// default duplicate window).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);

/// Longest an event is kept for a consumer that has not acknowledged it.
pub const RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Most characters in a consumer name.
pub const CONSUMER_NAME_MAX: usize = 64;

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// Stored for the consumers that want it (or for none, if none does).
    New,
    /// The bus had this event id already; nothing was stored again.
    Duplicate,
}

/// A durable consumer's name: 1 to 64 ASCII letters, digits, `-` and `_` (a NATS consumer
/// name), e.g. `maintenance-agent`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConsumerName(String);

impl ConsumerName {
    pub fn parse(field: &str, name: &str) -> Result<Self, FieldError> {
        let ok = !name.is_empty()
            && name.len() <= CONSUMER_NAME_MAX
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(FieldError::new(
                field,
                format!("must be 1 to {CONSUMER_NAME_MAX} ASCII letters, digits, '-' or '_'"),
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ConsumerName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A durable consumer: which events, and how patiently they are redelivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSpec {
    pub name: ConsumerName,
    pub filter: SubjectFilter,
    /// An event not acknowledged this long after its delivery is delivered again.
    pub ack_wait: Duration,
    /// Deliveries of one event at most (at least 1); then the consumer gives it up.
    pub max_deliver: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// The bus could not be reached or did not answer in time; trying again may work.
    #[error("the event bus is unavailable: {0}")]
    Unavailable(String),
    /// The bus holds as many events as it may; publishing is refused until consumers catch up.
    #[error("the event bus is full: {0}")]
    Full(String),
    /// The bus refused the request itself (a consumer's settings, an envelope it cannot take).
    #[error("the event bus refused the request: {0}")]
    Refused(String),
    /// A consumer spec or envelope that cannot be used, field by field.
    #[error("invalid: {}", .0.iter().map(|e| format!("{} {}", e.field, e.reason)).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<FieldError>),
}

#[async_trait]
pub trait EventBus: Send + Sync {
    /// `in_process` or `nats`, for logs and metrics.
    fn backend(&self) -> &'static str;

    /// Publishes an event under its subject (below the bus's prefix). Idempotent by event id
    /// within [`DUPLICATE_WINDOW`]. Returns once the bus has stored it.
    async fn publish(&self, envelope: &Envelope) -> Result<Published, BusError>;

    /// Creates the durable consumer, or opens it again where it was. Opening an existing one
    /// with other settings updates them (its position is kept).
    async fn consumer(&self, spec: &ConsumerSpec) -> Result<Box<dyn EventConsumer>, BusError>;
}

/// A handle of a durable consumer. Dropping it leaves the consumer on the bus; what it had
/// received without acknowledging comes back after `ack_wait`.
#[async_trait]
pub trait EventConsumer: Send {
    /// The next event for this consumer, waiting at most `wait` for one: redeliveries that
    /// are due, then new events in publish order. `Ok(None)` when none came in time.
    async fn next(&mut self, wait: Duration) -> Result<Option<Delivery>, BusError>;
}

/// Acknowledges one delivery on the bus it came from (implemented by each adapter).
#[async_trait]
pub trait Acknowledge: Send + Sync {
    /// Done with it: never delivered to this consumer again. Returns once the bus confirmed.
    async fn ack(&self) -> Result<(), BusError>;
    /// Not done: deliver it again now (counts as an attempt).
    async fn nak(&self) -> Result<(), BusError>;
}

/// One delivery of an event to a consumer.
pub struct Delivery {
    envelope: Envelope,
    attempt: u32,
    max_deliver: u32,
    acknowledge: Box<dyn Acknowledge>,
}

impl Delivery {
    pub fn new(
        envelope: Envelope,
        attempt: u32,
        max_deliver: u32,
        acknowledge: Box<dyn Acknowledge>,
    ) -> Self {
        Self {
            envelope,
            attempt,
            max_deliver,
            acknowledge,
        }
    }

    /// The event id: what a consumer records to make its effect happen once.
    pub fn id(&self) -> EventId {
        self.envelope.id()
    }

    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// 1 for the first delivery of this event to this consumer, then 2, 3, …
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// No delivery follows this one if it is not acknowledged.
    pub fn is_last_attempt(&self) -> bool {
        self.attempt >= self.max_deliver
    }

    pub async fn ack(self) -> Result<(), BusError> {
        self.acknowledge.ack().await
    }

    pub async fn nak(self) -> Result<(), BusError> {
        self.acknowledge.nak().await
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("id", &self.envelope.id())
            .field("subject", &self.envelope.subject())
            .field("attempt", &self.attempt)
            .field("max_deliver", &self.max_deliver)
            .finish()
    }
}

/// Checks a consumer spec's numbers, naming the field of each problem.
pub fn validate_consumer(spec: &ConsumerSpec) -> Result<(), BusError> {
    let mut problems = Vec::new();
    if spec.ack_wait < Duration::from_millis(100) || spec.ack_wait > Duration::from_secs(86_400) {
        problems.push(FieldError::new(
            "ack_wait",
            "must be between 100 ms and 24 h",
        ));
    }
    if spec.max_deliver == 0 {
        problems.push(FieldError::new("max_deliver", "must be at least 1"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(BusError::Invalid(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consumer_names_are_nats_names() {
        assert!(ConsumerName::parse("name", "maintenance-agent_2").is_ok());
        for bad in ["", "a.b", "a b", "a*", "a>", &"x".repeat(65)] {
            assert_eq!(
                ConsumerName::parse("consumer", bad).unwrap_err().field,
                "consumer"
            );
        }
    }

    #[test]
    fn consumer_numbers_are_checked() {
        let spec = ConsumerSpec {
            name: ConsumerName::parse("n", "a").unwrap(),
            filter: SubjectFilter::all(),
            ack_wait: Duration::from_millis(10),
            max_deliver: 0,
        };
        let Err(BusError::Invalid(problems)) = validate_consumer(&spec) else {
            panic!("refused")
        };
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["ack_wait", "max_deliver"]);
    }
}
