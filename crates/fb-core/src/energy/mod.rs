//! Energy analytics and recommendations (issue #7, C3). Pure computation, no I/O.
//!
//! Units: a machine's power sensor (key [`POWER_SENSOR`]) reports **kW**; energy is **kWh**;
//! CO2 is **kg**; prices are money per kWh in the plant's one currency (no conversion here).
//!
//! - Energy from raw points: the trapezoid rule between consecutive points; a pair further apart
//!   than the gap bound is not integrated (the machine's draw over a gap is unknown, so it is
//!   neither guessed nor counted) and is reported in [`Integration::gaps`].
//! - Energy from rollups (count, min, max, sum per bucket): mean (sum / count) × the bucket's
//!   length. A bucket without readings does not exist and so adds nothing — the same rule as a gap.
//! - CO2 kg = kWh × the site's emission factor (kg/kWh).
//! - Baseline: the mean energy of the same period shifted back by 1, 2, … N days (the same time
//!   of day on each of the previous N days), counting only the shifted periods that have data.
//!   Reduction % = (baseline − current) / baseline × 100; none when the baseline is 0.
//! - Tariffs: [`Tariff`] windows by weekday and time of day (UTC), a window may cross midnight.

mod recommend;
mod recommendation;
mod tariff;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use time::{Duration, OffsetDateTime};

pub use crate::events::EnergyAction;
pub use recommend::{
    EfficiencySample, IdleSample, PeakSample, Proposal, RecommendRules, load_reductions,
    shift_off_peak, standby,
};
pub use recommendation::{
    CommandState, MachineCommand, Recommendation, RecommendationId, RecommendationStatus,
    command_of, confidence_of,
};
pub use tariff::{Tariff, TariffError, TariffWindow, TimeOfDay};

/// The sensor key whose readings are a machine's electrical power, in kW.
pub const POWER_SENSOR: &str = "power";
/// The sensor key taken as a machine's output rate (units per hour) for energy per unit of output.
pub const FLOW_SENSOR: &str = "flow";
/// The emission factor when a site has none of its own, kg CO2 per kWh.
pub const DEFAULT_EMISSION_FACTOR: f64 = 0.5;

/// One power reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerPoint {
    pub at: OffsetDateTime,
    pub kw: f64,
}

/// A rollup bucket of power readings (the readings store's `BucketStats`, minus the sensor).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PowerBucket {
    pub start: OffsetDateTime,
    pub count: u64,
    pub sum: f64,
}

impl PowerBucket {
    /// The mean power over the bucket, kW; `None` for an empty bucket.
    pub fn mean_kw(&self) -> Option<f64> {
        (self.count > 0).then(|| self.sum / self.count as f64)
    }
}

/// Energy integrated from power readings.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Integration {
    pub kwh: f64,
    /// Time the integral covers.
    pub covered: Duration,
    /// Pairs of consecutive points further apart than the bound, left out.
    pub gaps: u32,
}

fn hours(d: Duration) -> f64 {
    d.as_seconds_f64() / 3600.0
}

/// kWh from raw points by the trapezoid rule. Points are taken in time order (sorted here);
/// consecutive points more than `max_gap` apart are not integrated, nor are non-finite values.
pub fn integrate_points(points: &[PowerPoint], max_gap: Duration) -> Integration {
    let mut sorted: Vec<PowerPoint> = points
        .iter()
        .copied()
        .filter(|p| p.kw.is_finite())
        .collect();
    sorted.sort_by_key(|p| p.at);
    let mut out = Integration::default();
    for pair in sorted.windows(2) {
        let dt = pair[1].at - pair[0].at;
        if dt <= Duration::ZERO {
            continue;
        }
        if dt > max_gap {
            out.gaps += 1;
            continue;
        }
        out.kwh += (pair[0].kw + pair[1].kw) / 2.0 * hours(dt);
        out.covered += dt;
    }
    out
}

/// kWh from rollup buckets of length `bucket`: each bucket's mean × its length. Empty buckets
/// (count 0) add nothing.
pub fn integrate_buckets(buckets: &[PowerBucket], bucket: Duration) -> Integration {
    let mut out = Integration::default();
    for b in buckets {
        if let Some(mean) = b.mean_kw().filter(|m| m.is_finite()) {
            out.kwh += mean * hours(bucket);
            out.covered += bucket;
        }
    }
    out
}

/// Emission factors per site, kg CO2 per kWh.
#[derive(Debug, Clone, PartialEq)]
pub struct EmissionFactors {
    pub default: f64,
    pub sites: BTreeMap<String, f64>,
}

impl Default for EmissionFactors {
    fn default() -> Self {
        Self {
            default: DEFAULT_EMISSION_FACTOR,
            sites: BTreeMap::new(),
        }
    }
}

impl EmissionFactors {
    pub fn factor(&self, site: &str) -> f64 {
        self.sites.get(site).copied().unwrap_or(self.default)
    }

    /// kg CO2 for `kwh` at `site`.
    pub fn co2_kg(&self, site: &str, kwh: f64) -> f64 {
        kwh * self.factor(site)
    }
}

/// The shifted periods a baseline averages: `[from − k days, to − k days)` for k = 1..=days.
pub fn baseline_periods(
    from: OffsetDateTime,
    to: OffsetDateTime,
    days: u32,
) -> Vec<(OffsetDateTime, OffsetDateTime)> {
    (1..=i64::from(days))
        .map(|k| (from - Duration::days(k), to - Duration::days(k)))
        .collect()
}

/// The baseline: the mean of the shifted periods' energy, counting only those with data
/// (`None` entries have none). `None` when no period has data.
pub fn baseline_kwh(periods: &[Option<f64>]) -> Option<f64> {
    let with_data: Vec<f64> = periods.iter().flatten().copied().collect();
    (!with_data.is_empty()).then(|| with_data.iter().sum::<f64>() / with_data.len() as f64)
}

/// Reduction % = (baseline − current) / baseline × 100; negative when more was used. `None`
/// when there is no positive baseline.
pub fn reduction_pct(baseline: Option<f64>, current: f64) -> Option<f64> {
    baseline
        .filter(|b| *b > 0.0)
        .map(|b| (b - current) / b * 100.0)
}

/// The median of the values (mean of the two middle ones for an even count); `None` if empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}
