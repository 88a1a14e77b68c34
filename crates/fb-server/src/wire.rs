//! The composition root: settings in, adapters and services out.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use fb_app::auth;
use fb_app::rate_limit::{Limiter, MemoryRateLimitStore};
use fb_core::ports::Storage;
use fb_core::{Clock, SystemClock};

use crate::settings::{BusKind, Settings, StorageTarget};

/// Storage backends compiled into this binary.
pub const BACKENDS: &[&str] = &[
    "sqlite",
    #[cfg(feature = "postgres")]
    "postgres",
];

/// Opens the configured store and applies pending migrations.
pub async fn open_storage(settings: &Settings) -> anyhow::Result<Storage> {
    let s = &settings.storage;
    let acquire_timeout = Duration::from_secs(s.acquire_timeout_secs);
    match settings.storage_target()? {
        target @ (StorageTarget::SqliteFile(_) | StorageTarget::SqliteUrl(_)) => {
            let location = match target {
                StorageTarget::SqliteFile(path) => {
                    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                        prepare_data_dir(dir)?;
                    }
                    fb_sqlite::Location::File(path)
                }
                StorageTarget::SqliteUrl(url) => fb_sqlite::Location::Url(url),
                StorageTarget::Postgres(_) => unreachable_backend()?,
            };
            let options = fb_sqlite::Options {
                location,
                max_connections: s.max_connections,
                busy_timeout: Duration::from_millis(s.busy_timeout_ms),
                acquire_timeout,
                writer_cache_kib: s.sqlite_writer_cache_mib.saturating_mul(1024),
                // Ingest bounds the batches in flight itself; the queue holds all of them.
                writer_queue: settings.ingest.max_in_flight as usize,
            };
            let store = fb_sqlite::SqliteStore::open(&options)
                .await
                .context("cannot open the SQLite store")?;
            Ok(Storage::from_backend(Arc::new(store)))
        }
        StorageTarget::Postgres(url) => open_postgres(url, settings, acquire_timeout).await,
    }
}

/// Creates the data directory readable by its owner only: it holds the token signing key and
/// the password hashes. An existing directory open to others is reported, not changed.
fn prepare_data_dir(dir: &std::path::Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
        } else if let Ok(meta) = std::fs::metadata(dir)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                data_dir = %dir.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "The data directory is accessible to other users; it holds secrets (chmod 700 it)."
            );
        }
    }
    #[cfg(not(unix))]
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    Ok(())
}

fn unreachable_backend() -> anyhow::Result<fb_sqlite::Location> {
    anyhow::bail!("internal: storage target changed while matching")
}

