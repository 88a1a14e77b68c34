//! Administrative commands run against the configured store: migrate, users, API keys, the
//! audit log. They act as the local system principal: whoever can run the binary on the data
//! directory already controls the store. What they change is recorded in the audit log as
//! `cli:<os user>` from `local`.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::sync::Arc;

use anyhow::Context;
use serde_json::json;

use fb_app::auth::{self, ApiKeyRef, NewApiKey, NewUser, SystemPrincipal, UserRef};
use fb_app::devices::{DeviceRef, NewDevice, Service as DeviceService};
use fb_core::audit::{AuditEntry, AuditHead, Outcome};
use fb_core::identity::{Principal, Role, SiteScope};
use fb_core::ports::Storage;
use fb_core::{Coded, ErrorKind};

use crate::cli::{ApiKeyCommand, AuditCommand, AuthCommand, DeviceCommand, UserCommand};
use crate::settings::Settings;
use crate::wire;

mod models;
mod train;

pub(crate) use models::model;

pub(crate) async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    // Opening a store applies its pending migrations.
    let storage = wire::open_storage(settings).await?;
    let backend = storage.health.backend();
    storage.health.close().await;
    println_out(&format!("migrations applied ({backend})"));
    Ok(())
}

/// `all`, or site names separated by commas.
fn parse_sites(sites: &str) -> anyhow::Result<SiteScope> {
    if sites.trim() == "all" {
        return Ok(SiteScope::All);
    }
    let names: Vec<&str> = sites.split(',').map(str::trim).collect();
    SiteScope::named("--sites", &names).map_err(|fields| describe(auth::Error::Validation(fields)))
}

fn parse_role(role: &str) -> anyhow::Result<Role> {
    Role::parse(role).with_context(|| {
        format!("--role: unknown role {role:?}; expected admin, supervisor, operator or viewer")
    })
}

pub(crate) async fn user(
    settings: &Settings,
    command: UserCommand,
    op_id: &str,
) -> anyhow::Result<()> {
    let storage = wire::open_storage(settings).await?;
    let service = wire::auth_service(settings, &storage).await?;
    let audit = CommandAudit::new(&storage, op_id);
    let system = Principal::system();
    let result = match command {
        UserCommand::Add {
            username,
            role,
            sites,
            password_stdin,
        } => {
            let role = parse_role(&role)?;
            let sites = parse_sites(&sites)?;
            let password = if password_stdin {
                Some(read_password_line()?)
            } else {
                None
            };
            let new = NewUser {
                username: username.clone(),
                role,
                sites: Some(sites.clone()),
                password,
            };
            let created = service.create_user(&system, new).await;
            let mut details = vec![
                ("role", role.as_str().to_owned()),
                ("sites", sites.to_string()),
            ];
            if let Ok((user, _)) = &created {
                details.push(("user_id", user.id.to_string()));
            }
            audit
                .record(
                    "user.create",
                    Some(format!("user:{username}")),
                    &created,
                    &details,
                )
                .await;
            let (user, generated) = created.map_err(describe)?;
            println_out(&format!(
                "created user {} ({}, sites {}, id {})",
                user.username, user.role, user.sites, user.id
            ));
            if let Some(password) = generated {
                println_out(&format!("password (shown once): {password}"));
            }
            Ok(())
        }
        UserCommand::List => {
            let users = service.list_users(&system).await.map_err(describe)?;
            println_out(&format!(
                "{:<36}  {:<24}  {:<10}  {:<8}  {}",
                "ID", "USERNAME", "ROLE", "STATE", "SITES"
            ));
            for u in users {
                let state = if u.disabled { "disabled" } else { "active" };
                println_out(&format!(
                    "{:<36}  {:<24}  {:<10}  {state:<8}  {}",
                    u.id,
                    u.username,
                    u.role.as_str(),
                    u.sites
                ));
            }
            Ok(())
        }
        UserCommand::Disable { username } => {
            set_disabled(&service, &audit, &system, &username, true).await
        }
        UserCommand::Enable { username } => {
            set_disabled(&service, &audit, &system, &username, false).await
        }
        UserCommand::EndSessions { username } => {
            let ended = service
                .end_user_sessions(&system, &UserRef::parse(&username))
                .await;
            let details = match &ended {
                Ok((_, n)) => vec![("ended", n.to_string())],
                Err(_) => Vec::new(),
            };
            audit
                .record(
                    "user.end_sessions",
                    Some(format!("user:{username}")),
                    &ended,
                    &details,
                )
                .await;
            let (user, ended) = ended.map_err(describe)?;
            println_out(&format!("ended {ended} session(s) of {}", user.username));
            Ok(())
        }
        UserCommand::ResetMfa { username } => {
            let reset = service.reset_mfa(&system, &UserRef::parse(&username)).await;
            audit
                .record(
                    "user.reset_mfa",
                    Some(format!("user:{username}")),
                    &reset,
                    &[],
                )
                .await;
            let user = reset.map_err(describe)?;
            println_out(&format!(
                "second factor of {} removed and their sessions ended",
                user.username
            ));
            Ok(())
        }
    };
    storage.health.close().await;
    result
}

