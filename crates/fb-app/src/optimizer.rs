//! The plant optimizer (issue #7, C4): KPIs per machine, line and site, and the coordination
//! agent that turns what happens in the plant into directives for the other agents.
//!
//! **KPIs** ([`Service::kpis`], `plant.read`, within the caller's sites): OEE with its
//! availability, performance and quality (see [`fb_core::kpi`] for the definitions and where
//! each input comes from), downtime, health, energy, CO2 and their savings (from
//! [`crate::energy::Service::report`]), MTBF and MTTR (from the machines' tickets, as
//! maintenance's reliability computes them), and procurement savings per site through the
//! [`SavingsLedger`] port (unknown until procurement's ledger is wired with
//! [`Service::set_ledger`]). Every figure that cannot be computed says why instead.
//!
//! **Coordination** ([`Service::handle`], see [`coordination`]): the agent reads domain events
//! and answers some with directives, each recorded in the decision log, applied where it acts
//! in this process (increased monitoring), and published on the bus as `plant.coordinated`.

mod coordination;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use time::{Duration, OffsetDateTime};

use fb_core::Clock;
use fb_core::error::{Code, Coded, FieldError};
use fb_core::identity::{Permission, Principal, SiteScope};
use fb_core::kpi::{
    Figure, OUTPUT_SENSOR, Oee, OeeTotals, RateBucket, ReliabilityTotals, SCRAP_SENSOR,
    energy_savings, mean_of, observed_window, oee, oee_from_run_time, production,
};
use fb_core::maintenance::reliability::{Reliability, reliability};
use fb_core::plant::{Machine, SensorKey};
use fb_core::ports::{
    EventBus, MachineStore, RangeQuery, ReadingStore, Resolution, SavingsLedger, StoreError,
    TicketStore,
};

use crate::detection::Sensitivity;
use crate::{energy, gates};

pub use coordination::Directive;

/// The agent's name in the decision log.
pub const AGENT: &str = "optimizer";
/// The `source` of its events.
pub const SOURCE: &str = "agent:optimizer";
/// Longest range of a KPI report: minute rollups of two sensors per machine, at most
/// 44,640 buckets each.
pub const RANGE_MAX: Duration = Duration::days(31);
/// Tickets of one machine a report reads at most.
const TICKETS_MAX: usize = 10_000;

