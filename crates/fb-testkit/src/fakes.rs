//! In-memory implementations of the ports, for fast use-case tests. They pass the same
//! conformance suite as the real stores (see `tests/conformance.rs`), so a test that passes on
//! them means the same thing.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;

use fb_core::alerts::{Alert, AlertId};
use fb_core::audit::{AuditEntry, AuditHead, AuditRecord, ScannedRecord};
use fb_core::detection::Anomaly;
use fb_core::device::{Device, DeviceId};
use fb_core::identity::{ApiKey, ApiKeyId, Role, SiteScope, User, UserId};
use fb_core::plant::{Machine, MachineId, Reading, ReadingBatch, ScoreBatch, SensorKey, to_micros};
use fb_core::ports::{
    AlertFilter, AlertStore, AnomalyFilter, AnomalyStore, AppendOutcome, AuditFilter, AuditStore,
    BucketStats, DeadLetter, DeadLetterFilter, DeadLetterStore, DeviceStore, IdentityStore,
    MachineStore, RangeQuery, ReadingStore, Resolution, RetentionCutoffs, RetentionOutcome,
    ScoreStore, ScoredPoint, SecretStore, StoreError, StoreHealth,
};
use fb_core::ports::{MfaStore, SessionStore};
use fb_core::session::{EndReason, RefreshToken, Rotation, Session, SessionId, Totp};
use uuid::Uuid;

mod energy;
mod gates;
mod models;
mod procurement;
mod tickets;

#[derive(Default)]
struct State {
    users: BTreeMap<UserId, User>,
    keys: BTreeMap<ApiKeyId, ApiKey>,
    secrets: BTreeMap<String, Vec<u8>>,
    machines: BTreeMap<MachineId, Machine>,
    /// (machine, sensor) → ts in µs → value.
    readings: BTreeMap<(MachineId, SensorKey), BTreeMap<i128, f64>>,
    dead_letters: BTreeMap<Uuid, DeadLetter>,
    alerts: BTreeMap<AlertId, Alert>,
    anomalies: BTreeMap<Uuid, Anomaly>,
    /// (machine, sensor) → ts in µs → (score, anomaly); the first score of a time stays.
    scores: BTreeMap<(MachineId, SensorKey), BTreeMap<i64, (f32, bool)>>,
    touches: usize,
    /// The audit chain in seq order, and its head.
    audit: Vec<AuditRecord>,
    audit_head: AuditHead,
    sessions: BTreeMap<SessionId, Session>,
    /// Refresh tokens by hash, with the time each was used.
    refresh_tokens: BTreeMap<Vec<u8>, (RefreshToken, Option<OffsetDateTime>)>,
    totp: BTreeMap<UserId, Totp>,
    /// (user, code hash) → used at.
    recovery_codes: BTreeMap<(UserId, Vec<u8>), Option<OffsetDateTime>>,
    devices: BTreeMap<DeviceId, Device>,
    device_touches: usize,
    models: models::ModelState,
    tickets: tickets::TicketState,
    gates: gates::GateState,
    recommendations: BTreeMap<fb_core::energy::RecommendationId, fb_core::energy::Recommendation>,
    procurement: procurement::ProcurementState,
}

/// Every storage port in memory, behind one lock (so each call is atomic, like a transaction).
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut state)
    }

    /// How many times `touch_api_key` was called: lets tests check write throttling.
    pub fn touch_count(&self) -> usize {
        self.with(|s| s.touches)
    }

    /// How many times `touch_device` was called: lets tests check write throttling.
    pub fn device_touch_count(&self) -> usize {
        self.with(|s| s.device_touches)
    }
}

/// An active admin of all sites: the plant is never left without one.
fn is_full_admin(user: &User) -> bool {
    user.role == Role::Admin && !user.disabled && user.sites.is_all()
}

/// The user is the only active admin of all sites.
fn is_last_full_admin(s: &State, id: UserId) -> bool {
    let full_admins = s.users.values().filter(|u| is_full_admin(u)).count();
    s.users.get(&id).is_some_and(is_full_admin) && full_admins <= 1
}

#[async_trait]
impl IdentityStore for MemoryStore {
    async fn insert_user(&self, user: &User) -> Result<(), StoreError> {
        self.with(|s| {
            if s.users.values().any(|u| u.username == user.username) {
                return Err(StoreError::Conflict {
                    constraint: "username",
                });
            }
            // Like the SQL stores: a new user has no second factor, whatever the value says.
            let mut user = user.clone();
            user.mfa_enabled = false;
            s.users.insert(user.id, user);
            Ok(())
        })
    }

