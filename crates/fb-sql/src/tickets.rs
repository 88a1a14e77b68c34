//! Maintenance tickets in portable SQL, stamped onto a store by
//! [`sql_ticket_store!`](crate::sql_ticket_store).
//!
//! A ticket is one row; its repair steps, history and linked alert ids are JSON text in it,
//! read and written with the ticket. `ticket_alerts` holds one row per linked alert (the alert
//! is its key), so that an alert belongs to one ticket and the ticket of an alert is one
//! look-up. One active ticket per machine and failure type is a partial unique index
//! (`tickets_one_active`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use fb_core::alerts::AlertId;
use fb_core::maintenance::{
    FailureType, RepairStep, Ticket, TicketAction, TicketId, TicketPriority, TicketStatus,
    Transition,
};
use fb_core::plant::MachineId;
use fb_core::ports::StoreError;

pub const TICKET_COLUMNS: &str = "id, machine_id, site, title, description, failure_type, \
     priority, status, assignee, reporter, steps, cost_estimate_minor, actual_cost_minor, \
     alert_ids, created_at, started_at, resolved_at, closed_at, history, version, updated_at";

/// A repair step as stored (JSON): the wire shape written out here, so that a change to the
/// domain type cannot change stored data by accident.
#[derive(Serialize, Deserialize)]
struct StoredStep {
    text: String,
    done: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    done_by: Option<String>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    done_at: Option<OffsetDateTime>,
}

/// A transition as stored (JSON).
#[derive(Serialize, Deserialize)]
struct StoredAction {
    action: String,
    by: String,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    comment: Option<String>,
}

fn to_json<T: Serialize>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Other(Box::new(e)))
}

/// The JSON columns of a ticket: steps, history, alert ids.
pub fn encode_lists(t: &Ticket) -> Result<[String; 3], StoreError> {
    let steps: Vec<StoredStep> = t
        .steps
        .iter()
        .map(|s| StoredStep {
            text: s.text.clone(),
            done: s.done,
            done_by: s.done_by.clone(),
            done_at: s.done_at,
        })
        .collect();
    let history: Vec<StoredAction> = t
        .history
        .iter()
        .map(|a| StoredAction {
            action: a.action.as_str().to_owned(),
            by: a.by.clone(),
            at: a.at,
            comment: a.comment.clone(),
        })
        .collect();
    Ok([
        to_json(&steps)?,
        to_json(&history)?,
        encode_alert_ids(&t.alerts)?,
    ])
}

pub fn encode_alert_ids(alerts: &[AlertId]) -> Result<String, StoreError> {
    to_json(&alerts.iter().map(|a| a.0).collect::<Vec<Uuid>>())
}

pub fn decode_alert_ids(json: &str) -> Result<Vec<AlertId>, StoreError> {
    serde_json::from_str::<Vec<Uuid>>(json)
        .map(|ids| ids.into_iter().map(AlertId).collect())
        .map_err(|e| StoreError::Corrupt(format!("ticket alert_ids: {e}")))
}

/// The stored alert ids followed by those of `ticket` that are new: links are never removed.
pub fn merged_alerts(stored: &[AlertId], ticket: &Ticket) -> (Vec<AlertId>, Vec<AlertId>) {
    let new: Vec<AlertId> = ticket
        .alerts
        .iter()
        .filter(|a| !stored.contains(a))
        .copied()
        .collect();
    let mut all = stored.to_vec();
    all.extend(&new);
    (all, new)
}

/// The columns of one ticket row, as read, before they are checked.
pub struct TicketRow {
    pub id: Uuid,
    pub machine_id: String,
    pub site: String,
    pub title: String,
    pub description: String,
    pub failure_type: String,
    pub priority: String,
    pub status: String,
    pub assignee: Option<String>,
    pub reporter: String,
    pub steps: String,
    pub cost_estimate_minor: Option<i64>,
    pub actual_cost_minor: Option<i64>,
    pub alert_ids: String,
    pub created_at: OffsetDateTime,
    pub started_at: Option<OffsetDateTime>,
    pub resolved_at: Option<OffsetDateTime>,
    pub closed_at: Option<OffsetDateTime>,
    pub history: String,
    pub version: i64,
    pub updated_at: OffsetDateTime,
}

impl TicketRow {
    pub fn decode(self) -> Result<Ticket, StoreError> {
        let id = self.id;
        self.check()
            .map_err(|reason| StoreError::Corrupt(format!("ticket {id}: {reason}")))
    }

