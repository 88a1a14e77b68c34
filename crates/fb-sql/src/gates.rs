//! The approval queue and the decision log (E5) in portable SQL, stamped onto a store by
//! [`sql_gate_store!`](crate::sql_gate_store).
//!
//! Times are whole microseconds since the Unix epoch (`BIGINT`), so that the expiry
//! comparisons of the atomic answer are exact on both backends. An item's hold reasons are JSON
//! text. Answering is one conditional `UPDATE … WHERE status = 'pending' AND <time fits>
//! RETURNING`: of concurrent answers, one changes the row and the others change nothing.

use time::OffsetDateTime;
use uuid::Uuid;

use fb_core::gates::{
    ActionKind, AgentDecision, Answer, ApprovalId, ApprovalItem, ApprovalStatus, DecisionId,
    DecisionOutcome,
};
use fb_core::plant::MachineId;
use fb_core::ports::StoreError;

pub const APPROVAL_COLUMNS: &str = "id, kind, site, machine_id, summary, payload, confidence, \
     amount_minor, command, requested_by, reasons, threshold, created_at_us, expires_at_us, \
     status, answered_by, answered_at_us, answer_reason, decision_id";

pub const DECISION_COLUMNS: &str = "id, agent, site, machine_id, inputs, action, reason, \
     confidence, outcome, approval_id, ticket_id, alert_id, at_us";

pub fn micros(t: OffsetDateTime) -> i64 {
    fb_core::plant::to_micros(t)
}

fn time_of(field: &str, us: i64) -> Result<OffsetDateTime, String> {
    fb_core::audit::from_micros(us).ok_or_else(|| format!("{field} {us}"))
}

pub fn encode_reasons(reasons: &[String]) -> Result<String, StoreError> {
    serde_json::to_string(reasons).map_err(|e| StoreError::Other(Box::new(e)))
}

/// The columns of one approval row, as read, before they are checked.
pub struct ApprovalRow {
    pub id: Uuid,
    pub kind: String,
    pub site: String,
    pub machine_id: Option<String>,
    pub summary: String,
    pub payload: String,
    pub confidence: f64,
    pub amount_minor: Option<i64>,
    pub command: Option<String>,
    pub requested_by: String,
    pub reasons: String,
    pub threshold: f64,
    pub created_at_us: i64,
    pub expires_at_us: i64,
    pub status: String,
    pub answered_by: Option<String>,
    pub answered_at_us: Option<i64>,
    pub answer_reason: Option<String>,
    pub decision_id: Option<Uuid>,
}

impl ApprovalRow {
    pub fn decode(self) -> Result<ApprovalItem, StoreError> {
        let id = self.id;
        self.check()
            .map_err(|reason| StoreError::Corrupt(format!("approval {id}: {reason}")))
    }

    fn check(self) -> Result<ApprovalItem, String> {
        let status = ApprovalStatus::parse(&self.status)
            .ok_or_else(|| format!("status {:?}", self.status))?;
        let answer = match (self.answered_by, self.answered_at_us) {
            (Some(by), Some(at)) => Some(Answer {
                status,
                by,
                at: time_of("answered_at_us", at)?,
                reason: self.answer_reason,
            }),
            (None, None) => None,
            _ => return Err("half an answer".to_owned()),
        };
        Ok(ApprovalItem {
            id: ApprovalId(self.id),
            kind: ActionKind::parse(&self.kind).ok_or_else(|| format!("kind {:?}", self.kind))?,
            site: self.site,
            machine: self.machine_id.map(MachineId),
            summary: self.summary,
            payload: self.payload,
            confidence: self.confidence,
            amount_minor: self.amount_minor,
            command: self.command,
            requested_by: self.requested_by,
            reasons: serde_json::from_str(&self.reasons).map_err(|e| format!("reasons: {e}"))?,
            threshold: self.threshold,
            created_at: time_of("created_at_us", self.created_at_us)?,
            expires_at: time_of("expires_at_us", self.expires_at_us)?,
            status,
            answer,
            decision: self.decision_id.map(DecisionId),
        })
    }
}