    async fn user_by_id(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(self.with(|s| s.users.get(&id).cloned()))
    }

    async fn user_by_username(&self, username: &str) -> Result<Option<User>, StoreError> {
        Ok(self.with(|s| s.users.values().find(|u| u.username == username).cloned()))
    }

    async fn list_users(&self) -> Result<Vec<User>, StoreError> {
        let mut users: Vec<User> = self.with(|s| s.users.values().cloned().collect());
        users.sort_by(|a, b| a.username.cmp(&b.username));
        Ok(users)
    }

    async fn count_users(&self) -> Result<u64, StoreError> {
        Ok(self.with(|s| s.users.len() as u64))
    }

    async fn set_user_disabled(
        &self,
        id: UserId,
        disabled: bool,
        at: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        Ok(self.with(|s| {
            let last_full_admin = is_last_full_admin(s, id);
            let user = s.users.get_mut(&id)?;
            if disabled && last_full_admin {
                return None;
            }
            user.disabled = disabled;
            user.updated_at = at;
            Some(user.clone())
        }))
    }

    async fn update_user_access(
        &self,
        id: UserId,
        role: Role,
        sites: &SiteScope,
        at: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        Ok(self.with(|s| {
            let stays_full_admin = role == Role::Admin && sites.is_all();
            let last_full_admin = is_last_full_admin(s, id);
            let user = s.users.get_mut(&id)?;
            if last_full_admin && !stays_full_admin {
                return None;
            }
            user.role = role;
            user.sites = sites.clone();
            user.updated_at = at;
            Some(user.clone())
        }))
    }

    async fn set_user_password(
        &self,
        id: UserId,
        password_hash: &str,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|s| match s.users.get_mut(&id) {
            Some(user) => {
                user.password_hash = password_hash.to_owned();
                user.must_change_password = false;
                user.password_changed_at = at;
                user.updated_at = at;
                true
            }
            None => false,
        }))
    }

    async fn insert_api_key(&self, key: &ApiKey) -> Result<(), StoreError> {
        self.with(|s| {
            if s.keys.values().any(|k| k.prefix == key.prefix) {
                return Err(StoreError::Conflict {
                    constraint: "api_key_prefix",
                });
            }
            s.keys.insert(key.id, key.clone());
            Ok(())
        })
    }

    async fn api_key_by_id(&self, id: ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        Ok(self.with(|s| s.keys.get(&id).cloned()))
    }

    async fn api_key_by_prefix(&self, prefix: &str) -> Result<Option<ApiKey>, StoreError> {
        Ok(self.with(|s| s.keys.values().find(|k| k.prefix == prefix).cloned()))
    }

    async fn list_api_keys(&self) -> Result<Vec<ApiKey>, StoreError> {
        // Ids are UUIDv7: descending id is newest first.
        Ok(self.with(|s| s.keys.values().rev().cloned().collect()))
    }

    async fn revoke_api_key(
        &self,
        id: ApiKeyId,
        at: OffsetDateTime,
    ) -> Result<Option<ApiKey>, StoreError> {
        Ok(self.with(|s| {
            let key = s.keys.get_mut(&id)?;
            key.revoked_at.get_or_insert(at);
            Some(key.clone())
        }))
    }

    async fn touch_api_key(&self, id: ApiKeyId, at: OffsetDateTime) -> Result<(), StoreError> {
        self.with(|s| {
            s.touches += 1;
            if let Some(key) = s.keys.get_mut(&id) {
                key.last_used_at = Some(at);
            }
        });
        Ok(())
    }

    async fn revoke_api_keys_created_by(
        &self,
        user: UserId,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        Ok(self.with(|s| {
            let mut revoked = 0;
            for key in s.keys.values_mut() {
                if key.created_by == Some(user) && key.revoked_at.is_none() {
                    key.revoked_at = Some(at);
                    revoked += 1;
                }
            }
            revoked
        }))
    }
}

#[async_trait]
impl SecretStore for MemoryStore {
    async fn get_or_insert_secret(
        &self,
        name: &str,
        candidate: &[u8],
    ) -> Result<Vec<u8>, StoreError> {
        Ok(self.with(|s| {
            s.secrets
                .entry(name.to_owned())
                .or_insert_with(|| candidate.to_vec())
                .clone()
        }))
    }

