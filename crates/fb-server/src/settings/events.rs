//! The `events` section: limits of the live event stream.

use std::time::Duration;

use serde::Deserialize;

use super::SettingsError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSettings {
    pub max_connections_per_principal: u64,
    pub max_connections: u64,
    pub max_client_message_bytes: u64,
    pub max_queued_bytes: u64,
    pub ping_interval_secs: u64,
}

impl EventSettings {
    pub fn limits(&self) -> fb_http::EventLimits {
        let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        fb_http::EventLimits {
            max_per_principal: size(self.max_connections_per_principal),
            max_connections: size(self.max_connections),
            max_client_message_bytes: size(self.max_client_message_bytes),
            max_queued_bytes: size(self.max_queued_bytes),
            ping_interval: Duration::from_secs(self.ping_interval_secs),
        }
    }

    pub(super) fn validate(&self, errors: &mut Vec<SettingsError>) {
        for (key, value, (min, max)) in [
            (
                "max_connections_per_principal",
                self.max_connections_per_principal,
                (1, 1000),
            ),
            ("max_connections", self.max_connections, (1, 100_000)),
            (
                "max_client_message_bytes",
                self.max_client_message_bytes,
                (256, 1 << 20),
            ),
            (
                "max_queued_bytes",
                self.max_queued_bytes,
                (1 << 16, 1 << 30),
            ),
            ("ping_interval_secs", self.ping_interval_secs, (5, 3600)),
        ] {
            if !(min..=max).contains(&value) {
                errors.push(SettingsError::new(
                    &format!("events.{key}"),
                    format!("must be between {min} and {max}"),
                ));
            }
        }
        if self.max_connections_per_principal > self.max_connections {
            errors.push(SettingsError::new(
                "events.max_connections_per_principal",
                "must be at most events.max_connections",
            ));
        }
    }
}
