//! Energy (C3): consumption, cost, CO2, baseline and reduction per machine and site, and the
//! recommendations (standby, load reduction, off-peak) with their expected savings.
//!
//! Who may do what: reading energy and recommendations needs `plant.read`; accepting or
//! dismissing a recommendation needs `energy.manage`. A recommendation belongs to the site its
//! machine was in when it was proposed; a caller sees and decides only those of its sites, and
//! any other answers `recommendation_not_found`.
//!
//! Figures come from the readings store's rollups of each machine's `power` sensor (kW): a
//! bucket's energy is its mean × its length (see [`fb_core::energy`]), so minute buckets leave
//! gaps out to the minute and hour buckets to the hour.
//!
//! The generator ([`Service::generate`], run every `energy.recommendations.every_secs` by the
//! server) expires proposed recommendations past their time, runs the rules over the last
//! `lookback` minutes, stores what is new (at most one proposed recommendation per machine and
//! action, in every store), records each in the audit log and publishes an
//! `energy.recommended` event on the bus.
//!
//! Accepting a recommendation records its machine command as `pending` and routes it through
//! the [`CommandRoute`] the server wires: the machine-command confidence gate
//! ([`gated::GatedCommands`], issue #7 E5), which sends it at once when the gate lets it pass
//! (the command is then `sent`) or holds it in the approval queue, where an approval sends it.
//! With no route wired the command stays pending.
//!
//! The energy agent ([`Service::act_on`], run on `energy.recommended` events by the server's
//! agent runner) accepts recommendations itself, with the confidence of
//! [`fb_core::energy::confidence_of`], so the gate decides alone what runs without a person.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use fb_core::Clock;
use fb_core::audit::AuditEntry;
use fb_core::energy::{
    CommandState, EfficiencySample, EmissionFactors, FLOW_SENSOR, IdleSample, MachineCommand,
    POWER_SENSOR, PeakSample, PowerBucket, Proposal, RecommendRules, Recommendation,
    RecommendationId, RecommendationStatus, Tariff, baseline_kwh, baseline_periods,
    integrate_buckets, load_reductions, reduction_pct, shift_off_peak, standby,
};
use fb_core::error::{Code, Coded, FieldError};
use fb_core::events::{EnergyRecommendationEvent, Envelope, Event};
use fb_core::identity::{Permission, Principal, SiteScope};
use fb_core::plant::{Machine, MachineStatus, SensorKey};
use fb_core::ports::{
    BucketStats, EventBus, MachineStore, RangeQuery, ReadingStore, RecommendationFilter,
    RecommendationStore, Resolution, StoreError,
};

use crate::audit;

pub mod gated;

/// The `source` of the events and audit records of the generator.
pub const SOURCE: &str = "agent:energy";
/// Longest range of an energy report.
pub const REPORT_RANGE_MAX: Duration = Duration::days(366);
/// Most buckets one machine's report reads (per period: current and each baseline day).
pub const REPORT_BUCKETS_MAX: usize = 100_000;
/// The machine's latest recommendations the generator looks through for a recent decision.
const DECIDED_LOOKBACK: usize = 20;
/// Most recommendations one list returns.
pub const LIST_MAX: usize = 1000;

/// The energy settings the service runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub factors: EmissionFactors,
    pub tariff: Tariff,
    pub rules: RecommendRules,
    pub baseline_days: u32,
    /// The minutes of readings the rules look at.
    pub lookback: Duration,
    /// A proposed recommendation expires this long after it was made.
    pub expire_after: Duration,
}

/// The transport of machine commands (the MQTT command publisher): only the confidence gate
/// hands commands to it.
#[async_trait]
pub trait CommandSink: Send + Sync {
    /// Takes the command; `Ok` means it is on its way to the machine.
    async fn submit(&self, command: &MachineCommand) -> Result<(), CommandError>;
}

/// Where an accepted recommendation's command goes: through the machine-command gate.
#[async_trait]
pub trait CommandRoute: Send + Sync {
    /// Routes the command of a recommendation accepted with `confidence` (in [0, 1]).
    async fn route(
        &self,
        command: &MachineCommand,
        confidence: f64,
        accepted_by: &str,
    ) -> Result<Routed, CommandError>;
}

/// What the gate did with a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Routed {
    /// Passed the gate and taken by the transport.
    Sent,
    /// Waiting for a person in the approval queue.
    Held(fb_core::gates::ApprovalId),
}