#[cfg(feature = "postgres")]
async fn open_postgres(
    url: String,
    settings: &Settings,
    acquire_timeout: Duration,
) -> anyhow::Result<Storage> {
    let options = fb_postgres::Options {
        url,
        schema: settings.storage.schema.clone(),
        max_connections: settings.storage.max_connections,
        acquire_timeout,
    };
    let store = fb_postgres::PgStore::open(&options)
        .await
        .context("cannot open the PostgreSQL store")?;
    Ok(Storage::from_backend(Arc::new(store)))
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(_: String, _: &Settings, _: Duration) -> anyhow::Result<Storage> {
    anyhow::bail!("storage.url is postgres://… but this build has no PostgreSQL support")
}

/// The authentication service on the given store.
pub async fn auth_service(
    settings: &Settings,
    storage: &Storage,
) -> anyhow::Result<Arc<auth::Service>> {
    let a = &settings.auth;
    let secret =
        |s: &crate::settings::Secret| (!s.is_empty()).then(|| s.expose().as_bytes().to_vec());
    let options = auth::Options {
        access_token_ttl: time::Duration::seconds(a.access_token_ttl_secs as i64),
        refresh_token_ttl: time::Duration::seconds(a.refresh_token_ttl_secs as i64),
        session_max_age: time::Duration::seconds(a.session_max_age_secs as i64),
        // Validated with the settings.
        mfa_required_for: a
            .mfa_required_roles
            .iter()
            .filter_map(|r| fb_core::identity::Role::parse(r))
            .collect(),
        issuer: a.issuer.clone(),
        audience: a.audience.clone(),
        signing_secret: secret(&a.jwt_secret),
        previous_signing_secret: secret(&a.jwt_previous_secret),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let service = auth::Service::start(storage, clock, options).await?;
    Ok(Arc::new(service))
}

/// The audit log on the given store.
pub fn audit_service(storage: &Storage) -> Arc<fb_app::audit::Service> {
    Arc::new(fb_app::audit::Service::new(
        storage.audit.clone(),
        Arc::new(SystemClock),
    ))
}

/// Reads the model formats this build runs: fb-predict's ([`fb_predict::REGISTRY_FORMAT`],
/// `factorybrain.predict.model/1`), into a model ready for live prediction (the model file and
/// its live parameters from the registry's params). Promoting a model of any other format
/// answers `model_format_unsupported`, naming this one.
pub type ServerModelLoader = fb_app::prediction::PredictLoader;

/// The model registry as this server runs it.
pub type ModelRegistry = fb_app::models::Service<ServerModelLoader>;

/// The model registry on the given store, loading models with this build's loader.
pub fn model_registry(storage: &Storage) -> Arc<ModelRegistry> {
    Arc::new(fb_app::models::Service::new(
        storage.models.clone(),
        Arc::new(SystemClock),
        ServerModelLoader::default(),
    ))
}

/// How long a node may serve a machine from memory after another node changed it.
const MACHINE_CACHE_TTL: Duration = Duration::from_secs(5);

/// The HTTP application state.
pub async fn http_state(
    settings: &Settings,
    storage: &Storage,
    auth: Arc<auth::Service>,
) -> anyhow::Result<fb_http::AppState> {
    Ok(http_state_and_models(settings, storage, auth).await?.0)
}

/// The HTTP application state, and the model registry in it as its own type (live prediction
/// reads the loaded models from it).
pub async fn http_state_and_models(
    settings: &Settings,
    storage: &Storage,
    auth: Arc<auth::Service>,
) -> anyhow::Result<(fb_http::AppState, Arc<ModelRegistry>)> {
    let options = fb_http::Options {
        max_body_bytes: usize::try_from(settings.server.max_body_bytes).unwrap_or(usize::MAX),
        request_timeout: Duration::from_secs(settings.server.request_timeout_secs),
        ingest_max_bytes: usize::try_from(settings.ingest.max_payload_bytes).unwrap_or(usize::MAX),
        ingest_max_decoded_bytes: usize::try_from(settings.ingest.max_decoded_bytes)
            .unwrap_or(usize::MAX),
        max_json_depth: max_json_depth(settings),
        allowed_origins: settings.server.allowed_origins(),
        hsts_max_age_secs: settings.server.hsts_max_age_secs,
        events: settings.events.limits(),
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let devices = Arc::new(fb_app::devices::Service::new(
        storage.devices.clone(),
        clock.clone(),
    ));
    let (i, q) = (&settings.ingest, &settings.query);
    let limits = fb_app::plant::QueryLimits {
        max_raw_range: time::Duration::hours(q.max_raw_range_hours as i64),
        max_points: q.max_points as usize,
        max_buckets: q.max_buckets as usize,
    };
    // One cache for both services, so that a change made through the API reaches ingest at once.
    let machines: Arc<dyn fb_core::ports::MachineStore> = Arc::new(
        fb_app::machine_cache::CachedMachineStore::new(storage.machines.clone(), MACHINE_CACHE_TTL),
    );
    let plant = Arc::new(fb_app::plant::Service::new(
        machines.clone(),
        storage.readings.clone(),
        storage.scores.clone(),
        storage.anomalies.clone(),
        clock.clone(),
        limits,
    ));
    let audit = audit_service(storage);
    let maintenance = Arc::new(fb_app::maintenance::Service::new(
        storage.tickets.clone(),
        fb_app::scope::MachineVisibility::new(machines.clone()),
        storage.identities.clone(),
        audit.clone(),
        clock.clone(),
    ));
    let energy = Arc::new(fb_app::energy::Service::new(
        machines.clone(),
        storage.readings.clone(),
        storage.recommendations.clone(),
        audit.clone(),
        clock.clone(),
        energy_config(settings),
    ));
    let alerts = Arc::new(
        fb_app::alerts::Service::start(
            storage.alerts.clone(),
            fb_app::scope::MachineVisibility::new(machines.clone()),
            clock.clone(),
            alert_policy(settings),
        )
        .await
        .context("cannot load the active alerts")?,
    );
    let ingest_options = fb_app::ingest::Options {
        limits: fb_core::plant::IngestLimits {
            max_future: time::Duration::seconds(i.max_future_secs as i64),
            max_age: time::Duration::days(i.max_age_days as i64),
        },
        auto_register: i.auto_register,
        max_items: i.max_batch_readings as usize,
        max_in_flight: i.max_in_flight as usize,
        report_rejections: 20,
    };
    let machines_for_procurement = machines.clone();
    let machines_for_kpis = machines.clone();
    let ingest = Arc::new(fb_app::ingest::Service::new(
        machines,
        storage.readings.clone(),
        storage.dead_letters.clone(),
        clock.clone(),
        ingest_options,
    ));
    // Dead letters are replayed with the parser of the door they came in by; MQTT letters stay
    // replayable when MQTT ingest is off.
    for (media, parser) in fb_http::payload_parsers(max_json_depth(settings)) {
        ingest.register_parser(media, parser);
    }
    ingest.register_parser(
        fb_mqtt::MQTT_CONTENT_TYPE,
        Arc::new(fb_mqtt::MqttParser {
            topic_prefix: settings.mqtt.topic_prefix.clone(),
        }),
    );
    let gates = Arc::new(fb_app::gates::Service::new(
        storage.approvals.clone(),
        storage.decisions.clone(),
        settings.gates.gates(),
        audit.clone(),
        clock.clone(),
    ));
    let procurement = procurement_service(
        storage,
        machines_for_procurement,
        &gates,
        audit.clone(),
        clock.clone(),
    );
    let optimizer = Arc::new(fb_app::optimizer::Service::new(
        machines_for_kpis,
        storage.readings.clone(),
        storage.tickets.clone(),
        energy.clone(),
        gates.clone(),
        Arc::new(fb_app::detection::Sensitivity::new()),
        clock.clone(),
        settings.optimizer.config(),
    ));
    // Procurement's negotiated savings in the KPIs.
    optimizer.set_ledger(Arc::new(fb_app::procurement::Ledger::new(
        storage.procurement.clone(),
    )));
    let models = model_registry(storage);
    let state = fb_http::AppState::new(
        fb_http::Services {
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
            models: models.clone(),
        },
        storage.health.clone(),
        fb_http::metrics_handle(),
        options,
    )
    .with_rate_limits(rate_limits(settings)?);
    Ok((state, models))
}

/// The procurement service (C2) over the store's offers, with its executor registered at the
/// gates, so that approving a held purchase order places it and rejecting or expiring one
/// closes it. The agent's triggers (ticket events, the reorder check) are wired by the caller:
/// `on_ticket` and `check_reorder_points`.
pub fn procurement_service(
    storage: &Storage,
    machines: Arc<dyn fb_core::ports::MachineStore>,
    gates: &Arc<fb_app::gates::Service>,
    audit: Arc<fb_app::audit::Service>,
    clock: Arc<dyn Clock>,
) -> Arc<fb_app::procurement::Service> {
    let service = Arc::new(fb_app::procurement::Service::new(
        storage.procurement.clone(),
        machines,
        Arc::new(fb_app::procurement::StoredQuotes::new(
            storage.procurement.clone(),
        )),
        gates.clone(),
        audit,
        clock,
    ));
    gates.register_executor(
        fb_core::gates::ActionKind::PurchaseOrder,
        Arc::new(fb_app::procurement::PlaceOrder::new(&service)),
    );
    service
}

fn max_json_depth(settings: &Settings) -> usize {
    usize::try_from(settings.server.max_json_depth).unwrap_or(usize::MAX)
}

/// The rate limits: buckets in Redis when `rate_limits.redis_url` is set, with this node's own
/// as the fallback; else this node's own.
pub fn rate_limits(settings: &Settings) -> anyhow::Result<fb_http::RateLimits> {
    let r = &settings.rate_limits;
    let local = MemoryRateLimitStore::new(
        usize::try_from(r.local_max_keys).unwrap_or(usize::MAX),
        Arc::new(SystemClock),
    );
    let limiter = match shared_rate_limit_store(settings)? {
        Some(shared) => {
            tracing::info!(
                backend = shared.backend(),
                "Rate limits are shared between nodes."
            );
            Limiter::shared(shared, local)
        }
        None => Limiter::local(local),
    };
    Ok(fb_http::RateLimits::new(
        limiter,
        r.policies(),
        settings.server.trusted_proxies(),
    ))
}

#[cfg(feature = "redis")]
fn shared_rate_limit_store(
    settings: &Settings,
) -> anyhow::Result<Option<Arc<dyn fb_core::ports::RateLimitStore>>> {
    let r = &settings.rate_limits;
    let url = r.redis_url.expose().trim();
    if url.is_empty() {
        return Ok(None);
    }
    let store = fb_redis::RedisRateLimitStore::open(&fb_redis::Options {
        url: url.to_owned(),
        key_prefix: r.redis_prefix.clone(),
        timeout: Duration::from_millis(r.redis_timeout_ms),
    })
    .context("rate_limits.redis_url")?;
    Ok(Some(Arc::new(store)))
}

/// Settings refuse `rate_limits.redis_url` in a build without Redis.
#[cfg(not(feature = "redis"))]
fn shared_rate_limit_store(
    _: &Settings,
) -> anyhow::Result<Option<Arc<dyn fb_core::ports::RateLimitStore>>> {
    Ok(None)
}

/// Detection's settings.
pub fn detection_options(settings: &Settings) -> fb_app::detection::Options {
    let d = &settings.detection;
    fb_app::detection::Options {
        detection: fb_detect::pipeline::DetectionConfig {
            warmup: usize::try_from(d.warmup_points).unwrap_or(usize::MAX),
            no_data_secs: d.no_data_secs,
            stuck_min_run: d.stuck_min_run,
            novelty: d.novelty,
            mode_settle_secs: d.mode_settle_secs,
            vibration_zones: d.vibration_zones,
        },
        low_health: d.low_health,
        failure_risk: d.failure_risk,
        ..fb_app::detection::Options::default()
    }
}

/// Starts detection on what ingest stores (when enabled), or else only the alerts' clock, so
/// that alerts still resolve and escalate. Subscribes at once: readings ingested after this
/// returns are scored.
pub fn spawn_detection(
    settings: &Settings,
    storage: &Storage,
    state: &fb_http::AppState,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let alerts = state.alerts.clone();
    if !settings.detection.enabled {
        return Ok(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                if let Err(e) = alerts.tick().await {
                    tracing::warn!(error = %e, "Alerts could not resolve or escalate; retrying.");
                }
            }
        }));
    }
    let sources = fb_app::detection::Sources {
        readings: state.ingest.subscribe(),
        refused: state.ingest.subscribe_refused(),
    };
    let service = fb_app::detection::Service::new(
        storage.machines.clone(),
        storage.scores.clone(),
        storage.anomalies.clone(),
        alerts,
        Arc::new(SystemClock),
        detection_options(settings),
    )
    .context("detection settings")?
    .publish_health_to(state.health_feed.clone())
    .publish_anomalies_to(state.anomaly_feed.clone())
    // Increased monitoring, as the plant optimizer's coordination agent directs it.
    .with_sensitivity(state.optimizer.sensitivity());
    Ok(tokio::spawn(service.run(sources, stop)))
}

