//! Plant KPIs (issue #7, C4): OEE and its three factors per machine, and their aggregation per
//! line and site, with the standard definitions (Nakajima; ISO 22400-2 KPIs "availability",
//! "effectiveness", "quality ratio", "OEE index").
//!
//! For a machine over a window:
//!
//! - **planned production time** = the observed window (from the later of the window's start and
//!   the machine's registration) − planned stops;
//! - **run time** = planned production time − unplanned stops (downtime);
//! - **availability** A = run time / planned production time;
//! - **performance** P = (ideal cycle time × total count) / run time = actual output rate /
//!   ideal rate, capped at 1 (a rate above the ideal means the ideal is set too low, not that
//!   the machine made time);
//! - **quality** Q = good count / total count;
//! - **OEE** = A × P × Q = fully productive time / planned production time, where fully
//!   productive time = good count × ideal cycle time.
//!
//! Where the figures come from (see [`production`]): a machine reports its output rate on the
//! [`OUTPUT_SENSOR`] (units per hour) and its rejects on the [`SCRAP_SENSOR`] (units per hour).
//! From their minute rollups: a minute is **running** when its mean output rate is above zero;
//! a minute without any output reading counts as **down** (a machine that reports nothing
//! produces nothing anyone can count); the total count is the integral of the output rate (mean
//! × bucket length, as energy integrates power), the reject count that of the scrap rate. The
//! ideal rate is the machine type's rated rate (configured per type). A machine without an
//! output sensor has no run time of its own; the caller may take it from its tickets'
//! downtime instead (maintenance reliability), and says so in the figure's source.
//!
//! Every figure that cannot be computed is [`Figure::Unknown`] with the reason, never a
//! made-up number.
//!
//! **Aggregation** over the machines of a line or site is by time, never the mean of ratios
//! (see [`OeeTotals`]): A = Σ run / Σ planned, P = Σ net run / Σ run, Q = Σ fully productive /
//! Σ net run, OEE = Σ fully productive / Σ planned, where a machine's net run time = ideal
//! cycle time × total count (capped at its run time) and its fully productive time = net run
//! time × its quality. So A × P × Q = OEE for the machines that have all three, a machine
//! producing for eight hours weighs eight times one producing for one, and machines making
//! different things add up in time, the one unit they share.

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// The sensor a machine reports its output rate on, units per hour.
pub const OUTPUT_SENSOR: &str = "output";
/// The sensor a machine reports its reject (scrap) rate on, units per hour.
pub const SCRAP_SENSOR: &str = "scrap";

/// A figure, or why there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Figure {
    Known(f64),
    Unknown(String),
}

impl Figure {
    pub fn unknown(reason: impl Into<String>) -> Self {
        Figure::Unknown(reason.into())
    }

    pub fn value(&self) -> Option<f64> {
        match self {
            Figure::Known(v) => Some(*v),
            Figure::Unknown(_) => None,
        }
    }

    /// Why there is no value; `None` when there is one.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Figure::Known(_) => None,
            Figure::Unknown(r) => Some(r),
        }
    }

    /// `value` when there is one, else unknown for `reason`.
    pub fn known_or(value: Option<f64>, reason: impl Into<String>) -> Self {
        match value {
            Some(v) if v.is_finite() => Figure::Known(v),
            _ => Figure::Unknown(reason.into()),
        }
    }
}

/// Statistics of one rate sensor over one rollup bucket (the readings store's rollups).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateBucket {
    pub start: OffsetDateTime,
    pub count: u64,
    pub sum: f64,
}

impl RateBucket {
    /// The mean rate over the bucket; `None` for an empty bucket.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0)
            .then(|| self.sum / self.count as f64)
            .filter(|m| m.is_finite())
    }
}