#[derive(Debug, thiserror::Error)]
#[error("the command could not be sent: {0}")]
pub struct CommandError(pub String);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("this role lacks the permission {0}")]
    PermissionDenied(Permission),
    #[error("invalid field '{}': {}", .0.field, .0.reason)]
    Validation(FieldError),
    #[error("no energy recommendation has this id")]
    NotFound,
    #[error("the recommendation is {0} already; it is decided once")]
    NotOpen(&'static str),
    #[error("the command was not taken: {0}")]
    CommandNotTaken(String),
    #[error(transparent)]
    OutOfScope(#[from] crate::scope::OutOfScope),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for Error {
    fn code(&self) -> Code {
        match self {
            Error::PermissionDenied(_) => Code::permission_denied,
            Error::Validation(_) => Code::invalid_field,
            Error::NotFound => Code::recommendation_not_found,
            Error::NotOpen(_) => Code::recommendation_not_open,
            Error::CommandNotTaken(_) => Code::internal,
            Error::OutOfScope(e) => e.code(),
            Error::Store(StoreError::Unavailable(_)) => Code::storage_unavailable,
            Error::Store(_) => Code::internal,
        }
    }

    fn field_errors(&self) -> &[FieldError] {
        match self {
            Error::Validation(f) => std::slice::from_ref(f),
            Error::OutOfScope(e) => e.field_errors(),
            _ => &[],
        }
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> Error {
    Error::Validation(FieldError::new(field, reason))
}

/// What a report covers.
#[derive(Debug, Clone, PartialEq)]
pub struct ReportQuery {
    pub site: Option<String>,
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    pub bucket: Resolution,
}

/// Energy of one machine or site over a period.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Figures {
    pub kwh: f64,
    pub cost: f64,
    pub co2_kg: f64,
    /// `None` when no baseline day has data.
    pub baseline_kwh: Option<f64>,
    /// `None` without a positive baseline.
    pub reduction_pct: Option<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MachineEnergy {
    pub machine: String,
    pub site: String,
    pub figures: Figures,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SiteEnergy {
    pub site: String,
    pub emission_factor: f64,
    pub figures: Figures,
    /// The site's energy per bucket (machines summed), oldest first: (start, kWh).
    pub series: Vec<(OffsetDateTime, f64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    pub bucket: Resolution,
    pub sites: Vec<SiteEnergy>,
    pub machines: Vec<MachineEnergy>,
}

pub struct Service {
    machines: Arc<dyn MachineStore>,
    readings: Arc<dyn ReadingStore>,
    store: Arc<dyn RecommendationStore>,
    audit: Arc<audit::Service>,
    clock: Arc<dyn Clock>,
    config: Config,
    bus: OnceLock<Arc<dyn EventBus>>,
    commands: OnceLock<Arc<dyn CommandRoute>>,
}

fn power_buckets(stats: &[BucketStats]) -> Vec<PowerBucket> {
    stats
        .iter()
        .map(|b| PowerBucket {
            start: b.start,
            count: b.count,
            sum: b.sum,
        })
        .collect()
}

fn has_power(m: &Machine) -> bool {
    m.active && m.sensors.iter().any(|s| s.key.0 == POWER_SENSOR)
}

impl Service {
    pub fn new(
        machines: Arc<dyn MachineStore>,
        readings: Arc<dyn ReadingStore>,
        store: Arc<dyn RecommendationStore>,
        audit: Arc<audit::Service>,
        clock: Arc<dyn Clock>,
        config: Config,
    ) -> Self {
        Self {
            machines,
            readings,
            store,
            audit,
            clock,
            config,
            bus: OnceLock::new(),
            commands: OnceLock::new(),
        }
    }

    /// Publishes an `energy.recommended` event for every new recommendation from now on (the
    /// server wires its bus once, after the API state exists); `false` if one was set already.
    pub fn set_bus(&self, bus: Arc<dyn EventBus>) -> bool {
        self.bus.set(bus).is_ok()
    }

    /// Routes accepted recommendations' commands through `route`, the machine-command gate
    /// (wired once); `false` if one was set already.
    pub fn set_commands(&self, route: Arc<dyn CommandRoute>) -> bool {
        self.commands.set(route).is_ok()
    }

    /// The recommendations' store (the command gate marks commands sent in it).
    pub fn store(&self) -> Arc<dyn RecommendationStore> {
        self.store.clone()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    async fn buckets(
        &self,
        machine: &Machine,
        sensor: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
        resolution: Resolution,
    ) -> Result<Vec<BucketStats>, StoreError> {
        self.readings
            .rollup_readings(
                &RangeQuery {
                    machine: machine.id.clone(),
                    sensor: Some(SensorKey(sensor.to_owned())),
                    from,
                    to,
                    limit: REPORT_BUCKETS_MAX,
                },
                resolution,
            )
            .await
    }

    /// Energy, cost, CO2, baseline and reduction per machine and site of the caller's sites
    /// (or the one site asked for).
    pub async fn report(&self, caller: &Principal, q: ReportQuery) -> Result<Report, Error> {
        require(caller, Permission::PlantRead)?;
        if q.to <= q.from {
            return Err(invalid("to", "must be after from"));
        }
        if q.to - q.from > REPORT_RANGE_MAX {
            return Err(invalid("to", "the range may span at most 366 days"));
        }
        let scope = crate::scope::sites_asked(caller, "site", q.site.as_deref())?;
        let length = Duration::seconds(q.bucket.seconds());
        let mut machines: Vec<Machine> = self
            .machines
            .list_machines(&scope)
            .await?
            .into_iter()
            .filter(has_power)
            .collect();
        machines.sort_by(|a, b| a.id.cmp(&b.id));
        let mut out = Report {
            from: q.from,
            to: q.to,
            bucket: q.bucket,
            sites: Vec::new(),
            machines: Vec::new(),
        };
        for m in &machines {
            let site = &m.location.site;
            let current = power_buckets(
                &self
                    .buckets(m, POWER_SENSOR, q.from, q.to, q.bucket)
                    .await?,
            );
            let kwh = integrate_buckets(&current, length).kwh;
            let per_bucket: Vec<(OffsetDateTime, f64)> = current
                .iter()
                .filter_map(|b| {
                    b.mean_kw()
                        .map(|kw| (b.start, kw * length.as_seconds_f64() / 3600.0))
                })
                .collect();
            let mut baseline_days = Vec::new();
            for (from, to) in baseline_periods(q.from, q.to, self.config.baseline_days) {
                let past = power_buckets(&self.buckets(m, POWER_SENSOR, from, to, q.bucket).await?);
                baseline_days
                    .push((!past.is_empty()).then(|| integrate_buckets(&past, length).kwh));
            }
            let baseline = baseline_kwh(&baseline_days);
            let figures = Figures {
                kwh,
                cost: self.config.tariff.cost(per_bucket.iter().copied()),
                co2_kg: self.config.factors.co2_kg(site, kwh),
                baseline_kwh: baseline,
                reduction_pct: reduction_pct(baseline, kwh),
            };
            let index = match out.sites.iter().position(|s| s.site == *site) {
                Some(i) => i,
                None => {
                    out.sites.push(SiteEnergy {
                        site: site.clone(),
                        emission_factor: self.config.factors.factor(site),
                        figures: Figures::default(),
                        series: Vec::new(),
                    });
                    out.sites.len() - 1
                }
            };
            let entry = &mut out.sites[index];
            let s = &mut entry.figures;
            s.kwh += figures.kwh;
            s.cost += figures.cost;
            s.co2_kg += figures.co2_kg;
            if let Some(b) = figures.baseline_kwh {
                s.baseline_kwh = Some(s.baseline_kwh.unwrap_or(0.0) + b);
            }
            for (start, e) in per_bucket {
                match entry.series.iter_mut().find(|(t, _)| *t == start) {
                    Some((_, sum)) => *sum += e,
                    None => entry.series.push((start, e)),
                }
            }
            out.machines.push(MachineEnergy {
                machine: m.id.0.clone(),
                site: site.clone(),
                figures,
            });
        }
        for s in &mut out.sites {
            s.figures.reduction_pct = reduction_pct(s.figures.baseline_kwh, s.figures.kwh);
            s.series.sort_by_key(|(t, _)| *t);
        }
        out.sites.sort_by(|a, b| a.site.cmp(&b.site));
        Ok(out)
    }

    pub async fn list(
        &self,
        caller: &Principal,
        status: Option<RecommendationStatus>,
        site: Option<String>,
        limit: usize,
    ) -> Result<Vec<Recommendation>, Error> {
        require(caller, Permission::PlantRead)?;
        let sites = crate::scope::sites_asked(caller, "site", site.as_deref())?;
        let filter = RecommendationFilter {
            status,
            ..RecommendationFilter::new(sites, limit.clamp(1, LIST_MAX))
        };
        Ok(self.store.list_recommendations(&filter).await?)
    }

    pub async fn get(
        &self,
        caller: &Principal,
        id: RecommendationId,
    ) -> Result<Recommendation, Error> {
        require(caller, Permission::PlantRead)?;
        match self.store.recommendation(id).await? {
            Some(r) if caller.can_access_site(&r.site) => Ok(r),
            _ => Err(Error::NotFound),
        }
    }

    /// Accepts a proposed recommendation: its command is recorded as pending and handed to the
    /// command sink (the gate's seam) when one is wired.
    pub async fn accept(
        &self,
        caller: &Principal,
        id: RecommendationId,
    ) -> Result<Recommendation, Error> {
        self.decide(caller, id, RecommendationStatus::Accepted)
            .await
    }

    pub async fn dismiss(
        &self,
        caller: &Principal,
        id: RecommendationId,
    ) -> Result<Recommendation, Error> {
        self.decide(caller, id, RecommendationStatus::Dismissed)
            .await
    }

    async fn decide(
        &self,
        caller: &Principal,
        id: RecommendationId,
        to: RecommendationStatus,
    ) -> Result<Recommendation, Error> {
        require(caller, Permission::EnergyManage)?;
        self.get(caller, id).await?;
        // A person who accepts a recommendation vouches for it: full confidence. The gate
        // still holds commands it does not let run without an approver.
        self.decide_as(&caller.describe(), id, to, 1.0).await
    }

    async fn decide_as(
        &self,
        actor: &str,
        id: RecommendationId,
        to: RecommendationStatus,
        confidence: f64,
    ) -> Result<Recommendation, Error> {
        let current = self
            .store
            .recommendation(id)
            .await?
            .ok_or(Error::NotFound)?;
        let now = self.clock.now();
        if current.status.is_open() && current.expires_at <= now {
            // Past its time but not yet swept by the generator: it is expired, not decidable.
            self.store.expire_recommendations(now).await?;
            return Err(Error::NotOpen(RecommendationStatus::Expired.as_str()));
        }
        let command = (to == RecommendationStatus::Accepted).then(Uuid::now_v7);
        let decided = self
            .store
            .decide_recommendation(id, to, actor, now, command)
            .await?;
        let stored = self
            .store
            .recommendation(id)
            .await?
            .ok_or(Error::NotFound)?;
        if !decided {
            return Err(Error::NotOpen(stored.status.as_str()));
        }
        Ok(self.route_command(&stored, confidence).await?.0)
    }

    /// Hands an accepted recommendation's pending command to the gate, when one is wired;
    /// the recommendation as it stands afterwards, and why the command was not taken if it
    /// was not (it stays pending: the acceptance stands either way).
    async fn route_command(
        &self,
        accepted: &Recommendation,
        confidence: f64,
    ) -> Result<(Recommendation, Option<CommandError>), Error> {
        let (Some(command), Some(route)) = (accepted.command_id, self.commands.get()) else {
            return Ok((accepted.clone(), None));
        };
        let mut refused = None;
        let issued_at = accepted.decided_at.unwrap_or_else(|| self.clock.now());
        let cmd = MachineCommand::of(accepted, command, issued_at);
        let by = accepted.decided_by.clone().unwrap_or_default();
        match route.route(&cmd, confidence, &by).await {
            Ok(Routed::Sent) => {
                self.store.mark_command_sent(accepted.id).await?;
            }
            Ok(Routed::Held(item)) => {
                tracing::info!(recommendation = %accepted.id.0, command = %command, approval = %item, "An accepted recommendation's command waits for approval.");
            }
            Err(e) => {
                tracing::warn!(recommendation = %accepted.id.0, command = %command, error = %e, "An accepted recommendation's command was not taken; it stays pending.");
                refused = Some(e);
            }
        }
        let now = self
            .store
            .recommendation(accepted.id)
            .await?
            .ok_or(Error::NotFound)?;
        Ok((now, refused))
    }

    /// The energy agent's turn on one recommendation (an `energy.recommended` event): a
    /// proposed one is accepted as [`SOURCE`] with the confidence of its kind, and its command
    /// goes to the gate. Safe to repeat: one the agent accepted earlier whose command is still
    /// pending (the node stopped between the acceptance and the gate) is routed again, with
    /// the same command id, which the gate answers as the first time; anything else — decided
    /// by a person, dismissed, expired, sent — is left alone. `None` when there was nothing to
    /// do; [`Error::CommandNotTaken`] when the gate or the transport did not take the command
    /// (it stays pending, and acting again routes it again).
    pub async fn act_on(&self, id: RecommendationId) -> Result<Option<Recommendation>, Error> {
        let Some(current) = self.store.recommendation(id).await? else {
            return Ok(None);
        };
        let confidence = fb_core::energy::confidence_of(current.action);
        match current.status {
            RecommendationStatus::Proposed => {
                match self
                    .decide_as(SOURCE, id, RecommendationStatus::Accepted, confidence)
                    .await
                {
                    Ok(r) if r.command_state == Some(CommandState::Pending) => {
                        // Accepted, but was its command taken? Route again to learn it: the
                        // gate answers a repeated command id as the first time.
                        self.act_on_pending(&r, confidence).await
                    }
                    Ok(r) => Ok(Some(r)),
                    // Someone decided it first, or it expired: theirs stands.
                    Err(Error::NotOpen(_)) => Ok(None),
                    Err(e) => Err(e),
                }
            }
            RecommendationStatus::Accepted
                if current.decided_by.as_deref() == Some(SOURCE)
                    && current.command_state == Some(CommandState::Pending) =>
            {
                self.act_on_pending(&current, confidence).await
            }
            _ => Ok(None),
        }
    }

    async fn act_on_pending(
        &self,
        accepted: &Recommendation,
        confidence: f64,
    ) -> Result<Option<Recommendation>, Error> {
        match self.route_command(accepted, confidence).await? {
            (_, Some(refused)) => Err(Error::CommandNotTaken(refused.0)),
            (now, None) => Ok(Some(now)),
        }
    }

    /// One round of the generator at the clock's time; returns the new recommendations.
    pub async fn generate(&self) -> Result<Vec<Recommendation>, StoreError> {
        let now = self.clock.now();
        let expired = self.store.expire_recommendations(now).await?;
        if expired > 0 {
            tracing::info!(expired, "Energy recommendations expired undecided.");
        }
        let from = now - self.config.lookback;
        let mut proposals: Vec<Proposal> = Vec::new();
        let mut efficiency = Vec::new();
        let machines: Vec<Machine> = self
            .machines
            .list_machines(&SiteScope::All)
            .await?
            .into_iter()
            .filter(has_power)
            .collect();
        let (c, t, f) = (&self.config, &self.config.tariff, &self.config.factors);
        for m in &machines {
            let power = self
                .buckets(m, POWER_SENSOR, from, now, Resolution::Minute)
                .await?;
            if power.is_empty() {
                continue;
            }
            let site = m.location.site.clone();
            let idle = IdleSample {
                machine: m.id.clone(),
                site: site.clone(),
                running: matches!(m.status, MachineStatus::Running | MachineStatus::Idle),
                minute_means_kw: recent_run(&power, now),
            };
            proposals.extend(standby(&idle, &c.rules, t, f, now));
            let mean_kw = mean(&power);
            proposals.extend(shift_off_peak(
                &PeakSample {
                    machine: m.id.clone(),
                    site: site.clone(),
                    machine_type: m.machine_type.clone(),
                    mean_kw,
                },
                &c.rules,
                t,
                now,
            ));
            if m.sensors.iter().any(|s| s.key.0 == FLOW_SENSOR) {
                let flow = self
                    .buckets(m, FLOW_SENSOR, from, now, Resolution::Minute)
                    .await?;
                if !flow.is_empty() {
                    efficiency.push(EfficiencySample {
                        machine: m.id.clone(),
                        site,
                        machine_type: m.machine_type.clone(),
                        mean_kw,
                        mean_flow: mean(&flow),
                    });
                }
            }
        }
        proposals.extend(load_reductions(&efficiency, &c.rules, t, f, now));
        let mut created = Vec::new();
        for p in proposals {
            if self
                .store
                .open_recommendation(&p.machine, p.action)
                .await?
                .is_some()
                || self.decided_lately(&p, now).await?
            {
                continue;
            }
            let r = Recommendation::proposed(
                RecommendationId(Uuid::now_v7()),
                p,
                now,
                now + c.expire_after,
            );
            match self.store.insert_recommendation(&r).await {
                Ok(()) => {}
                // Another node proposed it in between.
                Err(StoreError::Conflict {
                    constraint: "recommendation_open",
                }) => continue,
                Err(e) => return Err(e),
            }
            self.announce(&r).await;
            created.push(r);
        }
        Ok(created)
    }

    /// Whether the machine had a recommendation of the same action accepted or dismissed
    /// within the rules' horizon: a machine sent to standby still draws standby power and
    /// looks idle, and a person who dismissed a proposal should not see it again at once.
    async fn decided_lately(&self, p: &Proposal, now: OffsetDateTime) -> Result<bool, StoreError> {
        let since = now - self.config.rules.horizon;
        let recent = self
            .store
            .list_recommendations(&RecommendationFilter {
                machine: Some(p.machine.clone()),
                ..RecommendationFilter::new(SiteScope::All, DECIDED_LOOKBACK)
            })
            .await?;
        Ok(recent.iter().any(|r| {
            r.action == p.action
                && matches!(
                    r.status,
                    RecommendationStatus::Accepted | RecommendationStatus::Dismissed
                )
                && r.decided_at.is_some_and(|at| at >= since)
        }))
    }

    /// Records a new recommendation in the audit log and publishes it on the bus.
    async fn announce(&self, r: &Recommendation) {
        self.audit
            .record(AuditEntry {
                at: r.created_at,
                actor: crate::maintenance::auto::SYSTEM.to_owned(),
                action: "energy.recommend".to_owned(),
                target: Some(format!("recommendation:{}", r.id.0)),
                outcome: fb_core::audit::Outcome::Success,
                op_id: Uuid::now_v7().to_string(),
                source: SOURCE.to_owned(),
                details: [
                    ("machine".to_owned(), r.machine.0.clone()),
                    ("site".to_owned(), r.site.clone()),
                    ("action".to_owned(), r.action.as_str().to_owned()),
                    (
                        "expected_kwh_saved".to_owned(),
                        format!("{:.3}", r.expected_kwh_saved),
                    ),
                ]
                .into(),
            })
            .await;
        let Some(bus) = self.bus.get() else { return };
        let event = Event::EnergyRecommendation(EnergyRecommendationEvent {
            recommendation: r.id.0,
            machine: r.machine.clone(),
            action: r.action,
            expected_kwh_saved: r.expected_kwh_saved,
            expected_co2_kg_saved: r.expected_co2_kg_saved,
            reason: r.reason.clone(),
        });
        let envelope = Envelope::new(SOURCE, Some(&r.site), r.created_at, event);
        let outcome = match bus.publish(&envelope).await {
            Ok(_) => "published",
            Err(e) => {
                tracing::warn!(recommendation = %r.id.0, error = %e, "Could not publish an energy recommendation on the bus; the store keeps it.");
                "failed"
            }
        };
        metrics::counter!(
            "fb_bus_published_total",
            "event" => "energy.recommended",
            "outcome" => outcome,
            "backend" => bus.backend()
        )
        .increment(1);
    }
}

/// The mean of the buckets' readings.
fn mean(buckets: &[BucketStats]) -> f64 {
    let (sum, count) = buckets
        .iter()
        .fold((0.0, 0u64), |(s, c), b| (s + b.sum, c + b.count));
    if count == 0 { 0.0 } else { sum / count as f64 }
}

/// The minute means of the newest run of consecutive minutes, oldest first, if that run
/// reaches the last two minutes before `now` (the current minute may still be filling);
/// otherwise nothing: a machine is never taken for idle across a gap or on old data.
fn recent_run(buckets: &[BucketStats], now: OffsetDateTime) -> Vec<f64> {
    let mut sorted: Vec<&BucketStats> = buckets.iter().filter(|b| b.count > 0).collect();
    sorted.sort_by_key(|b| b.start);
    let Some(last) = sorted.last() else {
        return Vec::new();
    };
    if now - last.start > Duration::minutes(2) {
        return Vec::new();
    }
    let mut run = vec![*last];
    for b in sorted.iter().rev().skip(1) {
        let newest = run.last().map_or(b.start, |r| r.start);
        if newest - b.start != Duration::minutes(1) {
            break;
        }
        run.push(b);
    }
    run.iter().rev().map(|b| b.sum / b.count as f64).collect()
}

fn require(caller: &Principal, permission: Permission) -> Result<(), Error> {
    if caller.can(permission) {
        Ok(())
    } else {
        Err(Error::PermissionDenied(permission))
    }
}

#[cfg(test)]
mod tests;