/// The event bus of `bus.kind`: in process, or NATS JetStream (connected in the background:
/// a node starts while NATS is down, and its publishes fail and are counted until it is up).
pub async fn open_bus(settings: &Settings) -> anyhow::Result<Arc<dyn fb_core::ports::EventBus>> {
    let b = &settings.bus;
    match b.kind {
        BusKind::InProcess => Ok(Arc::new(fb_app::bus::InProcessBus::new(
            usize::try_from(b.max_events).unwrap_or(usize::MAX),
        ))),
        BusKind::Nats => open_nats_bus(settings).await,
    }
}

#[cfg(feature = "nats")]
async fn open_nats_bus(settings: &Settings) -> anyhow::Result<Arc<dyn fb_core::ports::EventBus>> {
    let b = &settings.bus;
    let options = fb_nats::Options {
        url: b.url.expose().trim().to_owned(),
        stream: b.stream.clone(),
        prefix: b.prefix()?,
        max_events: i64::try_from(b.max_events).unwrap_or(i64::MAX),
        client_name: "factorybrain".to_owned(),
    };
    let bus = fb_nats::NatsBus::connect(&options)
        .await
        .context("bus.url")?;
    Ok(Arc::new(bus))
}

/// Settings refuse `bus.kind: nats` in a build without NATS.
#[cfg(not(feature = "nats"))]
async fn open_nats_bus(_: &Settings) -> anyhow::Result<Arc<dyn fb_core::ports::EventBus>> {
    anyhow::bail!("bus.kind is nats but this build has no NATS support (--features nats)")
}

