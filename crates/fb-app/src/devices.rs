//! Device credentials for the embedded MQTT broker: create, list, revoke (admins, with
//! `plant.manage`), and the check the broker makes when a device connects.
//!
//! A device's password is `fbd_` and 256 random bits (base64url), shown once; only its SHA-256
//! is stored, compared in constant time, as for API keys: with that much entropy a fast hash
//! cannot be brute-forced, and every connect can afford the check.

use std::sync::Arc;

use tokio::sync::broadcast;
use uuid::Uuid;

use fb_core::Clock;
use fb_core::device::{self, Device, DeviceId};
use fb_core::error::{Code, Coded, FieldError};
use fb_core::identity::{Permission, Principal};
use fb_core::plant::MachineId;
use fb_core::ports::{DeviceStore, StoreError};

use crate::auth::api_key::{hash_secret, random_secret, secret_matches};
use crate::auth::describe_fields;
use crate::scope::{OutOfScope, require_all_sites};

/// What a device password starts with, so that a leaked one is recognisable (secret scanners,
/// logs) and cannot be mistaken for an API key (`fbk_`).
pub const PASSWORD_SCHEME: &str = "fbd_";
/// `last_connected_at` is written at most this often, so that a device reconnecting in a loop
/// does not turn every connect into a write.
const TOUCH_INTERVAL: time::Duration = time::Duration::seconds(60);
/// Longer passwords are refused before any work: ours are 47 characters.
const PASSWORD_MAX: usize = 256;
/// Revocations not yet seen by a slow subscriber; older ones are dropped for it.
const REVOCATIONS_BUFFER: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid {}", describe_fields(.0))]
    Validation(Vec<FieldError>),
    #[error("this role lacks the permission {0}")]
    PermissionDenied(Permission),
    #[error("no such device")]
    NotFound,
    #[error("a device with this name exists already (names of revoked devices are not reused)")]
    Exists,
    #[error("the device is already revoked")]
    Revoked,
    /// Unknown device, wrong password or revoked device: one answer for all three.
    #[error("invalid device name or password")]
    InvalidCredentials,
    #[error(transparent)]
    OutOfScope(#[from] OutOfScope),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for Error {
    fn code(&self) -> Code {
        match self {
            Error::Validation(_) => Code::invalid_field,
            Error::PermissionDenied(_) => Code::permission_denied,
            Error::NotFound => Code::device_not_found,
            Error::Exists => Code::device_exists,
            Error::Revoked => Code::device_revoked,
            Error::InvalidCredentials => Code::invalid_credentials,
            Error::OutOfScope(e) => e.code(),
            Error::Store(StoreError::Unavailable(_)) => Code::storage_unavailable,
            Error::Store(_) => Code::internal,
        }
    }

    fn field_errors(&self) -> &[FieldError] {
        match self {
            Error::Validation(fields) => fields,
            Error::OutOfScope(e) => e.field_errors(),
            _ => &[],
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewDevice {
    pub name: String,
    pub machine: Option<String>,
    pub site: Option<String>,
}

/// A device addressed by id or by name.
#[derive(Debug, Clone)]
pub enum DeviceRef {
    Id(DeviceId),
    Name(String),
}

impl DeviceRef {
    /// Parses a uuid as an id and anything else as a name.
    pub fn parse(s: &str) -> Self {
        match Uuid::parse_str(s.trim()) {
            Ok(id) => DeviceRef::Id(DeviceId(id)),
            Err(_) => DeviceRef::Name(s.trim().to_owned()),
        }
    }
}

pub struct Service {
    devices: Arc<dyn DeviceStore>,
    clock: Arc<dyn Clock>,
    revocations: broadcast::Sender<String>,
}

impl Service {
    pub fn new(devices: Arc<dyn DeviceStore>, clock: Arc<dyn Clock>) -> Self {
        Self {
            devices,
            clock,
            revocations: broadcast::channel(REVOCATIONS_BUFFER).0,
        }
    }

    /// The names of devices revoked through this service from now on, for a broker that can
    /// drop their connections at once. (Revocations by another process, e.g. the command line,
    /// take effect at the device's next connect.)
    pub fn subscribe_revocations(&self) -> broadcast::Receiver<String> {
        self.revocations.subscribe()
    }

    /// Creates a device credential. Returns the stored device and its password, shown only this
    /// once.
    pub async fn create(
        &self,
        caller: &Principal,
        new: NewDevice,
    ) -> Result<(Device, String), Error> {
        require(caller)?;
        let name = new.name.trim().to_owned();
        let mut problems = Vec::new();
        if let Err(e) = device::validate_device_name("name", &name) {
            problems.push(e);
        }
        if let Some(machine) = &new.machine
            && !MachineId::is_valid(machine)
        {
            problems.push(FieldError::new(
                "machine",
                format!(
                    "must be a machine id: 1 to {} letters, digits, '.', '_' or '-'",
                    device::NAME_MAX
                ),
            ));
        }
        if let Some(site) = &new.site
            && let Err(e) = device::validate_device_site("site", site)
        {
            problems.push(e);
        }
        if !problems.is_empty() {
            return Err(Error::Validation(problems));
        }
        let password = format!("{PASSWORD_SCHEME}{}", random_secret());
        let device = Device {
            id: DeviceId(Uuid::now_v7()),
            name,
            machine: new.machine,
            site: new.site,
            secret_hash: hash_secret(&password),
            created_by: caller.user_id(),
            created_at: self.clock.now(),
            last_connected_at: None,
            revoked_at: None,
        };
        self.devices
            .insert_device(&device)
            .await
            .map_err(|e| match e {
                StoreError::Conflict { .. } => Error::Exists,
                other => other.into(),
            })?;
        tracing::info!(device_id = %device.id, device = %device.name, "Device credential created.");
        Ok((device, password))
    }

    /// Every device, by name, revoked ones included. Never their secrets.
    pub async fn list(&self, caller: &Principal) -> Result<Vec<Device>, Error> {
        require(caller)?;
        Ok(self.devices.list_devices().await?)
    }

    /// Revokes a device: it cannot connect any more. Final; the record stays, and so does its
    /// name, which no new device may take.
    pub async fn revoke(&self, caller: &Principal, device: &DeviceRef) -> Result<Device, Error> {
        require(caller)?;
        let found = match device {
            DeviceRef::Id(id) => self.devices.device_by_id(*id).await?,
            DeviceRef::Name(name) => self.devices.device_by_name(name).await?,
        }
        .ok_or(Error::NotFound)?;
        if found.revoked_at.is_some() {
            return Err(Error::Revoked);
        }
        let revoked = self
            .devices
            .revoke_device(found.id, self.clock.now())
            .await?
            .ok_or(Error::NotFound)?;
        tracing::info!(device_id = %revoked.id, device = %revoked.name, "Device credential revoked.");
        // Nobody listening (no embedded broker) is fine: the store already refuses the device.
        let _ = self.revocations.send(revoked.name.clone());
        Ok(revoked)
    }

    /// The broker's check of a connecting device. Unknown device, wrong password and revoked
    /// device all give [`Error::InvalidCredentials`], after the same work.
    ///
    /// A device connects under its own client id: its name, or its name then `:` and anything
    /// (several connections of one device; `:` cannot occur in a name, and the embedded
    /// broker refuses `/` in client ids). MQTT lets a new connection with a client id take
    /// over the one that had it, so a device free to pick any id could push the server's own
    /// ingest session, or another device, off the broker.
    pub async fn authenticate(
        &self,
        client_id: &str,
        name: &str,
        password: &str,
    ) -> Result<Device, Error> {
        if name.len() > device::NAME_MAX || password.len() > PASSWORD_MAX {
            return Err(Error::InvalidCredentials);
        }
        let own_id = client_id == name
            || client_id
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(':'));
        let found = self.devices.device_by_name(name).await?;
        // Hash and compare even for an unknown device, so that the answer takes as long.
        let unknown = [0u8; 32];
        let hash = found.as_ref().map_or(&unknown[..], |d| &d.secret_hash);
        let matches = secret_matches(password, hash);
        let Some(device) = found.filter(|d| matches && d.is_active() && own_id) else {
            return Err(Error::InvalidCredentials);
        };
        let now = self.clock.now();
        if device
            .last_connected_at
            .is_none_or(|t| now - t >= TOUCH_INTERVAL)
        {
            // Losing one last-connected update is harmless; refusing the device for it is not.
            if let Err(e) = self.devices.touch_device(device.id, now).await {
                tracing::warn!(device_id = %device.id, error = %e, "Could not record a device's connect.");
            }
        }
        Ok(device)
    }
}

/// Device credentials are plant-wide: the embedded broker cannot restrict a device to some
/// topics, and MQTT ingest stores for every site. So only a caller of all sites manages them.
fn require(caller: &Principal) -> Result<(), Error> {
    crate::auth::require(caller, Permission::PlantManage)
        .map_err(|_| Error::PermissionDenied(Permission::PlantManage))?;
    require_all_sites(caller, "device credentials")?;
    Ok(())
}

#[cfg(test)]
mod tests;
