use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;

use fb_app::{alerts, audit, auth, devices, ingest, plant};
use fb_core::ports::StoreHealth;

use crate::rate_limit::RateLimits;

/// Limits applied to every request.
#[derive(Debug, Clone)]
pub struct Options {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// Largest readings payload as sent (compressed or not).
    pub ingest_max_bytes: usize,
    /// Largest readings payload after decompression.
    pub ingest_max_decoded_bytes: usize,
}

/// The use cases the API calls.
#[derive(Clone)]
pub struct Services {
    pub auth: Arc<auth::Service>,
    pub plant: Arc<plant::Service>,
    pub ingest: Arc<ingest::Service>,
    pub alerts: Arc<alerts::Service>,
    pub audit: Arc<audit::Service>,
    pub devices: Arc<devices::Service>,
}

/// What handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub auth: Arc<auth::Service>,
    pub plant: Arc<plant::Service>,
    pub ingest: Arc<ingest::Service>,
    pub alerts: Arc<alerts::Service>,
    pub audit: Arc<audit::Service>,
    pub devices: Arc<devices::Service>,
    pub store: Arc<dyn StoreHealth>,
    pub metrics: PrometheusHandle,
    pub options: Options,
    /// No limits until [`AppState::with_rate_limits`]; the server always sets them.
    pub rate_limits: Arc<RateLimits>,
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
            audit,
            devices,
        } = services;
        Self {
            auth,
            plant,
            ingest,
            alerts,
            audit,
            devices,
            store,
            metrics,
            options,
            rate_limits: Arc::new(RateLimits::none()),
            draining: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The rate limits to enforce (see [`crate::rate_limit`]).
    pub fn with_rate_limits(mut self, rate_limits: RateLimits) -> Self {
        self.rate_limits = Arc::new(rate_limits);
        self
    }

    /// Marks the node as shutting down: `/readyz` answers 503 from now on so that load balancers
    /// stop sending new work while in-flight requests drain.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
}
