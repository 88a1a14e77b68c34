//! The `bus` section: where domain events are published (issue #7).

use std::time::Duration;

use serde::Deserialize;

use fb_core::events::SubjectPrefix;

use super::{Secret, SettingsError, urls};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusKind {
    InProcess,
    Nats,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusSettings {
    pub kind: BusKind,
    pub url: Secret,
    pub stream: String,
    pub subject_prefix: String,
    pub ack_wait_secs: u64,
    pub max_deliver: u32,
    pub max_events: u64,
}

/// Longest JetStream stream name accepted here.
const STREAM_MAX: usize = 64;

impl BusSettings {
    /// The subjects' prefix (checked by `validate`).
    pub fn prefix(&self) -> Result<SubjectPrefix, SettingsError> {
        SubjectPrefix::parse("bus.subject_prefix", &self.subject_prefix)
            .map_err(|e| SettingsError::new(&e.field, e.reason))
    }

    pub fn ack_wait(&self) -> Duration {
        Duration::from_secs(self.ack_wait_secs)
    }

    pub(super) fn validate(&self, errors: &mut Vec<SettingsError>) {
        if let Err(e) = self.prefix() {
            errors.push(e);
        }
        let stream_ok = !self.stream.is_empty()
            && self.stream.len() <= STREAM_MAX
            && self
                .stream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !stream_ok {
            errors.push(SettingsError::new(
                "bus.stream",
                format!("must be 1 to {STREAM_MAX} ASCII letters, digits, '-' or '_'"),
            ));
        }
        for (key, value, (min, max)) in [
            ("ack_wait_secs", self.ack_wait_secs, (1, 86_400)),
            ("max_deliver", u64::from(self.max_deliver), (1, 1000)),
            ("max_events", self.max_events, (100, 100_000_000)),
        ] {
            if !(min..=max).contains(&value) {
                errors.push(SettingsError::new(
                    &format!("bus.{key}"),
                    format!("must be between {min} and {max}"),
                ));
            }
        }
        let url = self.url.expose().trim();
        match self.kind {
            BusKind::Nats if !cfg!(feature = "nats") => errors.push(SettingsError::new(
                "bus.kind",
                "this build has no NATS support; build with `--features nats`",
            )),
            BusKind::Nats if url.is_empty() => errors.push(SettingsError::new(
                "bus.url",
                "is required when bus.kind is nats (nats://host:4222)",
            )),
            _ => {}
        }
        if !url.is_empty() {
            errors.extend(urls::nats(url));
        }
    }
}
