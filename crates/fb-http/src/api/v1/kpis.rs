//! `/api/v1/kpis` bodies: the plant optimizer's KPIs per site, line and machine.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use fb_app::optimizer as app;
use fb_core::kpi::Figure;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct KpiParams {
    /// Only this site (within the caller's sites); default: all of the caller's.
    pub site: Option<String>,
    /// Only the machines of this line (`location.line`).
    pub line: Option<String>,
    /// Start, inclusive (RFC 3339). Required.
    pub from: Option<String>,
    /// End, exclusive (RFC 3339), after `from`, at most 31 days later; cut at now. Required.
    pub to: Option<String>,
}

/// A figure, or why there is none: `value` is null exactly when `unknown` says why.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Kpi {
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown: Option<String>,
}

impl From<Figure> for Kpi {
    fn from(f: Figure) -> Self {
        match f {
            Figure::Known(v) => Self {
                value: Some(v),
                unknown: None,
            },
            Figure::Unknown(reason) => Self {
                value: None,
                unknown: Some(reason),
            },
        }
    }
}

/// The KPIs of a machine, a line or a site. Ratios are in [0, 1].
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KpiFigures {
    /// Run time / planned production time.
    pub availability: Kpi,
    /// Ideal cycle time × total count / run time, at most 1.
    pub performance: Kpi,
    /// Good count / total count.
    pub quality: Kpi,
    /// Availability × performance × quality: fully productive time / planned production time.
    pub oee: Kpi,
    /// Unplanned stops, hours.
    pub downtime_hours: Kpi,
    /// Health score now (0–100): the machine's, or the mean of the machines'.
    pub health: Kpi,
    pub energy_kwh: Kpi,
    pub co2_kg: Kpi,
    /// In the tariff's currency.
    pub energy_cost: Kpi,
    /// Against the energy baseline (the same period on previous days); negative: more used.
    pub energy_saved_kwh: Kpi,
    pub co2_saved_kg: Kpi,
    pub energy_cost_saved: Kpi,
    /// Operating time per failure (maintenance ticket), hours.
    pub mtbf_hours: Kpi,
    /// Mean report-to-repair time of the tickets resolved in the window, hours.
    pub mttr_hours: Kpi,
}

impl From<app::Kpis> for KpiFigures {
    fn from(k: app::Kpis) -> Self {
        Self {
            availability: k.availability.into(),
            performance: k.performance.into(),
            quality: k.quality.into(),
            oee: k.oee.into(),
            downtime_hours: k.downtime_hours.into(),
            health: k.health.into(),
            energy_kwh: k.energy_kwh.into(),
            co2_kg: k.co2_kg.into(),
            energy_cost: k.energy_cost.into(),
            energy_saved_kwh: k.energy_saved_kwh.into(),
            co2_saved_kg: k.co2_saved_kg.into(),
            energy_cost_saved: k.energy_cost_saved.into(),
            mtbf_hours: k.mtbf_hours.into(),
            mttr_hours: k.mttr_hours.into(),
        }
    }
}

/// An amount in a currency's minor unit (cents).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MoneyAmount {
    /// ISO 4217, e.g. `EUR`.
    pub currency: String,
    pub minor: i64,
}

/// Procurement's savings: `amounts` per currency (empty: none), or null and `unknown` saying
/// why.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SavingsFigure {
    pub amounts: Option<Vec<MoneyAmount>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SiteKpis {
    pub site: String,
    pub machines: u32,
    #[serde(flatten)]
    pub kpis: KpiFigures,
    pub procurement_savings: SavingsFigure,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LineKpis {
    pub site: String,
    pub line: String,
    pub machines: u32,
    #[serde(flatten)]
    pub kpis: KpiFigures,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MachineKpis {
    pub machine: String,
    pub site: String,
    pub line: Option<String>,
    /// Where run time came from: `output` (the output sensor's minutes) or `tickets` (no
    /// output sensor: down from report to repair).
    pub run_time_source: String,
    #[serde(flatten)]
    pub kpis: KpiFigures,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct KpiReport {
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    /// The end asked for, cut at now.
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    pub sites: Vec<SiteKpis>,
    pub lines: Vec<LineKpis>,
    pub machines: Vec<MachineKpis>,
}

fn line(l: app::LineKpis) -> LineKpis {
    LineKpis {
        site: l.site,
        line: l.line,
        machines: l.machines,
        kpis: l.kpis.into(),
    }
}

impl From<app::Report> for KpiReport {
    fn from(r: app::Report) -> Self {
        Self {
            from: r.from,
            to: r.to,
            sites: r
                .sites
                .into_iter()
                .map(|s| SiteKpis {
                    site: s.site,
                    machines: s.machines,
                    kpis: s.kpis.into(),
                    procurement_savings: match s.procurement_savings {
                        Ok(list) => SavingsFigure {
                            amounts: Some(
                                list.into_iter()
                                    .map(|m| MoneyAmount {
                                        currency: m.currency,
                                        minor: m.minor,
                                    })
                                    .collect(),
                            ),
                            unknown: None,
                        },
                        Err(reason) => SavingsFigure {
                            amounts: None,
                            unknown: Some(reason),
                        },
                    },
                })
                .collect(),
            lines: r.lines.into_iter().map(line).collect(),
            machines: r
                .machines
                .into_iter()
                .map(|m| MachineKpis {
                    machine: m.machine,
                    site: m.site,
                    line: m.line,
                    run_time_source: m.run_time_source.as_str().to_owned(),
                    kpis: m.kpis.into(),
                })
                .collect(),
        }
    }
}

/// The lines' KPIs only.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LineKpiReport {
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    pub lines: Vec<LineKpis>,
}

impl From<app::Report> for LineKpiReport {
    fn from(r: app::Report) -> Self {
        Self {
            from: r.from,
            to: r.to,
            lines: r.lines.into_iter().map(line).collect(),
        }
    }
}
