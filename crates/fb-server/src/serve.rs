//! `factorybrain serve`: start, serve, drain, stop.

use std::time::Duration;

use anyhow::Context;
use tracing::Instrument;

use crate::settings::Settings;
use crate::wire;

pub(crate) async fn run(settings: Settings, demo: bool) -> anyhow::Result<()> {
    // Install the metrics recorder before anything records (migrations, bootstrap queries).
    let _ = fb_http::metrics_handle();
    let startup_op_id = uuid::Uuid::now_v7().to_string();
    let startup = tracing::info_span!("startup", op_id = %startup_op_id);
    let (storage, state, models, listener, signal) = async {
        let storage = wire::open_storage(&settings).await?;
        tracing::info!(backend = storage.health.backend(), "Store open, migrations applied.");
        let auth = wire::auth_service(&settings, &storage).await?;
        if let Some((user, password)) = auth.bootstrap_admin(&settings.auth.bootstrap_admin).await? {
            announce_first_admin(&user.username, &password);
            tracing::info!(username = %user.username, "First admin created; its password was printed to the console.");
            record_first_admin(&storage, &user, &startup_op_id).await;
        }
        let (state, models) = wire::http_state_and_models(&settings, &storage, auth).await?;
        let signal = shutdown_signal()?;
        let addr = settings.listen_addr()?;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let local = listener.local_addr().context("cannot read the listening address")?;
        tracing::info!(addr = %local, "Listening.");
        anyhow::Ok((storage, state, models, listener, signal))
    }
    .instrument(startup)
    .await?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let embedded = wire::start_embedded_broker(&settings, &state.devices, &state.audit)?;
    let mqtt_task = match wire::mqtt_options(&settings, embedded.as_ref())? {
        Some(options) => {
            tracing::info!(broker = %format!("{}:{}", options.host, options.port), client_id = %options.client_id, "MQTT ingest starting.");
            let ingest = state.ingest.clone();
            let stop = stop_rx.clone();
            Some(tokio::spawn(async move {
                if let Err(e) = fb_mqtt::run(options, ingest, stop).await {
                    tracing::error!(error = %e, "MQTT ingest stopped.");
                }
            }))
        }
        None => None,
    };
    let retention_task = {
        let readings = storage.readings.clone();
        let settings = settings.clone();
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            let every = Duration::from_secs(settings.retention.interval_minutes * 60);
            // First pass shortly after start, then on the interval.
            let mut next = tokio::time::Instant::now() + Duration::from_secs(5);
            loop {
                tokio::select! {
                    () = tokio::time::sleep_until(next) => {}
                    _ = stop.wait_for(|s| *s) => break,
                }
                next += every;
                let span = tracing::info_span!("retention", op_id = %uuid::Uuid::now_v7());
                let cutoffs = wire::retention_cutoffs(&settings, time::OffsetDateTime::now_utc());
                match readings.apply_retention(&cutoffs).instrument(span.clone()).await {
                    Ok(outcome) => span.in_scope(|| tracing::info!(raw = outcome.raw_units, minute_rows = outcome.minute_rows, hour_rows = outcome.hour_rows, "Retention pass done.")),
                    Err(e) => span.in_scope(|| tracing::warn!(error = %e, "Retention pass failed; retrying at the next interval.")),
                }
            }
        })
    };
    // Follows a rotation of the stored signing key (`factorybrain auth rotate-signing-key`)
    // even when no token names the new key yet.
    let key_task = spawn_every(KEY_RELOAD_EVERY, false, stop_rx.clone(), {
        let auth = state.auth.clone();
        move || {
            let auth = auth.clone();
            async move {
                if let Err(e) = auth.reload_keys().await {
                    tracing::warn!(error = %e, "Could not re-read the token signing keys; retrying.");
                }
            }
        }
    });
    // Loads the active models at start, then follows promotions and rollbacks made on other
    // nodes or from the command line (this node's own swap at once).
    let model_task = spawn_every(MODEL_RELOAD_EVERY, true, stop_rx.clone(), {
        let models = state.models.clone();
        move || {
            let models = models.clone();
            async move {
                if let Err(e) = models.reload().await {
                    tracing::warn!(error = %e, "Could not look for newly active models; retrying.");
                }
            }
        }
    });
    let bus = wire::open_bus(&settings).await?;
    tracing::info!(backend = bus.backend(), stream = %settings.bus.stream, prefix = %settings.bus.subject_prefix, "Event bus open.");
    // Gate verdicts and agent decisions take the same bus.
    state.gates.attach_bus(bus.clone());
    state.procurement.set_bus(bus.clone());
    state.optimizer.attach_bus(bus.clone());
    let command_publisher = wire::install_machine_commands(&settings, embedded.as_ref(), &state)?;
    // The agents' consumers first: they receive what is published after they exist.
    let agent_tasks = wire::spawn_agents(&settings, &state, bus.clone(), stop_rx.clone()).await;
    let energy_task = wire::spawn_energy(&settings, &state, bus.clone(), stop_rx.clone());
    let bus_task = wire::spawn_bus_publisher(&storage, &state, bus, stop_rx.clone());
    let gates_task = wire::spawn_gate_sweeper(&settings, &state, stop_rx.clone());
    // Subscribed before detection starts, so that no critical alert it opens is missed.
    let tickets_task = wire::spawn_auto_tickets(&storage, &state, stop_rx.clone());
    let detection_task = wire::spawn_detection(&settings, &storage, &state, stop_rx.clone())?;
    tracing::info!(enabled = settings.detection.enabled, "Detection started.");
    let prediction_task =
        wire::spawn_prediction(&settings, &storage, &state, models.clone(), stop_rx.clone())?;
    tracing::info!(
        enabled = settings.prediction.enabled,
        "Live prediction started."
    );
    let demo_task = demo.then(|| {
        tokio::spawn(crate::demo::run(
            state.plant.clone(),
            state.ingest.clone(),
            state.models.clone(),
            state.procurement.clone(),
            stop_rx,
        ))
    });
    let router = fb_http::router(state.clone());
    let (signalled_tx, mut signalled) = tokio::sync::watch::channel(false);
    let draining = state.clone();
    let shutdown = tracing::info_span!("shutdown", op_id = %uuid::Uuid::now_v7());
    let signal_span = shutdown.clone();
    let drain_delay = Duration::from_secs(settings.server.drain_delay_secs);
    // The peer address is the client for rate limits (or the proxy that reports the client)
    // and the source in the audit log.
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, service).with_graceful_shutdown(
        async move {
            signal.await;
            draining.start_draining();
            if !drain_delay.is_zero() {
                tracing::info!(
                    drain_delay_secs = drain_delay.as_secs(),
                    "Shutdown requested: /readyz now answers 503; still serving."
                );
                tokio::time::sleep(drain_delay).await;
            }
            tracing::info!("No new connections; draining in-flight requests.");
            let _ = signalled_tx.send(true);
        }
        .instrument(signal_span),
    );
    let grace = Duration::from_secs(settings.server.shutdown_grace_secs);
    tokio::select! {
        result = server.into_future() => result.context("the HTTP server failed")?,
        () = async {
            let _ = signalled.wait_for(|s| *s).await;
            tokio::time::sleep(grace).await;
        } => shutdown.in_scope(|| tracing::warn!(grace_secs = grace.as_secs(), "Requests still running after the grace period; stopping anyway.")),
    }
    let _ = stop_tx.send(true);
    for task in [
        demo_task,
        mqtt_task,
        Some(retention_task),
        Some(key_task),
        Some(model_task),
        Some(detection_task),
        Some(bus_task),
        Some(tickets_task),
        Some(gates_task),
        energy_task,
        prediction_task,
    ]
    .into_iter()
    .flatten()
    .chain(agent_tasks)
    {
        let _ = task.await;
    }
    // The gate holds the publisher too; the last handle dropped ends its connection.
    drop(command_publisher);
    // Connections abandoned after the grace period may still hold pooled connections; closing
    // the pool waits for them, so it gets a bound of its own.
    if tokio::time::timeout(STORE_CLOSE_TIMEOUT, storage.health.close())
        .await
        .is_err()
    {
        shutdown.in_scope(|| tracing::warn!("The store did not close in time; exiting anyway."));
    }
    shutdown.in_scope(|| tracing::info!("Shutdown complete."));
    Ok(())
}

