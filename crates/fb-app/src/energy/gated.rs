//! Machine commands through their confidence gate (issue #7, C3 and E5).
//!
//! [`GatedCommands`] is both ends of the `machine_command` gate: the [`CommandRoute`] the energy
//! service hands an accepted recommendation's command to, and the [`GatedExecutor`] the gates
//! service runs when a person approves a held one. Either way the command goes to the
//! transport ([`CommandSink`], the MQTT publisher) from one place, [`GatedCommands::send`],
//! which also marks it sent.
//!
//! Once per command: the gate submission is keyed by the command id
//! ([`gates::Service::submit_once`]), so routing a command again (a redelivered event, an
//! agent restarted between its acceptance and the gate) finds the first verdict. A command
//! that passed is sent again only while its recommendation still says `pending`: a stop
//! between the MQTT publish and the mark can publish it twice, with the same id, which a
//! machine acts on once (see `fb_mqtt::commands`).

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use fb_core::energy::{CommandState, MachineCommand, RecommendationId};
use fb_core::gates::{Action, ActionKind, ApprovalId};
use fb_core::plant::MachineId;
use fb_core::ports::RecommendationStore;

use super::{CommandError, CommandRoute, CommandSink, Routed, SOURCE};
use crate::gates::{self, Execution, GatedExecutor, Submission, Submitted};

/// What a held command's approval item carries: everything needed to send it later.
#[derive(Debug, Serialize, Deserialize)]
struct Payload {
    command_id: Uuid,
    recommendation: Uuid,
    site: String,
    machine: String,
    command: String,
    reason: String,
    #[serde(with = "time::serde::rfc3339")]
    issued_at: time::OffsetDateTime,
}

impl Payload {
    fn of(c: &MachineCommand) -> Self {
        Self {
            command_id: c.id,
            recommendation: c.recommendation.0,
            site: c.site.clone(),
            machine: c.machine.0.clone(),
            command: c.command.clone(),
            reason: c.reason.clone(),
            issued_at: c.issued_at,
        }
    }

    fn into_command(self) -> MachineCommand {
        MachineCommand {
            id: self.command_id,
            recommendation: RecommendationId(self.recommendation),
            site: self.site,
            machine: MachineId(self.machine),
            command: self.command,
            reason: self.reason,
            issued_at: self.issued_at,
        }
    }
}

/// The `machine_command` gate in front of the command transport (see the module docs).
pub struct GatedCommands {
    gates: Arc<gates::Service>,
    recommendations: Arc<dyn RecommendationStore>,
    transport: Arc<dyn CommandSink>,
}

impl GatedCommands {
    /// Also registers itself as the gates service's executor of machine commands.
    pub fn install(
        gates: Arc<gates::Service>,
        recommendations: Arc<dyn RecommendationStore>,
        transport: Arc<dyn CommandSink>,
    ) -> Arc<Self> {
        let this = Arc::new(Self {
            gates: gates.clone(),
            recommendations,
            transport,
        });
        gates.register_executor(ActionKind::MachineCommand, this.clone());
        this
    }

    /// Sends the command unless its recommendation says it went already, then marks it sent.
    async fn send(&self, command: &MachineCommand) -> Result<String, String> {
        let recommendation = self
            .recommendations
            .recommendation(command.recommendation)
            .await
            .map_err(|e| format!("the recommendation could not be read: {e}"))?
            .ok_or_else(|| "the command's recommendation no longer exists".to_owned())?;
        if recommendation.command_id != Some(command.id) {
            return Err("the recommendation names another command".to_owned());
        }
        if recommendation.command_state == Some(CommandState::Sent) {
            return Ok(format!("'{}' was sent already", command.command));
        }
        self.transport
            .submit(command)
            .await
            .map_err(|e| e.to_string())?;
        self.recommendations
            .mark_command_sent(command.recommendation)
            .await
            .map_err(|e| format!("sent, but not marked sent: {e}"))?;
        Ok(format!(
            "'{}' published to {} in {}",
            command.command, command.machine.0, command.site
        ))
    }
}

#[async_trait]
impl CommandRoute for GatedCommands {
    async fn route(
        &self,
        command: &MachineCommand,
        confidence: f64,
        accepted_by: &str,
    ) -> Result<Routed, CommandError> {
        let payload = serde_json::to_string(&Payload::of(command))
            .map_err(|e| CommandError(format!("payload: {e}")))?;
        let action = Action {
            kind: ActionKind::MachineCommand,
            site: command.site.clone(),
            machine: Some(command.machine.clone()),
            summary: format!(
                "Send '{}' to {} ({})",
                command.command, command.machine.0, command.site
            ),
            payload,
            confidence,
            amount_minor: None,
            command: Some(command.command.clone()),
            requested_by: SOURCE.to_owned(),
        };
        let inputs = serde_json::json!({
            "recommendation": command.recommendation.0,
            "command": command.command,
            "accepted_by": accepted_by,
        })
        .to_string();
        let submission = Submission {
            action: action.clone(),
            inputs,
            reason: command
                .reason
                .chars()
                .take(fb_core::gates::TEXT_MAX_CHARS)
                .collect(),
            ticket: None,
            alert: None,
        };
        let submitted = self
            .gates
            .submit_once(&command.id.to_string(), submission)
            .await
            .map_err(|e| CommandError(format!("gate: {e}")))?;
        match submitted {
            Submitted::Held { item, .. } => Ok(Routed::Held(item.id)),
            Submitted::Proceed { decision } => {
                match self.gates.carry_out(&decision, &action).await {
                    Execution::Executed(_) => Ok(Routed::Sent),
                    Execution::Failed(why) => Err(CommandError(why)),
                }
            }
        }
    }
}

#[async_trait]
impl GatedExecutor for GatedCommands {
    async fn execute(&self, _item: ApprovalId, action: &Action) -> Result<String, String> {
        let payload: Payload = serde_json::from_str(&action.payload)
            .map_err(|e| format!("not a machine command's payload: {e}"))?;
        self.send(&payload.into_command()).await
    }
}