/// What a machine's output and scrap rollups say about its production over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Production {
    /// Planned production time: the observed window minus planned stops.
    pub planned: Duration,
    /// Time in buckets with a positive mean output rate, within the planned time.
    pub run: Duration,
    /// Units made (the output rate integrated over the window).
    pub total: f64,
    /// Units rejected; `None` without scrap readings (quality is then unknown).
    pub rejects: Option<f64>,
}

impl Production {
    /// Unplanned stops: planned production time not running.
    pub fn downtime(&self) -> Duration {
        (self.planned - self.run).max(Duration::ZERO)
    }
}

/// The observed window: `[from, to)` starting no earlier than `in_service_since`; empty
/// (from = to) when the machine came later than the window's end.
pub fn observed_window(
    from: OffsetDateTime,
    to: OffsetDateTime,
    in_service_since: Option<OffsetDateTime>,
) -> (OffsetDateTime, OffsetDateTime) {
    let start = in_service_since.map_or(from, |s| s.max(from)).min(to);
    (start, to)
}

/// Production over `planned` time (the observed window minus planned stops) from minute (or
/// any `bucket`-long) rollups of the output rate and, when there is one, the scrap rate, both
/// in units per hour. Buckets outside the window must be left out by the caller (the store's
/// range query does). Run time is at most the planned time.
pub fn production(
    output: &[RateBucket],
    scrap: Option<&[RateBucket]>,
    bucket: Duration,
    planned: Duration,
) -> Production {
    let hours = bucket.as_seconds_f64() / 3600.0;
    let mut run = Duration::ZERO;
    let mut total = 0.0;
    for b in output {
        if let Some(rate) = b.mean() {
            let rate = rate.max(0.0);
            total += rate * hours;
            if rate > 0.0 {
                run += bucket;
            }
        }
    }
    let rejects = scrap.filter(|s| !s.is_empty()).map(|s| {
        s.iter()
            .filter_map(RateBucket::mean)
            .map(|rate| rate.max(0.0) * hours)
            .sum::<f64>()
    });
    Production {
        planned: planned.max(Duration::ZERO),
        run: run.min(planned.max(Duration::ZERO)),
        total,
        // More rejects than units made is a miscount; quality never goes below zero.
        rejects: rejects.map(|r| r.min(total)),
    }
}

/// A machine's OEE, its factors, and the times its line's and site's aggregates add up.
#[derive(Debug, Clone, PartialEq)]
pub struct Oee {
    pub availability: Figure,
    pub performance: Figure,
    pub quality: Figure,
    pub oee: Figure,
    /// What the aggregates add (see [`OeeTotals`]).
    pub parts: OeeParts,
}

impl Oee {
    /// Every figure unknown for `reason`; nothing to add to the aggregates.
    pub fn unknown(reason: &str) -> Self {
        Oee {
            availability: Figure::unknown(reason),
            performance: Figure::unknown(reason),
            quality: Figure::unknown(reason),
            oee: Figure::unknown(reason),
            parts: OeeParts::default(),
        }
    }
}

/// A machine's share of the aggregates, in seconds; `None` where its figure is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OeeParts {
    /// (planned, run) when availability is known.
    pub time: Option<(f64, f64)>,
    /// (run, net run) when performance is known.
    pub speed: Option<(f64, f64)>,
    /// (net run, fully productive) when quality and performance are known.
    pub quality: Option<(f64, f64)>,
    /// (planned, fully productive) when all three are known.
    pub oee: Option<(f64, f64)>,
}