const STORE_CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often a running server re-reads the stored token signing keys.
const KEY_RELOAD_EVERY: Duration = Duration::from_secs(60);

/// How often a running server looks for models made active elsewhere: the most a node serves
/// the previous model after a promotion on another node or from the command line. One query of
/// the active models' metadata each time.
const MODEL_RELOAD_EVERY: Duration = Duration::from_secs(5);

/// Runs `work` every `period` until `stop` turns true: first at once when `at_start`, else
/// after one period. A run that overruns delays the next rather than bunching them.
fn spawn_every<F, Fut>(
    period: Duration,
    at_start: bool,
    mut stop: tokio::sync::watch::Receiver<bool>,
    mut work: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut every = tokio::time::interval(period);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if !at_start {
            every.tick().await;
        }
        loop {
            tokio::select! {
                _ = every.tick() => {}
                _ = stop.wait_for(|s| *s) => break,
            }
            work().await;
        }
    })
}

/// The first admin is created by the system itself; the audit log starts with that.
async fn record_first_admin(
    storage: &fb_core::ports::Storage,
    user: &fb_core::identity::User,
    op_id: &str,
) {
    let audit = wire::audit_service(storage);
    let entry = fb_core::audit::AuditEntry {
        at: audit.now(),
        actor: "system".to_owned(),
        action: "user.create".to_owned(),
        target: Some(format!("user:{}", user.username)),
        outcome: fb_core::audit::Outcome::Success,
        op_id: op_id.to_owned(),
        source: "local".to_owned(),
        details: [
            ("user_id".to_owned(), user.id.to_string()),
            ("role".to_owned(), user.role.as_str().to_owned()),
            ("reason".to_owned(), "first start without users".to_owned()),
        ]
        .into(),
    };
    audit.record(entry).await;
}

/// The first admin's password goes to the console once, never into the structured log.
#[allow(clippy::print_stderr)]
fn announce_first_admin(username: &str, password: &str) {
    eprintln!();
    eprintln!("  No users existed, so an admin was created:");
    eprintln!("    username: {username}");
    eprintln!("    password: {password}");
    eprintln!("  It is shown only this once. Log in and change it (POST /api/v1/auth/password).");
    eprintln!();
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT). Built before "Listening." is logged, so that a signal
/// sent as soon as the server is up is never lost.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
    }
}