    async fn secret(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.with(|s| s.secrets.get(name).cloned()))
    }

    async fn put_secrets(&self, secrets: &[(&str, &[u8])]) -> Result<(), StoreError> {
        self.with(|s| {
            for (name, value) in secrets {
                s.secrets.insert((*name).to_owned(), value.to_vec());
            }
        });
        Ok(())
    }
}

#[async_trait]
impl SessionStore for MemoryStore {
    async fn insert_session(
        &self,
        session: &Session,
        first: &RefreshToken,
    ) -> Result<(), StoreError> {
        self.with(|s| {
            s.sessions.insert(session.id, session.clone());
            s.refresh_tokens
                .insert(first.hash.clone(), (first.clone(), None));
        });
        Ok(())
    }

    async fn session_with_user(
        &self,
        id: SessionId,
    ) -> Result<Option<(Session, User)>, StoreError> {
        Ok(self.with(|s| {
            let session = s.sessions.get(&id)?.clone();
            let user = s.users.get(&session.user)?.clone();
            Some((session, user))
        }))
    }

    async fn rotate_refresh_token(
        &self,
        presented: &[u8],
        next: &RefreshToken,
        now: OffsetDateTime,
    ) -> Result<Rotation, StoreError> {
        Ok(self.with(|s| {
            let Some((token, used_at)) = s.refresh_tokens.get(presented).cloned() else {
                return Rotation::Invalid;
            };
            if used_at.is_some() {
                let Some(session) = s.sessions.get_mut(&token.session) else {
                    return Rotation::Invalid;
                };
                if session.ended_at.is_none() {
                    session.ended_at = Some(now);
                    session.end_reason = Some(EndReason::RefreshTokenReused);
                }
                return Rotation::Reused {
                    session: session.id,
                    user: session.user,
                };
            }
            let active = s
                .sessions
                .get(&token.session)
                .is_some_and(|session| session.is_active(now));
            if token.expires_at <= now || !active {
                return Rotation::Invalid;
            }
            s.refresh_tokens
                .insert(presented.to_vec(), (token.clone(), Some(now)));
            let next = RefreshToken {
                session: token.session,
                generation: token.generation.saturating_add(1),
                ..next.clone()
            };
            s.refresh_tokens.insert(next.hash.clone(), (next, None));
            match s.sessions.get_mut(&token.session) {
                Some(session) => {
                    session.refreshed_at = now;
                    Rotation::Rotated(session.clone())
                }
                None => Rotation::Invalid,
            }
        }))
    }

    async fn list_sessions(
        &self,
        user: UserId,
        include_ended: bool,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError> {
        Ok(self.with(|s| {
            s.sessions
                .values()
                .rev()
                .filter(|session| session.user == user)
                .filter(|session| include_ended || session.is_active(now))
                .cloned()
                .collect()
        }))
    }

    async fn end_session(
        &self,
        id: SessionId,
        reason: EndReason,
        at: OffsetDateTime,
    ) -> Result<Option<Session>, StoreError> {
        Ok(self.with(|s| {
            let session = s.sessions.get_mut(&id)?;
            if session.ended_at.is_none() {
                session.ended_at = Some(at);
                session.end_reason = Some(reason);
            }
            Some(session.clone())
        }))
    }

    async fn end_user_sessions(
        &self,
        user: UserId,
        reason: EndReason,
        at: OffsetDateTime,
    ) -> Result<u64, StoreError> {
        Ok(self.with(|s| {
            let mut ended = 0;
            for session in s.sessions.values_mut() {
                if session.user == user && session.ended_at.is_none() {
                    session.ended_at = Some(at);
                    session.end_reason = Some(reason);
                    ended += 1;
                }
            }
            ended
        }))
    }

    async fn set_session_mfa(&self, id: SessionId) -> Result<(), StoreError> {
        self.with(|s| {
            if let Some(session) = s.sessions.get_mut(&id) {
                session.mfa = true;
            }
        });
        Ok(())
    }
}

#[async_trait]
impl MfaStore for MemoryStore {
    async fn totp(&self, user: UserId) -> Result<Totp, StoreError> {
        Ok(self.with(|s| s.totp.get(&user).cloned().unwrap_or_default()))
    }