/// Publishes the alert lifecycle and stored anomalies on `bus` until `stop` turns true.
/// Subscribes at once: changes announced after this returns are published.
pub fn spawn_bus_publisher(
    storage: &Storage,
    state: &fb_http::AppState,
    bus: Arc<dyn fb_core::ports::EventBus>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    let machines: Arc<dyn fb_core::ports::MachineStore> = Arc::new(
        fb_app::machine_cache::CachedMachineStore::new(storage.machines.clone(), MACHINE_CACHE_TTL),
    );
    let publisher = fb_app::bus::EventPublisher::new(bus, machines);
    tokio::spawn(publisher.run(
        state.alerts.subscribe(),
        state.anomaly_feed.subscribe(),
        state.maintenance.subscribe(),
        stop,
    ))
}

/// Puts the `machine_command` confidence gate in front of an MQTT command publisher on the
/// broker ingest uses (the built-in one, or `mqtt.broker`), and routes accepted energy
/// recommendations through it. `None` when there is no broker: commands then stay pending.
pub fn install_machine_commands(
    settings: &Settings,
    embedded: Option<&EmbeddedMqtt>,
    state: &fb_http::AppState,
) -> anyhow::Result<Option<Arc<fb_mqtt::CommandPublisher>>> {
    let Some(options) = mqtt_options(settings, embedded)? else {
        return Ok(None);
    };
    let publisher = Arc::new(
        fb_mqtt::CommandPublisher::start(&fb_mqtt::CommandOptions {
            host: options.host,
            port: options.port,
            client_id: format!("{}-commands", options.client_id),
            username: options.username,
            password: options.password,
            tls_ca_file: options.tls_ca_file,
            topic_prefix: options.topic_prefix,
        })
        .context("mqtt (machine commands)")?,
    );
    install_command_gate(state, publisher.clone());
    Ok(Some(publisher))
}

