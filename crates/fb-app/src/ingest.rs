//! The ingest pipeline (A3): validate → de-duplicate → store → publish.
//!
//! Adapters (HTTP today, MQTT next) parse their formats into [`Item`]s and hand whole batches
//! here. Every item ends up either stored (or counted as a duplicate of a stored reading) or in
//! the dead-letter store with its raw bytes and the reason; the answer is given only after both
//! have committed, so nothing accepted is lost and nothing rejected disappears. A bounded number
//! of batches run at once: beyond it callers get `ingest_overloaded` and should retry.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::{Semaphore, broadcast};
use uuid::Uuid;

use fb_core::Clock;
use fb_core::error::{Code, Coded};
use fb_core::identity::{Permission, Principal};
use fb_core::plant::{
    IngestLimits, Location, Machine, MachineId, MachineStatus, Reading, Rejection, SensorKey,
    SensorKind, SensorSpec, check_reading, parse_timestamp,
};
use fb_core::ports::{
    DeadLetter, DeadLetterFilter, DeadLetterStore, MachineStore, ReadingStore, StoreError,
};

#[derive(Debug, Clone)]
pub struct Options {
    pub limits: IngestLimits,
    /// Register unknown machines and sensors on first sight instead of refusing their readings.
    pub auto_register: bool,
    /// Largest number of items in one batch.
    pub max_items: usize,
    /// Batches processed at once; more are refused with `ingest_overloaded`.
    pub max_in_flight: usize,
    /// How many rejections a report lists in detail.
    pub report_rejections: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            limits: IngestLimits::default(),
            auto_register: false,
            max_items: 100_000,
            max_in_flight: 8,
            report_rejections: 20,
        }
    }
}

/// A value as it arrived: JSON numbers, or text (CSV cells, quoted JSON) still to be parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum RawValue {
    Number(f64),
    Text(String),
    Missing,
}

/// One reading as received, before validation.
#[derive(Debug, Clone, PartialEq)]
pub struct RawReading {
    pub machine: String,
    pub sensor: String,
    /// `None`: stamped on arrival.
    pub ts: Option<String>,
    pub value: RawValue,
    pub unit: Option<String>,
}

/// An item of a batch: parsed, or refused by the parser already. Both keep their raw bytes for
/// the dead-letter store.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Parsed { reading: RawReading, raw: Vec<u8> },
    Unparsed { rejection: Rejection, raw: Vec<u8> },
}

