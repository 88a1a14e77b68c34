//! The `optimizer` section: the plant optimizer's KPIs and coordination agent (issue #7, C4).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::SettingsError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimizerSettings {
    pub ideal_rates: Vec<IdealRate>,
    pub monitoring_factor: f64,
    pub monitoring_minutes: u32,
    pub anomaly_burst: u32,
    pub burst_window_minutes: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdealRate {
    pub machine_type: String,
    pub units_per_hour: f64,
}

impl OptimizerSettings {
    /// The service's settings (checked by `validate`).
    pub fn config(&self) -> fb_app::optimizer::Config {
        fb_app::optimizer::Config {
            ideal_rates: self
                .ideal_rates
                .iter()
                .map(|r| (r.machine_type.clone(), r.units_per_hour))
                .collect::<BTreeMap<_, _>>(),
            monitoring_factor: self.monitoring_factor,
            monitoring_for: time::Duration::minutes(i64::from(self.monitoring_minutes)),
            anomaly_burst: self.anomaly_burst as usize,
            burst_window: time::Duration::minutes(i64::from(self.burst_window_minutes)),
        }
    }

    pub(super) fn validate(&self, errors: &mut Vec<SettingsError>) {
        let mut check = |ok: bool, path: &str, message: &str| {
            if !ok {
                errors.push(SettingsError::new(path, message));
            }
        };
        for (i, r) in self.ideal_rates.iter().enumerate() {
            check(
                !r.machine_type.trim().is_empty(),
                &format!("optimizer.ideal_rates[{i}].machine_type"),
                "must not be empty",
            );
            check(
                r.units_per_hour.is_finite() && r.units_per_hour > 0.0 && r.units_per_hour <= 1e9,
                &format!("optimizer.ideal_rates[{i}].units_per_hour"),
                "must be a positive number of units per hour (at most 1e9)",
            );
        }
        check(
            self.monitoring_factor.is_finite()
                && (fb_app::detection::MIN_FACTOR..=1.0).contains(&self.monitoring_factor),
            "optimizer.monitoring_factor",
            "must be between 0.1 and 1",
        );
        check(
            (1..=10_080).contains(&self.monitoring_minutes),
            "optimizer.monitoring_minutes",
            "must be between 1 and 10080 minutes",
        );
        check(
            (1..=1000).contains(&self.anomaly_burst),
            "optimizer.anomaly_burst",
            "must be between 1 and 1000 anomalies",
        );
        check(
            (1..=1440).contains(&self.burst_window_minutes),
            "optimizer.burst_window_minutes",
            "must be between 1 and 1440 minutes",
        );
    }
}
