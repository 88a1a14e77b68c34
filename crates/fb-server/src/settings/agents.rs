//! The `agents` section: the operations agents on the event bus (issue #7). Their consumers
//! take `bus.ack_wait_secs` and `bus.max_deliver`.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    /// Runs the agents that react to bus events (energy, procurement, plant optimizer).
    pub enabled: bool,
    /// The energy agent accepts new recommendations itself; their gate decides what runs.
    pub energy_auto_accept: bool,
}
