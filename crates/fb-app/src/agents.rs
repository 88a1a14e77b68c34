//! Operations agents on the event bus (issue #7): each agent is a durable consumer of the
//! events it reacts to, run by [`run`].
//!
//! How an event is handled once, whatever happens to the node: the runner acknowledges an
//! event only after the agent's [`Agent::handle`] returned, and every agent makes its effect
//! idempotent by a key the store enforces — the maintenance rule by one active ticket per
//! machine and failure type, the energy agent by the recommendation's single decision and the
//! gate's keyed submission ([`crate::gates::Service::submit_once`]), procurement by one order
//! per ticket and part. So an agent stopped mid-event (its task ended, the node restarted, a
//! NATS consumer handed to another node) gets the event again after `ack_wait` and finishes
//! what it started without doing any of it twice.
//!
//! A handler failure that may pass (the store is unavailable) asks for the event again at once
//! (`nak`), up to the consumer's `max_deliver` attempts; one that cannot pass (the event names
//! a recommendation that no longer exists) is logged, counted and acknowledged, so that it
//! does not block the events behind it.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::watch;

use fb_core::events::{Envelope, Event, SubjectFilter};
use fb_core::ports::{BusError, ConsumerName, ConsumerSpec, EventBus};

use crate::auth::SystemPrincipal;
use crate::{energy, gates, maintenance, optimizer, procurement};

/// What handling one event came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handled {
    /// The agent acted (a note of what it did, for the log).
    Acted(String),
    /// Nothing to do for this event (not the agent's business, or done already).
    Nothing,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AgentError {
    /// May pass: deliver the event again.
    #[error("{0} (will retry)")]
    Retry(String),
    /// Will not pass: the event is acknowledged and left.
    #[error("{0}")]
    Give(String),
}

/// An operations agent: what it listens to and what it does with one event.
#[async_trait]
pub trait Agent: Send + Sync {
    /// Its name in logs, metrics and the decision log; its consumer is `{name}-agent`.
    fn name(&self) -> &'static str;
    /// The events it reacts to, relative to the bus's subject prefix (NATS wildcards).
    fn filter(&self) -> &'static str;
    /// Handles one event; must be safe to call again with the same event (see module docs).
    async fn handle(&self, envelope: &Envelope) -> Result<Handled, AgentError>;
}

/// How an agent's consumer behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunOptions {
    /// An event not acknowledged this long after its delivery comes again.
    pub ack_wait: Duration,
    /// Deliveries of one event at most.
    pub max_deliver: u32,
    /// How long one wait for the next event lasts (the stop signal is looked at in between).
    pub poll: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            ack_wait: Duration::from_secs(30),
            max_deliver: 10,
            poll: Duration::from_millis(500),
        }
    }
}

/// The consumer spec of `agent`; refused when its name or filter cannot be a consumer's.
pub fn consumer_spec(agent: &dyn Agent, options: RunOptions) -> Result<ConsumerSpec, BusError> {
    let name = ConsumerName::parse("agent", &format!("{}-agent", agent.name()));
    let filter = SubjectFilter::parse("filter", agent.filter());
    match (name, filter) {
        (Ok(name), Ok(filter)) => Ok(ConsumerSpec {
            name,
            filter,
            ack_wait: options.ack_wait,
            max_deliver: options.max_deliver,
        }),
        (name, filter) => Err(BusError::Invalid(
            [name.err(), filter.err()].into_iter().flatten().collect(),
        )),
    }
}

/// Creates the agent's durable consumer on `bus`, so that it keeps every matching event
/// published from now on, before the agent runs. Call it before anything the agent reacts to
/// can be published: a consumer does not receive what was published before it existed.
pub async fn register(
    bus: &dyn EventBus,
    agent: &dyn Agent,
    options: RunOptions,
) -> Result<(), BusError> {
    bus.consumer(&consumer_spec(agent, options)?)
        .await
        .map(drop)
}

