//! Recording API calls in the audit log. Every route passes through [`Pending`] (see
//! `routes::Guard`), so a new route cannot forget it.
//!
//! What is recorded: every call of a route that changes state (any method but GET and HEAD,
//! except the telemetry ingest, whose readings have their own provenance), and every refused
//! call (401, 403) of any route. Each record names the caller, the route's action, the target
//! (its path parameters), the outcome from the status, the op id, the client address, the HTTP
//! status and the error code; handlers may add facts with [`AuditFacts`]. Request bodies are
//! never recorded, so neither are the passwords, tokens and keys they carry.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, RawPathParams, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponseParts, Response, ResponseParts};

use fb_app::audit;
use fb_core::audit::{ANONYMOUS, AuditEntry, Outcome};
use fb_core::identity::Principal;

use crate::error::RespondedCode;
use crate::rate_limit::ClientAddress;
use crate::routes::Audited;
use crate::telemetry;

/// Facts a handler adds to its call's audit record, as a response part: a target for routes
/// whose target is not in the path (the username of a login, the id of what was created), and
/// details. Never a secret.
#[derive(Debug, Clone, Default)]
pub(crate) struct AuditFacts {
    target: Option<String>,
    details: Vec<(String, String)>,
}

impl AuditFacts {
    pub(crate) fn target(target: impl Into<String>) -> Self {
        Self {
            target: Some(target.into()),
            details: Vec::new(),
        }
    }

    pub(crate) fn detail(mut self, key: &str, value: impl Into<String>) -> Self {
        self.details.push((key.to_owned(), value.into()));
        self
    }
}

impl IntoResponseParts for AuditFacts {
    type Error = std::convert::Infallible;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        res.extensions_mut().insert(self);
        Ok(res)
    }
}

/// Where a call came from: the client address the per-address layer worked out (the socket
/// peer, or behind trusted proxies the address they report), else the peer, else `unknown`
/// (in-process calls have no connection).
pub(crate) fn client_address(request: &Request) -> String {
    if let Some(ClientAddress::Known(ip)) = request.extensions().get::<ClientAddress>() {
        return ip.to_string();
    }
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "unknown".to_owned(), |info| info.0.ip().to_string())
}

/// The outcome a status means, and whether a call with it is a refusal.
fn outcome_for(status: StatusCode) -> Outcome {
    if status.is_success() {
        Outcome::Success
    } else if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
        Outcome::Denied
    } else {
        Outcome::Failure
    }
}

/// `<noun>:<values>` from the action's noun (`user` of `user.disable`) and the path parameters'
/// values, e.g. `user:bob`, `machine:press-01`; `None` for routes without parameters.
fn target_of<'a>(action: &str, values: impl Iterator<Item = &'a str>) -> Option<String> {
    let values: Vec<&str> = values.collect();
    if values.is_empty() {
        return None;
    }
    let noun = action.split('.').next().unwrap_or(action);
    Some(format!("{noun}:{}", values.join("/")))
}

/// A call on its way through a route, to be recorded when it ends. If the call never ends
/// (time-out, client gone), dropping it records a state-changing call as interrupted: the
/// action may have happened.
pub(crate) struct Pending {
    service: Arc<audit::Service>,
    entry: Option<AuditEntry>,
    audited: Audited,
}

impl Pending {
    pub(crate) fn start(
        service: &Arc<audit::Service>,
        action: &'static str,
        audited: Audited,
        params: Option<&RawPathParams>,
        request: &Request,
    ) -> Self {
        let entry = AuditEntry {
            at: service.now(),
            actor: ANONYMOUS.to_owned(),
            action: action.to_owned(),
            target: target_of(action, params.iter().flat_map(|p| p.iter()).map(|(_, v)| v)),
            outcome: Outcome::Failure,
            op_id: telemetry::current_op_id().unwrap_or_default(),
            source: client_address(request),
            details: BTreeMap::new(),
        };
        Self {
            service: service.clone(),
            entry: Some(entry),
            audited,
        }
    }

    /// The authenticated caller.
    pub(crate) fn caller(&mut self, principal: &Principal) {
        if let Some(entry) = &mut self.entry {
            entry.actor = principal.describe();
        }
    }

    /// Records the call if its route and status call for it. The returned future waits until
    /// the record is stored (or its failure logged), so the client never sees an answer the
    /// log lacks; it holds nothing of the response.
    pub(crate) fn finish(mut self, response: &Response) -> impl Future<Output = ()> + Send + use<> {
        let record = self.conclude(response);
        async move {
            if let Some((service, entry)) = record {
                // Stored by a task of its own: if this request is dropped now, the record still
                // lands.
                let _ = tokio::spawn(async move { service.record(entry).await }).await;
            }
        }
    }

