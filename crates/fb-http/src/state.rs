use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

use fb_app::detection::{AnomalyFeed, HealthFeed};
use fb_app::{
    alerts, audit, auth, devices, energy, gates, ingest, maintenance, models, optimizer, plant,
    procurement,
};
use fb_core::ports::StoreHealth;

use crate::events::{EventLimits, EventStreams};
use crate::rate_limit::RateLimits;
use crate::security::AllowedOrigins;

/// Limits applied to every request, and what browsers are told.
#[derive(Debug, Clone)]
pub struct Options {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// Largest readings payload as sent (compressed or not).
    pub ingest_max_bytes: usize,
    /// Largest readings payload after decompression.
    pub ingest_max_decoded_bytes: usize,
    /// Deepest nesting of arrays and objects in a JSON body, readings payload or event-stream
    /// request.
    pub max_json_depth: usize,
    /// Origins, besides the server's own, whose pages may open the event stream.
    pub allowed_origins: AllowedOrigins,
    /// `Strict-Transport-Security: max-age` in seconds; 0 sends none. Set when the server is
    /// reached over HTTPS (it then also counts as its own origin's scheme).
    pub hsts_max_age_secs: u64,
    pub events: EventLimits,
}

impl Options {
    /// The scheme clients reach the server by, as far as the settings tell.
    pub(crate) fn own_scheme(&self) -> &'static str {
        if self.hsts_max_age_secs > 0 {
            "https"
        } else {
            "http"
        }
    }
}

/// The use cases the API calls.
#[derive(Clone)]
pub struct Services {
    pub auth: Arc<auth::Service>,
    pub plant: Arc<plant::Service>,
    pub ingest: Arc<ingest::Service>,
    pub alerts: Arc<alerts::Service>,
    pub maintenance: Arc<maintenance::Service>,
    pub gates: Arc<gates::Service>,
    pub energy: Arc<energy::Service>,
    pub procurement: Arc<procurement::Service>,
    /// The plant optimizer: KPIs and the coordination agent.
    pub optimizer: Arc<optimizer::Service>,
    pub audit: Arc<audit::Service>,
    pub devices: Arc<devices::Service>,
    /// The model registry, whatever this server loads models into.
    pub models: Arc<dyn models::Registry>,
}

/// What handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub auth: Arc<auth::Service>,
    pub plant: Arc<plant::Service>,
    pub ingest: Arc<ingest::Service>,
    pub alerts: Arc<alerts::Service>,
    pub maintenance: Arc<maintenance::Service>,
    pub gates: Arc<gates::Service>,
    pub energy: Arc<energy::Service>,
    pub procurement: Arc<procurement::Service>,
    pub optimizer: Arc<optimizer::Service>,
    pub audit: Arc<audit::Service>,
    pub devices: Arc<devices::Service>,
    pub models: Arc<dyn models::Registry>,
    pub store: Arc<dyn StoreHealth>,
    pub metrics: PrometheusHandle,
    pub options: Options,
    /// No limits until [`AppState::with_rate_limits`]; the server always sets them.
    pub rate_limits: Arc<RateLimits>,
    /// Where detection announces machine health for the event stream.
    pub health_feed: HealthFeed,
    /// Where detection announces the anomalies it stored (the event bus's publisher follows
    /// it).
    pub anomaly_feed: AnomalyFeed,
    pub(crate) events: Arc<EventStreams>,
    draining: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(
        services: Services,
        store: Arc<dyn StoreHealth>,
        metrics: PrometheusHandle,
        options: Options,
    ) -> Self {
        let Services {
            auth,
            plant,
            ingest,
            alerts,
            maintenance,
            gates,
            energy,
            procurement,
            optimizer,
            audit,
            devices,
            models,
        } = services;
        Self {
            auth,
            plant,
            ingest,
            alerts,
            maintenance,
            gates,
            energy,
            procurement,
            optimizer,
            audit,
            devices,
            models,
            store,
            metrics,
            events: Arc::new(EventStreams::new(options.events.clone())),
            options,
            rate_limits: Arc::new(RateLimits::none()),
            health_feed: HealthFeed::default(),
            anomaly_feed: AnomalyFeed::default(),
            draining: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The rate limits to enforce (see [`crate::rate_limit`]).
    pub fn with_rate_limits(mut self, rate_limits: RateLimits) -> Self {
        self.rate_limits = Arc::new(rate_limits);
        self
    }

    /// Marks the node as shutting down: `/readyz` answers 503 from now on so that load balancers
    /// stop sending new work while in-flight requests drain, and event streams are closed (1001)
    /// so that their clients reconnect to a node that stays.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
        self.events.close_all();
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}
