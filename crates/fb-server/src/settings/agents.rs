//! The `agents` section: the operations agents on the event bus (issue #7).

use std::time::Duration;

use serde::Deserialize;

use super::SettingsError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSettings {
    /// Runs the agents that react to bus events (energy, procurement, plant optimizer).
    pub enabled: bool,
    /// The energy agent accepts new recommendations itself; their gate decides what runs.
    pub energy_auto_accept: bool,
    pub ack_wait_secs: u64,
    pub max_deliver: u32,
}

impl AgentSettings {
    pub fn run_options(&self) -> fb_app::agents::RunOptions {
        fb_app::agents::RunOptions {
            ack_wait: Duration::from_secs(self.ack_wait_secs),
            max_deliver: self.max_deliver,
            ..fb_app::agents::RunOptions::default()
        }
    }

    pub(super) fn validate(&self, errors: &mut Vec<SettingsError>) {
        if !(1..=3600).contains(&self.ack_wait_secs) {
            errors.push(SettingsError::new(
                "agents.ack_wait_secs",
                "must be between 1 and 3600",
            ));
        }
        if !(1..=1000).contains(&self.max_deliver) {
            errors.push(SettingsError::new(
                "agents.max_deliver",
                "must be between 1 and 1000",
            ));
        }
    }
}