/// The optimizer's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Units per hour at rated speed, per machine type: the ideal rate performance is
    /// measured against. A type without one has no performance (unknown, said so).
    pub ideal_rates: BTreeMap<String, f64>,
    /// Increased monitoring multiplies the detection thresholds by this, in (0, 1].
    pub monitoring_factor: f64,
    /// …for this long after the event that asked for it.
    pub monitoring_for: Duration,
    /// This many anomalies of one machine within `burst_window` are a burst.
    pub anomaly_burst: usize,
    pub burst_window: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            ideal_rates: BTreeMap::new(),
            monitoring_factor: 0.5,
            monitoring_for: Duration::hours(1),
            anomaly_burst: 3,
            burst_window: Duration::minutes(10),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("this role lacks the permission {0}")]
    PermissionDenied(Permission),
    #[error("invalid field '{}': {}", .0.field, .0.reason)]
    Validation(FieldError),
    #[error(transparent)]
    OutOfScope(#[from] crate::scope::OutOfScope),
    #[error(transparent)]
    Energy(#[from] energy::Error),
    #[error(transparent)]
    Gates(#[from] gates::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Coded for Error {
    fn code(&self) -> Code {
        match self {
            Error::PermissionDenied(_) => Code::permission_denied,
            Error::Validation(_) => Code::invalid_field,
            Error::OutOfScope(e) => e.code(),
            Error::Energy(e) => e.code(),
            Error::Gates(e) => e.code(),
            Error::Store(StoreError::Unavailable(_)) => Code::storage_unavailable,
            Error::Store(_) => Code::internal,
        }
    }

    fn field_errors(&self) -> &[FieldError] {
        match self {
            Error::Validation(f) => std::slice::from_ref(f),
            Error::OutOfScope(e) => e.field_errors(),
            Error::Energy(e) => e.field_errors(),
            Error::Gates(e) => e.field_errors(),
            _ => &[],
        }
    }
}

fn invalid(field: &str, reason: impl Into<String>) -> Error {
    Error::Validation(FieldError::new(field, reason))
}

/// What a report covers: the caller's sites, or one site; every line, or one.
#[derive(Debug, Clone, PartialEq)]
pub struct KpiQuery {
    pub site: Option<String>,
    pub line: Option<String>,
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
}

/// The KPIs of a machine, a line or a site over the report's window.
#[derive(Debug, Clone, PartialEq)]
pub struct Kpis {
    pub availability: Figure,
    pub performance: Figure,
    pub quality: Figure,
    pub oee: Figure,
    /// Unplanned stops, hours.
    pub downtime_hours: Figure,
    /// Health score (0–100) now: the machine's, or the mean of the machines'.
    pub health: Figure,
    pub energy_kwh: Figure,
    pub co2_kg: Figure,
    pub energy_cost: Figure,
    /// Against the energy baseline (the same period on previous days).
    pub energy_saved_kwh: Figure,
    pub co2_saved_kg: Figure,
    pub energy_cost_saved: Figure,
    pub mtbf_hours: Figure,
    pub mttr_hours: Figure,
}

/// Where a machine's run time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunTimeSource {
    /// Its output sensor's minutes (producing or not).
    Output,
    /// Its tickets: down from report to repair (it has no output sensor).
    Tickets,
}

impl RunTimeSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RunTimeSource::Output => "output",
            RunTimeSource::Tickets => "tickets",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MachineKpis {
    pub machine: String,
    pub site: String,
    pub line: Option<String>,
    pub run_time_source: RunTimeSource,
    pub kpis: Kpis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LineKpis {
    pub site: String,
    pub line: String,
    pub machines: u32,
    pub kpis: Kpis,
}

/// Savings in one currency, minor units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Money {
    pub currency: String,
    pub minor: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SiteKpis {
    pub site: String,
    pub machines: u32,
    pub kpis: Kpis,
    /// What procurement saved in the window, per currency (empty: nothing saved); `Err` with
    /// the reason when it is not known.
    pub procurement_savings: Result<Vec<Money>, String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub from: OffsetDateTime,
    pub to: OffsetDateTime,
    pub sites: Vec<SiteKpis>,
    pub lines: Vec<LineKpis>,
    pub machines: Vec<MachineKpis>,
}

pub struct Service {
    machines: Arc<dyn MachineStore>,
    readings: Arc<dyn ReadingStore>,
    tickets: Arc<dyn TicketStore>,
    energy: Arc<energy::Service>,
    gates: Arc<gates::Service>,
    sensitivity: Arc<Sensitivity>,
    clock: Arc<dyn Clock>,
    config: Config,
    ledger: OnceLock<Arc<dyn SavingsLedger>>,
    bus: OnceLock<Arc<dyn EventBus>>,
    agent: Mutex<coordination::State>,
}

impl Service {
    /// `sensitivity` is the handle detection follows
    /// ([`crate::detection::Service::sensitivity`]): increased monitoring is applied there.
    #[expect(
        clippy::too_many_arguments,
        reason = "the ports and services it reads, each named at the one place it is built"
    )]
    pub fn new(
        machines: Arc<dyn MachineStore>,
        readings: Arc<dyn ReadingStore>,
        tickets: Arc<dyn TicketStore>,
        energy: Arc<energy::Service>,
        gates: Arc<gates::Service>,
        sensitivity: Arc<Sensitivity>,
        clock: Arc<dyn Clock>,
        config: Config,
    ) -> Self {
        Self {
            machines,
            readings,
            tickets,
            energy,
            gates,
            sensitivity,
            clock,
            config,
            ledger: OnceLock::new(),
            bus: OnceLock::new(),
            agent: Mutex::new(coordination::State::default()),
        }
    }

    /// Reads procurement savings from `ledger` (wired once); `false` if one was set already.
    pub fn set_ledger(&self, ledger: Arc<dyn SavingsLedger>) -> bool {
        self.ledger.set(ledger).is_ok()
    }

    /// Publishes the agent's directives on `bus` (wired once); `false` if one was set already.
    pub fn attach_bus(&self, bus: Arc<dyn EventBus>) -> bool {
        self.bus.set(bus).is_ok()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The sensitivity handle increased monitoring is applied through: detection must follow
    /// the same one ([`crate::detection::Service::with_sensitivity`]).
    pub fn sensitivity(&self) -> Arc<Sensitivity> {
        self.sensitivity.clone()
    }

    /// KPIs per machine, line and site of the caller's sites (or the site asked for; the line
    /// asked for), over `[from, to)` cut at now.
    pub async fn kpis(&self, caller: &Principal, q: KpiQuery) -> Result<Report, Error> {
        if !caller.can(Permission::PlantRead) {
            return Err(Error::PermissionDenied(Permission::PlantRead));
        }
        if q.to <= q.from {
            return Err(invalid("to", "must be after from"));
        }
        if q.to - q.from > RANGE_MAX {
            return Err(invalid("to", "the range may span at most 31 days"));
        }
        let scope = crate::scope::sites_asked(caller, "site", q.site.as_deref())?;
        // The future has no production yet: planned time ends now.
        let to = q.to.min(self.clock.now()).max(q.from);
        let mut machines: Vec<Machine> = self
            .machines
            .list_machines(&scope)
            .await?
            .into_iter()
            .filter(|m| {
                m.active
                    && q.line
                        .as_ref()
                        .is_none_or(|l| m.location.line.as_ref() == Some(l))
            })
            .collect();
        machines.sort_by(|a, b| a.id.cmp(&b.id));
        let energy = self.energy_by_machine(caller, &q, to).await?;

        let mut rows = Vec::with_capacity(machines.len());
        for m in &machines {
            rows.push(self.machine_row(m, q.from, to, energy.get(&m.id.0)).await?);
        }

        let mut lines: BTreeMap<(String, String), Totals> = BTreeMap::new();
        let mut sites: BTreeMap<String, Totals> = BTreeMap::new();
        for row in &rows {
            sites.entry(row.site.clone()).or_default().add(row);
            if let Some(line) = &row.line {
                lines
                    .entry((row.site.clone(), line.clone()))
                    .or_default()
                    .add(row);
            }
        }
        let savings = self.procurement_savings(&sites, q.from, to).await;
        Ok(Report {
            from: q.from,
            to,
            sites: sites
                .into_iter()
                .map(|(site, t)| SiteKpis {
                    procurement_savings: savings
                        .as_ref()
                        .map_err(Clone::clone)
                        .map(|all| all.get(&site).cloned().unwrap_or_default()),
                    site,
                    machines: t.machines,
                    kpis: t.kpis(),
                })
                .collect(),
            lines: lines
                .into_iter()
                .map(|((site, line), t)| LineKpis {
                    site,
                    line,
                    machines: t.machines,
                    kpis: t.kpis(),
                })
                .collect(),
            machines: rows.into_iter().map(Row::into_kpis).collect(),
        })
    }

    /// The energy report's figures per machine; machines without a power sensor are absent.
    async fn energy_by_machine(
        &self,
        caller: &Principal,
        q: &KpiQuery,
        to: OffsetDateTime,
    ) -> Result<HashMap<String, energy::Figures>, Error> {
        if to <= q.from {
            return Ok(HashMap::new());
        }
        // Minute buckets for a day or less, where an hour's edge would be a large share.
        let bucket = if to - q.from <= Duration::DAY {
            Resolution::Minute
        } else {
            Resolution::Hour
        };
        let report = self
            .energy
            .report(
                caller,
                energy::ReportQuery {
                    site: q.site.clone(),
                    from: q.from,
                    to,
                    bucket,
                },
            )
            .await?;
        Ok(report
            .machines
            .into_iter()
            .map(|m| (m.machine, m.figures))
            .collect())
    }

    async fn rate_buckets(
        &self,
        m: &Machine,
        sensor: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<RateBucket>, StoreError> {
        let stats = self
            .readings
            .rollup_readings(
                &RangeQuery {
                    machine: m.id.clone(),
                    sensor: Some(SensorKey(sensor.to_owned())),
                    from,
                    to,
                    limit: 50_000,
                },
                Resolution::Minute,
            )
            .await?;
        Ok(stats
            .into_iter()
            .map(|b| RateBucket {
                start: b.start,
                count: b.count,
                sum: b.sum,
            })
            .collect())
    }

    async fn machine_row(
        &self,
        m: &Machine,
        from: OffsetDateTime,
        to: OffsetDateTime,
        energy: Option<&energy::Figures>,
    ) -> Result<Row, Error> {
        let tickets = self
            .tickets
            .machine_tickets(&m.id, from, to, TICKETS_MAX)
            .await?;
        let rel = reliability(&tickets, from, to, Some(m.created_at));
        let (start, end) = observed_window(from, to, Some(m.created_at));
        // FactoryBrain keeps no production calendar (yet): no planned stops are known, so
        // planned production time is the whole observed window.
        let planned = end - start;
        let (oee, source, downtime) = if m.sensor(OUTPUT_SENSOR).is_some() {
            let output = self.rate_buckets(m, OUTPUT_SENSOR, start, end).await?;
            if output.is_empty() {
                // Down or not reporting: nothing tells which.
                let why = "no output readings in the window";
                (
                    Oee::unknown(why),
                    RunTimeSource::Output,
                    Figure::unknown(why),
                )
            } else {
                let scrap = if m.sensor(SCRAP_SENSOR).is_some() {
                    Some(self.rate_buckets(m, SCRAP_SENSOR, start, end).await?)
                } else {
                    None
                };
                let p = production(&output, scrap.as_deref(), Duration::MINUTE, planned);
                let ideal = self.config.ideal_rates.get(&m.machine_type).copied();
                let downtime = Figure::Known(hours(p.downtime()));
                (oee(&p, ideal), RunTimeSource::Output, downtime)
            }
        } else {
            let why = "the machine has no output sensor: counts are unknown";
            let o = oee_from_run_time(rel.observed, rel.operating, why);
            (
                o,
                RunTimeSource::Tickets,
                Figure::Known(hours(rel.downtime)),
            )
        };
        Ok(Row {
            machine: m.id.0.clone(),
            site: m.location.site.clone(),
            line: m.location.line.clone(),
            source,
            oee,
            downtime,
            health: m.health_score,
            energy: energy.cloned(),
            reliability: rel,
        })
    }

    /// Procurement savings per site and currency; the reason when they are not known.
    async fn procurement_savings(
        &self,
        sites: &BTreeMap<String, Totals>,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<HashMap<String, Vec<Money>>, String> {
        let Some(ledger) = self.ledger.get() else {
            return Err("procurement savings are not available: no savings ledger is wired".into());
        };
        if sites.is_empty() {
            return Ok(HashMap::new());
        }
        let scope = SiteScope::Sites(sites.keys().cloned().collect());
        match ledger.savings_minor(&scope, from, to).await {
            Ok(rows) => {
                let mut out: HashMap<String, Vec<Money>> = HashMap::new();
                for (site, currency, minor) in rows {
                    out.entry(site).or_default().push(Money { currency, minor });
                }
                for list in out.values_mut() {
                    list.sort_by(|a, b| a.currency.cmp(&b.currency));
                }
                Ok(out)
            }
            Err(e) => {
                tracing::warn!(error = %e, "The savings ledger could not be read; procurement savings are reported unknown.");
                Err(format!("the savings ledger could not be read: {e}"))
            }
        }
    }
}

fn hours(d: Duration) -> f64 {
    d.as_seconds_f64() / 3600.0
}

/// One machine's figures, before they are added to its line and site.
struct Row {
    machine: String,
    site: String,
    line: Option<String>,
    source: RunTimeSource,
    oee: Oee,
    downtime: Figure,
    health: Option<f64>,
    energy: Option<energy::Figures>,
    reliability: Reliability,
}

const NO_POWER: &str = "the machine has no power sensor";

impl Row {
    fn into_kpis(self) -> MachineKpis {
        let mut rel = ReliabilityTotals::default();
        rel.add(&self.reliability);
        let (kwh, co2, cost, saved) = match &self.energy {
            Some(e) => (
                Figure::Known(e.kwh),
                Figure::Known(e.co2_kg),
                Figure::Known(e.cost),
                energy_savings(e.kwh, e.co2_kg, e.cost, e.baseline_kwh),
            ),
            None => (
                Figure::unknown(NO_POWER),
                Figure::unknown(NO_POWER),
                Figure::unknown(NO_POWER),
                (
                    Figure::unknown(NO_POWER),
                    Figure::unknown(NO_POWER),
                    Figure::unknown(NO_POWER),
                ),
            ),
        };
        MachineKpis {
            machine: self.machine,
            site: self.site,
            line: self.line,
            run_time_source: self.source,
            kpis: Kpis {
                availability: self.oee.availability,
                performance: self.oee.performance,
                quality: self.oee.quality,
                oee: self.oee.oee,
                downtime_hours: self.downtime,
                health: Figure::known_or(self.health, "detection has not scored the machine yet"),
                energy_kwh: kwh,
                co2_kg: co2,
                energy_cost: cost,
                energy_saved_kwh: saved.0,
                co2_saved_kg: saved.1,
                energy_cost_saved: saved.2,
                mtbf_hours: rel.mtbf_hours(),
                mttr_hours: rel.mttr_hours(),
            },
        }
    }
}

/// The sums of a line or site.
#[derive(Default)]
struct Totals {
    machines: u32,
    oee: OeeTotals,
    reliability: ReliabilityTotals,
    health: Vec<Option<f64>>,
    downtime: Option<f64>,
    kwh: Option<f64>,
    co2: Option<f64>,
    cost: Option<f64>,
    saved_kwh: Option<f64>,
    saved_co2: Option<f64>,
    saved_cost: Option<f64>,
}

/// Adds a known value to a sum that stays unknown until one is.
fn add(sum: &mut Option<f64>, value: Option<f64>) {
    if let Some(v) = value {
        *sum = Some(sum.unwrap_or(0.0) + v);
    }
}

impl Totals {
    fn add(&mut self, row: &Row) {
        self.machines += 1;
        self.oee.add(&row.oee.parts);
        self.reliability.add(&row.reliability);
        self.health.push(row.health);
        add(&mut self.downtime, row.downtime.value());
        if let Some(e) = &row.energy {
            add(&mut self.kwh, Some(e.kwh));
            add(&mut self.co2, Some(e.co2_kg));
            add(&mut self.cost, Some(e.cost));
            let (kwh, co2, cost) = energy_savings(e.kwh, e.co2_kg, e.cost, e.baseline_kwh);
            add(&mut self.saved_kwh, kwh.value());
            add(&mut self.saved_co2, co2.value());
            add(&mut self.saved_cost, cost.value());
        }
    }

    /// Sums of the machines where each figure is known; unknown where none is.
    fn kpis(&self) -> Kpis {
        let oee = self.oee.figures();
        let none = |v: Option<f64>, why: &str| Figure::known_or(v, why);
        Kpis {
            availability: oee.availability,
            performance: oee.performance,
            quality: oee.quality,
            oee: oee.oee,
            downtime_hours: none(self.downtime, "no machine with a known downtime"),
            health: mean_of(
                self.health.iter().copied(),
                "detection has not scored any machine yet",
            ),
            energy_kwh: none(self.kwh, "no machine with a power sensor"),
            co2_kg: none(self.co2, "no machine with a power sensor"),
            energy_cost: none(self.cost, "no machine with a power sensor"),
            energy_saved_kwh: none(self.saved_kwh, "no machine with an energy baseline"),
            co2_saved_kg: none(self.saved_co2, "no machine with an energy baseline"),
            energy_cost_saved: none(self.saved_cost, "no machine with an energy baseline"),
            mtbf_hours: self.reliability.mtbf_hours(),
            mttr_hours: self.reliability.mttr_hours(),
        }
    }
}