async fn set_disabled(
    service: &auth::Service,
    audit: &CommandAudit,
    system: &Principal,
    username: &str,
    disabled: bool,
) -> anyhow::Result<()> {
    let changed = service
        .set_user_disabled(system, &UserRef::parse(username), disabled)
        .await;
    let action = if disabled {
        "user.disable"
    } else {
        "user.enable"
    };
    audit
        .record(action, Some(format!("user:{username}")), &changed, &[])
        .await;
    let user = changed.map_err(describe)?;
    let state = if user.disabled { "disabled" } else { "enabled" };
    println_out(&format!("user {} {state}", user.username));
    Ok(())
}

pub(crate) async fn auth(
    settings: &Settings,
    command: AuthCommand,
    op_id: &str,
) -> anyhow::Result<()> {
    let storage = wire::open_storage(settings).await?;
    let service = wire::auth_service(settings, &storage).await?;
    let audit = CommandAudit::new(&storage, op_id);
    let result = match command {
        AuthCommand::RotateSigningKey => {
            let rotated = service.rotate_signing_key().await;
            let details = match &rotated {
                Ok(kid) => vec![("kid", kid.clone())],
                Err(_) => Vec::new(),
            };
            audit
                .record("auth.rotate_signing_key", None, &rotated, &details)
                .await;
            let kid = rotated.map_err(describe)?;
            println_out(&format!(
                "new signing key {kid}; the previous one is accepted until its tokens expire"
            ));
            Ok(())
        }
    };
    storage.health.close().await;
    result
}

pub(crate) async fn api_key(
    settings: &Settings,
    command: ApiKeyCommand,
    op_id: &str,
) -> anyhow::Result<()> {
    let storage = wire::open_storage(settings).await?;
    let service = wire::auth_service(settings, &storage).await?;
    let audit = CommandAudit::new(&storage, op_id);
    let system = Principal::system();
    let result = match command {
        ApiKeyCommand::Create {
            name,
            role,
            sites,
            expires_in_days,
        } => {
            let role = parse_role(&role)?;
            let sites = parse_sites(&sites)?;
            let expires_at = expires_in_days
                .map(|d| time::OffsetDateTime::now_utc() + time::Duration::days(i64::from(d)));
            let new = NewApiKey {
                name: name.clone(),
                role,
                sites: Some(sites.clone()),
                expires_at,
            };
            let created = service.create_api_key(&system, new).await;
            let mut details = vec![
                ("name", name),
                ("role", role.as_str().to_owned()),
                ("sites", sites.to_string()),
            ];
            if let Ok((key, _)) = &created {
                details.push(("prefix", key.prefix.clone()));
            }
            let target = created
                .as_ref()
                .ok()
                .map(|(key, _)| format!("api_key:{}", key.id));
            audit
                .record("api_key.create", target, &created, &details)
                .await;
            let (key, secret) = created.map_err(describe)?;
            println_out(&format!(
                "created API key {} ({}, sites {}, prefix {}, id {})",
                key.name, key.role, key.sites, key.prefix, key.id
            ));
            println_out(&format!("key (shown once): {secret}"));
            Ok(())
        }
        ApiKeyCommand::List => {
            let keys = service.list_api_keys(&system).await.map_err(describe)?;
            println_out(&format!(
                "{:<36}  {:<12}  {:<10}  {:<8}  {:<20}  {}",
                "ID", "PREFIX", "ROLE", "STATE", "SITES", "NAME"
            ));
            let now = time::OffsetDateTime::now_utc();
            for k in keys {
                let state = if k.revoked_at.is_some() {
                    "revoked"
                } else if k.is_active(now) {
                    "active"
                } else {
                    "expired"
                };
                println_out(&format!(
                    "{:<36}  {:<12}  {:<10}  {state:<8}  {:<20}  {}",
                    k.id,
                    k.prefix,
                    k.role.as_str(),
                    k.sites.to_string(),
                    k.name
                ));
            }
            Ok(())
        }
        ApiKeyCommand::Revoke { key } => {
            let revoked = service
                .revoke_api_key(&system, &ApiKeyRef::parse(&key))
                .await;
            audit
                .record(
                    "api_key.revoke",
                    Some(format!("api_key:{key}")),
                    &revoked,
                    &[],
                )
                .await;
            let key = revoked.map_err(describe)?;
            println_out(&format!("API key {} ({}) revoked", key.name, key.prefix));
            Ok(())
        }
    };
    storage.health.close().await;
    result
}