    async fn set_totp_secret(&self, user: UserId, secret: &[u8]) -> Result<(), StoreError> {
        self.with(|s| {
            if s.users.contains_key(&user) {
                s.totp.insert(
                    user,
                    Totp {
                        secret: Some(secret.to_vec()),
                        ..Totp::default()
                    },
                );
            }
            if let Some(u) = s.users.get_mut(&user) {
                u.mfa_enabled = false;
            }
        });
        Ok(())
    }

    async fn enable_totp(
        &self,
        user: UserId,
        at: OffsetDateTime,
        recovery_code_hashes: &[Vec<u8>],
    ) -> Result<(), StoreError> {
        self.with(|s| {
            let Some(totp) = s.totp.get_mut(&user).filter(|t| t.secret.is_some()) else {
                return;
            };
            totp.enabled_at = Some(at);
            if let Some(u) = s.users.get_mut(&user) {
                u.mfa_enabled = true;
                u.updated_at = at;
            }
            replace_codes(s, user, recovery_code_hashes);
        });
        Ok(())
    }

    async fn clear_totp(&self, user: UserId) -> Result<(), StoreError> {
        self.with(|s| {
            s.totp.remove(&user);
            if let Some(u) = s.users.get_mut(&user) {
                u.mfa_enabled = false;
            }
            replace_codes(s, user, &[]);
        });
        Ok(())
    }

    async fn accept_totp_step(&self, user: UserId, step: i64) -> Result<bool, StoreError> {
        Ok(self.with(|s| match s.totp.get_mut(&user) {
            Some(totp) if totp.last_step < step => {
                totp.last_step = step;
                true
            }
            _ => false,
        }))
    }

    async fn replace_recovery_codes(
        &self,
        user: UserId,
        hashes: &[Vec<u8>],
        _at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.with(|s| replace_codes(s, user, hashes));
        Ok(())
    }

    async fn use_recovery_code(
        &self,
        user: UserId,
        hash: &[u8],
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        Ok(
            self.with(|s| match s.recovery_codes.get_mut(&(user, hash.to_vec())) {
                Some(used @ None) => {
                    *used = Some(at);
                    true
                }
                _ => false,
            }),
        )
    }

    async fn recovery_codes_left(&self, user: UserId) -> Result<u64, StoreError> {
        Ok(self.with(|s| {
            s.recovery_codes
                .iter()
                .filter(|((u, _), used)| *u == user && used.is_none())
                .count() as u64
        }))
    }
}

fn replace_codes(s: &mut State, user: UserId, hashes: &[Vec<u8>]) {
    s.recovery_codes.retain(|(u, _), _| *u != user);
    for hash in hashes {
        s.recovery_codes.insert((user, hash.clone()), None);
    }
}

#[async_trait]
impl MachineStore for MemoryStore {
    async fn insert_machine(&self, machine: &Machine) -> Result<(), StoreError> {
        self.with(|s| {
            if s.machines.contains_key(&machine.id) {
                return Err(StoreError::Conflict {
                    constraint: "machine_id",
                });
            }
            s.machines.insert(machine.id.clone(), machine.clone());
            Ok(())
        })
    }

    async fn machine(&self, id: &MachineId) -> Result<Option<Machine>, StoreError> {
        Ok(self.with(|s| s.machines.get(id).cloned()))
    }

    async fn list_machines(&self, sites: &SiteScope) -> Result<Vec<Machine>, StoreError> {
        Ok(self.with(|s| {
            s.machines
                .values()
                .filter(|m| sites.contains(&m.location.site))
                .cloned()
                .collect()
        }))
    }

    async fn update_machine(&self, machine: &Machine) -> Result<bool, StoreError> {
        Ok(self.with(|s| match s.machines.get_mut(&machine.id) {
            Some(stored) => {
                let created_at = stored.created_at;
                *stored = machine.clone();
                stored.created_at = created_at;
                true
            }
            None => false,
        }))
    }

    async fn delete_machine(&self, id: &MachineId) -> Result<bool, StoreError> {
        Ok(self.with(|s| s.machines.remove(id).is_some()))
    }

    async fn set_machine_health(
        &self,
        id: &MachineId,
        health: f64,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|s| match s.machines.get_mut(id) {
            Some(m) => {
                m.health_score = Some(health);
                m.updated_at = at;
                true
            }
            None => false,
        }))
    }

    async fn set_machine_prediction(
        &self,
        id: &MachineId,
        failure_probability: Option<f64>,
        rul_hours: Option<f64>,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        Ok(self.with(|s| match s.machines.get_mut(id) {
            Some(m) => {
                m.failure_probability = failure_probability;
                m.rul_hours = rul_hours;
                m.updated_at = at;
                true
            }
            None => false,
        }))
    }
}