/// The columns of one decision row, as read, before they are checked.
pub struct DecisionRow {
    pub id: Uuid,
    pub agent: String,
    pub site: String,
    pub machine_id: Option<String>,
    pub inputs: String,
    pub action: String,
    pub reason: String,
    pub confidence: f64,
    pub outcome: String,
    pub approval_id: Option<Uuid>,
    pub ticket_id: Option<Uuid>,
    pub alert_id: Option<Uuid>,
    pub at_us: i64,
}

impl DecisionRow {
    pub fn decode(self) -> Result<AgentDecision, StoreError> {
        let id = self.id;
        Ok(AgentDecision {
            id: DecisionId(self.id),
            agent: self.agent,
            site: self.site,
            machine: self.machine_id.map(MachineId),
            inputs: self.inputs,
            action: self.action,
            reason: self.reason,
            confidence: self.confidence,
            outcome: DecisionOutcome::parse(&self.outcome).ok_or_else(|| {
                StoreError::Corrupt(format!("decision {id}: outcome {:?}", self.outcome))
            })?,
            approval: self.approval_id.map(ApprovalId),
            ticket: self.ticket_id,
            alert: self.alert_id,
            at: time_of("at_us", self.at_us)
                .map_err(|reason| StoreError::Corrupt(format!("decision {id}: {reason}")))?,
        })
    }
}

