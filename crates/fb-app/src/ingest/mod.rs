//! The ingest pipeline (A3): validate → de-duplicate → store → publish.
//!
//! Adapters (HTTP today, MQTT next) parse their formats into [`Item`]s and hand whole batches
//! here. Every item ends up either stored (or counted as a duplicate of a stored reading) or in
//! the dead-letter store with its raw bytes and the reason; the answer is given only after both
//! have committed, so nothing accepted is lost and nothing rejected disappears. A bounded number
//! of batches run at once: beyond it callers get `ingest_overloaded` and should retry.
//!
//! A caller limited to some sites ([`crate::scope`]) writes only to machines of those sites.
//! A reading of any other machine is refused as `unknown_machine`, word for word as for a
//! machine that does not exist: a gateway key of one site must not be able to probe, reading
//! by reading, which machine ids another site has. An admin diagnosing such a letter sees the
//! machine in the registry and the key's sites in the key list; the audit log names the key.
//! Dead letters may hold readings of any site, or of no machine at all, so only callers with
//! every site list or replay them.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use rustc_hash::FxHashMap;

use time::OffsetDateTime;
use tokio::sync::{Semaphore, broadcast};
use uuid::Uuid;

use fb_core::Clock;
use fb_core::error::{Code, Coded};
use fb_core::identity::{Permission, Principal, SiteScope};
use fb_core::plant::{
    IngestLimits, Location, Machine, MachineId, MachineStatus, ReadingBatch, Rejection, SensorKey,
    SensorKind, SensorSpec, SeriesIdx, TimeWindow, check_reading, to_micros,
};
use fb_core::ports::{
    DeadLetter, DeadLetterFilter, DeadLetterStore, MachineStore, ReadingStore, StoreError,
};

use crate::scope::{OutOfScope, require_all_sites};

mod raw;

/// The site of machines registered on their first reading.
pub const AUTO_REGISTER_SITE: &str = "unassigned";

pub use raw::{RawBytes, RawReading, RawTime, RawValue};

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

/// An item of a batch: parsed, or refused by the parser already. Both keep their raw bytes for
/// the dead-letter store.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Parsed { reading: RawReading, raw: RawBytes },
    Unparsed { rejection: Rejection, raw: RawBytes },
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
    /// Replaying a dead letter whose payload is refused as a whole. Not [`Error::Payload`]: the
    /// replay request itself is fine, the stored letter is what cannot be read (and never will
    /// be, unless a parser for its content type is registered).
    #[error("the dead letter cannot be replayed: its payload is refused ({code}): {0}", code = .0.code().as_str())]
    Unreplayable(Rejection),
    #[error(transparent)]
    OutOfScope(#[from] OutOfScope),
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
            Error::Unreplayable(_) => Code::dead_letter_unreadable,
            Error::OutOfScope(e) => e.code(),
            Error::Store(StoreError::Unavailable(_)) => Code::storage_unavailable,
            Error::Store(_) => Code::internal,
        }
    }

    fn field_errors(&self) -> &[fb_core::error::FieldError] {
        match self {
            Error::OutOfScope(e) => e.field_errors(),
            _ => &[],
        }
    }
}

/// Reads one payload format into items. Adapters provide one per content type they receive, so
/// that a dead letter can be replayed whichever door it came in by.
pub trait PayloadParser: Send + Sync {
    /// The items of `payload`, which arrived from `source` (`http`, `mqtt:<topic>`, …).
    fn parse(&self, source: &str, payload: Bytes) -> Result<Vec<Item>, Rejection>;
}

/// A reading of a known sensor refused as outside its physical range.
#[derive(Debug, Clone, PartialEq)]
pub struct Refused {
    pub machine: MachineId,
    pub sensor: SensorKey,
    pub ts_micros: i64,
    pub value: f64,
}