    fn check(self) -> Result<Ticket, String> {
        let steps: Vec<StoredStep> =
            serde_json::from_str(&self.steps).map_err(|e| format!("steps: {e}"))?;
        let history: Vec<StoredAction> =
            serde_json::from_str(&self.history).map_err(|e| format!("history: {e}"))?;
        let history = history
            .into_iter()
            .map(|a| {
                Ok(TicketAction {
                    action: Transition::parse(&a.action)
                        .ok_or_else(|| format!("transition {:?}", a.action))?,
                    by: a.by,
                    at: a.at,
                    comment: a.comment,
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Ticket {
            id: TicketId(self.id),
            machine: MachineId(self.machine_id),
            site: self.site,
            title: self.title,
            description: self.description,
            failure_type: FailureType::parse(&self.failure_type)
                .ok_or_else(|| format!("failure type {:?}", self.failure_type))?,
            priority: TicketPriority::parse(&self.priority)
                .ok_or_else(|| format!("priority {:?}", self.priority))?,
            status: TicketStatus::parse(&self.status)
                .ok_or_else(|| format!("status {:?}", self.status))?,
            assignee: self.assignee,
            reporter: self.reporter,
            steps: steps
                .into_iter()
                .map(|s| RepairStep {
                    text: s.text,
                    done: s.done,
                    done_by: s.done_by,
                    done_at: s.done_at,
                })
                .collect(),
            cost_estimate_minor: self.cost_estimate_minor,
            actual_cost_minor: self.actual_cost_minor,
            alerts: decode_alert_ids(&self.alert_ids).map_err(|e| e.to_string())?,
            created_at: self.created_at,
            started_at: self.started_at,
            resolved_at: self.resolved_at,
            closed_at: self.closed_at,
            history,
            version: u64::try_from(self.version)
                .map_err(|_| format!("version {}", self.version))?,
            updated_at: self.updated_at,
        })
    }
}

/// Implements `TicketStore` for `$store` (see [`sql_identity_store!`](crate::sql_identity_store)
/// for what the store must provide), whose rows are `$row`. The backend reports a violation of
/// `tickets_one_active` as `Conflict { constraint: "ticket_active" }` and one of
/// `ticket_alerts`' key as `Conflict { constraint: "ticket_alert" }`.
#[macro_export]
macro_rules! sql_ticket_store {
    ($store:ty, $row:ty) => {
        impl $store {
            fn decode_ticket(row: &$row) -> Result<$crate::__private::fb_core::maintenance::Ticket, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::sqlx::Row as _;
                use $crate::corrupt;
                $crate::tickets::TicketRow {
                    id: row.try_get("id").map_err(corrupt)?,
                    machine_id: row.try_get("machine_id").map_err(corrupt)?,
                    site: row.try_get("site").map_err(corrupt)?,
                    title: row.try_get("title").map_err(corrupt)?,
                    description: row.try_get("description").map_err(corrupt)?,
                    failure_type: row.try_get("failure_type").map_err(corrupt)?,
                    priority: row.try_get("priority").map_err(corrupt)?,
                    status: row.try_get("status").map_err(corrupt)?,
                    assignee: row.try_get("assignee").map_err(corrupt)?,
                    reporter: row.try_get("reporter").map_err(corrupt)?,
                    steps: row.try_get("steps").map_err(corrupt)?,
                    cost_estimate_minor: row.try_get("cost_estimate_minor").map_err(corrupt)?,
                    actual_cost_minor: row.try_get("actual_cost_minor").map_err(corrupt)?,
                    alert_ids: row.try_get("alert_ids").map_err(corrupt)?,
                    created_at: row.try_get("created_at").map_err(corrupt)?,
                    started_at: row.try_get("started_at").map_err(corrupt)?,
                    resolved_at: row.try_get("resolved_at").map_err(corrupt)?,
                    closed_at: row.try_get("closed_at").map_err(corrupt)?,
                    history: row.try_get("history").map_err(corrupt)?,
                    version: row.try_get("version").map_err(corrupt)?,
                    updated_at: row.try_get("updated_at").map_err(corrupt)?,
                }
                .decode()
            }

            /// Links `alerts` to the ticket inside the caller's transaction; an alert linked
            /// already (to any ticket) violates the key.
            async fn link_ticket_alerts(
                tx: &mut $crate::__private::sqlx::Transaction<'static, <$row as $crate::__private::sqlx::Row>::Database>,
                ticket: $crate::__private::fb_core::maintenance::TicketId,
                alerts: &[$crate::__private::fb_core::alerts::AlertId],
            ) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                for alert in alerts {
                    let link = $crate::__private::sqlx::query(
                        "INSERT INTO ticket_alerts (alert_id, ticket_id) VALUES ($1, $2)",
                    )
                    .bind(alert.0)
                    .bind(ticket.0)
                    .execute(&mut **tx);
                    Self::timed("tickets.link_alert", link).await?;
                }
                Ok(())
            }
        }

        #[$crate::__private::async_trait]
        impl $crate::__private::fb_core::ports::TicketStore for $store {
            async fn insert_ticket(
                &self,
                t: &$crate::__private::fb_core::maintenance::Ticket,
            ) -> Result<(), $crate::__private::fb_core::ports::StoreError> {
                let [steps, history, alert_ids] = $crate::tickets::encode_lists(t)?;
                let _turn = self.write_turn().await;
                let mut tx = Self::timed("tickets.begin", self.pool.begin()).await?;
                let sql = format!(
                    "INSERT INTO tickets ({}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
                     $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)",
                    $crate::TICKET_COLUMNS
                );
                let insert = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(t.id.0)
                    .bind(&t.machine.0)
                    .bind(&t.site)
                    .bind(&t.title)
                    .bind(&t.description)
                    .bind(t.failure_type.as_str())
                    .bind(t.priority.as_str())
                    .bind(t.status.as_str())
                    .bind(t.assignee.as_deref())
                    .bind(&t.reporter)
                    .bind(steps)
                    .bind(t.cost_estimate_minor)
                    .bind(t.actual_cost_minor)
                    .bind(alert_ids)
                    .bind(t.created_at)
                    .bind(t.started_at)
                    .bind(t.resolved_at)
                    .bind(t.closed_at)
                    .bind(history)
                    .bind(i64::try_from(t.version).unwrap_or(i64::MAX))
                    .bind(t.updated_at)
                    .execute(&mut *tx);
                Self::timed("tickets.insert", insert).await?;
                Self::link_ticket_alerts(&mut tx, t.id, &t.alerts).await?;
                Self::timed("tickets.commit", tx.commit()).await
            }

            async fn update_ticket(
                &self,
                t: &$crate::__private::fb_core::maintenance::Ticket,
                expected_version: u64,
            ) -> Result<bool, $crate::__private::fb_core::ports::StoreError> {
                use $crate::__private::sqlx::Row as _;
                let expected = i64::try_from(expected_version).unwrap_or(i64::MAX);
                let [steps, history, _] = $crate::tickets::encode_lists(t)?;
                let _turn = self.write_turn().await;
                let mut tx = Self::timed("tickets.begin", self.pool.begin()).await?;
                // A no-op update first: it takes the row (PostgreSQL) or the database's write
                // lock (SQLite) before anything is read, so the stored links cannot go stale.
                let lock = $crate::__private::sqlx::query(
                    "UPDATE tickets SET version = version WHERE id = $1 RETURNING version, alert_ids",
                )
                .bind(t.id.0)
                .fetch_optional(&mut *tx);
                let Some(stored) = Self::timed("tickets.lock", lock).await? else {
                    return Ok(false);
                };
                let version: i64 = stored.try_get("version").map_err($crate::corrupt)?;
                if version != expected {
                    return Ok(false);
                }
                let stored_alerts: String = stored.try_get("alert_ids").map_err($crate::corrupt)?;
                let (alerts, new_alerts) = $crate::tickets::merged_alerts(
                    &$crate::tickets::decode_alert_ids(&stored_alerts)?,
                    t,
                );
                let update = $crate::__private::sqlx::query(
                    "UPDATE tickets SET machine_id = $2, site = $3, title = $4, description = $5, \
                     failure_type = $6, priority = $7, status = $8, assignee = $9, reporter = $10, \
                     steps = $11, cost_estimate_minor = $12, actual_cost_minor = $13, alert_ids = $14, \
                     created_at = $15, started_at = $16, resolved_at = $17, closed_at = $18, \
                     history = $19, version = $20, updated_at = $21 WHERE id = $1 AND version = $22",
                )
                .bind(t.id.0)
                .bind(&t.machine.0)
                .bind(&t.site)
                .bind(&t.title)
                .bind(&t.description)
                .bind(t.failure_type.as_str())
                .bind(t.priority.as_str())
                .bind(t.status.as_str())
                .bind(t.assignee.as_deref())
                .bind(&t.reporter)
                .bind(steps)
                .bind(t.cost_estimate_minor)
                .bind(t.actual_cost_minor)
                .bind($crate::tickets::encode_alert_ids(&alerts)?)
                .bind(t.created_at)
                .bind(t.started_at)
                .bind(t.resolved_at)
                .bind(t.closed_at)
                .bind(history)
                .bind(i64::try_from(t.version).unwrap_or(i64::MAX))
                .bind(t.updated_at)
                .bind(expected)
                .execute(&mut *tx);
                if Self::timed("tickets.update", update).await?.rows_affected() != 1 {
                    return Ok(false);
                }
                Self::link_ticket_alerts(&mut tx, t.id, &new_alerts).await?;
                Self::timed("tickets.commit", tx.commit()).await?;
                Ok(true)
            }

            async fn ticket(
                &self,
                id: $crate::__private::fb_core::maintenance::TicketId,
            ) -> Result<Option<$crate::__private::fb_core::maintenance::Ticket>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!("SELECT {} FROM tickets WHERE id = $1", $crate::TICKET_COLUMNS);
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(id.0)
                    .fetch_optional(&self.pool);
                Self::timed("tickets.get", query).await?.as_ref().map(Self::decode_ticket).transpose()
            }

            async fn list_tickets(
                &self,
                f: &$crate::__private::fb_core::ports::TicketFilter,
            ) -> Result<Vec<$crate::__private::fb_core::maintenance::Ticket>, $crate::__private::fb_core::ports::StoreError> {
                let (site_sql, site_names) = match $crate::site_condition(&f.sites, "site", 8) {
                    Some((condition, names)) => (format!(" AND {condition}"), names),
                    None => (String::new(), Vec::new()),
                };
                let sql = format!(
                    "SELECT {} FROM tickets WHERE (CAST($1 AS TEXT) IS NULL OR machine_id = $1) \
                     AND (CAST($2 AS TEXT) IS NULL OR status = $2) \
                     AND ($3 = FALSE OR status IN ('open', 'in_progress')) \
                     AND (CAST($4 AS TEXT) IS NULL OR priority = $4) \
                     AND (CAST($5 AS TEXT) IS NULL OR failure_type = $5) \
                     AND ($6 IS NULL OR id < $6){site_sql} ORDER BY id DESC LIMIT $7",
                    $crate::TICKET_COLUMNS
                );
                let mut query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(f.machine.as_ref().map(|m| m.0.as_str()))
                    .bind(f.status.map(|s| s.as_str()))
                    .bind(f.active_only && f.status.is_none())
                    .bind(f.priority.map(|p| p.as_str()))
                    .bind(f.failure_type.map(|t| t.as_str()))
                    .bind(f.before.map(|b| b.0))
                    .bind(i64::try_from(f.limit).unwrap_or(i64::MAX));
                for name in site_names {
                    query = query.bind(name);
                }
                Self::timed("tickets.list", query.fetch_all(&self.pool)).await?.iter().map(Self::decode_ticket).collect()
            }

            async fn ticket_for_alert(
                &self,
                alert: $crate::__private::fb_core::alerts::AlertId,
            ) -> Result<Option<$crate::__private::fb_core::maintenance::Ticket>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!(
                    "SELECT {} FROM tickets WHERE id = (SELECT ticket_id FROM ticket_alerts WHERE alert_id = $1)",
                    $crate::TICKET_COLUMNS
                );
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(alert.0)
                    .fetch_optional(&self.pool);
                Self::timed("tickets.for_alert", query).await?.as_ref().map(Self::decode_ticket).transpose()
            }

            async fn machine_tickets(
                &self,
                machine: &$crate::__private::fb_core::plant::MachineId,
                from: $crate::__private::OffsetDateTime,
                to: $crate::__private::OffsetDateTime,
                limit: usize,
            ) -> Result<Vec<$crate::__private::fb_core::maintenance::Ticket>, $crate::__private::fb_core::ports::StoreError> {
                let sql = format!(
                    "SELECT {} FROM tickets WHERE machine_id = $1 AND created_at < $3 \
                     AND (resolved_at IS NULL OR resolved_at >= $2) ORDER BY created_at, id LIMIT $4",
                    $crate::TICKET_COLUMNS
                );
                let query = $crate::__private::sqlx::query($crate::__private::sqlx::AssertSqlSafe(sql))
                    .bind(&machine.0)
                    .bind(from)
                    .bind(to)
                    .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                    .fetch_all(&self.pool);
                Self::timed("tickets.machine", query).await?.iter().map(Self::decode_ticket).collect()
            }
        }
    };
}
