//! The live event stream (`GET /api/v1/events`, WebSocket): what may be open at once, who may
//! see which event, and the sessions themselves ([`session`]) with their bounded send queue
//! ([`outbox`]).
//!
//! Every stream is admitted here before its handshake is answered, so a stream over a limit is
//! refused with 429, never accepted and then dropped. Metrics: `fb_ws_connections` (open
//! streams) and `fb_ws_dropped_total{reason}` (streams the server ended for cause).

mod outbox;
mod session;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

use fb_core::Code;
use fb_core::identity::{Permission, Principal};

use crate::error::ApiError;
use crate::rate_limit::principal_key;

pub(crate) use session::Session;

/// Limits of the event stream (`events.*` settings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventLimits {
    /// Open streams of one user or API key.
    pub max_per_principal: usize,
    /// Open streams of this node.
    pub max_connections: usize,
    /// Largest message a client may send.
    pub max_client_message_bytes: usize,
    /// Messages waiting for one client, in bytes, before it counts as too slow.
    pub max_queued_bytes: usize,
    /// How often the server pings (and checks the credential again).
    pub ping_interval: Duration,
}

/// Most machines one stream subscribes to: each costs a look at every stored batch.
pub(crate) const MAX_SUBSCRIBED_MACHINES: usize = 100;

/// The open streams of this node.
pub(crate) struct EventStreams {
    limits: EventLimits,
    open: Mutex<OpenStreams>,
    closing: watch::Sender<bool>,
}

#[derive(Default)]
struct OpenStreams {
    total: usize,
    per_principal: HashMap<String, usize>,
}

impl EventStreams {
    pub(crate) fn new(limits: EventLimits) -> Self {
        Self {
            limits,
            open: Mutex::new(OpenStreams::default()),
            closing: watch::Sender::new(false),
        }
    }

    pub(crate) fn limits(&self) -> &EventLimits {
        &self.limits
    }

    /// Reserves a place for one more stream of `principal`, or refuses with 429
    /// `too_many_connections` naming the limit. The place is freed when the permit drops.
    pub(crate) fn admit(self: &Arc<Self>, principal: &Principal) -> Result<StreamPermit, ApiError> {
        let key = principal_key(principal);
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.limits.max_connections {
            return Err(ApiError::new(
                Code::too_many_connections,
                format!(
                    "the server has {} event streams open, its limit (events.max_connections); \
                     retry later",
                    open.total
                ),
            ));
        }
        let mine = open.per_principal.entry(key.clone()).or_default();
        if *mine >= self.limits.max_per_principal {
            return Err(ApiError::new(
                Code::too_many_connections,
                format!(
                    "this user or API key has {} event streams open, its limit \
                     (events.max_connections_per_principal); close one first",
                    *mine
                ),
            ));
        }
        *mine += 1;
        open.total += 1;
        metrics::gauge!("fb_ws_connections").set(open.total as f64);
        Ok(StreamPermit {
            streams: self.clone(),
            key,
        })
    }

    /// Tells every stream to close (1001, going away): the node is shutting down.
    pub(crate) fn close_all(&self) {
        self.closing.send_replace(true);
    }

    fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }
}

/// One admitted stream's place; dropping it frees the place.
pub(crate) struct StreamPermit {
    streams: Arc<EventStreams>,
    key: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut open = self
            .streams
            .open
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        open.total = open.total.saturating_sub(1);
        if let Some(mine) = open.per_principal.get_mut(&self.key) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                open.per_principal.remove(&self.key);
            }
        }
        metrics::gauge!("fb_ws_connections").set(open.total as f64);
    }
}

/// Whether `principal` may see an event about a machine of `site` (`None`: the machine is
/// gone or unknown) on the event stream. Every event of every stream passes here and nowhere
/// else: the permission, then the site scope — a scoped caller sees nothing of machines outside
/// its sites, nor of machines that no longer exist.
pub(crate) fn may_see(principal: &Principal, site: Option<&str>) -> bool {
    principal.can(Permission::PlantRead)
        && (principal.sites.is_all() || site.is_some_and(|s| principal.can_access_site(s)))
}

#[cfg(test)]
mod tests {
    use fb_core::identity::{Role, SiteScope, Subject, UserId};

    use super::*;

    fn user(name: &str, role: Role) -> Principal {
        Principal {
            role,
            sites: SiteScope::All,
            subject: Subject::User {
                id: UserId(uuid::Uuid::now_v7()),
                username: name.into(),
                session: None,
            },
            mfa_enrolment_pending: false,
        }
    }

    #[test]
    fn events_are_seen_with_the_permission_and_within_the_sites() {
        let mut operator = user("otto", Role::Operator);
        assert!(may_see(&operator, Some("north")));
        assert!(
            may_see(&operator, None),
            "callers of all sites see everything"
        );
        operator.sites = SiteScope::named("sites", &["north"]).unwrap();
        assert!(may_see(&operator, Some("north")));
        assert!(!may_see(&operator, Some("south")));
        assert!(!may_see(&operator, None));
        operator.mfa_enrolment_pending = true;
        assert!(!may_see(&operator, Some("north")));
    }

    fn limits(per_principal: usize, total: usize) -> EventLimits {
        EventLimits {
            max_per_principal: per_principal,
            max_connections: total,
            max_client_message_bytes: 1024,
            max_queued_bytes: 1024,
            ping_interval: Duration::from_secs(30),
        }
    }

    #[test]
    fn streams_are_counted_per_principal_and_in_all_and_freed_on_drop() {
        let streams = Arc::new(EventStreams::new(limits(2, 3)));
        let (ann, bob) = (user("ann", Role::Viewer), user("bob", Role::Viewer));
        let first = streams.admit(&ann).unwrap();
        let _second = streams.admit(&ann).unwrap();
        let refused = streams.admit(&ann).err().unwrap();
        assert_eq!(refused.code(), Code::too_many_connections);
        assert!(refused.message().contains("max_connections_per_principal"));
        let _bob = streams.admit(&bob).unwrap();
        // The server is full now, for everyone.
        let full = streams.admit(&user("cid", Role::Viewer)).err().unwrap();
        assert!(full.message().contains("(events.max_connections)"));
        drop(first);
        assert!(streams.admit(&ann).is_ok());
    }

    #[test]
    fn plant_readers_see_events() {
        assert!(may_see(&user("vera", Role::Viewer), Some("north")));
        assert!(may_see(&user("ada", Role::Admin), Some("north")));
    }
}