/// Routes accepted energy recommendations through the `machine_command` gate to `transport`,
/// which also carries out approved commands.
pub fn install_command_gate(
    state: &fb_http::AppState,
    transport: Arc<dyn fb_app::energy::CommandSink>,
) {
    let gated = fb_app::energy::gated::GatedCommands::install(
        state.gates.clone(),
        state.energy.store(),
        transport,
    );
    state.energy.set_commands(gated);
}

/// Starts the operations agents of `agents` on `bus`, each until `stop` turns true. Their
/// consumers exist when this returns (when the bus is up), so call it before anything they
/// react to is published.
pub async fn spawn_agents(
    settings: &Settings,
    state: &fb_http::AppState,
    bus: Arc<dyn fb_core::ports::EventBus>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let a = &settings.agents;
    if !a.enabled {
        return Vec::new();
    }
    let mut agents: Vec<Arc<dyn fb_app::agents::Agent>> = Vec::new();
    if a.energy_auto_accept {
        agents.push(Arc::new(fb_app::agents::EnergyAgent::new(
            state.energy.clone(),
        )));
    }
    agents.push(Arc::new(fb_app::agents::ProcurementAgent::new(
        state.procurement.clone(),
        state.maintenance.clone(),
    )));
    agents.push(Arc::new(fb_app::agents::OptimizerAgent::new(
        state.optimizer.clone(),
    )));
    let options = fb_app::agents::RunOptions {
        ack_wait: settings.bus.ack_wait(),
        max_deliver: settings.bus.max_deliver,
        ..fb_app::agents::RunOptions::default()
    };
    for agent in &agents {
        if let Err(e) = fb_app::agents::register(bus.as_ref(), agent.as_ref(), options).await {
            // The runner keeps trying; what is published until then does not reach it.
            tracing::warn!(agent = agent.name(), error = %e, "Could not create the agent's consumer yet.");
        }
    }
    let reorders = tokio::spawn(fb_app::agents::run_reorder_checks(
        state.procurement.clone(),
        Duration::from_secs(a.reorder_check_secs),
        stop.clone(),
    ));
    agents
        .into_iter()
        .map(|agent| {
            tracing::info!(agent = agent.name(), "Agent starting.");
            tokio::spawn(fb_app::agents::run(
                bus.clone(),
                agent,
                options,
                stop.clone(),
            ))
        })
        .chain([reorders])
        .collect()
}