fn micros(t: OffsetDateTime) -> i128 {
    t.unix_timestamp_nanos() / 1_000
}

fn from_micros(m: i128) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(m * 1_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

impl MemoryStore {
    /// The series of a machine (optionally one sensor), ordered by sensor.
    fn series_of<'a>(
        s: &'a State,
        q: &'a RangeQuery,
    ) -> impl Iterator<Item = (&'a SensorKey, &'a BTreeMap<i128, f64>)> + 'a {
        s.readings
            .iter()
            .filter(move |((m, k), _)| *m == q.machine && q.sensor.as_ref().is_none_or(|s| s == k))
            .map(|((_, k), points)| (k, points))
    }
}

#[async_trait]
impl ReadingStore for MemoryStore {
    async fn append_readings(&self, batch: &ReadingBatch) -> Result<AppendOutcome, StoreError> {
        Ok(self.with(|s| {
            let mut outcome = AppendOutcome::default();
            for (position, sample) in batch.samples().iter().enumerate() {
                let name = batch.name(sample.series);
                let series = s
                    .readings
                    .entry((name.machine.clone(), name.sensor.clone()))
                    .or_default();
                match series.entry(i128::from(sample.ts_micros)) {
                    std::collections::btree_map::Entry::Occupied(_) => {
                        outcome.duplicates += 1;
                        outcome.duplicate_samples.push(position as u32);
                    }
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        slot.insert(sample.value);
                        outcome.inserted += 1;
                    }
                }
            }
            outcome
        }))
    }

    async fn raw_readings(&self, q: &RangeQuery) -> Result<Vec<Reading>, StoreError> {
        Ok(self.with(|s| {
            Self::series_of(s, q)
                .flat_map(|(sensor, points)| {
                    points
                        .range(micros(q.from)..micros(q.to))
                        .map(move |(ts, value)| Reading {
                            machine: q.machine.clone(),
                            sensor: sensor.clone(),
                            ts: from_micros(*ts),
                            value: *value,
                        })
                })
                .take(q.limit)
                .collect()
        }))
    }

    async fn rollup_readings(
        &self,
        q: &RangeQuery,
        resolution: Resolution,
    ) -> Result<Vec<BucketStats>, StoreError> {
        let width = i128::from(resolution.seconds()) * 1_000_000;
        Ok(self.with(|s| {
            let mut out = Vec::new();
            for (sensor, points) in Self::series_of(s, q) {
                let mut buckets: BTreeMap<i128, BucketStats> = BTreeMap::new();
                for (ts, value) in points {
                    let start = ts.div_euclid(width) * width;
                    let bucket = buckets.entry(start).or_insert_with(|| BucketStats {
                        sensor: sensor.clone(),
                        start: from_micros(start),
                        count: 0,
                        min: f64::INFINITY,
                        max: f64::NEG_INFINITY,
                        sum: 0.0,
                    });
                    bucket.count += 1;
                    bucket.min = bucket.min.min(*value);
                    bucket.max = bucket.max.max(*value);
                    bucket.sum += value;
                }
                out.extend(
                    buckets
                        .into_values()
                        .filter(|b| b.start >= q.from && b.start < q.to),
                );
            }
            out.truncate(q.limit);
            out
        }))
    }

    async fn apply_retention(
        &self,
        cutoffs: &RetentionCutoffs,
    ) -> Result<RetentionOutcome, StoreError> {
        // The fake computes rollups from raw data, so only raw retention has work to do; it
        // removes whole hours, like the SQLite store.
        let mut outcome = RetentionOutcome::default();
        if let Some(cutoff) = cutoffs.raw {
            let hour = 3_600_000_000i128;
            let limit = micros(cutoff).div_euclid(hour) * hour;
            self.with(|s| {
                for points in s.readings.values_mut() {
                    let keep = points.split_off(&limit);
                    outcome.raw_units += points.len() as u64;
                    *points = keep;
                }
            });
        }
        Ok(outcome)
    }

    async fn latest_readings(&self, machine: &MachineId) -> Result<Vec<Reading>, StoreError> {
        Ok(self.with(|s| {
            s.readings
                .iter()
                .filter(|((m, _), _)| m == machine)
                .filter_map(|((m, k), points)| {
                    points.last_key_value().map(|(ts, value)| Reading {
                        machine: m.clone(),
                        sensor: k.clone(),
                        ts: from_micros(*ts),
                        value: *value,
                    })
                })
                .collect()
        }))
    }
}