/// OEE of one machine from its production and its ideal rate (units per hour at rated speed;
/// `None` when its type has none configured). A machine with no output data to count takes
/// [`oee_from_run_time`] instead.
pub fn oee(production: &Production, ideal_rate_per_hour: Option<f64>) -> Oee {
    let planned = production.planned.as_seconds_f64();
    let run = production.run.as_seconds_f64();
    let availability = if planned <= 0.0 {
        Figure::unknown("no planned production time in the window")
    } else {
        Figure::Known(run / planned)
    };
    let ideal = ideal_rate_per_hour.filter(|r| r.is_finite() && *r > 0.0);
    // Net run time: the time the units would have taken at the ideal rate.
    let net = ideal.map(|rate| (production.total / rate * 3600.0).min(run));
    let performance = match (ideal, net) {
        (None, _) | (_, None) => {
            Figure::unknown("no ideal rate is configured for this machine type")
        }
        (Some(_), Some(_)) if run <= 0.0 => {
            Figure::unknown("the machine did not run in the window")
        }
        (Some(_), Some(net)) => Figure::Known(net / run),
    };
    let quality_ratio = match production.rejects {
        None => Err("no scrap readings in the window"),
        Some(_) if production.total <= 0.0 => Err("nothing was produced in the window"),
        Some(rejects) => Ok(((production.total - rejects) / production.total).clamp(0.0, 1.0)),
    };
    let quality = match quality_ratio {
        Ok(q) => Figure::Known(q),
        Err(reason) => Figure::unknown(reason),
    };
    let mut parts = OeeParts::default();
    if availability.value().is_some() {
        parts.time = Some((planned, run));
    }
    if let (Some(_), Some(net)) = (performance.value(), net) {
        parts.speed = Some((run, net));
        if let Ok(q) = quality_ratio {
            parts.quality = Some((net, net * q));
            if availability.value().is_some() {
                parts.oee = Some((planned, net * q));
            }
        }
    }
    let oee = match parts.oee {
        Some((planned, productive)) => Figure::Known(productive / planned),
        None => Figure::unknown(first_reason(&[&availability, &performance, &quality])),
    };
    Oee {
        availability,
        performance,
        quality,
        oee,
        parts,
    }
}

/// OEE of a machine without output data whose run time is known from elsewhere (its tickets'
/// downtime): availability only; performance and quality need counts and are unknown.
pub fn oee_from_run_time(planned: Duration, run: Duration, why_no_counts: &str) -> Oee {
    let (planned, run) = (planned.as_seconds_f64(), run.as_seconds_f64().max(0.0));
    let availability = if planned <= 0.0 {
        Figure::unknown("no planned production time in the window")
    } else {
        Figure::Known((run / planned).min(1.0))
    };
    let parts = OeeParts {
        time: availability.value().map(|_| (planned, run.min(planned))),
        ..OeeParts::default()
    };
    Oee {
        performance: Figure::unknown(why_no_counts),
        quality: Figure::unknown(why_no_counts),
        oee: Figure::unknown(why_no_counts),
        availability,
        parts,
    }
}

fn first_reason(figures: &[&Figure]) -> String {
    figures
        .iter()
        .find_map(|f| f.reason())
        .unwrap_or("unknown")
        .to_owned()
}

/// The sums behind a line's or site's OEE: add each machine's [`OeeParts`], then read the
/// figures. Each factor is a ratio of sums over the machines where it is known, which makes
/// it time-weighted (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct OeeTotals {
    planned: f64,
    run: f64,
    speed_run: f64,
    speed_net: f64,
    quality_net: f64,
    quality_good: f64,
    oee_planned: f64,
    oee_good: f64,
    machines: u32,
    with_oee: u32,
}

impl OeeTotals {
    pub fn add(&mut self, parts: &OeeParts) {
        self.machines += 1;
        if let Some((planned, run)) = parts.time {
            self.planned += planned;
            self.run += run;
        }
        if let Some((run, net)) = parts.speed {
            self.speed_run += run;
            self.speed_net += net;
        }
        if let Some((net, good)) = parts.quality {
            self.quality_net += net;
            self.quality_good += good;
        }
        if let Some((planned, good)) = parts.oee {
            self.with_oee += 1;
            self.oee_planned += planned;
            self.oee_good += good;
        }
    }

    /// Machines added, and those with a known OEE.
    pub fn machines(&self) -> (u32, u32) {
        (self.machines, self.with_oee)
    }