/// Runs the auto-ticket rule (a critical alert opens a maintenance ticket, or joins the
/// machine's active one for its failure type) on the alert changes of this node until `stop`
/// turns true. Subscribes at once: alerts opened after this returns are followed; earlier ones
/// are caught up with from the store.
/// Expires unanswered approval items every `gates.sweep_interval_secs`.
pub fn spawn_gate_sweeper(
    settings: &Settings,
    state: &fb_http::AppState,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(
        state
            .gates
            .clone()
            .run_sweeper(settings.gates.sweep_interval(), stop),
    )
}

pub fn spawn_auto_tickets(
    storage: &Storage,
    state: &fb_http::AppState,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<()> {
    state.maintenance.attach_decision_log(state.gates.clone());
    tokio::spawn(fb_app::maintenance::auto::follow_alerts(
        state.maintenance.clone(),
        storage.alerts.clone(),
        state.alerts.subscribe(),
        stop,
    ))
}

/// The energy service's settings.
pub fn energy_config(settings: &Settings) -> fb_app::energy::Config {
    let e = &settings.energy;
    fb_app::energy::Config {
        factors: e.emission_factors(),
        tariff: e.tariff(),
        rules: e.rules(),
        baseline_days: e.baseline_days,
        lookback: time::Duration::minutes(i64::from(e.recommendations.lookback_minutes)),
        expire_after: time::Duration::minutes(i64::from(e.recommendations.expire_after_minutes)),
    }
}

/// Publishes new energy recommendations on `bus` and, when `energy.enabled`, runs the
/// generator every `energy.recommendations.every_secs` until `stop` turns true. Accepted
/// recommendations' commands go through the gate `install_machine_commands` wires.
pub fn spawn_energy(
    settings: &Settings,
    state: &fb_http::AppState,
    bus: Arc<dyn fb_core::ports::EventBus>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Option<tokio::task::JoinHandle<()>> {
    state.energy.set_bus(bus);
    if !settings.energy.enabled {
        return None;
    }
    let energy = state.energy.clone();
    let every = Duration::from_secs(settings.energy.recommendations.every_secs);
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            match energy.generate().await {
                Ok(created) if !created.is_empty() => {
                    tracing::info!(created = created.len(), "Energy recommendations proposed.");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "Energy recommendations not generated this round.")
                }
            }
        }
    }))
}

/// Live prediction's settings, with the remote model server of `prediction.remote` if any.
pub fn prediction_options(settings: &Settings) -> anyhow::Result<fb_app::prediction::Options> {
    let p = &settings.prediction;
    Ok(fb_app::prediction::Options {
        tick: Duration::from_secs(p.every_secs),
        store_every: Duration::from_secs(p.store_every_secs),
        remote: remote_inference(settings)?,
        ..fb_app::prediction::Options::default()
    })
}

/// The remote model server, when `prediction.remote.url` is set. Its API key is read from the
/// environment variable `prediction.remote.api_key_env` names, now, and kept redacted.
#[cfg(feature = "remote-inference")]
pub fn remote_inference(settings: &Settings) -> anyhow::Result<Option<fb_app::prediction::Remote>> {
    use crate::settings::RemoteProtocol;
    let r = &settings.prediction.remote;
    let Some(url) = r.url()? else {
        return Ok(None);
    };
    let api_key = if r.api_key_env.is_empty() {
        None
    } else {
        let key = std::env::var(&r.api_key_env).map_err(|_| {
            anyhow::anyhow!(
                "prediction.remote.api_key_env: the environment variable {} is not set",
                r.api_key_env
            )
        })?;
        Some(fb_inference::ApiKey::new(key))
    };
    let protocol = match r.protocol {
        RemoteProtocol::KserveV2 => fb_inference::Protocol::KServeV2,
        RemoteProtocol::Openai => fb_inference::Protocol::OpenAi,
    };
    tracing::info!(
        url = %url,
        protocol = ?protocol,
        budget_ms = r.timeout_ms,
        "Live prediction asks a remote model server, with the local models as the fallback."
    );
    let budget = Duration::from_millis(r.timeout_ms);
    let client = fb_inference::RemoteModelServer::new(fb_inference::Options {
        url,
        protocol,
        timeout: budget,
        api_key,
    })
    .map_err(|e| anyhow::anyhow!("prediction.remote.url: {e}"))?;
    Ok(Some(fb_app::prediction::Remote {
        client: Arc::new(client),
        model_name: r.model.clone(),
        budget,
    }))
}

