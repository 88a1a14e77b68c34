//! The `energy` section: emission factors, tariff windows, the baseline and the
//! recommendation rules (issue #7, C3).

use std::collections::BTreeMap;

use serde::Deserialize;
use time::{Duration, Weekday};

use fb_core::energy::{EmissionFactors, RecommendRules, Tariff, TariffWindow, TimeOfDay};

use super::SettingsError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnergySettings {
    pub enabled: bool,
    pub emission_factor: f64,
    pub site_emission_factors: Vec<SiteFactor>,
    pub baseline_days: u32,
    pub tariff: TariffSettings,
    pub recommendations: RecommendationSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteFactor {
    pub site: String,
    pub kg_per_kwh: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TariffSettings {
    pub off_peak_price: f64,
    pub windows: Vec<WindowSettings>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSettings {
    pub name: String,
    pub peak: bool,
    pub days: Vec<String>,
    pub start: String,
    pub end: String,
    pub price_per_kwh: f64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecommendationSettings {
    pub every_secs: u64,
    pub lookback_minutes: u32,
    pub idle_max_kw: f64,
    pub idle_min_minutes: u32,
    pub standby_kw: f64,
    pub horizon_minutes: u32,
    pub efficiency_margin: f64,
    pub non_critical_types: Vec<String>,
    pub expire_after_minutes: u32,
}

fn weekday(s: &str) -> Option<Weekday> {
    Some(match s {
        "mon" => Weekday::Monday,
        "tue" => Weekday::Tuesday,
        "wed" => Weekday::Wednesday,
        "thu" => Weekday::Thursday,
        "fri" => Weekday::Friday,
        "sat" => Weekday::Saturday,
        "sun" => Weekday::Sunday,
        _ => return None,
    })
}

fn price_ok(p: f64) -> bool {
    p.is_finite() && (0.0..=1000.0).contains(&p)
}

impl EnergySettings {
    pub fn emission_factors(&self) -> EmissionFactors {
        EmissionFactors {
            default: self.emission_factor,
            sites: self
                .site_emission_factors
                .iter()
                .map(|f| (f.site.clone(), f.kg_per_kwh))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    /// The tariff; windows that do not parse are left out (`validate` names them).
    pub fn tariff(&self) -> Tariff {
        Tariff {
            off_peak_price: self.tariff.off_peak_price,
            windows: self
                .tariff
                .windows
                .iter()
                .filter_map(|w| {
                    Some(TariffWindow {
                        name: w.name.clone(),
                        peak: w.peak,
                        days: w.days.iter().map(|d| weekday(d)).collect::<Option<_>>()?,
                        start: TimeOfDay::parse(&w.start)?,
                        end: TimeOfDay::parse(&w.end)?,
                        price_per_kwh: w.price_per_kwh,
                    })
                })
                .collect(),
        }
    }

    pub fn rules(&self) -> RecommendRules {
        let r = &self.recommendations;
        RecommendRules {
            idle_max_kw: r.idle_max_kw,
            idle_min_minutes: r.idle_min_minutes,
            standby_kw: r.standby_kw,
            horizon: Duration::minutes(i64::from(r.horizon_minutes)),
            efficiency_margin: r.efficiency_margin,
            non_critical_types: r.non_critical_types.clone(),
        }
    }

    pub(super) fn validate(&self, errors: &mut Vec<SettingsError>) {
        let mut check = |ok: bool, path: &str, message: &str| {
            if !ok {
                errors.push(SettingsError::new(path, message));
            }
        };
        let factor_ok = |f: f64| f.is_finite() && (0.0..=10.0).contains(&f);
        check(
            factor_ok(self.emission_factor),
            "energy.emission_factor",
            "must be between 0 and 10 (kg CO2 per kWh)",
        );
        for (i, f) in self.site_emission_factors.iter().enumerate() {
            check(
                !f.site.trim().is_empty(),
                &format!("energy.site_emission_factors[{i}].site"),
                "must not be empty",
            );
            check(
                factor_ok(f.kg_per_kwh),
                &format!("energy.site_emission_factors[{i}].kg_per_kwh"),
                "must be between 0 and 10 (kg CO2 per kWh)",
            );
        }
        check(
            (1..=90).contains(&self.baseline_days),
            "energy.baseline_days",
            "must be between 1 and 90",
        );
        check(
            price_ok(self.tariff.off_peak_price),
            "energy.tariff.off_peak_price",
            "must be between 0 and 1000 (per kWh)",
        );
        for (i, w) in self.tariff.windows.iter().enumerate() {
            let at = |key: &str| format!("energy.tariff.windows[{i}].{key}");
            check(!w.name.trim().is_empty(), &at("name"), "must not be empty");
            for (j, d) in w.days.iter().enumerate() {
                check(
                    weekday(d).is_some(),
                    &format!("energy.tariff.windows[{i}].days[{j}]"),
                    "must be one of mon, tue, wed, thu, fri, sat, sun",
                );
            }
            let start = TimeOfDay::parse(&w.start);
            let end = TimeOfDay::parse(&w.end);
            check(
                start.is_some(),
                &at("start"),
                "must be a time of day HH:MM (UTC)",
            );
            check(
                end.is_some(),
                &at("end"),
                "must be a time of day HH:MM (UTC), or 24:00",
            );
            check(
                start.is_none() || start != end,
                &at("end"),
                "must differ from start (an end before the start crosses midnight)",
            );
            check(
                price_ok(w.price_per_kwh),
                &at("price_per_kwh"),
                "must be between 0 and 1000 (per kWh)",
            );
        }
        let r = &self.recommendations;
        check(
            (1..=86_400).contains(&r.every_secs),
            "energy.recommendations.every_secs",
            "must be between 1 and 86400",
        );
        check(
            (1..=1440).contains(&r.lookback_minutes),
            "energy.recommendations.lookback_minutes",
            "must be between 1 and 1440",
        );
        check(
            r.idle_max_kw.is_finite() && r.idle_max_kw > 0.0,
            "energy.recommendations.idle_max_kw",
            "must be a number above 0 (kW)",
        );
        check(
            (1..=r.lookback_minutes.max(1)).contains(&r.idle_min_minutes),
            "energy.recommendations.idle_min_minutes",
            "must be between 1 and energy.recommendations.lookback_minutes",
        );
        check(
            r.standby_kw.is_finite() && (0.0..r.idle_max_kw).contains(&r.standby_kw),
            "energy.recommendations.standby_kw",
            "must be at least 0 and below energy.recommendations.idle_max_kw (kW)",
        );
        check(
            (1..=10_080).contains(&r.horizon_minutes),
            "energy.recommendations.horizon_minutes",
            "must be between 1 and 10080",
        );
        check(
            r.efficiency_margin.is_finite() && (0.0..=10.0).contains(&r.efficiency_margin),
            "energy.recommendations.efficiency_margin",
            "must be between 0 and 10 (0.2 = 20 % above the median)",
        );
        for (i, t) in r.non_critical_types.iter().enumerate() {
            check(
                !t.trim().is_empty(),
                &format!("energy.recommendations.non_critical_types[{i}]"),
                "must not be empty",
            );
        }
        check(
            (1..=10_080).contains(&r.expire_after_minutes),
            "energy.recommendations.expire_after_minutes",
            "must be between 1 and 10080",
        );
    }
}