    pub fn figures(&self) -> Oee {
        let ratio = |num: f64, den: f64, reason: &str| {
            if den > 0.0 {
                Figure::Known(num / den)
            } else {
                Figure::unknown(reason)
            }
        };
        Oee {
            availability: ratio(
                self.run,
                self.planned,
                "no machine with planned production time and a known run time",
            ),
            performance: ratio(
                self.speed_net,
                self.speed_run,
                "no machine with run time and a known ideal rate",
            ),
            quality: ratio(
                self.quality_good,
                self.quality_net,
                "no machine with counted output and scrap",
            ),
            oee: ratio(
                self.oee_good,
                self.oee_planned,
                "no machine with availability, performance and quality all known",
            ),
            parts: OeeParts::default(),
        }
    }
}

/// Sums for the mean failure figures of several machines (from each machine's
/// [`crate::maintenance::reliability::Reliability`]): MTBF = Σ operating time / Σ failures and
/// MTTR = Σ repair time / Σ repairs, so that each failure and each repair weighs the same,
/// not each machine.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ReliabilityTotals {
    operating: Duration,
    failures: u64,
    repair_time: Duration,
    repairs: u64,
    downtime: Duration,
}

impl ReliabilityTotals {
    pub fn add(&mut self, r: &crate::maintenance::reliability::Reliability) {
        self.operating += r.operating;
        self.failures += r.failures;
        self.downtime += r.downtime;
        if let Some(mttr) = r.mttr {
            self.repairs += r.repairs;
            // Whole repairs: MTTR × repairs gives back the sum reliability averaged.
            self.repair_time += mttr * i32::try_from(r.repairs).unwrap_or(i32::MAX);
        }
    }

    /// Mean operating time between failures, hours.
    pub fn mtbf_hours(&self) -> Figure {
        if self.failures == 0 {
            Figure::unknown("no failure (maintenance ticket) in the window")
        } else {
            Figure::Known(self.operating.as_seconds_f64() / 3600.0 / self.failures as f64)
        }
    }

    /// Mean time to repair, hours.
    pub fn mttr_hours(&self) -> Figure {
        if self.repairs == 0 {
            Figure::unknown("no repair (resolved ticket) in the window")
        } else {
            Figure::Known(self.repair_time.as_seconds_f64() / 3600.0 / self.repairs as f64)
        }
    }

    /// Time down for repairs (report to repair), summed over the machines.
    pub fn downtime(&self) -> Duration {
        self.downtime
    }
}

/// The mean of the known values (machine health scores of a line or site); unknown without
/// any.
pub fn mean_of(values: impl IntoIterator<Item = Option<f64>>, reason: &str) -> Figure {
    let (sum, n) = values
        .into_iter()
        .flatten()
        .filter(|v| v.is_finite())
        .fold((0.0, 0u32), |(s, n), v| (s + v, n + 1));
    if n == 0 {
        Figure::unknown(reason)
    } else {
        Figure::Known(sum / f64::from(n))
    }
}

/// Energy saved against the baseline: (kWh, CO2 kg, cost), each unknown without a baseline.
/// CO2 is saved at the factor the emissions were computed with (CO2 / kWh of the period), cost
/// at the period's mean price (cost / kWh); with no consumption in the period neither is known.
pub fn energy_savings(
    kwh: f64,
    co2_kg: f64,
    cost: f64,
    baseline_kwh: Option<f64>,
) -> (Figure, Figure, Figure) {
    let Some(baseline) = baseline_kwh else {
        let none = || Figure::unknown("no baseline: no energy data on the previous days");
        return (none(), none(), none());
    };
    let saved = baseline - kwh;
    if kwh <= 0.0 {
        let none = || Figure::unknown("no consumption in the period to price the saving at");
        return (Figure::Known(saved), none(), none());
    }
    (
        Figure::Known(saved),
        Figure::Known(saved * co2_kg / kwh),
        Figure::Known(saved * cost / kwh),
    )
}