/// Where a batch came from, for dead letters and logs.
#[derive(Debug, Clone)]
pub struct Origin {
    /// `http`, `mqtt:<topic>`, `replay:<id>`.
    pub source: String,
    pub content_type: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RowRejection {
    /// Position of the item in the batch (0-based).
    pub index: usize,
    pub code: Code,
    pub reason: String,
    pub dead_letter: Uuid,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Readings newly stored.
    pub accepted: usize,
    /// Readings whose (machine, sensor, ts) was stored already, or repeated in the batch.
    pub duplicates: usize,
    pub rejected: usize,
    /// The first rejections, in batch order.
    pub rejections: Vec<RowRejection>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the ingest queue is full; retry shortly")]
    Overloaded,
    #[error("{0}")]
    Payload(Rejection),
    #[error("this role lacks the permission {0}")]
    PermissionDenied(Permission),
    #[error("no dead letter has this id")]
    DeadLetterNotFound,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for Error {
    fn code(&self) -> Code {
        match self {
            Error::Overloaded => Code::ingest_overloaded,
            Error::Payload(r) => r.code(),
            Error::PermissionDenied(_) => Code::permission_denied,
            Error::DeadLetterNotFound => Code::dead_letter_not_found,
            Error::Store(StoreError::Unavailable(_)) => Code::storage_unavailable,
            Error::Store(_) => Code::internal,
        }
    }
}

pub struct Service {
    machines: Arc<dyn MachineStore>,
    readings: Arc<dyn ReadingStore>,
    dead_letters: Arc<dyn DeadLetterStore>,
    clock: Arc<dyn Clock>,
    options: Options,
    in_flight: Semaphore,
    published: broadcast::Sender<Arc<[Reading]>>,
}

impl Service {
    pub fn new(
        machines: Arc<dyn MachineStore>,
        readings: Arc<dyn ReadingStore>,
        dead_letters: Arc<dyn DeadLetterStore>,
        clock: Arc<dyn Clock>,
        options: Options,
    ) -> Self {
        let (published, _) = broadcast::channel(64);
        Self {
            in_flight: Semaphore::new(options.max_in_flight.max(1)),
            machines,
            readings,
            dead_letters,
            clock,
            options,
            published,
        }
    }

    /// Readings as they are stored, batch by batch, for in-process consumers (detection). A
    /// consumer that falls behind by more than 64 batches misses the oldest ones.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<[Reading]>> {
        self.published.subscribe()
    }

    pub fn options(&self) -> &Options {
        &self.options
    }

    /// Validates, de-duplicates and stores a batch, and dead-letters every refused item.
    pub async fn ingest(
        &self,
        caller: &Principal,
        origin: &Origin,
        items: Vec<Item>,
    ) -> Result<Report, Error> {
        require(caller, Permission::ReadingsWrite)?;
        let _permit = self
            .in_flight
            .try_acquire()
            .map_err(|_| Error::Overloaded)?;
        if items.len() > self.options.max_items {
            return Err(Error::Payload(Rejection::PayloadTooLarge {
                limit: self.options.max_items,
            }));
        }
        let now = self.clock.now();
        let mut registry = Registry {
            machines: HashMap::new(),
        };
        let mut accepted: Vec<Reading> = Vec::with_capacity(items.len());
        let mut seen: HashSet<(String, String, i128)> = HashSet::with_capacity(items.len());
        let mut in_batch_duplicates = 0;
        let mut letters = Vec::new();
        let mut report = Report::default();

        for (index, item) in items.into_iter().enumerate() {
            let (reading, raw) = match item {
                Item::Parsed { reading, raw } => (reading, raw),
                Item::Unparsed { rejection, raw } => {
                    self.reject(
                        origin,
                        index,
                        raw,
                        rejection,
                        now,
                        &mut letters,
                        &mut report,
                    );
                    continue;
                }
            };
            match self.validate(&reading, now, &mut registry).await? {
                Ok(valid) => {
                    let key = (
                        valid.machine.0.clone(),
                        valid.sensor.0.clone(),
                        valid.ts.unix_timestamp_nanos(),
                    );
                    if seen.insert(key) {
                        accepted.push(valid);
                    } else {
                        in_batch_duplicates += 1;
                    }
                }
                Err(rejection) => self.reject(
                    origin,
                    index,
                    raw,
                    rejection,
                    now,
                    &mut letters,
                    &mut report,
                ),
            }
        }

        let outcome = self.readings.append_readings(&accepted).await?;
        self.dead_letters.insert_dead_letters(&letters).await?;
        report.accepted = outcome.inserted;
        report.duplicates = outcome.duplicates + in_batch_duplicates;
        if !accepted.is_empty() {
            // No subscriber is fine: detection may not be running.
            let _ = self.published.send(accepted.into());
        }
        if report.rejected > 0 {
            tracing::info!(source = %origin.source, rejected = report.rejected, accepted = report.accepted, "Readings refused; kept as dead letters.");
        }
        metrics::counter!("fb_ingest_readings_total", "outcome" => "accepted")
            .increment(report.accepted as u64);
        metrics::counter!("fb_ingest_readings_total", "outcome" => "duplicate")
            .increment(report.duplicates as u64);
        metrics::counter!("fb_ingest_readings_total", "outcome" => "rejected")
            .increment(report.rejected as u64);
        Ok(report)
    }

    /// Keeps a whole payload that could not be read at all (malformed, too large, wrong type).
    pub async fn reject_payload(
        &self,
        origin: &Origin,
        payload: Vec<u8>,
        rejection: &Rejection,
    ) -> Result<Uuid, Error> {
        let letter = DeadLetter {
            id: Uuid::now_v7(),
            received_at: self.clock.now(),
            source: origin.source.clone(),
            code: rejection.code(),
            reason: rejection.to_string(),
            payload,
            content_type: origin.content_type.clone(),
            replayed_at: None,
        };
        self.dead_letters
            .insert_dead_letters(std::slice::from_ref(&letter))
            .await?;
        metrics::counter!("fb_ingest_readings_total", "outcome" => "rejected_payload").increment(1);
        tracing::info!(source = %origin.source, code = rejection.code().as_str(), "Payload refused; kept as a dead letter.");
        Ok(letter.id)
    }

    pub async fn dead_letters(
        &self,
        caller: &Principal,
        filter: &DeadLetterFilter,
    ) -> Result<Vec<DeadLetter>, Error> {
        require(caller, Permission::ReadingsWrite)?;
        Ok(self.dead_letters.list_dead_letters(filter).await?)
    }

    pub async fn dead_letter(&self, caller: &Principal, id: Uuid) -> Result<DeadLetter, Error> {
        require(caller, Permission::ReadingsWrite)?;
        self.dead_letters
            .dead_letter(id)
            .await?
            .ok_or(Error::DeadLetterNotFound)
    }

    /// Records that a dead letter was replayed with nothing refused.
    pub async fn mark_replayed(&self, caller: &Principal, id: Uuid) -> Result<(), Error> {
        require(caller, Permission::ReadingsWrite)?;
        if self
            .dead_letters
            .mark_replayed(id, self.clock.now())
            .await?
        {
            Ok(())
        } else {
            Err(Error::DeadLetterNotFound)
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn reject(
        &self,
        origin: &Origin,
        index: usize,
        raw: Vec<u8>,
        rejection: Rejection,
        now: OffsetDateTime,
        letters: &mut Vec<DeadLetter>,
        report: &mut Report,
    ) {
        let letter = DeadLetter {
            id: Uuid::now_v7(),
            received_at: now,
            source: origin.source.clone(),
            code: rejection.code(),
            reason: rejection.to_string(),
            payload: raw,
            content_type: origin.content_type.clone(),
            replayed_at: None,
        };
        report.rejected += 1;
        if report.rejections.len() < self.options.report_rejections {
            report.rejections.push(RowRejection {
                index,
                code: letter.code,
                reason: letter.reason.clone(),
                dead_letter: letter.id,
            });
        }
        letters.push(letter);
    }

    /// The rules in order; `Ok(Err(_))` is a refused reading, `Err(_)` a store failure.
    async fn validate(
        &self,
        raw: &RawReading,
        now: OffsetDateTime,
        registry: &mut Registry,
    ) -> Result<Result<Reading, Rejection>, Error> {
        let Some(machine_id) = MachineId::parse(raw.machine.trim()) else {
            return Ok(Err(Rejection::InvalidId {
                field: "machine",
                value: short(&raw.machine),
            }));
        };
        let Some(sensor_key) = SensorKey::parse(raw.sensor.trim()) else {
            return Ok(Err(Rejection::InvalidId {
                field: "sensor",
                value: short(&raw.sensor),
            }));
        };
        let value = match &raw.value {
            RawValue::Number(v) => *v,
            RawValue::Text(text) => match text.trim().parse::<f64>() {
                Ok(v) => v,
                Err(_) => return Ok(Err(Rejection::NonNumericValue(short(text)))),
            },
            RawValue::Missing => return Ok(Err(Rejection::NonNumericValue("(missing)".into()))),
        };
        let ts = match &raw.ts {
            Some(text) => match parse_timestamp(text) {
                Ok(ts) => ts,
                Err(rejection) => return Ok(Err(rejection)),
            },
            None => now,
        };
        let machine = match registry.machine(&*self.machines, &machine_id).await? {
            Some(machine) => machine,
            None if self.options.auto_register => {
                self.register_machine(&machine_id, registry).await?
            }
            None => return Ok(Err(Rejection::UnknownMachine(machine_id.0))),
        };
        if !machine.active {
            return Ok(Err(Rejection::InactiveMachine(machine_id.0)));
        }
        let spec = match machine.sensor(&sensor_key.0) {
            Some(spec) => spec.clone(),
            None if self.options.auto_register => {
                self.register_sensor(&machine_id, &sensor_key, raw.unit.as_deref(), registry)
                    .await?
            }
            None => {
                return Ok(Err(Rejection::UnknownSensor {
                    machine: machine_id.0,
                    sensor: sensor_key.0,
                }));
            }
        };
        if let Err(rejection) = check_reading(
            &spec,
            value,
            raw.unit.as_deref(),
            ts,
            now,
            self.options.limits,
        ) {
            return Ok(Err(rejection));
        }
        Ok(Ok(Reading {
            machine: machine_id,
            sensor: sensor_key,
            ts,
            value,
        }))
    }

    async fn register_machine(
        &self,
        id: &MachineId,
        registry: &mut Registry,
    ) -> Result<Machine, Error> {
        let now = self.clock.now();
        let machine = Machine {
            id: id.clone(),
            name: id.0.clone(),
            machine_type: "unclassified".into(),
            machine_class: None,
            location: Location {
                site: "unassigned".into(),
                area: None,
                line: None,
                cell: None,
            },
            status: MachineStatus::Running,
            active: true,
            sensors: Vec::new(),
            last_maintenance: None,
            next_maintenance: None,
            health_score: None,
            failure_probability: None,
            rul_hours: None,
            created_at: now,
            updated_at: now,
        };
        match self.machines.insert_machine(&machine).await {
            Ok(()) => tracing::info!(machine_id = %id, "Machine registered on first reading."),
            // Registered concurrently by another batch or node: use theirs.
            Err(StoreError::Conflict { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        registry.machines.remove(id);
        registry
            .machine(&*self.machines, id)
            .await?
            .ok_or(Error::Store(StoreError::Corrupt("machine vanished".into())))
    }

    async fn register_sensor(
        &self,
        machine: &MachineId,
        key: &SensorKey,
        unit: Option<&str>,
        registry: &mut Registry,
    ) -> Result<SensorSpec, Error> {
        let spec = SensorSpec {
            key: key.clone(),
            kind: SensorKind::Other,
            unit: unit
                .filter(|u| !u.trim().is_empty())
                .unwrap_or("unknown")
                .to_owned(),
            // Unknown physics: accept any finite value until someone sets the real range.
            physical_min: -1e12,
            physical_max: 1e12,
            warning_low: None,
            warning_high: None,
            critical_low: None,
            critical_high: None,
        };
        if let Some(mut stored) = self.machines.machine(machine).await? {
            if let Some(existing) = stored.sensor(&key.0) {
                return Ok(existing.clone());
            }
            stored.sensors.push(spec.clone());
            stored.updated_at = self.clock.now();
            self.machines.update_machine(&stored).await?;
            tracing::info!(machine_id = %machine, sensor = %key, "Sensor registered on first reading.");
            registry.machines.insert(machine.clone(), Some(stored));
        }
        Ok(spec)
    }
}

/// Machines looked up once per batch.
struct Registry {
    machines: HashMap<MachineId, Option<Machine>>,
}

impl Registry {
    async fn machine(
        &mut self,
        store: &dyn MachineStore,
        id: &MachineId,
    ) -> Result<Option<Machine>, StoreError> {
        if let Some(found) = self.machines.get(id) {
            return Ok(found.clone());
        }
        let found = store.machine(id).await?;
        self.machines.insert(id.clone(), found.clone());
        Ok(found)
    }
}

fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

fn require(caller: &Principal, permission: Permission) -> Result<(), Error> {
    if caller.can(permission) {
        Ok(())
    } else {
        Err(Error::PermissionDenied(permission))
    }
}
