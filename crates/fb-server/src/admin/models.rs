//! `factorybrain model …`: the model registry from the command line. Changes are recorded in the
//! audit log like the API's (`model.promote`, `model.rollback`). The command is another process
//! than the servers: it changes the store, and each running server loads the new active model
//! at its next reload (within 5 seconds).

use time::format_description::well_known::Rfc3339;

use fb_app::auth::SystemPrincipal;
use fb_app::models::Registry;
use fb_core::error::FieldError;
use fb_core::identity::Principal;
use fb_core::model::{ModelId, ModelKind, StoredModel};
use fb_core::ports::ModelFilter;

use super::{CommandAudit, describe, println_out};
use crate::cli::ModelCommand;
use crate::settings::Settings;
use crate::wire;

pub(crate) async fn model(
    settings: &Settings,
    command: ModelCommand,
    op_id: &str,
) -> anyhow::Result<()> {
    let storage = wire::open_storage(settings).await?;
    let registry = wire::model_registry(&storage);
    let audit = CommandAudit::new(&storage, op_id);
    let system = Principal::system();
    let result = match command {
        ModelCommand::Train(args) => super::train::train(&registry, &audit, *args).await,
        ModelCommand::List { kind, machine_type } => {
            let filter = ModelFilter {
                kind: kind.map(ModelKind::from),
                machine_type,
            };
            let models = registry.list(&system, &filter).await.map_err(describe)?;
            print_models(&models);
            Ok(())
        }
        ModelCommand::Promote { id } => {
            let promoted = match uuid::Uuid::parse_str(id.trim()) {
                Ok(uuid) => registry.promote(&system, ModelId(uuid)).await,
                Err(_) => Err(fb_app::models::Error::Validation(vec![FieldError::new(
                    "ID",
                    "must be a model id (a UUID, as `model list` shows it)",
                )])),
            };
            audit
                .record(
                    "model.promote",
                    Some(format!("model:{id}")),
                    &promoted,
                    &line_details(promoted.as_ref().ok()),
                )
                .await;
            let model = promoted.map_err(describe)?;
            println_out(&format!(
                "{} {} version {} (id {}) is active; running servers switch to it within 5 seconds",
                model.kind, model.machine_type, model.version, model.id
            ));
            Ok(())
        }
        ModelCommand::Rollback(line) => {
            let kind = ModelKind::from(line.kind);
            let restored = registry.rollback(&system, kind, &line.machine_type).await;
            let target = match &restored {
                Ok(model) => format!("model:{}", model.id),
                Err(_) => format!("models:{kind}/{}", line.machine_type),
            };
            audit
                .record(
                    "model.rollback",
                    Some(target),
                    &restored,
                    &line_details(restored.as_ref().ok()),
                )
                .await;
            let model = restored.map_err(describe)?;
            println_out(&format!(
                "rolled back: {} {} version {} (id {}) is active again; running servers switch to it within 5 seconds",
                model.kind, model.machine_type, model.version, model.id
            ));
            Ok(())
        }
        ModelCommand::History(line) => {
            let history = registry
                .activations(&system, line.kind.into(), &line.machine_type)
                .await
                .map_err(describe)?;
            println_out(&format!(
                "{:<6}  {:<7}  {:<8}  {:<30}  {}",
                "SEQ", "VERSION", "ACTION", "WHEN", "BY"
            ));
            for a in history {
                println_out(&format!(
                    "{:<6}  {:<7}  {:<8}  {:<30}  {}",
                    a.seq,
                    a.version,
                    a.action.as_str(),
                    rfc3339(a.activated_at),
                    a.activated_by
                ));
            }
            Ok(())
        }
    };
    storage.health.close().await;
    result
}

/// The audit details of an activation: the model's line and version.
fn line_details(model: Option<&StoredModel>) -> Vec<(&'static str, String)> {
    model.map_or_else(Vec::new, |m| {
        vec![
            ("kind", m.kind.as_str().to_owned()),
            ("machine_type", m.machine_type.clone()),
            ("version", m.version.to_string()),
        ]
    })
}

fn print_models(models: &[StoredModel]) {
    println_out(&format!(
        "{:<36}  {:<7}  {:<24}  {:<7}  {:<6}  {:<16}  {:<30}  {}",
        "ID", "KIND", "MACHINE TYPE", "VERSION", "STATE", "FORMAT", "CREATED", "METRICS"
    ));
    for m in models {
        let metrics: Vec<String> = m
            .metrics
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        println_out(&format!(
            "{:<36}  {:<7}  {:<24}  {:<7}  {:<6}  {:<16}  {:<30}  {}",
            m.id,
            m.kind.as_str(),
            m.machine_type,
            m.version,
            if m.active { "ACTIVE" } else { "-" },
            m.format,
            rfc3339(m.created_at),
            metrics.join(" ")
        ));
    }
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}