pub(crate) async fn device(
    settings: &Settings,
    command: DeviceCommand,
    op_id: &str,
) -> anyhow::Result<()> {
    let storage = wire::open_storage(settings).await?;
    let service = DeviceService::new(storage.devices.clone(), Arc::new(fb_core::SystemClock));
    let audit = CommandAudit::new(&storage, op_id);
    let system = Principal::system();
    let result = match command {
        DeviceCommand::Add {
            name,
            machine,
            site,
        } => {
            let new = NewDevice {
                name: name.clone(),
                machine: machine.clone(),
                site,
            };
            let created = service.create(&system, new).await;
            let mut details = Vec::new();
            if let Some(machine) = machine {
                details.push(("machine", machine));
            }
            if let Ok((device, _)) = &created {
                details.push(("device_id", device.id.to_string()));
            }
            audit
                .record(
                    "device.create",
                    Some(format!("device:{name}")),
                    &created,
                    &details,
                )
                .await;
            let (device, password) = created.map_err(describe)?;
            println_out(&format!(
                "created device {} (id {})",
                device.name, device.id
            ));
            println_out(&format!("MQTT user name: {}", device.name));
            println_out(&format!("MQTT password (shown once): {password}"));
            Ok(())
        }
        DeviceCommand::List => {
            let devices = service.list(&system).await.map_err(describe)?;
            println_out(&format!(
                "{:<36}  {:<24}  {:<8}  {:<24}  {}",
                "ID", "NAME", "STATE", "MACHINE", "LAST CONNECTED"
            ));
            for d in devices {
                let state = if d.revoked_at.is_some() {
                    "revoked"
                } else {
                    "active"
                };
                let connected = d
                    .last_connected_at
                    .and_then(|t| {
                        t.format(&time::format_description::well_known::Rfc3339)
                            .ok()
                    })
                    .unwrap_or_else(|| "never".to_owned());
                println_out(&format!(
                    "{:<36}  {:<24}  {state:<8}  {:<24}  {connected}",
                    d.id,
                    d.name,
                    d.machine.as_deref().unwrap_or("-"),
                ));
            }
            Ok(())
        }
        DeviceCommand::Revoke { device } => {
            let revoked = service.revoke(&system, &DeviceRef::parse(&device)).await;
            audit
                .record(
                    "device.revoke",
                    Some(format!("device:{device}")),
                    &revoked,
                    &[],
                )
                .await;
            let device = revoked.map_err(describe)?;
            println_out(&format!(
                "device {} revoked; a running server's embedded broker refuses it at its next connect",
                device.name
            ));
            Ok(())
        }
    };
    storage.health.close().await;
    result
}

/// `audit verify` found problems: exit code 3.
#[derive(Debug)]
pub(crate) struct AuditDamaged {
    problems: usize,
}

impl std::fmt::Display for AuditDamaged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the audit log has been tampered with or damaged: {} problem(s)",
            self.problems
        )
    }
}

impl std::error::Error for AuditDamaged {}

