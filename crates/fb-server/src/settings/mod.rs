//! Settings: how this process runs.
//!
//! Layers, lowest first: compiled-in defaults (`defaults.yaml`, which is also what
//! `config example` prints) → the YAML file given with `--config` → environment variables
//! `FB__SECTION__KEY` → command-line flags. The layers are merged as trees, so every key that
//! exists is a key of the defaults; anything else is an unknown key. All problems are collected
//! and reported together, each with its path.

mod agents;
mod bus;
mod energy;
mod events;
mod gates;
mod layers;
mod optimizer;
mod rate_limits;
mod secret;
mod urls;

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

pub use agents::AgentSettings;
pub use bus::{BusKind, BusSettings};
pub use energy::EnergySettings;
pub use events::EventSettings;
pub use gates::GateSettings;
pub use layers::{Layers, SettingsError, SettingsErrors};
pub use optimizer::{IdealRate, OptimizerSettings};
pub use rate_limits::{QuotaSetting, RateLimitSettings};
pub use secret::Secret;

/// The defaults, every key commented. Printed by `factorybrain config example`.
pub const DEFAULTS_YAML: &str = include_str!("defaults.yaml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub storage: StorageSettings,
    pub auth: AuthSettings,
    pub rate_limits: RateLimitSettings,
    pub ingest: IngestSettings,
    pub mqtt: MqttSettings,
    pub detection: DetectionSettings,
    pub prediction: PredictionSettings,
    pub alerts: AlertSettings,
    pub retention: RetentionSettings,
    pub query: QuerySettings,
    pub events: EventSettings,
    pub bus: BusSettings,
    pub gates: GateSettings,
    pub agents: AgentSettings,
    pub energy: EnergySettings,
    pub optimizer: OptimizerSettings,
    pub log: LogSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestSettings {
    pub auto_register: bool,
    pub max_payload_bytes: u64,
    pub max_decoded_bytes: u64,
    pub max_batch_readings: u64,
    pub max_in_flight: u64,
    pub max_future_secs: u64,
    pub max_age_days: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSettings {
    pub enabled: bool,
    pub url: String,
    pub client_id: String,
    pub username: String,
    pub password: Secret,
    pub tls_ca_file: String,
    pub topic_prefix: String,
    pub batch_max: u64,
    pub batch_linger_ms: u64,
    pub embedded_broker: bool,
    pub embedded_listen: String,
    pub embedded_allow_anonymous: bool,
}

/// A broker address taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    pub host: String,
    pub port: u16,
    pub tls: bool,
}

impl MqttSettings {
    /// The broker of `mqtt.url`, checked by the SSRF guard.
    pub fn broker(&self) -> Result<BrokerAddress, SettingsErrors> {
        let url = urls::mqtt(&self.url).map_err(SettingsErrors)?;
        Ok(BrokerAddress {
            host: url.host().to_owned(),
            port: url.port(),
            tls: url.as_url().scheme() == "mqtts",
        })
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionSettings {
    pub enabled: bool,
    pub warmup_points: u64,
    pub no_data_secs: u64,
    pub low_health: f64,
    pub failure_risk: f64,
    pub stuck_min_run: u32,
    pub novelty: bool,
    pub mode_settle_secs: u64,
    pub vibration_zones: fb_detect::rules::limits::VibrationZones,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictionSettings {
    pub enabled: bool,
    pub every_secs: u64,
    pub store_every_secs: u64,
    pub remote: RemoteInferenceSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteInferenceSettings {
    pub url: String,
    pub protocol: RemoteProtocol,
    pub model: String,
    pub timeout_ms: u64,
    pub api_key_env: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RemoteProtocol {
    KserveV2,
    Openai,
}

impl RemoteInferenceSettings {
    /// The server's URL, checked by the SSRF guard; None when no remote is configured.
    pub fn url(&self) -> Result<Option<fb_outbound::OutboundUrl>, SettingsErrors> {
        if self.url.trim().is_empty() {
            return Ok(None);
        }
        urls::inference(&self.url).map(Some).map_err(SettingsErrors)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSettings {
    pub raise_after: u32,
    pub clear_after_secs: u64,
    pub escalate_after_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionSettings {
    pub raw_days: u64,
    pub minute_days: u64,
    pub hour_days: u64,
    pub interval_minutes: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuerySettings {
    pub max_raw_range_hours: u64,
    pub max_points: u64,
    pub max_buckets: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub listen: String,
    pub data_dir: PathBuf,
    pub max_body_bytes: u64,
    pub request_timeout_secs: u64,
    pub drain_delay_secs: u64,
    pub shutdown_grace_secs: u64,
    pub trusted_proxies: Vec<String>,
    pub max_json_depth: u64,
    pub allowed_origins: Vec<String>,
    pub hsts_max_age_secs: u64,
}

impl ServerSettings {
    /// The proxies whose X-Forwarded-For is believed; the entries are checked by `validate`.
    pub fn trusted_proxies(&self) -> fb_http::TrustedProxies {
        rate_limits::trusted_proxies(&self.trusted_proxies).0
    }

    /// The origins whose pages may open the event stream; the entries are checked by
    /// `validate`.
    pub fn allowed_origins(&self) -> fb_http::AllowedOrigins {
        fb_http::AllowedOrigins::parse(&self.allowed_origins).unwrap_or_default()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    pub url: Secret,
    pub schema: String,
    pub max_connections: u32,
    pub busy_timeout_ms: u64,
    pub acquire_timeout_secs: u64,
    pub sqlite_writer_cache_mib: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub jwt_secret: Secret,
    pub jwt_previous_secret: Secret,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    pub session_max_age_secs: u64,
    pub mfa_required_roles: Vec<String>,
    pub issuer: String,
    pub audience: String,
    pub bootstrap_admin: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Which database the settings select. `Debug` hides URLs, which may hold a password.
#[derive(Clone, PartialEq, Eq)]
pub enum StorageTarget {
    SqliteFile(PathBuf),
    SqliteUrl(String),
    Postgres(String),
}

impl std::fmt::Debug for StorageTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StorageTarget::SqliteFile(path) => f.debug_tuple("SqliteFile").field(path).finish(),
            StorageTarget::SqliteUrl(_) => f.write_str("SqliteUrl([redacted])"),
            StorageTarget::Postgres(_) => f.write_str("Postgres([redacted])"),
        }
    }
}

impl Settings {
    /// Loads and validates settings from the given layers.
    pub fn load(layers: &Layers) -> Result<Settings, SettingsErrors> {
        let (tree, mut errors) = layers.merged()?;
        let (settings, type_errors) = layers::deserialize_lenient::<Settings>(&tree)?;
        errors.extend(type_errors);
        if let Some(settings) = &settings {
            errors.extend(settings.validate());
        }
        match settings {
            Some(settings) if errors.is_empty() => Ok(settings),
            _ => Err(SettingsErrors(errors)),
        }
    }

    pub fn listen_addr(&self) -> Result<SocketAddr, SettingsError> {
        self.server.listen.parse().map_err(|e| {
            SettingsError::new(
                "server.listen",
                format!("not an address like 127.0.0.1:8080 ({e})"),
            )
        })
    }

    pub fn storage_target(&self) -> Result<StorageTarget, SettingsError> {
        let url = self.storage.url.expose().trim();
        if url.is_empty() {
            return Ok(StorageTarget::SqliteFile(
                self.server.data_dir.join("factorybrain.db"),
            ));
        }
        if url.starts_with("sqlite:") {
            return Ok(StorageTarget::SqliteUrl(url.to_owned()));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StorageTarget::Postgres(url.to_owned()));
        }
        Err(SettingsError::new(
            "storage.url",
            "must be empty (SQLite in the data dir), sqlite://… or postgres://…",
        ))
    }

    fn validate(&self) -> Vec<SettingsError> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, path: &str, message: &str| {
            if !ok {
                errors.push(SettingsError::new(path, message));
            }
        };
        let s = &self.server;
        check(
            (1024..=1 << 30).contains(&s.max_body_bytes),
            "server.max_body_bytes",
            "must be between 1024 and 1073741824",
        );
        check(
            (1..=3600).contains(&s.request_timeout_secs),
            "server.request_timeout_secs",
            "must be between 1 and 3600",
        );
        check(
            s.drain_delay_secs <= 300,
            "server.drain_delay_secs",
            "must be at most 300",
        );
        check(
            (1..=600).contains(&s.shutdown_grace_secs),
            "server.shutdown_grace_secs",
            "must be between 1 and 600",
        );
        check(
            !s.data_dir.as_os_str().is_empty(),
            "server.data_dir",
            "must not be empty",
        );
        check(
            (1..=128).contains(&s.max_json_depth),
            "server.max_json_depth",
            "must be between 1 and 128",
        );
        check(
            s.hsts_max_age_secs <= 63_072_000,
            "server.hsts_max_age_secs",
            "must be at most 63072000 (two years)",
        );
        let st = &self.storage;
        check(
            (1..=256).contains(&st.max_connections),
            "storage.max_connections",
            "must be between 1 and 256",
        );
        check(
            (1..=300).contains(&st.acquire_timeout_secs),
            "storage.acquire_timeout_secs",
            "must be between 1 and 300",
        );
        check(
            st.busy_timeout_ms <= 600_000,
            "storage.busy_timeout_ms",
            "must be at most 600000",
        );
        check(
            (1..=16_384).contains(&st.sqlite_writer_cache_mib),
            "storage.sqlite_writer_cache_mib",
            "must be between 1 and 16384",
        );
        check(
            is_plain_identifier(&st.schema),
            "storage.schema",
            "must be a lowercase identifier: letters, digits and '_', not starting with a digit",
        );
        let a = &self.auth;
        let secret_len = a.jwt_secret.expose().len();
        check(
            secret_len == 0 || secret_len >= fb_app::auth::MIN_SECRET_BYTES,
            "auth.jwt_secret",
            "must be empty (generated) or at least 32 bytes long",
        );
        let previous_len = a.jwt_previous_secret.expose().len();
        check(
            previous_len == 0 || previous_len >= fb_app::auth::MIN_SECRET_BYTES,
            "auth.jwt_previous_secret",
            "must be empty or at least 32 bytes long",
        );
        check(
            previous_len == 0 || secret_len > 0,
            "auth.jwt_previous_secret",
            "needs auth.jwt_secret: a stored key is rotated with `factorybrain auth rotate-signing-key`",
        );
        check(
            (60..=3600).contains(&a.access_token_ttl_secs),
            "auth.access_token_ttl_secs",
            "must be between 60 and 3600",
        );
        check(
            (300..=7_776_000).contains(&a.refresh_token_ttl_secs),
            "auth.refresh_token_ttl_secs",
            "must be between 300 and 7776000",
        );
        check(
            (3600..=31_536_000).contains(&a.session_max_age_secs),
            "auth.session_max_age_secs",
            "must be between 3600 and 31536000",
        );
        for (i, role) in a.mfa_required_roles.iter().enumerate() {
            check(
                fb_core::identity::Role::parse(role).is_some(),
                &format!("auth.mfa_required_roles[{i}]"),
                "must be admin, supervisor, operator or viewer",
            );
        }
        check(
            !a.issuer.trim().is_empty(),
            "auth.issuer",
            "must not be empty",
        );
        check(
            !a.audience.trim().is_empty(),
            "auth.audience",
            "must not be empty",
        );
        if let Err(e) =
            fb_core::identity::validate_username("auth.bootstrap_admin", &a.bootstrap_admin)
        {
            errors.push(SettingsError::new(&e.field, e.reason));
        }
        errors.extend(rate_limits::trusted_proxies(&s.trusted_proxies).1);
        if let Err(problems) = fb_http::AllowedOrigins::parse(&s.allowed_origins) {
            for problem in problems {
                errors.push(SettingsError::new("server.allowed_origins", problem));
            }
        }
        self.rate_limits.validate(&mut errors);
        self.events.validate(&mut errors);
        self.bus.validate(&mut errors);
        self.gates.validate(&mut errors);
        self.agents.validate(&mut errors);
        self.energy.validate(&mut errors);
        self.optimizer.validate(&mut errors);
        let i = &self.ingest;
        let mut check = |ok: bool, path: &str, message: &str| {
            if !ok {
                errors.push(SettingsError::new(path, message));
            }
        };
        check(
            (1024..=1 << 30).contains(&i.max_payload_bytes),
            "ingest.max_payload_bytes",
            "must be between 1024 and 1073741824",
        );
        check(
            i.max_decoded_bytes >= i.max_payload_bytes && i.max_decoded_bytes <= 4 << 30,
            "ingest.max_decoded_bytes",
            "must be at least ingest.max_payload_bytes and at most 4294967296",
        );
        check(
            (1..=10_000_000).contains(&i.max_batch_readings),
            "ingest.max_batch_readings",
            "must be between 1 and 10000000",
        );
        check(
            (1..=1024).contains(&i.max_in_flight),
            "ingest.max_in_flight",
            "must be between 1 and 1024",
        );
        check(
            i.max_future_secs <= 86_400,
            "ingest.max_future_secs",
            "must be at most 86400",
        );
        check(
            (1..=36_500).contains(&i.max_age_days),
            "ingest.max_age_days",
            "must be between 1 and 36500",
        );
        let m = &self.mqtt;
        let broker_problems = match m.broker() {
            Ok(b) => {
                check(
                    !b.tls || !m.tls_ca_file.trim().is_empty(),
                    "mqtt.tls_ca_file",
                    "is required for mqtts:// brokers",
                );
                Vec::new()
            }
            Err(problems) => problems.0,
        };
        check(
            !m.client_id.is_empty() && m.client_id.len() <= 128,
            "mqtt.client_id",
            "must be 1 to 128 characters",
        );
        check(
            !m.topic_prefix.is_empty() && !m.topic_prefix.contains(['+', '#']),
            "mqtt.topic_prefix",
            "must be non-empty and free of the wildcards + and #",
        );
        check(
            (1..=100_000).contains(&m.batch_max),
            "mqtt.batch_max",
            "must be between 1 and 100000",
        );
        check(
            m.batch_linger_ms <= 10_000,
            "mqtt.batch_linger_ms",
            "must be at most 10000",
        );
        check(
            !m.embedded_broker || cfg!(feature = "embedded-broker"),
            "mqtt.embedded_broker",
            "this build has no embedded broker; build with `--features embedded-broker`",
        );
        check(
            m.embedded_listen.parse::<std::net::SocketAddr>().is_ok(),
            "mqtt.embedded_listen",
            "must be an address like 127.0.0.1:1883",
        );
        errors.extend(broker_problems);
        let d = &self.detection;
        let mut check = |ok: bool, path: &str, message: &str| {
            if !ok {
                errors.push(SettingsError::new(path, message));
            }
        };
        check(
            (10..=100_000).contains(&d.warmup_points),
            "detection.warmup_points",
            "must be between 10 and 100000",
        );
        check(
            (1..=86_400).contains(&d.no_data_secs),
            "detection.no_data_secs",
            "must be between 1 and 86400",
        );
        check(
            (0.0..=100.0).contains(&d.low_health),
            "detection.low_health",
            "must be between 0 and 100",
        );
        check(
            (0.05..=1.0).contains(&d.failure_risk),
            "detection.failure_risk",
            "must be between 0.05 and 1",
        );
        check(
            d.mode_settle_secs <= 86_400,
            "detection.mode_settle_secs",
            "must be between 0 and 86400",
        );
        check(
            (2..=100_000).contains(&d.stuck_min_run),
            "detection.stuck_min_run",
            "must be between 2 and 100000",
        );
        let bad_zones = d
            .vibration_zones
            .invalid_class()
            .map(|c| format!("detection.vibration_zones.{}", c.as_str()));
        check(
            bad_zones.is_none(),
            bad_zones.as_deref().unwrap_or_default(),
            "bounds must be positive and increasing: a_b < b_c < c_d",
        );
        let p = &self.prediction;
        check(
            (1..=3600).contains(&p.every_secs),
            "prediction.every_secs",
            "must be between 1 and 3600",
        );
        check(
            (1..=86_400).contains(&p.store_every_secs),
            "prediction.store_every_secs",
            "must be between 1 and 86400",
        );
        let r = &p.remote;
        check(
            (1..=10_000).contains(&r.timeout_ms),
            "prediction.remote.timeout_ms",
            "must be between 1 and 10000",
        );
        check(
            !r.model.trim().is_empty() && r.model.len() <= 200,
            "prediction.remote.model",
            "must be 1 to 200 characters",
        );
        check(
            r.api_key_env.is_empty()
                || r.api_key_env
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "prediction.remote.api_key_env",
            "must be an environment variable's name (letters, digits, '_') or empty",
        );
        check(
            r.url.trim().is_empty() || cfg!(feature = "remote-inference"),
            "prediction.remote.url",
            "this build has no remote inference; build with the 'remote-inference' feature",
        );
        let remote_url_problems = match r.url() {
            Ok(_) => Vec::new(),
            Err(problems) => problems.0,
        };
        let a = &self.alerts;
        check(
            (1..=1000).contains(&a.raise_after),
            "alerts.raise_after",
            "must be between 1 and 1000",
        );
        check(
            (1..=86_400).contains(&a.clear_after_secs),
            "alerts.clear_after_secs",
            "must be between 1 and 86400",
        );
        check(
            (60..=604_800).contains(&a.escalate_after_secs),
            "alerts.escalate_after_secs",
            "must be between 60 and 604800",
        );
        errors.extend(remote_url_problems);
        let mut check = |ok: bool, path: &str, message: &str| {
            if !ok {
                errors.push(SettingsError::new(path, message));
            }
        };
        let r = &self.retention;
        check(
            (1..=36_500).contains(&r.raw_days),
            "retention.raw_days",
            "must be between 1 and 36500",
        );
        check(
            r.minute_days >= r.raw_days && r.minute_days <= 36_500,
            "retention.minute_days",
            "must be at least retention.raw_days and at most 36500",
        );
        check(
            r.hour_days == 0 || (r.hour_days >= r.minute_days && r.hour_days <= 36_500),
            "retention.hour_days",
            "must be 0 (keep) or at least retention.minute_days",
        );
        check(
            (1..=10_080).contains(&r.interval_minutes),
            "retention.interval_minutes",
            "must be between 1 and 10080",
        );
        let q = &self.query;
        check(
            (1..=87_600).contains(&q.max_raw_range_hours),
            "query.max_raw_range_hours",
            "must be between 1 and 87600",
        );
        check(
            (1..=10_000_000).contains(&q.max_points),
            "query.max_points",
            "must be between 1 and 10000000",
        );
        check(
            (1..=10_000_000).contains(&q.max_buckets),
            "query.max_buckets",
            "must be between 1 and 10000000",
        );
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            errors.push(SettingsError::new(
                "log.level",
                format!("not a valid filter: {e}"),
            ));
        }
        if let Err(e) = self.listen_addr() {
            errors.push(e);
        }
        match self.storage_target() {
            Err(e) => errors.push(e),
            Ok(StorageTarget::Postgres(url)) if cfg!(feature = "postgres") => {
                errors.extend(urls::postgres(&url));
            }
            Ok(StorageTarget::Postgres(_)) if !cfg!(feature = "postgres") => {
                errors.push(SettingsError::new(
                    "storage.url",
                    "this build has no PostgreSQL support (built without the 'postgres' feature)",
                ))
            }
            Ok(_) => {}
        }
        errors
    }
}

fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[cfg(test)]
mod tests;