#[async_trait]
impl AlertStore for MemoryStore {
    async fn insert_alert(&self, alert: &Alert) -> Result<(), StoreError> {
        self.with(|s| {
            let duplicate_active = alert.status.is_active()
                && s.alerts.values().any(|a| {
                    a.status.is_active() && a.machine == alert.machine && a.kind == alert.kind
                });
            if duplicate_active || s.alerts.contains_key(&alert.id) {
                return Err(StoreError::Conflict {
                    constraint: "alert_active",
                });
            }
            s.alerts.insert(alert.id, alert.clone());
            Ok(())
        })
    }

    async fn update_alert(&self, alert: &Alert, expected_version: u64) -> Result<bool, StoreError> {
        self.with(|s| {
            let Some(stored) = s.alerts.get(&alert.id) else {
                return Ok(false);
            };
            if stored.version != expected_version {
                return Ok(false);
            }
            let clash = alert.status.is_active()
                && s.alerts.values().any(|a| {
                    a.id != alert.id
                        && a.status.is_active()
                        && a.machine == alert.machine
                        && a.kind == alert.kind
                });
            if clash {
                return Err(StoreError::Conflict {
                    constraint: "alert_active",
                });
            }
            s.alerts.insert(alert.id, alert.clone());
            Ok(true)
        })
    }

    async fn alert(&self, id: AlertId) -> Result<Option<Alert>, StoreError> {
        Ok(self.with(|s| s.alerts.get(&id).cloned()))
    }

    async fn list_alerts(&self, f: &AlertFilter) -> Result<Vec<Alert>, StoreError> {
        Ok(self.with(|s| {
            s.alerts
                .values()
                .rev()
                .filter(|a| f.machine.as_ref().is_none_or(|m| *m == a.machine))
                .filter(|a| match f.status {
                    Some(status) => a.status == status,
                    None => !f.active_only || a.status.is_active(),
                })
                .filter(|a| f.severity.is_none_or(|v| v == a.severity))
                .filter(|a| f.kind.is_none_or(|k| k == a.kind))
                .filter(|a| f.before.is_none_or(|b| a.id < b))
                .filter(|a| {
                    f.sites.is_all()
                        || s.machines
                            .get(&a.machine)
                            .is_some_and(|m| f.sites.contains(&m.location.site))
                })
                .take(f.limit)
                .cloned()
                .collect()
        }))
    }
}

#[async_trait]
impl AnomalyStore for MemoryStore {
    async fn insert_anomalies(&self, anomalies: &[Anomaly]) -> Result<(), StoreError> {
        self.with(|s| {
            for a in anomalies {
                s.anomalies.insert(a.id, a.clone());
            }
        });
        Ok(())
    }

    async fn list_anomalies(&self, f: &AnomalyFilter) -> Result<Vec<Anomaly>, StoreError> {
        Ok(self.with(|s| {
            let mut found: Vec<Anomaly> = s
                .anomalies
                .values()
                .filter(|a| a.machine == f.machine && a.at >= f.from && a.at < f.to)
                .filter(|a| f.after.is_none_or(|after| a.id > after))
                .cloned()
                .collect();
            found.sort_by_key(|a| (a.at, a.id));
            found.truncate(f.limit);
            found
        }))
    }
}

#[async_trait]
impl ScoreStore for MemoryStore {
    async fn append_scores(&self, batch: &ScoreBatch) -> Result<(), StoreError> {
        self.with(|s| {
            for sample in batch.samples() {
                let name = batch.name(sample.series);
                s.scores
                    .entry((name.machine.clone(), name.sensor.clone()))
                    .or_default()
                    .entry(sample.ts_micros)
                    .or_insert((sample.score, sample.anomaly));
            }
        });
        Ok(())
    }

    async fn scores(&self, q: &RangeQuery) -> Result<Vec<ScoredPoint>, StoreError> {
        let (from, to) = (to_micros(q.from), to_micros(q.to));
        Ok(self.with(|s| {
            s.scores
                .iter()
                .filter(|((m, k), _)| *m == q.machine && q.sensor.as_ref().is_none_or(|s| s == k))
                .flat_map(|((_, sensor), points)| {
                    points
                        .range(from..to.max(from))
                        .map(move |(ts, (score, anomaly))| ScoredPoint {
                            sensor: sensor.clone(),
                            ts: fb_core::plant::from_micros(*ts),
                            score: *score,
                            anomaly: *anomaly,
                        })
                })
                .take(q.limit)
                .collect()
        }))
    }
}