/// Settings refuse `prediction.remote.url` in a build without remote inference.
#[cfg(not(feature = "remote-inference"))]
pub fn remote_inference(_: &Settings) -> anyhow::Result<Option<fb_app::prediction::Remote>> {
    Ok(None)
}

/// Starts live prediction on what ingest stores, when enabled, with the active models of this
/// node's registry. Subscribes at once: readings ingested after this returns are used.
pub fn spawn_prediction(
    settings: &Settings,
    storage: &Storage,
    state: &fb_http::AppState,
    models: Arc<ModelRegistry>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if !settings.prediction.enabled {
        return Ok(None);
    }
    let readings = state.ingest.subscribe();
    let service = fb_app::prediction::Service::new(
        storage.machines.clone(),
        models,
        Arc::new(SystemClock),
        prediction_options(settings)?,
    );
    Ok(Some(tokio::spawn(service.run(readings, stop))))
}

/// The alert rules' timing, from settings.
pub fn alert_policy(settings: &Settings) -> fb_core::alerts::AlertPolicy {
    let a = &settings.alerts;
    fb_core::alerts::AlertPolicy {
        raise_after: a.raise_after,
        clear_after: time::Duration::seconds(a.clear_after_secs as i64),
        escalate_after: time::Duration::seconds(a.escalate_after_secs as i64),
        ..fb_core::alerts::AlertPolicy::default()
    }
}

/// The built-in broker, once started: where MQTT ingest reaches it and with which credentials.
#[derive(Debug, Clone)]
pub struct EmbeddedMqtt {
    pub addr: std::net::SocketAddr,
    /// Ingest's own user, generated at start, when devices must authenticate.
    pub ingest_credentials: Option<(String, String)>,
}

/// MQTT ingest's user on the built-in broker; device names cannot start with `factorybrain-`.
#[cfg(feature = "embedded-broker")]
const INGEST_USER: &str = "factorybrain-ingest";

