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
    /// How often stock is compared with its reorder points.
    pub reorder_check_secs: u64,
}

impl AgentSettings {
    pub(super) fn validate(&self, errors: &mut Vec<super::SettingsError>) {
        if !(1..=86_400).contains(&self.reorder_check_secs) {
            errors.push(super::SettingsError::new(
                "agents.reorder_check_secs",
                "must be between 1 and 86400",
            ));
        }
    }
}
