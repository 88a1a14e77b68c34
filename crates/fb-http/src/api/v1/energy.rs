//! `/api/v1/energy` bodies: consumption, cost, CO2, baseline and reduction per site and
//! machine, and the energy recommendations.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use fb_app::energy as app;
use fb_core::energy as core;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EnergyParams {
    /// Only this site (within the caller's sites); default: all of the caller's.
    pub site: Option<String>,
    /// Start, inclusive (RFC 3339). Required.
    pub from: Option<String>,
    /// End, exclusive (RFC 3339), after `from`, at most 366 days later. Required.
    pub to: Option<String>,
    /// `minute` or `hour` (default): the rollups energy is integrated from, and the series' step.
    pub bucket: Option<String>,
}

/// Energy figures of a site or machine over the period.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EnergyFigures {
    pub kwh: f64,
    /// kWh of each bucket at the tariff's price at the bucket's start.
    pub cost: f64,
    pub co2_kg: f64,
    /// Mean kWh of the same period on each of the previous `energy.baseline_days` days with
    /// data; absent when none has data.
    pub baseline_kwh: Option<f64>,
    /// (baseline − kWh) / baseline × 100; absent without a positive baseline.
    pub reduction_pct: Option<f64>,
}

impl From<app::Figures> for EnergyFigures {
    fn from(f: app::Figures) -> Self {
        Self {
            kwh: f.kwh,
            cost: f.cost,
            co2_kg: f.co2_kg,
            baseline_kwh: f.baseline_kwh,
            reduction_pct: f.reduction_pct,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EnergyBucket {
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    pub kwh: f64,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SiteEnergy {
    pub site: String,
    /// kg CO2 per kWh used for this site.
    pub emission_factor: f64,
    #[serde(flatten)]
    pub figures: EnergyFigures,
    /// The site's kWh per bucket, machines summed; buckets without readings are absent.
    pub series: Vec<EnergyBucket>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct MachineEnergy {
    pub machine: String,
    pub site: String,
    #[serde(flatten)]
    pub figures: EnergyFigures,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EnergyReport {
    #[serde(with = "time::serde::rfc3339")]
    pub from: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub to: OffsetDateTime,
    /// `minute` or `hour`.
    pub bucket: String,
    pub sites: Vec<SiteEnergy>,
    pub machines: Vec<MachineEnergy>,
}

impl From<app::Report> for EnergyReport {
    fn from(r: app::Report) -> Self {
        Self {
            from: r.from,
            to: r.to,
            bucket: match r.bucket {
                fb_core::ports::Resolution::Minute => "minute",
                fb_core::ports::Resolution::Hour => "hour",
            }
            .to_owned(),
            sites: r
                .sites
                .into_iter()
                .map(|s| SiteEnergy {
                    site: s.site,
                    emission_factor: s.emission_factor,
                    figures: s.figures.into(),
                    series: s
                        .series
                        .into_iter()
                        .map(|(start, kwh)| EnergyBucket { start, kwh })
                        .collect(),
                })
                .collect(),
            machines: r
                .machines
                .into_iter()
                .map(|m| MachineEnergy {
                    machine: m.machine,
                    site: m.site,
                    figures: m.figures.into(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RecommendationsParams {
    /// `proposed`, `accepted`, `dismissed` or `expired`.
    pub status: Option<String>,
    /// Only this site (within the caller's sites).
    pub site: Option<String>,
    /// 1 to 1000; default 100.
    pub limit: Option<usize>,
}

/// An energy recommendation with its expected savings over `energy.recommendations.horizon_minutes`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Recommendation {
    pub id: Uuid,
    pub machine: String,
    pub site: String,
    /// `standby`, `load_reduction` or `shift_off_peak`.
    pub action: String,
    /// `proposed`, `accepted`, `dismissed` or `expired`.
    pub status: String,
    pub expected_kwh_saved: f64,
    pub expected_cost_saved: f64,
    pub expected_co2_kg_saved: f64,
    /// The rule's reasoning, with its figures.
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub decided_at: Option<OffsetDateTime>,
    pub decided_by: Option<String>,
    /// The machine command of an accepted recommendation.
    pub command_id: Option<Uuid>,
    /// `pending` (waiting for the gate) or `sent` (published to the machine).
    pub command_state: Option<String>,
}

impl From<core::Recommendation> for Recommendation {
    fn from(r: core::Recommendation) -> Self {
        Self {
            id: r.id.0,
            machine: r.machine.0,
            site: r.site,
            action: r.action.as_str().to_owned(),
            status: r.status.as_str().to_owned(),
            expected_kwh_saved: r.expected_kwh_saved,
            expected_cost_saved: r.expected_cost_saved,
            expected_co2_kg_saved: r.expected_co2_kg_saved,
            reason: r.reason,
            created_at: r.created_at,
            expires_at: r.expires_at,
            decided_at: r.decided_at,
            decided_by: r.decided_by,
            command_id: r.command_id,
            command_state: r.command_state.map(|s| s.as_str().to_owned()),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RecommendationList {
    pub recommendations: Vec<Recommendation>,
}
