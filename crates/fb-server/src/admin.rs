//! Administrative commands run against the configured store: migrate, users, API keys.
//! They act as the local system principal: whoever can run the binary on the data directory
//! already controls the store.

use std::io::BufRead;

use anyhow::Context;

use fb_app::auth::{self, ApiKeyRef, NewApiKey, NewUser, SystemPrincipal, UserRef};
use fb_core::identity::{Principal, Role};

use crate::cli::{ApiKeyCommand, UserCommand};
use crate::settings::Settings;
use crate::wire;

pub(crate) async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    // Opening a store applies its pending migrations.
    let storage = wire::open_storage(settings).await?;
    let backend = storage.health.backend();
    storage.health.close().await;
    println_out(&format!("migrations applied ({backend})"));
    Ok(())
}

fn parse_role(role: &str) -> anyhow::Result<Role> {
    Role::parse(role).with_context(|| {
        format!("--role: unknown role {role:?}; expected admin, supervisor, operator or viewer")
    })
}

pub(crate) async fn user(settings: &Settings, command: UserCommand) -> anyhow::Result<()> {
    let storage = wire::open_storage(settings).await?;
    let service = wire::auth_service(settings, &storage).await?;
    let system = Principal::system();
    let result = match command {
        UserCommand::Add {
            username,
            role,
            password_stdin,
        } => {
            let role = parse_role(&role)?;
            let password = if password_stdin {
                Some(read_password_line()?)
            } else {
                None
            };
            let (user, generated) = service
                .create_user(
                    &system,
                    NewUser {
                        username,
                        role,
                        password,
                    },
                )
                .await
                .map_err(describe)?;
            println_out(&format!(
                "created user {} ({}, id {})",
                user.username, user.role, user.id
            ));
            if let Some(password) = generated {
                println_out(&format!("password (shown once): {password}"));
            }
            Ok(())
        }
        UserCommand::List => {
            let users = service.list_users(&system).await.map_err(describe)?;
            println_out(&format!(
                "{:<36}  {:<24}  {:<10}  {}",
                "ID", "USERNAME", "ROLE", "STATE"
            ));
            for u in users {
                let state = if u.disabled { "disabled" } else { "active" };
                println_out(&format!(
                    "{:<36}  {:<24}  {:<10}  {state}",
                    u.id,
                    u.username,
                    u.role.as_str()
                ));
            }
            Ok(())
        }
        UserCommand::Disable { username } => set_disabled(&service, &system, &username, true).await,
        UserCommand::Enable { username } => set_disabled(&service, &system, &username, false).await,
    };
    storage.health.close().await;
    result
}

async fn set_disabled(
    service: &auth::Service,
    system: &Principal,
    username: &str,
    disabled: bool,
) -> anyhow::Result<()> {
    let user = service
        .set_user_disabled(system, &UserRef::parse(username), disabled)
        .await
        .map_err(describe)?;
    let state = if user.disabled { "disabled" } else { "enabled" };
    println_out(&format!("user {} {state}", user.username));
    Ok(())
}

pub(crate) async fn api_key(settings: &Settings, command: ApiKeyCommand) -> anyhow::Result<()> {
    let storage = wire::open_storage(settings).await?;
    let service = wire::auth_service(settings, &storage).await?;
    let system = Principal::system();
    let result = match command {
        ApiKeyCommand::Create {
            name,
            role,
            expires_in_days,
        } => {
            let role = parse_role(&role)?;
            let expires_at = expires_in_days
                .map(|d| time::OffsetDateTime::now_utc() + time::Duration::days(i64::from(d)));
            let (key, secret) = service
                .create_api_key(
                    &system,
                    NewApiKey {
                        name,
                        role,
                        expires_at,
                    },
                )
                .await
                .map_err(describe)?;
            println_out(&format!(
                "created API key {} ({}, prefix {}, id {})",
                key.name, key.role, key.prefix, key.id
            ));
            println_out(&format!("key (shown once): {secret}"));
            Ok(())
        }
        ApiKeyCommand::List => {
            let keys = service.list_api_keys(&system).await.map_err(describe)?;
            println_out(&format!(
                "{:<36}  {:<12}  {:<10}  {:<8}  {}",
                "ID", "PREFIX", "ROLE", "STATE", "NAME"
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
                    "{:<36}  {:<12}  {:<10}  {state:<8}  {}",
                    k.id,
                    k.prefix,
                    k.role.as_str(),
                    k.name
                ));
            }
            Ok(())
        }
        ApiKeyCommand::Revoke { key } => {
            let key = service
                .revoke_api_key(&system, &ApiKeyRef::parse(&key))
                .await
                .map_err(describe)?;
            println_out(&format!("API key {} ({}) revoked", key.name, key.prefix));
            Ok(())
        }
    };
    storage.health.close().await;
    result
}

/// Turns an area error into a message with its code and field details.
fn describe(e: auth::Error) -> anyhow::Error {
    use fb_core::Coded;
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
