//! The `gates` section: the confidence gates of autonomous actions (issue #7, E5).

use serde::Deserialize;

use fb_core::gates::{ActionKind, Gate, Gates};

use super::SettingsError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderGateSettings {
    pub min_confidence: f64,
    pub max_amount_minor: i64,
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandGateSettings {
    pub min_confidence: f64,
    pub allowed_commands: Vec<String>,
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSettings {
    pub purchase_order: OrderGateSettings,
    pub machine_command: CommandGateSettings,
    pub sweep_interval_secs: u64,
}

fn timeout(secs: u64) -> time::Duration {
    time::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))
}

impl GateSettings {
    /// The gates these settings describe (checked by `validate`).
    pub fn gates(&self) -> Gates {
        let o = &self.purchase_order;
        let c = &self.machine_command;
        Gates {
            purchase_order: Gate {
                kind: ActionKind::PurchaseOrder,
                min_confidence: o.min_confidence,
                max_amount_minor: Some(o.max_amount_minor),
                allowed_commands: None,
                timeout: timeout(o.timeout_secs),
            },
            machine_command: Gate {
                kind: ActionKind::MachineCommand,
                min_confidence: c.min_confidence,
                max_amount_minor: None,
                allowed_commands: Some(c.allowed_commands.clone()),
                timeout: timeout(c.timeout_secs),
            },
        }
    }

    pub fn sweep_interval(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.sweep_interval_secs)
    }

    pub(super) fn validate(&self, errors: &mut Vec<SettingsError>) {
        for e in self.gates().validate() {
            // The settings say `timeout_secs` where the domain says `timeout`.
            let field = if e.field.ends_with(".timeout") {
                format!("{}_secs", e.field)
            } else {
                e.field
            };
            errors.push(SettingsError::new(&field, e.reason));
        }
        if !(1..=3_600).contains(&self.sweep_interval_secs) {
            errors.push(SettingsError::new(
                "gates.sweep_interval_secs",
                "must be between 1 and 3600",
            ));
        }
    }
}
