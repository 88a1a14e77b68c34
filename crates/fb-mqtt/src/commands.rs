//! Machine commands out (issue #7, C3): an accepted recommendation's command, published as JSON
//! on `{prefix}/{site}/{machine}/cmd` with QoS 1:
//!
//! ```json
//! {"id": "0190…", "command": "standby", "reason": "running but idle: …",
//!  "issued_at": "2027-01-15T08:00:00Z", "recommendation": "0190…",
//!  "site": "plant-a", "machine": "press-01"}
//! ```
//!
//! `id` is the command's UUIDv7: QoS 1 may deliver a message twice, so a machine acts on an id
//! once. The ingest subscription shares the prefix and leaves `cmd` topics alone.
//!
//! [`CommandPublisher`] is a [`CommandSink`]: the server hands it to the confidence gate (E5),
//! which submits only the commands it lets through. "Taken" means queued in the MQTT client,
//! which sends it while connected and retransmits it until the broker acknowledges it (while
//! this process runs).

use std::time::Duration;

use async_trait::async_trait;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, Transport};
use serde::Serialize;
use tokio::task::JoinHandle;

use fb_app::energy::{CommandError, CommandSink};
use fb_core::energy::MachineCommand;

use crate::Error;

/// The last topic level of commands.
pub const COMMAND_LEVEL: &str = "cmd";

/// Where commands are published.
#[derive(Clone)]
pub struct CommandOptions {
    pub host: String,
    pub port: u16,
    /// Must differ from the ingest client's (a broker keeps one connection per client id).
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub tls_ca_file: Option<std::path::PathBuf>,
    pub topic_prefix: String,
}

impl std::fmt::Debug for CommandOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("topic_prefix", &self.topic_prefix)
            .finish_non_exhaustive()
    }
}

/// The JSON a machine receives.
#[derive(Serialize)]
struct Payload<'a> {
    id: String,
    command: &'a str,
    reason: &'a str,
    issued_at: String,
    recommendation: String,
    site: &'a str,
    machine: &'a str,
}

/// The command as JSON (see the module docs).
pub fn command_payload(c: &MachineCommand) -> Result<Vec<u8>, CommandError> {
    let issued_at = c
        .issued_at
        .to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| CommandError(format!("issued_at: {e}")))?;
    serde_json::to_vec(&Payload {
        id: c.id.to_string(),
        command: &c.command,
        reason: &c.reason,
        issued_at,
        recommendation: c.recommendation.0.to_string(),
        site: &c.site,
        machine: &c.machine.0,
    })
    .map_err(|e| CommandError(e.to_string()))
}

/// A topic level must be non-empty and hold no `/`, `+` or `#`.
fn level_ok(s: &str) -> bool {
    !s.is_empty() && !s.contains(['/', '+', '#', '\0'])
}

/// `{prefix}/{site}/{machine}/cmd`; refused when the site or machine cannot be a topic level.
pub fn command_topic(prefix: &str, site: &str, machine: &str) -> Result<String, CommandError> {
    if !level_ok(site) {
        return Err(CommandError(format!(
            "site '{site}' cannot be an MQTT topic level"
        )));
    }
    if !level_ok(machine) {
        return Err(CommandError(format!(
            "machine '{machine}' cannot be an MQTT topic level"
        )));
    }
    Ok(format!(
        "{}/{site}/{machine}/{COMMAND_LEVEL}",
        prefix.trim_end_matches('/')
    ))
}

/// Publishes machine commands (see the module docs). Dropping it stops its connection.
pub struct CommandPublisher {
    client: AsyncClient,
    prefix: String,
    poller: Option<JoinHandle<()>>,
}

impl CommandPublisher {
    /// Connects in the background (reconnecting with backoff) and returns at once.
    pub fn start(options: &CommandOptions) -> Result<Self, Error> {
        let mut mqtt = MqttOptions::new(&options.client_id, &options.host, options.port);
        mqtt.set_keep_alive(Duration::from_secs(30));
        if let (Some(user), Some(password)) = (&options.username, &options.password) {
            mqtt.set_credentials(user, password);
        }
        if let Some(ca) = &options.tls_ca_file {
            mqtt.set_transport(Transport::tls_with_config(crate::tls_config(ca)?));
        }
        let (client, mut eventloop) = AsyncClient::new(mqtt, 64);
        let poller = tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        backoff = Duration::from_millis(100);
                        tracing::info!("MQTT command publisher connected.");
                    }
                    Ok(
                        Event::Incoming(Packet::Disconnect)
                        | Event::Outgoing(rumqttc::Outgoing::Disconnect),
                    ) => break,
                    Ok(_) => {}
                    Err(rumqttc::ConnectionError::RequestsDone) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, retry_ms = backoff.as_millis() as u64, "MQTT command publisher lost its connection; reconnecting.");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
        });
        Ok(Self {
            client,
            prefix: options.topic_prefix.clone(),
            poller: Some(poller),
        })
    }

    /// Disconnects, giving what is queued a second to go out.
    pub async fn stop(mut self) {
        let _ = self.client.disconnect().await;
        if let Some(mut poller) = self.poller.take()
            && tokio::time::timeout(Duration::from_secs(1), &mut poller)
                .await
                .is_err()
        {
            poller.abort();
        }
    }
}

impl Drop for CommandPublisher {
    fn drop(&mut self) {
        if let Some(poller) = &self.poller {
            poller.abort();
        }
    }
}

#[async_trait]
impl CommandSink for CommandPublisher {
    async fn submit(&self, command: &MachineCommand) -> Result<(), CommandError> {
        let topic = command_topic(&self.prefix, &command.site, &command.machine.0)?;
        let payload = command_payload(command)?;
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload)
            .await
            .map_err(|e| CommandError(format!("MQTT: {e}")))?;
        metrics::counter!("fb_energy_commands_total", "command" => command.command.clone())
            .increment(1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use fb_core::energy::RecommendationId;
    use fb_core::plant::MachineId;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn topics_and_payloads() {
        assert_eq!(
            command_topic("factorybrain/", "plant-a", "press-01").unwrap(),
            "factorybrain/plant-a/press-01/cmd"
        );
        assert!(command_topic("fb", "a/b", "m").is_err());
        assert!(command_topic("fb", "a", "#").is_err());
        assert!(command_topic("fb", "", "m").is_err());
        let c = MachineCommand {
            id: Uuid::nil(),
            recommendation: RecommendationId(Uuid::nil()),
            site: "plant-a".into(),
            machine: MachineId("press-01".into()),
            command: "standby".into(),
            reason: "idle".into(),
            issued_at: time::macros::datetime!(2027-01-15 08:00 UTC),
        };
        let json: serde_json::Value =
            serde_json::from_slice(&command_payload(&c).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "00000000-0000-0000-0000-000000000000",
                "command": "standby",
                "reason": "idle",
                "issued_at": "2027-01-15T08:00:00Z",
                "recommendation": "00000000-0000-0000-0000-000000000000",
                "site": "plant-a",
                "machine": "press-01",
            })
        );
    }
}
