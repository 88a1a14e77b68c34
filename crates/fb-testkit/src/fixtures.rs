use std::collections::BTreeMap;

use time::OffsetDateTime;
use uuid::Uuid;

use fb_core::alerts::{Alert, AlertId, AlertKind, AlertStatus};
use fb_core::audit::{AuditEntry, Outcome};
use fb_core::detection::{Evidence, Severity};
use fb_core::device::{Device, DeviceId};
use fb_core::identity::{ApiKey, ApiKeyId, Principal, Role, SiteScope, Subject, User, UserId};
use fb_core::model::{ModelDraft, ModelId, ModelKind};
use fb_core::plant::{
    Location, Machine, MachineClass, MachineId, MachineStatus, SensorKey, SensorKind, SensorSpec,
};
use fb_core::ports::NewModel;

/// A fixed instant with non-zero microseconds, to catch backends that drop precision.
pub fn instant() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(1_800_000_000_123_456_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

pub fn user(username: &str, role: Role) -> User {
    User {
        id: UserId(Uuid::now_v7()),
        username: username.to_owned(),
        role,
        sites: SiteScope::All,
        password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1$fixture${username}"),
        disabled: false,
        must_change_password: false,
        password_changed_at: instant(),
        mfa_enabled: false,
        created_at: instant(),
        updated_at: instant(),
    }
}

/// A signed-in user `<role>-user` of all sites, as use cases receive it.
pub fn principal(role: Role) -> Principal {
    Principal {
        role,
        sites: SiteScope::All,
        subject: Subject::User {
            id: UserId(Uuid::now_v7()),
            username: format!("{role}-user"),
            session: None,
        },
        mfa_enrolment_pending: false,
    }
}

pub fn api_key(prefix: &str, role: Role, created_by: Option<UserId>) -> ApiKey {
    ApiKey {
        id: ApiKeyId(Uuid::now_v7()),
        prefix: prefix.to_owned(),
        secret_hash: vec![0xab; 32],
        name: format!("key {prefix}"),
        role,
        sites: SiteScope::All,
        created_by,
        created_at: instant(),
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
    }
}

/// A device of `machine` at site `plant-a`, with a fixed secret hash.
pub fn device(name: &str, machine: Option<&str>, created_by: Option<UserId>) -> Device {
    Device {
        id: DeviceId(Uuid::now_v7()),
        name: name.to_owned(),
        machine: machine.map(str::to_owned),
        site: Some("plant-a".to_owned()),
        secret_hash: vec![0xcd; 32],
        created_by,
        created_at: instant(),
        last_connected_at: None,
        revoked_at: None,
    }
}

pub fn sensor(key: &str, kind: SensorKind, unit: &str, min: f64, max: f64) -> SensorSpec {
    SensorSpec {
        key: SensorKey(key.to_owned()),
        kind,
        unit: unit.to_owned(),
        physical_min: min,
        physical_max: max,
        warning_low: None,
        warning_high: None,
        critical_low: None,
        critical_high: None,
    }
}

/// A machine with every field set, including non-ASCII units and fractional limits.
pub fn machine(id: &str) -> Machine {
    let mut temperature = sensor("temperature", SensorKind::Temperature, "°C", -40.0, 250.0);
    temperature.warning_high = Some(80.5);
    temperature.critical_high = Some(95.0);
    let mut vibration = sensor("vibration", SensorKind::Vibration, "mm/s", 0.0, 50.0);
    vibration.warning_high = Some(4.5);
    vibration.critical_high = Some(7.1);
    Machine {
        id: MachineId(id.to_owned()),
        name: format!("Machine {id}"),
        machine_type: "hydraulic_press".to_owned(),
        machine_class: Some(MachineClass::Class2),
        location: Location {
            site: "plant-a".to_owned(),
            area: Some("stamping".to_owned()),
            line: Some("line-1".to_owned()),
            cell: Some("cell-3".to_owned()),
        },
        status: MachineStatus::Running,
        active: true,
        sensors: vec![temperature, vibration],
        last_maintenance: Some(instant() - time::Duration::days(20)),
        next_maintenance: Some(instant() + time::Duration::days(70)),
        health_score: Some(93.5),
        failure_probability: Some(0.02),
        rul_hours: Some(1800.0),
        created_at: instant(),
        updated_at: instant(),
    }
}

/// An open warning alert on `machine`, raised yesterday.
pub fn alert(machine: &str, kind: AlertKind, severity: Severity) -> Alert {
    let yesterday = OffsetDateTime::now_utc() - time::Duration::days(1);
    let at = yesterday.replace_time(time::Time::from_hms(10, 0, 0).unwrap_or(time::Time::MIDNIGHT))
        + time::Duration::microseconds(123_456);
    Alert {
        id: AlertId(Uuid::now_v7()),
        machine: MachineId(machine.into()),
        kind,
        severity,
        status: AlertStatus::Open,
        title: "Bearing temperature 97.5 °C over 90 °C".into(),
        evidence: vec![
            Evidence::number("value", 97.5),
            Evidence::text("sensor", "temperature"),
        ],
        opened_at: at,
        last_seen_at: at,
        occurrences: 3,
        acknowledged: None,
        resolved: None,
        escalation_level: 0,
        escalated_at: None,
        version: 1,
        updated_at: at,
    }
}

/// An audit entry at [`instant`] with a fresh op id and one detail.
pub fn audit_entry(
    actor: &str,
    action: &str,
    target: Option<&str>,
    outcome: Outcome,
) -> AuditEntry {
    AuditEntry {
        at: instant(),
        actor: actor.to_owned(),
        action: action.to_owned(),
        target: target.map(str::to_owned),
        outcome,
        op_id: Uuid::now_v7().to_string(),
        source: "192.0.2.10".to_owned(),
        details: std::collections::BTreeMap::from([("status".to_owned(), "200".to_owned())]),
    }
}

/// A complete model draft of `kind` for `machine_type`, with figures that test exact round
/// trips (a float with no short decimal form, a tiny one, the order of features).
pub fn model_draft(kind: ModelKind, machine_type: &str) -> ModelDraft {
    ModelDraft {
        kind,
        machine_type: machine_type.to_owned(),
        format: "fb-predict/1".to_owned(),
        data_hash: "3f".repeat(32),
        features: vec![
            "vibration.mean_30".to_owned(),
            "temperature.slope_60".to_owned(),
            "regime".to_owned(),
        ],
        metrics: BTreeMap::from([
            ("rmse".to_owned(), 0.1 + 0.2),
            ("phm08".to_owned(), 312.5),
            ("tiny".to_owned(), 1e-300),
        ]),
        params: BTreeMap::from([
            ("trees".to_owned(), "400".to_owned()),
            ("learning_rate".to_owned(), "0.05".to_owned()),
        ]),
        note: Some("trained on FD001\nvalidated by unit".to_owned()),
    }
}

/// A model to insert: `draft` with a new id, created at [`instant`] by `user:trainer`.
pub fn new_model<'a>(draft: &'a ModelDraft, payload: &'a [u8]) -> NewModel<'a> {
    NewModel {
        id: ModelId(Uuid::now_v7()),
        draft,
        created_at: instant(),
        created_by: "user:trainer",
        payload,
        payload_sha256: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
    }
}

/// An open ticket of `machine` in `site` for `failure_type`, opened by hand at [`instant`] with
/// its template's steps, an assignee and a cost estimate.
pub fn ticket(
    machine: &str,
    site: &str,
    failure_type: fb_core::maintenance::FailureType,
) -> fb_core::maintenance::Ticket {
    fb_core::maintenance::NewTicket {
        machine: MachineId(machine.into()),
        title: format!("{} on {machine}", failure_type.as_str()),
        description: "Found on the morning round.\nNoisy.".into(),
        failure_type,
        priority: fb_core::maintenance::TicketPriority::High,
        assignee: Some("otto".into()),
        steps: None,
        cost_estimate_minor: Some(12_345),
        alerts: Vec::new(),
    }
    .open(site.to_owned(), "user:sam".to_owned(), instant())
}