/// Starts the built-in MQTT broker when `mqtt.embedded_broker` is on. Devices log in with their
/// device credentials (checked by `devices` on this runtime), MQTT ingest with a user generated
/// now; a device revoked through `devices` loses its connection at once. With
/// `mqtt.embedded_allow_anonymous` nobody is asked for credentials.
#[cfg(feature = "embedded-broker")]
pub fn start_embedded_broker(
    settings: &Settings,
    devices: &Arc<fb_app::devices::Service>,
    audit: &Arc<fb_app::audit::Service>,
) -> anyhow::Result<Option<EmbeddedMqtt>> {
    let m = &settings.mqtt;
    if !m.embedded_broker {
        return Ok(None);
    }
    let listen: std::net::SocketAddr = m.embedded_listen.parse().context("mqtt.embedded_listen")?;
    let (authenticate, ingest_credentials) = if m.embedded_allow_anonymous {
        tracing::warn!(
            "The embedded MQTT broker accepts anonymous clients (mqtt.embedded_allow_anonymous): \
             anyone who reaches it can publish readings."
        );
        (None, None)
    } else {
        let password: String = {
            use rand::Rng;
            rand::rng()
                .sample_iter(rand::distr::Alphanumeric)
                .take(32)
                .map(char::from)
                .collect()
        };
        (
            Some(device_check(devices.clone(), audit.clone())),
            Some((INGEST_USER.to_owned(), password)),
        )
    };
    let broker = Arc::new(fb_broker::start(&fb_broker::Options {
        listen,
        authenticate,
        local_users: ingest_credentials.iter().cloned().collect(),
        max_connections: 10_000,
        max_payload_bytes: 1 << 20,
        max_inflight: 1000,
    })?);
    if ingest_credentials.is_some() {
        let mut revoked = devices.subscribe_revocations();
        let broker = broker.clone();
        tokio::spawn(async move {
            loop {
                match revoked.recv().await {
                    Ok(device) => broker.disconnect_user(&device),
                    // Missed revocations are still refused at the device's next connect.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
        });
    }
    let mut addr = broker.addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    Ok(Some(EmbeddedMqtt {
        addr,
        ingest_credentials,
    }))
}

/// The broker's question "may this device connect?", answered by the devices use case on the
/// server's runtime: the broker's threads run runtimes of their own, and the store's
/// connections belong to this one. A store failure refuses the device (and is logged).
#[cfg(feature = "embedded-broker")]
fn device_check(
    devices: Arc<fb_app::devices::Service>,
    audit: Arc<fb_app::audit::Service>,
) -> fb_broker::Authenticate {
    let runtime = tokio::runtime::Handle::current();
    Arc::new(move |client_id: String, name: String, password: String| {
        let (devices, audit) = (devices.clone(), audit.clone());
        let check = runtime.spawn(async move {
            let (allowed, outcome) = match devices.authenticate(&client_id, &name, &password).await
            {
                Ok(device) => {
                    tracing::info!(device = %device.name, client_id = %client_id, "Device connected to the embedded broker.");
                    (true, fb_core::audit::Outcome::Success)
                }
                Err(fb_app::devices::Error::InvalidCredentials) => {
                    tracing::info!(device = %name, client_id = %client_id, "Device refused by the embedded broker.");
                    (false, fb_core::audit::Outcome::Denied)
                }
                Err(e) => {
                    tracing::warn!(device = %name, error = %e, "Could not check a device's credentials; refused.");
                    (false, fb_core::audit::Outcome::Failure)
                }
            };
            // A device's login is a login attempt like a person's: it goes into the audit log.
            audit
                .record(fb_core::audit::AuditEntry {
                    at: time::OffsetDateTime::now_utc(),
                    actor: format!("device:{name}"),
                    action: "device.connect".to_owned(),
                    target: Some(format!("device:{name}")),
                    outcome,
                    op_id: uuid::Uuid::now_v7().to_string(),
                    source: "mqtt".to_owned(),
                    details: std::collections::BTreeMap::from([(
                        "client_id".to_owned(),
                        client_id,
                    )]),
                })
                .await;
            allowed
        });
        Box::pin(async move { check.await.unwrap_or(false) })
    })
}

/// Settings refuse `mqtt.embedded_broker` in a build without the broker.
#[cfg(not(feature = "embedded-broker"))]
pub fn start_embedded_broker(
    _: &Settings,
    _: &Arc<fb_app::devices::Service>,
    _: &Arc<fb_app::audit::Service>,
) -> anyhow::Result<Option<EmbeddedMqtt>> {
    Ok(None)
}

/// MQTT ingest options, when `mqtt.enabled` or the built-in broker runs (ingest then reads
/// from it).
pub fn mqtt_options(
    settings: &Settings,
    embedded: Option<&EmbeddedMqtt>,
) -> anyhow::Result<Option<fb_mqtt::Options>> {
    let m = &settings.mqtt;
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    let (host, port, username, password, tls_ca_file) = match embedded {
        Some(e) => {
            let (user, password) = e.ingest_credentials.clone().unzip();
            (e.addr.ip().to_string(), e.addr.port(), user, password, None)
        }
        None if m.enabled => {
            let broker = m.broker()?;
            (
                broker.host,
                broker.port,
                non_empty(&m.username),
                non_empty(m.password.expose()),
                broker.tls.then(|| m.tls_ca_file.clone().into()),
            )
        }
        None => return Ok(None),
    };
    Ok(Some(fb_mqtt::Options {
        host,
        port,
        client_id: m.client_id.clone(),
        username,
        password,
        tls_ca_file,
        topic_prefix: m.topic_prefix.clone(),
        batch_max: m.batch_max as usize,
        batch_linger: Duration::from_millis(m.batch_linger_ms),
    }))
}

/// Cut-offs for a retention pass at `now`.
pub fn retention_cutoffs(
    settings: &Settings,
    now: time::OffsetDateTime,
) -> fb_core::ports::RetentionCutoffs {
    let r = &settings.retention;
    let days = |d: u64| (d > 0).then(|| now - time::Duration::days(d as i64));
    fb_core::ports::RetentionCutoffs {
        raw: days(r.raw_days),
        minute: days(r.minute_days),
        hour: days(r.hour_days),
    }
}
