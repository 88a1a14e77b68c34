//! Alerts and anomalies.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use fb_core::{alerts, detection};

/// One fact that led to a finding: a number or a text.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Evidence {
    #[schema(example = "value")]
    pub name: String,
    #[schema(example = 97.5)]
    pub value: EvidenceValue,
}

/// A number, or a text (a zone, a sensor name; a number that is not finite, e.g. `inf` for a
/// deviation from a baseline that never varied, since JSON has no such numbers).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum EvidenceValue {
    Number(f64),
    Text(String),
}

impl From<detection::Evidence> for Evidence {
    fn from(e: detection::Evidence) -> Self {
        Self {
            name: e.name,
            value: match e.value {
                detection::EvidenceValue::Number(n) if n.is_finite() => EvidenceValue::Number(n),
                detection::EvidenceValue::Number(n) => EvidenceValue::Text(n.to_string()),
                detection::EvidenceValue::Text(t) => EvidenceValue::Text(t),
            },
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertActionBody {
    /// `user:<name>`, `api_key:<id>`, or `system`.
    pub by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub comment: Option<String>,
}

impl From<alerts::AlertAction> for AlertActionBody {
    fn from(a: alerts::AlertAction) -> Self {
        Self {
            by: a.by,
            at: a.at,
            comment: a.comment,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Alert {
    pub id: Uuid,
    pub machine: String,
    /// `overheating`, `vibration`, `pressure`, `power`, `flow`, `process`, `stuck_sensor`,
    /// `no_data`, `out_of_range`, `spike`, `low_health` or `failure_risk`.
    #[schema(example = "overheating")]
    pub kind: String,
    /// `warning` or `critical`.
    #[schema(example = "critical")]
    pub severity: String,
    /// `open`, `acknowledged` or `resolved`.
    #[schema(example = "open")]
    pub status: String,
    pub title: String,
    pub evidence: Vec<Evidence>,
    #[serde(with = "time::serde::rfc3339")]
    pub opened_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    pub occurrences: u64,
    pub acknowledged: Option<AlertActionBody>,
    pub resolved: Option<AlertActionBody>,
    pub escalation_level: u32,
    #[serde(with = "time::serde::rfc3339::option")]
    pub escalated_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<alerts::Alert> for Alert {
    fn from(a: alerts::Alert) -> Self {
        Self {
            id: a.id.0,
            machine: a.machine.0,
            kind: a.kind.as_str().to_owned(),
            severity: a.severity.as_str().to_owned(),
            status: a.status.as_str().to_owned(),
            title: a.title,
            evidence: a.evidence.into_iter().map(Evidence::from).collect(),
            opened_at: a.opened_at,
            last_seen_at: a.last_seen_at,
            occurrences: a.occurrences,
            acknowledged: a.acknowledged.map(AlertActionBody::from),
            resolved: a.resolved.map(AlertActionBody::from),
            escalation_level: a.escalation_level,
            escalated_at: a.escalated_at,
            updated_at: a.updated_at,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AlertList {
    /// Newest first.
    pub alerts: Vec<Alert>,
    /// Pass as `before` for the next page; absent on the last page.
    pub next_before: Option<Uuid>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertsParams {
    pub machine: Option<String>,
    /// `open`, `acknowledged`, `resolved`, or `active` (open or acknowledged).
    pub status: Option<String>,
    /// `warning` or `critical`.
    pub severity: Option<String>,
    pub kind: Option<String>,
    /// Page: alerts opened before this id.
    pub before: Option<Uuid>,
    /// 1 to 1000; default 100.
    pub limit: Option<usize>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AlertActionRequest {
    /// Up to 2000 characters, kept with the action.
    pub comment: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Anomaly {
    pub id: Uuid,
    pub machine: String,
    pub sensor: Option<String>,
    #[schema(example = "vibration")]
    pub kind: String,
    /// `limits`, `vibration_zone`, `statistical`, `novelty`, `multivariate`, `stuck`, `spike`,
    /// `gap` or `range`.
    #[schema(example = "statistical")]
    pub detector: String,
    pub severity: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// In [0, 1].
    pub score: f64,
    pub evidence: Vec<Evidence>,
}

impl From<detection::Anomaly> for Anomaly {
    fn from(a: detection::Anomaly) -> Self {
        Self {
            id: a.id,
            machine: a.machine.0,
            sensor: a.sensor.map(|s| s.0),
            kind: a.kind.as_str().to_owned(),
            detector: a.detector.as_str().to_owned(),
            severity: a.severity.as_str().to_owned(),
            at: a.at,
            score: a.score,
            evidence: a.evidence.into_iter().map(Evidence::from).collect(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AnomalyList {
    /// Oldest first.
    pub anomalies: Vec<Anomaly>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_after: Option<Uuid>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AnomaliesParams {
    /// Start (inclusive): RFC 3339 or Unix seconds/milliseconds. Default: 24 hours before `to`.
    pub from: Option<String>,
    /// End (exclusive). Default: now.
    pub to: Option<String>,
    /// Page: anomalies after this id.
    pub after: Option<Uuid>,
    /// 1 to 1000; default 100.
    pub limit: Option<usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by schemathesis: `value` was documented as an object while it is a number or a
    /// text; and a non-finite number would have gone out as `null`.
    #[test]
    fn evidence_values_are_json_numbers_or_texts() {
        let wire = |value| {
            let evidence = Evidence::from(detection::Evidence {
                name: "z".into(),
                value,
            });
            serde_json::to_value(evidence).unwrap()["value"].clone()
        };
        assert_eq!(
            wire(detection::EvidenceValue::Number(97.5)),
            serde_json::json!(97.5)
        );
        assert_eq!(
            wire(detection::EvidenceValue::Number(f64::INFINITY)),
            serde_json::json!("inf")
        );
        assert_eq!(
            wire(detection::EvidenceValue::Text("zone D".into())),
            serde_json::json!("zone D")
        );
    }
}