    /// The entry for a call that ended with `response`, if it is to be recorded.
    fn conclude(&mut self, response: &Response) -> Option<(Arc<audit::Service>, AuditEntry)> {
        let mut entry = self.entry.take()?;
        let status = response.status();
        let outcome = outcome_for(status);
        if outcome != Outcome::Denied && self.audited == Audited::Refusals {
            return None;
        }
        entry.at = self.service.now();
        entry.outcome = outcome;
        entry
            .details
            .insert("status".to_owned(), status.as_u16().to_string());
        if let Some(RespondedCode(code)) = response.extensions().get::<RespondedCode>() {
            entry
                .details
                .insert("error".to_owned(), code.as_str().to_owned());
        }
        if let Some(facts) = response.extensions().get::<AuditFacts>() {
            if let Some(target) = &facts.target {
                entry.target = Some(target.clone());
            }
            entry.details.extend(facts.details.iter().cloned());
        }
        Some((self.service.clone(), entry))
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(mut entry) = self.entry.take() else {
            return;
        };
        if self.audited == Audited::Refusals {
            return;
        }
        entry.at = self.service.now();
        entry.outcome = Outcome::Failure;
        entry
            .details
            .insert("interrupted".to_owned(), "true".to_owned());
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let service = self.service.clone();
                drop(runtime.spawn(async move { service.record(entry).await }));
            }
            Err(_) => tracing::error!(
                op_id = %entry.op_id,
                action = %entry.action,
                "Audit record of an interrupted call could not be written: no runtime."
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use fb_core::audit::AuditRecord;
    use fb_core::identity::{Role, Subject, UserId};
    use fb_core::ports::{AuditFilter, Storage};
    use fb_testkit::FakeClock;
    use fb_testkit::fakes::MemoryStore;

    use super::*;

    fn service() -> (Arc<audit::Service>, Storage) {
        let storage = Storage::from_backend(Arc::new(MemoryStore::new()));
        let service = audit::Service::new(storage.audit.clone(), Arc::new(FakeClock::new()));
        (Arc::new(service), storage)
    }

    async fn records(storage: &Storage) -> Vec<AuditRecord> {
        let all = AuditFilter {
            limit: 100,
            ..AuditFilter::default()
        };
        storage.audit.list_audit(&all).await.unwrap()
    }

    fn request() -> Request {
        Request::new(Body::empty())
    }

    #[test]
    fn statuses_map_to_outcomes() {
        assert_eq!(outcome_for(StatusCode::CREATED), Outcome::Success);
        assert_eq!(outcome_for(StatusCode::UNAUTHORIZED), Outcome::Denied);
        assert_eq!(outcome_for(StatusCode::FORBIDDEN), Outcome::Denied);
        assert_eq!(outcome_for(StatusCode::CONFLICT), Outcome::Failure);
        assert_eq!(
            outcome_for(StatusCode::INTERNAL_SERVER_ERROR),
            Outcome::Failure
        );
    }

    #[test]
    fn the_target_is_the_actions_noun_and_the_path_parameters() {
        assert_eq!(target_of("user.list", std::iter::empty()), None);
        assert_eq!(
            target_of("user.disable", ["bob"].into_iter()).as_deref(),
            Some("user:bob")
        );
        assert_eq!(
            target_of("machine.sensor", ["press-01", "temp"].into_iter()).as_deref(),
            Some("machine:press-01/temp")
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reads_are_recorded_only_when_refused() {
        let (service, storage) = service();
        let ok = Response::new(Body::empty());
        Pending::start(&service, "user.list", Audited::Refusals, None, &request())
            .finish(&ok)
            .await;
        assert!(records(&storage).await.is_empty());
        let mut refused = Response::new(Body::empty());
        *refused.status_mut() = StatusCode::FORBIDDEN;
        let mut pending =
            Pending::start(&service, "user.list", Audited::Refusals, None, &request());
        pending.caller(&Principal {
            role: Role::Viewer,
            sites: fb_core::identity::SiteScope::All,
            subject: Subject::User {
                id: UserId(uuid::Uuid::now_v7()),
                username: "vic".into(),
                session: None,
            },
            mfa_enrolment_pending: false,
        });
        pending.finish(&refused).await;
        let stored = records(&storage).await;
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].entry.actor, "user:vic");
        assert_eq!(stored[0].entry.outcome, Outcome::Denied);
        assert_eq!(
            stored[0].entry.source, "unknown",
            "no connection in-process"
        );
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_state_change_that_never_answers_is_recorded_as_interrupted() {
        let (service, storage) = service();
        // A call to a read that is cut off leaves nothing; a state change leaves a record.
        drop(Pending::start(
            &service,
            "user.list",
            Audited::Refusals,
            None,
            &request(),
        ));
        drop(Pending::start(
            &service,
            "user.disable",
            Audited::Always,
            None,
            &request(),
        ));
        // The record is written by a task of its own; let it run (the store answers at once).
        let mut stored = Vec::new();
        for _ in 0..100 {
            tokio::task::yield_now().await;
            stored = records(&storage).await;
            if !stored.is_empty() {
                break;
            }
        }
        assert_eq!(stored.len(), 1);
        let entry = &stored[0].entry;
        assert_eq!(
            (entry.action.as_str(), entry.actor.as_str(), entry.outcome),
            ("user.disable", ANONYMOUS, Outcome::Failure)
        );
        assert_eq!(
            entry.details.get("interrupted").map(String::as_str),
            Some("true")
        );
    }
}
