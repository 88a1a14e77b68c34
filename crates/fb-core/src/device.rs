//! Device credentials: how a machine's gateway or sensor box logs in to the embedded MQTT
//! broker. Each device has its own name (its MQTT user name) and a generated secret, so one
//! device can be revoked without touching the others, and no secret is shared by a fleet.

use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::FieldError;
use crate::identity::UserId;
use crate::plant::MachineId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(pub Uuid);

impl std::fmt::Display for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A stored device credential: only a hash of its secret is kept.
#[derive(Clone, PartialEq, Eq)]
pub struct Device {
    pub id: DeviceId,
    /// Unique; the user name the device presents to the broker. Shaped like a machine id, so
    /// that it can name an MQTT topic level (`%u` in a Mosquitto ACL pattern).
    pub name: String,
    /// The machine the device sends for, if it is one machine's: informational, and the
    /// topic level its ACL would allow on an external broker.
    pub machine: Option<String>,
    /// The site the device sits at, if known: informational.
    pub site: Option<String>,
    /// SHA-256 of the secret. Secrets are 256-bit random, so a fast hash is safe and every
    /// connect can afford to check it.
    pub secret_hash: Vec<u8>,
    pub created_by: Option<UserId>,
    pub created_at: OffsetDateTime,
    /// When the device last connected, written at most once a minute.
    pub last_connected_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("machine", &self.machine)
            .field("site", &self.site)
            .field("revoked_at", &self.revoked_at)
            .finish_non_exhaustive()
    }
}

impl Device {
    pub fn is_active(&self) -> bool {
        self.revoked_at.is_none()
    }
}

/// Names starting with this are the server's own broker users (MQTT ingest's), never a device's.
pub const RESERVED_NAME_PREFIX: &str = "factorybrain-";

/// Longest device name: the machine id rule's.
pub const NAME_MAX: usize = 64;
/// Longest site, as for a machine's location.
pub const SITE_MAX: usize = 100;

/// A device name: 1 to 64 letters, digits, `.`, `_`, `-` (the machine id rule), not reserved.
pub fn validate_device_name(field: &str, name: &str) -> Result<(), FieldError> {
    if !MachineId::is_valid(name) {
        return Err(FieldError::new(
            field,
            format!("must be 1 to {NAME_MAX} letters, digits, '.', '_' or '-'"),
        ));
    }
    if name.starts_with(RESERVED_NAME_PREFIX) {
        return Err(FieldError::new(
            field,
            format!(
                "must not start with '{RESERVED_NAME_PREFIX}', which the server's own broker users use"
            ),
        ));
    }
    Ok(())
}

/// A device's site, as it appears in topics (`<prefix>/<site>/<machine>`): one topic level of
/// at most 100 characters, without the MQTT separator and wildcards.
pub fn validate_device_site(field: &str, site: &str) -> Result<(), FieldError> {
    let len = site.chars().count();
    if len == 0 || len > SITE_MAX {
        return Err(FieldError::new(
            field,
            format!("must be 1 to {SITE_MAX} characters long"),
        ));
    }
    if site.contains(['/', '+', '#']) || site.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            "must not contain '/', '+', '#' or control characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_topic_levels_and_the_server_prefix_is_reserved() {
        assert!(validate_device_name("name", "press-01.gw_2").is_ok());
        for bad in ["", "a/b", "plus+", "hash#", "has space", &"x".repeat(65)] {
            assert!(validate_device_name("name", bad).is_err(), "{bad:?}");
        }
        let reserved = validate_device_name("name", "factorybrain-ingest").unwrap_err();
        assert_eq!(reserved.field, "name");
        assert!(
            reserved.reason.contains("factorybrain-"),
            "{}",
            reserved.reason
        );
        assert!(validate_device_site("site", "plant-a").is_ok());
        assert!(validate_device_site("site", "plant/a").is_err());
        assert!(validate_device_site("site", "").is_err());
    }
}