#[async_trait]
impl DeadLetterStore for MemoryStore {
    async fn insert_dead_letters(&self, letters: &[DeadLetter]) -> Result<(), StoreError> {
        self.with(|s| {
            for l in letters {
                s.dead_letters.insert(l.id, l.clone());
            }
        });
        Ok(())
    }

    async fn list_dead_letters(&self, f: &DeadLetterFilter) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(self.with(|s| {
            s.dead_letters
                .values()
                .filter(|l| f.code.is_none_or(|c| c == l.code))
                .filter(|l| !f.pending_only || l.replayed_at.is_none())
                .filter(|l| f.after.is_none_or(|a| l.id > a))
                .take(f.limit)
                .cloned()
                .collect()
        }))
    }

    async fn dead_letter(&self, id: Uuid) -> Result<Option<DeadLetter>, StoreError> {
        Ok(self.with(|s| s.dead_letters.get(&id).cloned()))
    }

    async fn mark_replayed(&self, id: Uuid, at: OffsetDateTime) -> Result<bool, StoreError> {
        Ok(self.with(|s| match s.dead_letters.get_mut(&id) {
            Some(l) => {
                l.replayed_at = Some(at);
                true
            }
            None => false,
        }))
    }
}

#[async_trait]
impl AuditStore for MemoryStore {
    async fn append_audit(&self, entry: &AuditEntry) -> Result<AuditRecord, StoreError> {
        Ok(self.with(|s| {
            let record = AuditRecord::next(&s.audit_head, entry.clone());
            s.audit_head = record.as_head();
            s.audit.push(record.clone());
            record
        }))
    }

    async fn list_audit(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>, StoreError> {
        Ok(self.with(|s| {
            let matching = s.audit.iter().filter(|r| f.matches(r));
            if f.newest_first {
                matching.rev().take(f.limit).cloned().collect()
            } else {
                matching.take(f.limit).cloned().collect()
            }
        }))
    }

    async fn scan_audit(&self, after: u64, limit: usize) -> Result<Vec<ScannedRecord>, StoreError> {
        Ok(self.with(|s| {
            s.audit
                .iter()
                .filter(|r| r.seq > after)
                .take(limit)
                .cloned()
                .map(Ok)
                .collect()
        }))
    }

    async fn audit_head(&self) -> Result<Option<AuditHead>, StoreError> {
        Ok(Some(self.with(|s| s.audit_head)))
    }
}

#[async_trait]
impl DeviceStore for MemoryStore {
    async fn insert_device(&self, device: &Device) -> Result<(), StoreError> {
        self.with(|s| {
            if s.devices.values().any(|d| d.name == device.name) {
                return Err(StoreError::Conflict {
                    constraint: "device_name",
                });
            }
            s.devices.insert(device.id, device.clone());
            Ok(())
        })
    }

    async fn device_by_name(&self, name: &str) -> Result<Option<Device>, StoreError> {
        Ok(self.with(|s| s.devices.values().find(|d| d.name == name).cloned()))
    }

    async fn device_by_id(&self, id: DeviceId) -> Result<Option<Device>, StoreError> {
        Ok(self.with(|s| s.devices.get(&id).cloned()))
    }

    async fn list_devices(&self) -> Result<Vec<Device>, StoreError> {
        let mut devices: Vec<Device> = self.with(|s| s.devices.values().cloned().collect());
        devices.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(devices)
    }

    async fn revoke_device(
        &self,
        id: DeviceId,
        at: OffsetDateTime,
    ) -> Result<Option<Device>, StoreError> {
        Ok(self.with(|s| {
            let device = s.devices.get_mut(&id)?;
            device.revoked_at.get_or_insert(at);
            Some(device.clone())
        }))
    }

    async fn touch_device(&self, id: DeviceId, at: OffsetDateTime) -> Result<(), StoreError> {
        self.with(|s| {
            s.device_touches += 1;
            if let Some(device) = s.devices.get_mut(&id) {
                device.last_connected_at = Some(at);
            }
        });
        Ok(())
    }
}

#[async_trait]
impl StoreHealth for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn close(&self) {}
}
