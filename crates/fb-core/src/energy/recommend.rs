//! The recommendation rules. Each takes what the service read from the readings store and the
//! registry and proposes at most one recommendation per machine and kind, with its expected
//! savings over the rules' horizon (if the situation lasts that long) and its reasoning.
//!
//! - **Standby** (`standby`): a machine the registry has as running whose every one of the last
//!   `idle_min_minutes` minutes has a mean power at or below `idle_max_kw` (a minute without
//!   readings breaks the run: idleness is never assumed). Saving = (mean idle kW − `standby_kw`)
//!   × horizon.
//! - **Load reduction** (`load_reductions`): energy per unit of output = mean power (kW) / mean
//!   flow (units per hour), i.e. kWh per unit. Among machines of the same type with both sensors
//!   and a positive flow (at least [`MIN_FLEET`] of them), a machine above the median by more than
//!   `efficiency_margin` (0.2 = 20 %) is proposed; saving = (its kW − median kWh/unit × its flow)
//!   × horizon, what it would save at the fleet's median efficiency.
//! - **Off-peak** (`shift_off_peak`): now is in a peak tariff window, the machine's type is
//!   listed as non-critical and it draws more than `idle_max_kw`. Moving the run saves no
//!   energy and no CO2, only money: kW × horizon × (the price now − the tariff's lowest price).

use time::{Duration, OffsetDateTime};

use super::{EmissionFactors, EnergyAction, Tariff, median};
use crate::plant::MachineId;

/// Fewest machines of a type for a median efficiency to judge them by.
pub const MIN_FLEET: usize = 3;

#[derive(Debug, Clone, PartialEq)]
pub struct RecommendRules {
    pub idle_max_kw: f64,
    pub idle_min_minutes: u32,
    pub standby_kw: f64,
    pub horizon: Duration,
    pub efficiency_margin: f64,
    pub non_critical_types: Vec<String>,
}

/// A recommendation as a rule proposes it (the service gives it an id and a status).
#[derive(Debug, Clone, PartialEq)]
pub struct Proposal {
    pub machine: MachineId,
    pub site: String,
    pub action: EnergyAction,
    pub expected_kwh_saved: f64,
    pub expected_cost_saved: f64,
    pub expected_co2_kg_saved: f64,
    pub reason: String,
}