/// Creates (or opens) the agent's durable consumer on `bus` and hands it every event until `stop` turns
/// true. The bus being down is waited out (with backoff up to 10 s); the event being handled
/// when the stop comes is finished first.
pub async fn run(
    bus: Arc<dyn EventBus>,
    agent: Arc<dyn Agent>,
    options: RunOptions,
    mut stop: watch::Receiver<bool>,
) {
    let name = agent.name();
    let spec = match consumer_spec(agent.as_ref(), options) {
        Ok(spec) => spec,
        Err(e) => {
            tracing::error!(agent = name, error = %e, "The agent cannot run: its consumer is invalid.");
            return;
        }
    };
    let mut backoff = Duration::from_millis(200);
    'connect: loop {
        if *stop.borrow() {
            return;
        }
        let mut consumer = match bus.consumer(&spec).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(agent = name, error = %e, retry_ms = backoff.as_millis() as u64, "The agent cannot open its consumer; retrying.");
                let stopped = tokio::select! {
                    _ = stop.wait_for(|s| *s) => true,
                    () = tokio::time::sleep(backoff) => false,
                };
                if stopped {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        backoff = Duration::from_millis(200);
        tracing::info!(agent = name, consumer = %spec.name, filter = %spec.filter.as_str(), "Agent listening.");
        loop {
            let next = tokio::select! {
                _ = stop.wait_for(|s| *s) => return,
                next = consumer.next(options.poll) => next,
            };
            let delivery = match next {
                Ok(Some(d)) => d,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(agent = name, error = %e, "The agent's consumer failed; opening it again.");
                    continue 'connect;
                }
            };
            let event = delivery.envelope().event().name();
            let result = agent.handle(delivery.envelope()).await;
            let outcome = match &result {
                Ok(Handled::Acted(note)) => {
                    tracing::info!(agent = name, event, id = %delivery.id(), note = %note, "Agent acted.");
                    "acted"
                }
                Ok(Handled::Nothing) => "nothing",
                Err(AgentError::Retry(why)) if !delivery.is_last_attempt() => {
                    tracing::warn!(agent = name, event, id = %delivery.id(), attempt = delivery.attempt(), error = %why, "Agent could not handle an event; it comes again.");
                    "retry"
                }
                Err(e) => {
                    tracing::error!(agent = name, event, id = %delivery.id(), attempt = delivery.attempt(), error = %e, "Agent gave an event up.");
                    "failed"
                }
            };
            metrics::counter!("fb_agent_events_total", "agent" => name, "outcome" => outcome)
                .increment(1);
            let answered = if outcome == "retry" {
                delivery.nak().await
            } else {
                delivery.ack().await
            };
            if let Err(e) = answered {
                // Unacknowledged, it comes back after ack_wait; the effect is idempotent.
                tracing::warn!(agent = name, error = %e, "Could not answer the bus for an event; it will come again.");
            }
        }
    }
}

/// The energy agent (C3): acts on each `energy.recommended` event through the machine-command
/// gate ([`energy::Service::act_on`]).
pub struct EnergyAgent {
    energy: Arc<energy::Service>,
}

impl EnergyAgent {
    pub fn new(energy: Arc<energy::Service>) -> Self {
        Self { energy }
    }
}

#[async_trait]
impl Agent for EnergyAgent {
    fn name(&self) -> &'static str {
        "energy"
    }

    fn filter(&self) -> &'static str {
        "energy.recommended.>"
    }

    async fn handle(&self, envelope: &Envelope) -> Result<Handled, AgentError> {
        let Event::EnergyRecommendation(e) = envelope.event() else {
            return Ok(Handled::Nothing);
        };
        let id = fb_core::energy::RecommendationId(e.recommendation);
        match self.energy.act_on(id).await {
            Ok(Some(r)) => Ok(Handled::Acted(format!(
                "{} for {}: {}",
                r.action.as_str(),
                r.machine.0,
                r.command_state.map_or("no command", |c| c.as_str())
            ))),
            Ok(None) => Ok(Handled::Nothing),
            Err(e @ (energy::Error::Store(_) | energy::Error::CommandNotTaken(_))) => {
                Err(AgentError::Retry(e.to_string()))
            }
            Err(e) => Err(AgentError::Give(e.to_string())),
        }
    }
}

/// The procurement agent (C2): reserves and orders the parts each newly opened ticket's repair
/// needs, through the purchase-order gate ([`procurement::Service::on_ticket`]; once per
/// ticket and part, whatever the deliveries).
pub struct ProcurementAgent {
    procurement: Arc<procurement::Service>,
    tickets: Arc<maintenance::Service>,
}