/// Implements `ApprovalStore` and `DecisionStore` for `$store` (see
/// [`sql_identity_store!`](crate::sql_identity_store) for what the store must provide), whose
/// rows are `$row`.
#[macro_export]
macro_rules! sql_gate_store {
    ($store:ty, $row:ty) => {
        impl $store {
            fn decode_approval(row: &$row) -> Result<$crate::__private::fb_core::gates::ApprovalItem, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::sqlx::Row as _;
                use $crate::corrupt;
                $crate::gates::ApprovalRow {
                    id: row.try_get("id").map_err(corrupt)?,
                    kind: row.try_get("kind").map_err(corrupt)?,
                    site: row.try_get("site").map_err(corrupt)?,
                    machine_id: row.try_get("machine_id").map_err(corrupt)?,
                    summary: row.try_get("summary").map_err(corrupt)?,
                    payload: row.try_get("payload").map_err(corrupt)?,
                    confidence: row.try_get("confidence").map_err(corrupt)?,
                    amount_minor: row.try_get("amount_minor").map_err(corrupt)?,
                    command: row.try_get("command").map_err(corrupt)?,
                    requested_by: row.try_get("requested_by").map_err(corrupt)?,
                    reasons: row.try_get("reasons").map_err(corrupt)?,
                    threshold: row.try_get("threshold").map_err(corrupt)?,
                    created_at_us: row.try_get("created_at_us").map_err(corrupt)?,
                    expires_at_us: row.try_get("expires_at_us").map_err(corrupt)?,
                    status: row.try_get("status").map_err(corrupt)?,
                    answered_by: row.try_get("answered_by").map_err(corrupt)?,
                    answered_at_us: row.try_get("answered_at_us").map_err(corrupt)?,
                    answer_reason: row.try_get("answer_reason").map_err(corrupt)?,
                    decision_id: row.try_get("decision_id").map_err(corrupt)?,
                }
                .decode()
            }

            fn decode_decision(row: &$row) -> Result<$crate::__private::fb_core::gates::AgentDecision, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::sqlx::Row as _;
                use $crate::corrupt;
                $crate::gates::DecisionRow {
                    id: row.try_get("id").map_err(corrupt)?,
                    agent: row.try_get("agent").map_err(corrupt)?,
                    site: row.try_get("site").map_err(corrupt)?,
                    machine_id: row.try_get("machine_id").map_err(corrupt)?,
                    inputs: row.try_get("inputs").map_err(corrupt)?,
                    action: row.try_get("action").map_err(corrupt)?,
                    reason: row.try_get("reason").map_err(corrupt)?,
                    confidence: row.try_get("confidence").map_err(corrupt)?,
                    outcome: row.try_get("outcome").map_err(corrupt)?,
                    approval_id: row.try_get("approval_id").map_err(corrupt)?,
                    ticket_id: row.try_get("ticket_id").map_err(corrupt)?,
                    alert_id: row.try_get("alert_id").map_err(corrupt)?,
                    at_us: row.try_get("at_us").map_err(corrupt)?,
                }
                .decode()
            }
        }

        #[$crate::__private::async_trait]
        impl $crate::__private::fb_core::ports::ApprovalStore for $store {
            async fn insert_approval(
                &self,
                a: &$crate::__private::fb_core::gates::ApprovalItem,
            ) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let sql = format!(
                    "INSERT INTO approvals ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
                     $11, $12, $13, $14, $15, $16, $17, $18, $19)",
                    $crate::gates::APPROVAL_COLUMNS
                );
                let reasons = $crate::gates::encode_reasons(&a.reasons)?;
                let _turn = self.write_turn().await;
                let insert = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(a.id.0)
                    .bind(a.kind.as_str())
                    .bind(&a.site)
                    .bind(a.machine.as_ref().map(|m| m.0.as_str()))
                    .bind(&a.summary)
                    .bind(&a.payload)
                    .bind(a.confidence)
                    .bind(a.amount_minor)
                    .bind(a.command.as_deref())
                    .bind(&a.requested_by)
                    .bind(reasons)
                    .bind(a.threshold)
                    .bind($crate::gates::micros(a.created_at))
                    .bind($crate::gates::micros(a.expires_at))
                    .bind(a.status.as_str())
                    .bind(a.answer.as_ref().map(|x| x.by.as_str()))
                    .bind(a.answer.as_ref().map(|x| $crate::gates::micros(x.at)))
                    .bind(a.answer.as_ref().and_then(|x| x.reason.as_deref()))
                    .bind(a.decision.map(|d| d.0))
                    .execute(&self.pool);
                Self::timed("approvals.insert", insert).await.map(|_| ())
            }

            async fn approval(
                &self,
                id: $crate::__private::fb_core::gates::ApprovalId,
            ) -> Result<Option<$crate::__private::fb_core::gates::ApprovalItem>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!("SELECT {} FROM approvals WHERE id = $1", $crate::gates::APPROVAL_COLUMNS);
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .fetch_optional(&self.pool);
                Self::timed("approvals.get", query).await?.as_ref().map(Self::decode_approval).transpose()
            }

            async fn list_approvals(
                &self,
                f: &$crate::__private::fb_core::ports::ApprovalFilter,
            ) -> Result<Vec<$crate::__private::fb_core::gates::ApprovalItem>, $crate::__private::fb_core::ports::StoreError> {
                let (site_sql, site_names) = match $crate::site_condition(&f.sites, "site", 5) {
                    Some((condition, names)) => (format!(" AND {condition}"), names),
                    None => (String::new(), Vec::new()),
                };
                let sql = format!(
                    "SELECT {} FROM approvals WHERE (CAST($1 AS TEXT) IS NULL OR status = $1) \
                     AND (CAST($2 AS TEXT) IS NULL OR kind = $2) \
                     AND ($3 IS NULL OR id < $3){site_sql} ORDER BY id DESC LIMIT $4",
                    $crate::gates::APPROVAL_COLUMNS
                );
                let mut query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(f.status.map(|s| s.as_str()))
                    .bind(f.kind.map(|k| k.as_str()))
                    .bind(f.before.map(|b| b.0))
                    .bind(i64::try_from(f.limit).unwrap_or(i64::MAX));
                for name in site_names {
                    query = query.bind(name);
                }
                Self::timed("approvals.list", query.fetch_all(&self.pool)).await?.iter().map(Self::decode_approval).collect()
            }

            async fn answer_approval(
                &self,
                id: $crate::__private::fb_core::gates::ApprovalId,
                answer: &$crate::__private::fb_core::gates::Answer,
            ) -> Result<Option<$crate::__private::fb_core::gates::ApprovalItem>, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::fb_core::gates::ApprovalStatus;
                if answer.status == ApprovalStatus::Pending {
                    return Ok(None);
                }
                let expiry = answer.status == ApprovalStatus::Expired;
                let sql = format!(
                    "UPDATE approvals SET status = $2, answered_by = $3, answered_at_us = $4, \
                     answer_reason = $5 WHERE id = $1 AND status = 'pending' \
                     AND (($6 = TRUE AND expires_at_us <= $4) OR ($6 = FALSE AND expires_at_us > $4)) \
                     RETURNING {}",
                    $crate::gates::APPROVAL_COLUMNS
                );
                let _turn = self.write_turn().await;
                let update = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .bind(answer.status.as_str())
                    .bind(&answer.by)
                    .bind($crate::gates::micros(answer.at))
                    .bind(answer.reason.as_deref())
                    .bind(expiry)
                    .fetch_optional(&self.pool);
                Self::timed("approvals.answer", update).await?.as_ref().map(Self::decode_approval).transpose()
            }

            async fn due_approvals(
                &self,
                now: $crate::__private::OffsetDateTime,
                limit: usize,
            ) -> Result<Vec<$crate::__private::fb_core::gates::ApprovalItem>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!(
                    "SELECT {} FROM approvals WHERE status = 'pending' AND expires_at_us <= $1 \
                     ORDER BY expires_at_us, id LIMIT $2",
                    $crate::gates::APPROVAL_COLUMNS
                );
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind($crate::gates::micros(now))
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .fetch_all(&self.pool);
                Self::timed("approvals.due", query).await?.iter().map(Self::decode_approval).collect()
            }
        }

        #[$crate::__private::async_trait]
        impl $crate::__private::fb_core::ports::DecisionStore for $store {
            async fn insert_decision(
                &self,
                d: &$crate::__private::fb_core::gates::AgentDecision,
            ) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let sql = format!(
                    "INSERT INTO agent_decisions ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, \
                     $10, $11, $12, $13)",
                    $crate::gates::DECISION_COLUMNS
                );
                let _turn = self.write_turn().await;
                let insert = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(d.id.0)
                    .bind(&d.agent)
                    .bind(&d.site)
                    .bind(d.machine.as_ref().map(|m| m.0.as_str()))
                    .bind(&d.inputs)
                    .bind(&d.action)
                    .bind(&d.reason)
                    .bind(d.confidence)
                    .bind(d.outcome.as_str())
                    .bind(d.approval.map(|a| a.0))
                    .bind(d.ticket)
                    .bind(d.alert)
                    .bind($crate::gates::micros(d.at))
                    .execute(&self.pool);
                Self::timed("decisions.insert", insert).await.map(|_| ())
            }

            async fn decision(
                &self,
                id: $crate::__private::fb_core::gates::DecisionId,
            ) -> Result<Option<$crate::__private::fb_core::gates::AgentDecision>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!("SELECT {} FROM agent_decisions WHERE id = $1", $crate::gates::DECISION_COLUMNS);
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .fetch_optional(&self.pool);
                Self::timed("decisions.get", query).await?.as_ref().map(Self::decode_decision).transpose()
            }

            async fn list_decisions(
                &self,
                f: &$crate::__private::fb_core::ports::DecisionFilter,
            ) -> Result<Vec<$crate::__private::fb_core::gates::AgentDecision>, $crate::__private::fb_core::ports::StoreError> {
                let (site_sql, site_names) = match $crate::site_condition(&f.sites, "site", 6) {
                    Some((condition, names)) => (format!(" AND {condition}"), names),
                    None => (String::new(), Vec::new()),
                };
                let sql = format!(
                    "SELECT {} FROM agent_decisions WHERE (CAST($1 AS TEXT) IS NULL OR agent = $1) \
                     AND (CAST($2 AS BIGINT) IS NULL OR at_us >= $2) \
                     AND (CAST($3 AS BIGINT) IS NULL OR at_us < $3) \
                     AND ($4 IS NULL OR id < $4){site_sql} ORDER BY id DESC LIMIT $5",
                    $crate::gates::DECISION_COLUMNS
                );
                let mut query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(f.agent.as_deref())
                    .bind(f.from.map($crate::gates::micros))
                    .bind(f.to.map($crate::gates::micros))
                    .bind(f.before.map(|b| b.0))
                    .bind(i64::try_from(f.limit).unwrap_or(i64::MAX));
                for name in site_names {
                    query = query.bind(name);
                }
                Self::timed("decisions.list", query.fetch_all(&self.pool)).await?.iter().map(Self::decode_decision).collect()
            }
        }
    };
}