/// A machine's recent power: the mean of each of its last minutes, oldest first; only minutes
/// with readings.
#[derive(Debug, Clone, PartialEq)]
pub struct IdleSample {
    pub machine: MachineId,
    pub site: String,
    pub running: bool,
    pub minute_means_kw: Vec<f64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EfficiencySample {
    pub machine: MachineId,
    pub site: String,
    pub machine_type: String,
    pub mean_kw: f64,
    pub mean_flow: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PeakSample {
    pub machine: MachineId,
    pub site: String,
    pub machine_type: String,
    pub mean_kw: f64,
}

fn hours(d: Duration) -> f64 {
    d.as_seconds_f64() / 3600.0
}

/// The standby rule.
pub fn standby(
    s: &IdleSample,
    rules: &RecommendRules,
    tariff: &Tariff,
    factors: &EmissionFactors,
    now: OffsetDateTime,
) -> Option<Proposal> {
    let need = rules.idle_min_minutes as usize;
    if !s.running || need == 0 || s.minute_means_kw.len() < need {
        return None;
    }
    let last = &s.minute_means_kw[s.minute_means_kw.len() - need..];
    if last
        .iter()
        .any(|kw| !kw.is_finite() || *kw > rules.idle_max_kw)
    {
        return None;
    }
    let mean = last.iter().sum::<f64>() / need as f64;
    let kw_saved = mean - rules.standby_kw;
    if kw_saved <= 0.0 {
        return None;
    }
    let kwh = kw_saved * hours(rules.horizon);
    let price = tariff.price_at(now);
    Some(Proposal {
        machine: s.machine.clone(),
        site: s.site.clone(),
        action: EnergyAction::Standby,
        expected_kwh_saved: kwh,
        expected_cost_saved: kwh * price,
        expected_co2_kg_saved: factors.co2_kg(&s.site, kwh),
        reason: format!(
            "running but idle: mean {mean:.2} kW over the last {need} minutes, each at or below \
             {:.2} kW; standby draws {:.2} kW, saving {kwh:.2} kWh over {:.1} h at {price:.3}/kWh",
            rules.idle_max_kw,
            rules.standby_kw,
            hours(rules.horizon)
        ),
    })
}

/// The load-reduction rule over a fleet's samples.
pub fn load_reductions(
    samples: &[EfficiencySample],
    rules: &RecommendRules,
    tariff: &Tariff,
    factors: &EmissionFactors,
    now: OffsetDateTime,
) -> Vec<Proposal> {
    let usable: Vec<&EfficiencySample> = samples
        .iter()
        .filter(|s| s.mean_kw.is_finite() && s.mean_flow.is_finite())
        .filter(|s| s.mean_kw > 0.0 && s.mean_flow > 0.0)
        .collect();
    let mut types: Vec<&str> = usable.iter().map(|s| s.machine_type.as_str()).collect();
    types.sort_unstable();
    types.dedup();
    let mut out = Vec::new();
    for ty in types {
        let fleet: Vec<&&EfficiencySample> =
            usable.iter().filter(|s| s.machine_type == ty).collect();
        if fleet.len() < MIN_FLEET {
            continue;
        }
        let intensities: Vec<f64> = fleet.iter().map(|s| s.mean_kw / s.mean_flow).collect();
        let Some(med) = median(&intensities) else {
            continue;
        };
        for (s, intensity) in fleet.iter().zip(&intensities) {
            if *intensity <= med * (1.0 + rules.efficiency_margin) {
                continue;
            }
            let kw_saved = s.mean_kw - med * s.mean_flow;
            let kwh = kw_saved * hours(rules.horizon);
            let price = tariff.price_at(now);
            out.push(Proposal {
                machine: s.machine.clone(),
                site: s.site.clone(),
                action: EnergyAction::LoadReduction,
                expected_kwh_saved: kwh,
                expected_cost_saved: kwh * price,
                expected_co2_kg_saved: factors.co2_kg(&s.site, kwh),
                reason: format!(
                    "uses {intensity:.3} kWh per unit of flow, {:.0} % above the median {med:.3} \
                     of {} {ty} machines; at the median it would draw {:.2} kW less",
                    (intensity / med - 1.0) * 100.0,
                    fleet.len(),
                    kw_saved
                ),
            });
        }
    }
    out
}

/// The off-peak rule.
pub fn shift_off_peak(
    s: &PeakSample,
    rules: &RecommendRules,
    tariff: &Tariff,
    now: OffsetDateTime,
) -> Option<Proposal> {
    let window = tariff.window_at(now).filter(|w| w.peak)?;
    if !rules.non_critical_types.contains(&s.machine_type)
        || !s.mean_kw.is_finite()
        || s.mean_kw <= rules.idle_max_kw
    {
        return None;
    }
    let kwh = s.mean_kw * hours(rules.horizon);
    let cheapest = tariff.lowest_price();
    let saved = kwh * (window.price_per_kwh - cheapest);
    (saved > 0.0).then(|| Proposal {
        machine: s.machine.clone(),
        site: s.site.clone(),
        action: EnergyAction::ShiftOffPeak,
        expected_kwh_saved: 0.0,
        expected_cost_saved: saved,
        expected_co2_kg_saved: 0.0,
        reason: format!(
            "non-critical {} drawing {:.2} kW in the {} window at {:.3}/kWh; run at {cheapest:.3}/kWh \
             instead: the same energy, {saved:.2} less cost over {:.1} h",
            s.machine_type,
            s.mean_kw,
            window.name,
            window.price_per_kwh,
            hours(rules.horizon)
        ),
    })
}