impl ProcurementAgent {
    pub fn new(procurement: Arc<procurement::Service>, tickets: Arc<maintenance::Service>) -> Self {
        Self {
            procurement,
            tickets,
        }
    }
}

/// A store that may come back, or a gate whose store may: worth another delivery.
fn procurement_error(e: procurement::Error) -> AgentError {
    match e {
        procurement::Error::Store(_) | procurement::Error::Gate(gates::Error::Store(_)) => {
            AgentError::Retry(e.to_string())
        }
        e => AgentError::Give(e.to_string()),
    }
}

#[async_trait]
impl Agent for ProcurementAgent {
    fn name(&self) -> &'static str {
        procurement::AGENT
    }

    fn filter(&self) -> &'static str {
        "tickets.open.>"
    }

    async fn handle(&self, envelope: &Envelope) -> Result<Handled, AgentError> {
        let Event::Ticket(t) = envelope.event() else {
            return Ok(Handled::Nothing);
        };
        let id = fb_core::maintenance::TicketId(t.ticket);
        let ticket = match self
            .tickets
            .get(&fb_core::identity::Principal::system(), id)
            .await
        {
            Ok(ticket) => ticket,
            // Deleted since: nothing needs parts any more.
            Err(maintenance::Error::NotFound) => return Ok(Handled::Nothing),
            Err(maintenance::Error::Store(e)) => return Err(AgentError::Retry(e.to_string())),
            Err(e) => return Err(AgentError::Give(e.to_string())),
        };
        let orders = self
            .procurement
            .on_ticket(&ticket, Some(envelope.id()))
            .await
            .map_err(procurement_error)?;
        if orders.is_empty() {
            return Ok(Handled::Nothing);
        }
        let list: Vec<String> = orders
            .iter()
            .map(|o| format!("{} × {} ({})", o.quantity, o.part, o.status.as_str()))
            .collect();
        Ok(Handled::Acted(format!(
            "ticket {}: {}",
            ticket.id,
            list.join(", ")
        )))
    }
}

/// The plant optimizer's coordination agent (C4): every domain event in, directives out
/// ([`optimizer::Service::handle`]; once per event through the decision log).
pub struct OptimizerAgent {
    optimizer: Arc<optimizer::Service>,
}

impl OptimizerAgent {
    pub fn new(optimizer: Arc<optimizer::Service>) -> Self {
        Self { optimizer }
    }
}

#[async_trait]
impl Agent for OptimizerAgent {
    fn name(&self) -> &'static str {
        optimizer::AGENT
    }

    /// Alerts, anomalies, energy recommendations and tickets; the rest is passed over.
    fn filter(&self) -> &'static str {
        ">"
    }

    async fn handle(&self, envelope: &Envelope) -> Result<Handled, AgentError> {
        if !matches!(
            envelope.event(),
            Event::AlertOpened(_)
                | Event::AnomalyDetected(_)
                | Event::EnergyRecommendation(_)
                | Event::Ticket(_)
        ) {
            return Ok(Handled::Nothing);
        }
        match self.optimizer.handle(envelope).await {
            Ok(directives) if directives.is_empty() => Ok(Handled::Nothing),
            Ok(directives) => Ok(Handled::Acted(
                directives
                    .iter()
                    .map(|d| {
                        format!(
                            "{} {}",
                            d.kind.as_str(),
                            d.machine.as_ref().map_or(d.site.as_str(), |m| m.0.as_str())
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            )),
            Err(e @ (optimizer::Error::Store(_) | optimizer::Error::Gates(_))) => {
                Err(AgentError::Retry(e.to_string()))
            }
            Err(e) => Err(AgentError::Give(e.to_string())),
        }
    }
}

/// Runs the reorder-point check every `every` until `stop` turns true (orders are once per site
/// and part while one is open, so several nodes running it order once).
pub async fn run_reorder_checks(
    procurement: Arc<procurement::Service>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let stopped = tokio::select! {
            _ = stop.wait_for(|s| *s) => true,
            _ = ticks.tick() => false,
        };
        if stopped {
            break;
        }
        match procurement.check_reorder_points().await {
            Ok(orders) if !orders.is_empty() => {
                tracing::info!(
                    orders = orders.len(),
                    "Stock below its reorder point reordered."
                );
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "Reorder points not checked this round; trying again.")
            }
        }
    }
}

#[cfg(test)]
mod tests;