pub struct Service {
    machines: Arc<dyn MachineStore>,
    readings: Arc<dyn ReadingStore>,
    dead_letters: Arc<dyn DeadLetterStore>,
    clock: Arc<dyn Clock>,
    options: Options,
    in_flight: Semaphore,
    published: broadcast::Sender<Arc<ReadingBatch>>,
    refused: broadcast::Sender<Arc<Vec<Refused>>>,
    /// Media type (lowercase, without parameters) → parser, for replays.
    parsers: std::sync::RwLock<HashMap<String, Arc<dyn PayloadParser>>>,
}

/// The readings of one part of a batch: which samples of the shared batch it contributed.
struct PartState {
    report: Report,
    samples: std::ops::Range<usize>,
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
        let (refused, _) = broadcast::channel(64);
        Self {
            in_flight: Semaphore::new(options.max_in_flight.max(1)),
            machines,
            readings,
            dead_letters,
            clock,
            options,
            published,
            refused,
            parsers: Default::default(),
        }
    }

    /// Makes dead letters of this media type replayable.
    pub fn register_parser(&self, media_type: &str, parser: Arc<dyn PayloadParser>) {
        self.parsers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(media_type.to_ascii_lowercase(), parser);
    }

    /// Feeds a dead letter through ingest again, with the parser of its content type. When
    /// nothing in it is refused the letter is marked replayed; new refusals are new letters.
    pub async fn replay(&self, caller: &Principal, id: Uuid) -> Result<Report, Error> {
        let letter = self.dead_letter(caller, id).await?;
        let media = media_type(&letter.content_type);
        let parser = self
            .parsers
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&media)
            .cloned()
            .ok_or_else(|| {
                Error::Unreplayable(Rejection::UnsupportedContentType(short(
                    &letter.content_type,
                )))
            })?;
        let items = parser
            .parse(&letter.source, Bytes::from(letter.payload))
            .map_err(Error::Unreplayable)?;
        let origin = Origin {
            source: format!("replay:{id}"),
            content_type: letter.content_type,
        };
        let report = self.ingest(caller, &origin, items).await?;
        if report.rejected == 0 {
            self.mark_replayed(caller, id).await?;
        }
        Ok(report)
    }

    /// Readings as they are stored, batch by batch, for in-process consumers (detection). Each
    /// reading is handed over once: duplicates of stored readings are left out. A consumer that
    /// falls behind by more than 64 batches misses the oldest ones.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<ReadingBatch>> {
        self.published.subscribe()
    }

    /// Readings refused as outside their sensor's physical range, for detection (a sensor
    /// fault). They are dead letters too.
    pub fn subscribe_refused(&self) -> broadcast::Receiver<Arc<Vec<Refused>>> {
        self.refused.subscribe()
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
        let mut reports = self
            .ingest_parts(caller, vec![(origin.clone(), items)])
            .await?;
        Ok(reports.pop().unwrap_or_default())
    }

    /// Like [`ingest`](Self::ingest) for several parts of different origins (MQTT messages of
    /// several topics) stored together in one append: one report per part, in order.
    pub async fn ingest_parts(
        &self,
        caller: &Principal,
        parts: Vec<(Origin, Vec<Item>)>,
    ) -> Result<Vec<Report>, Error> {
        require(caller, Permission::ReadingsWrite)?;
        let _permit = self
            .in_flight
            .try_acquire()
            .map_err(|_| Error::Overloaded)?;
        let total: usize = parts.iter().map(|(_, items)| items.len()).sum();
        if total > self.options.max_items {
            return Err(Error::Payload(Rejection::PayloadTooLarge {
                limit: self.options.max_items,
            }));
        }
        let now = self.clock.now();
        let window = self.options.limits.window(now);
        let mut registry = Registry::new(&caller.sites);
        let mut batch = ReadingBatch::with_capacity(total);
        let mut letters = Vec::new();
        let mut refused = Vec::new();
        let mut states = Vec::with_capacity(parts.len());

        for (origin, items) in &parts {
            let first_sample = batch.len();
            let mut report = Report::default();
            for (index, item) in items.iter().enumerate() {
                let (reading, raw) = match item {
                    Item::Parsed { reading, raw } => (reading, raw),
                    Item::Unparsed { rejection, raw } => {
                        self.reject(
                            origin,
                            index,
                            raw,
                            rejection.clone(),
                            now,
                            &mut letters,
                            &mut report,
                        );
                        continue;
                    }
                };
                match self
                    .validate(caller, reading, now, &window, &mut registry, &mut batch)
                    .await?
                {
                    Ok((series, ts, value)) => batch.push(series, ts, value),
                    Err(rejection) => {
                        if let Rejection::OutOfRange { value, .. } = rejection {
                            refused.push(Refused {
                                machine: MachineId(reading.machine.trim().to_owned()),
                                sensor: SensorKey(reading.sensor.trim().to_owned()),
                                ts_micros: match reading.ts {
                                    RawTime::Micros(m) => m,
                                    _ => to_micros(now),
                                },
                                value,
                            });
                        }
                        self.reject(
                            origin,
                            index,
                            raw,
                            rejection,
                            now,
                            &mut letters,
                            &mut report,
                        );
                    }
                }
            }
            states.push(PartState {
                report,
                samples: first_sample..batch.len(),
            });
        }

        let outcome = self.readings.append_readings(&batch).await?;
        self.dead_letters.insert_dead_letters(&letters).await?;
        for state in &mut states {
            let range = &state.samples;
            let duplicates = outcome
                .duplicate_samples
                .iter()
                .filter(|&&p| range.contains(&(p as usize)))
                .count();
            state.report.duplicates = duplicates;
            state.report.accepted = range.len() - duplicates;
        }
        batch.remove_samples(&outcome.duplicate_samples);
        if !batch.is_empty() {
            // No subscriber is fine: detection may not be running.
            let _ = self.published.send(Arc::new(batch));
        }
        if !refused.is_empty() {
            let _ = self.refused.send(Arc::new(refused));
        }
        let rejected = letters.len();
        if rejected > 0 {
            tracing::info!(
                rejected,
                accepted = outcome.inserted,
                "Readings refused; kept as dead letters."
            );
        }
        metrics::counter!("fb_ingest_readings_total", "outcome" => "accepted")
            .increment(outcome.inserted as u64);
        metrics::counter!("fb_ingest_readings_total", "outcome" => "duplicate")
            .increment(outcome.duplicates as u64);
        metrics::counter!("fb_ingest_readings_total", "outcome" => "rejected")
            .increment(rejected as u64);
        Ok(states.into_iter().map(|s| s.report).collect())
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
        require_all_sites(caller, "dead letters")?;
        Ok(self.dead_letters.list_dead_letters(filter).await?)
    }

    pub async fn dead_letter(&self, caller: &Principal, id: Uuid) -> Result<DeadLetter, Error> {
        require(caller, Permission::ReadingsWrite)?;
        require_all_sites(caller, "dead letters")?;
        self.dead_letters
            .dead_letter(id)
            .await?
            .ok_or(Error::DeadLetterNotFound)
    }

    /// Records that a dead letter was replayed with nothing refused.
    pub async fn mark_replayed(&self, caller: &Principal, id: Uuid) -> Result<(), Error> {
        require(caller, Permission::ReadingsWrite)?;
        require_all_sites(caller, "dead letters")?;
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
        raw: &RawBytes,
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
            payload: raw.to_vec(),
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

    /// The rules, in order; `Ok(Err(_))` is a refused reading, `Err(_)` a store failure. A valid
    /// reading comes back as (series of the batch, Unix microseconds, value). Machines are looked
    /// up once per batch and ids are compared as the payload's `&str`, so a reading of a known
    /// series costs no allocation.
    async fn validate(
        &self,
        caller: &Principal,
        raw: &RawReading,
        now: OffsetDateTime,
        window: &TimeWindow,
        registry: &mut Registry<'_>,
        batch: &mut ReadingBatch,
    ) -> Result<Result<(SeriesIdx, i64, f64), Rejection>, Error> {
        let machine_text = raw.machine.trim();
        let sensor_text = raw.sensor.trim();
        // A machine in the registry has a valid id; only unknown ones need the id rules.
        if !registry.knows(machine_text) && !MachineId::is_valid(machine_text) {
            return Ok(Err(Rejection::InvalidId {
                field: "machine",
                value: short(&raw.machine),
            }));
        }
        if !SensorKey::is_valid(sensor_text) {
            return Ok(Err(Rejection::InvalidId {
                field: "sensor",
                value: short(&raw.sensor),
            }));
        }
        let value = match &raw.value {
            RawValue::Number(v) => *v,
            RawValue::Text(text) => match text.trim().parse::<f64>() {
                Ok(v) => v,
                Err(_) => return Ok(Err(Rejection::NonNumericValue(short(text)))),
            },
            RawValue::Missing => return Ok(Err(Rejection::NonNumericValue("(missing)".into()))),
        };
        let ts = match &raw.ts {
            RawTime::Micros(micros) => *micros,
            RawTime::Arrival => to_micros(now),
            RawTime::Invalid(text) => return Ok(Err(Rejection::InvalidTimestamp(text.clone()))),
        };
        // A machine outside the caller's sites loads as unknown, and only a caller who
        // reaches the site of new machines may register one.
        let known = registry.load(&*self.machines, machine_text).await?
            || (self.options.auto_register
                && caller.can_access_site(AUTO_REGISTER_SITE)
                && self.register_machine(machine_text, registry).await?);
        if !known {
            return Ok(Err(Rejection::UnknownMachine(machine_text.to_owned())));
        }
        let active = registry.get(machine_text).is_some_and(|m| m.machine.active);
        if !active {
            return Ok(Err(Rejection::InactiveMachine(machine_text.to_owned())));
        }
        let position = registry.get(machine_text).and_then(|m| {
            m.machine
                .sensors
                .iter()
                .position(|s| s.key.0 == sensor_text)
        });
        let position = match position {
            Some(position) => position,
            None if self.options.auto_register => {
                self.register_sensor(machine_text, sensor_text, raw.unit.as_deref(), registry)
                    .await?
            }
            None => {
                return Ok(Err(Rejection::UnknownSensor {
                    machine: machine_text.to_owned(),
                    sensor: sensor_text.to_owned(),
                }));
            }
        };
        let Some(slot) = registry.get_mut(machine_text) else {
            return Err(Error::Store(StoreError::Corrupt("machine vanished".into())));
        };
        let Some(spec) = slot.machine.sensors.get(position) else {
            return Err(Error::Store(StoreError::Corrupt("sensor vanished".into())));
        };
        if let Err(rejection) = check_reading(spec, value, raw.unit.as_deref(), ts, window) {
            return Ok(Err(rejection));
        }
        if slot.series.len() <= position {
            slot.series.resize(position + 1, None);
        }
        let series = match slot.series[position] {
            Some(series) => series,
            None => {
                let series = batch.add_series(slot.machine.id.clone(), spec.key.clone());
                slot.series[position] = Some(series);
                series
            }
        };
        Ok(Ok((series, ts, value)))
    }

    /// Registers an unknown machine in [`AUTO_REGISTER_SITE`]; `false` when the id turns out to
    /// be taken by a machine outside the caller's sites (it existed, or appeared meanwhile).
    async fn register_machine(&self, id: &str, registry: &mut Registry<'_>) -> Result<bool, Error> {
        let Some(id) = MachineId::parse(id) else {
            return Err(Error::Store(StoreError::Corrupt(
                "invalid machine id".into(),
            )));
        };
        let now = self.clock.now();
        let machine = Machine {
            id: id.clone(),
            name: id.0.clone(),
            machine_type: "unclassified".into(),
            machine_class: None,
            location: Location {
                site: AUTO_REGISTER_SITE.into(),
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
        registry.machines.remove(id.0.as_str());
        Ok(registry.load(&*self.machines, &id.0).await?)
    }

    /// Adds the sensor to the stored machine and the registry; returns its position.
    async fn register_sensor(
        &self,
        machine: &str,
        key: &str,
        unit: Option<&str>,
        registry: &mut Registry<'_>,
    ) -> Result<usize, Error> {
        let (Some(machine_id), Some(key)) = (MachineId::parse(machine), SensorKey::parse(key))
        else {
            return Err(Error::Store(StoreError::Corrupt("invalid id".into())));
        };
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
        let Some(mut stored) = self.machines.machine(&machine_id).await? else {
            return Err(Error::Store(StoreError::Corrupt("machine vanished".into())));
        };
        if stored.sensor(&key.0).is_none() {
            stored.sensors.push(spec);
            stored.updated_at = self.clock.now();
            self.machines.update_machine(&stored).await?;
            tracing::info!(machine_id = %machine_id, sensor = %key, "Sensor registered on first reading.");
        }
        let position = stored
            .sensors
            .iter()
            .position(|s| s.key == key)
            .unwrap_or(stored.sensors.len());
        // Keep the series already named in this batch: positions of existing sensors stay.
        let series = registry
            .machines
            .get(machine)
            .and_then(Option::as_ref)
            .map(|slot| slot.series.clone())
            .unwrap_or_default();
        registry.machines.insert(
            machine_id,
            Some(Slot {
                machine: Arc::new(stored),
                series,
            }),
        );
        Ok(position)
    }
}

/// A machine as this batch sees it, and the batch series of its sensors (by position).
struct Slot {
    machine: Arc<Machine>,
    series: Vec<Option<SeriesIdx>>,
}

/// Machines looked up once per batch; `None` remembers an unknown id, or one outside the
/// caller's sites (checked once per machine, not per reading).
struct Registry<'a> {
    sites: &'a SiteScope,
    machines: FxHashMap<MachineId, Option<Slot>>,
}

impl<'a> Registry<'a> {
    fn new(sites: &'a SiteScope) -> Self {
        Self {
            sites,
            machines: FxHashMap::default(),
        }
    }

    /// Known to exist (looked up already and found).
    fn knows(&self, id: &str) -> bool {
        matches!(self.machines.get(id), Some(Some(_)))
    }

    /// Looks the machine up in the store on first sight; `true` if it exists.
    async fn load(&mut self, store: &dyn MachineStore, id: &str) -> Result<bool, StoreError> {
        if let Some(slot) = self.machines.get(id) {
            return Ok(slot.is_some());
        }
        let found = match MachineId::parse(id) {
            Some(machine_id) => store
                .machine(&machine_id)
                .await?
                .filter(|m| self.sites.contains(&m.location.site)),
            None => None,
        };
        let exists = found.is_some();
        self.machines.insert(
            MachineId(id.to_owned()),
            found.map(|machine| Slot {
                machine: Arc::new(machine),
                series: Vec::new(),
            }),
        );
        Ok(exists)
    }

    fn get(&self, id: &str) -> Option<&Slot> {
        self.machines.get(id).and_then(Option::as_ref)
    }

    fn get_mut(&mut self, id: &str) -> Option<&mut Slot> {
        self.machines.get_mut(id).and_then(Option::as_mut)
    }
}

/// `application/json; charset=utf-8` → `application/json`.
pub fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

pub(crate) fn short(s: &str) -> String {
    s.chars().take(64).collect()
}

fn require(caller: &Principal, permission: Permission) -> Result<(), Error> {
    if caller.can(permission) {
        Ok(())
    } else {
        Err(Error::PermissionDenied(permission))
    }
}
