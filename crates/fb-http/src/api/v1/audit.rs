//! `/api/v1/audit`: the audit log's records.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use fb_core::audit;

/// One audited action.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditRecord {
    /// Position in the chain: 1, 2, 3 … without gaps.
    pub seq: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// `user:<name>`, `api_key:<id>`, `system`, `cli:<os user>` or `anonymous`.
    #[schema(example = "user:admin")]
    pub actor: String,
    /// A stable dotted name, e.g. `user.disable`, `auth.login`.
    #[schema(example = "user.disable")]
    pub action: String,
    /// What was acted on, e.g. `user:bob`, `machine:press-01`.
    #[schema(example = "user:bob")]
    pub target: Option<String>,
    /// `success`, `failure` or `denied`.
    #[schema(example = "success")]
    pub outcome: String,
    /// The op id of the call (its `x-request-id`), to find its log lines.
    pub op_id: String,
    /// Client address, `local` for the command line, or `unknown`.
    pub source: String,
    /// Non-secret facts: `status`, `error` (the error code), ids.
    pub details: BTreeMap<String, String>,
    /// Hex SHA-256 of the record before (all zeros for the first).
    pub prev_hash: String,
    /// Hex SHA-256 of this record, chained to the one before.
    pub hash: String,
}

impl From<audit::AuditRecord> for AuditRecord {
    fn from(r: audit::AuditRecord) -> Self {
        let e = r.entry;
        Self {
            seq: r.seq,
            at: e.at,
            actor: e.actor,
            action: e.action,
            target: e.target,
            outcome: e.outcome.as_str().to_owned(),
            op_id: e.op_id,
            source: e.source,
            details: e.details,
            prev_hash: r.prev_hash.to_hex(),
            hash: r.hash.to_hex(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditList {
    /// In the order asked for.
    pub records: Vec<AuditRecord>,
    /// Oldest first: pass as `after` for the next page; absent on the last page.
    pub next_after: Option<u64>,
    /// Newest first: pass as `before` for the next page; absent on the last page.
    pub next_before: Option<u64>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Exact actor, e.g. `user:admin`, `anonymous`.
    pub actor: Option<String>,
    /// Exact action, e.g. `auth.login`.
    pub action: Option<String>,
    /// Exact target, e.g. `user:bob`.
    pub target: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: Option<String>,
    /// Start (inclusive): RFC 3339 or Unix seconds/milliseconds.
    pub from: Option<String>,
    /// End (exclusive).
    pub to: Option<String>,
    /// `asc` (oldest first, the default: follow the log with `after`) or `desc` (newest first).
    pub order: Option<String>,
    /// Page: records with a greater seq.
    pub after: Option<u64>,
    /// Page: records with a smaller seq.
    pub before: Option<u64>,
    /// 1 to 1000; default 100.
    pub limit: Option<usize>,
}