pub(crate) async fn audit(settings: &Settings, command: AuditCommand) -> anyhow::Result<()> {
    let storage = wire::open_storage(settings).await?;
    let service = wire::audit_service(&storage);
    let system = Principal::system();
    let result = match command {
        AuditCommand::Verify { anchors, json } => {
            verify_audit(&service, &system, &anchors, json).await
        }
        AuditCommand::Head { json } => {
            let head = service
                .head(&system)
                .await
                .context("cannot read the audit head")?
                .context("the audit head is missing: run `factorybrain audit verify`")?;
            if json {
                println_out(&json!({"seq": head.seq, "hash": head.hash.to_hex()}).to_string());
            } else {
                println_out(&head.to_string());
            }
            Ok(())
        }
    };
    storage.health.close().await;
    result
}

/// Prints every problem, one per line (or one JSON object), and fails with [`AuditDamaged`]
/// when there is any.
async fn verify_audit(
    service: &fb_app::audit::Service,
    system: &Principal,
    anchors: &[String],
    json: bool,
) -> anyhow::Result<()> {
    let anchors = anchors
        .iter()
        .map(|a| {
            AuditHead::parse(a).with_context(|| {
                format!("--anchor {a:?}: expected SEQ:HASH as printed by `audit head`")
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let report = service
        .verify(system, &anchors)
        .await
        .context("cannot read the audit log")?;
    if json {
        let problems: Vec<_> = report
            .problems
            .iter()
            .map(|p| {
                json!({
                    "kind": p.kind(),
                    "seq": p.seq(),
                    "last_seq": p.last_seq(),
                    "message": p.to_string(),
                })
            })
            .collect();
        let head = report
            .head
            .map(|h| json!({"seq": h.seq, "hash": h.hash.to_hex()}));
        println_out(
            &json!({
                "intact": report.problems.is_empty(),
                "checked": report.checked,
                "head": head,
                "problems": problems,
            })
            .to_string(),
        );
    } else if report.problems.is_empty() {
        let head = report.head.map_or_else(String::new, |h| h.to_string());
        println_out(&format!("ok: {} records, head {head}", report.checked));
    } else {
        for problem in &report.problems {
            println_out(&problem.to_string());
        }
    }
    if report.problems.is_empty() {
        Ok(())
    } else {
        Err(AuditDamaged {
            problems: report.problems.len(),
        }
        .into())
    }
}

/// Records what an administrative command did, as `cli:<os user>` from `local`.
struct CommandAudit {
    service: Arc<fb_app::audit::Service>,
    actor: String,
    op_id: String,
}

impl CommandAudit {
    fn new(storage: &Storage, op_id: &str) -> Self {
        // $USER, as the shell sets it: whoever runs this command controls the store anyway, so
        // it is a name for the record, not a proof.
        let user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_default();
        let user = user.trim();
        Self {
            service: wire::audit_service(storage),
            actor: format!("cli:{}", if user.is_empty() { "unknown" } else { user }),
            op_id: op_id.to_owned(),
        }
    }

    async fn record<T, E: Coded>(
        &self,
        action: &str,
        target: Option<String>,
        result: &Result<T, E>,
        details: &[(&str, String)],
    ) {
        let mut details: BTreeMap<String, String> = details
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        let outcome = match result {
            Ok(_) => Outcome::Success,
            Err(e) => {
                details.insert("error".to_owned(), e.code().as_str().to_owned());
                match e.code().kind() {
                    ErrorKind::Forbidden | ErrorKind::Unauthenticated => Outcome::Denied,
                    _ => Outcome::Failure,
                }
            }
        };
        let entry = AuditEntry {
            at: self.service.now(),
            actor: self.actor.clone(),
            action: action.to_owned(),
            target,
            outcome,
            op_id: self.op_id.clone(),
            source: "local".to_owned(),
            details,
        };
        if self.service.record(entry).await.is_none() {
            eprintln_out("warning: the audit log could not record this command (see the log)");
        }
    }
}

/// Turns an area error into a message with its code and field details.
fn describe<E: Coded>(e: E) -> anyhow::Error {
    let mut text = format!("{} [{}]", e, e.code().as_str());
    for field in e.field_errors() {
        text.push_str(&format!("\n  {}: {}", field.field, field.reason));
    }
    anyhow::anyhow!(text)
}

fn read_password_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

#[allow(clippy::print_stdout)] // Command output.
fn println_out(line: &str) {
    println!("{line}");
}

#[allow(clippy::print_stderr)] // Command output.
fn eprintln_out(line: &str) {
    eprintln!("{line}");
}
