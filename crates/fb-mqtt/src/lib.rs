//! MQTT ingest (A3): subscribes to `{prefix}/{site}/{machine}/{sensor}` (a JSON object
//! `{"ts", "value", "unit"}` or a bare number stamped on arrival) and `{prefix}/{site}/{machine}`
//! (one JSON object of several sensors with one `ts`), with QoS 1 on a persistent session.
//!
//! Messages are acknowledged by hand, and only after the batch that holds them has committed
//! (readings stored, refusals dead-lettered): a crash at any point leaves every unacknowledged
//! message with the broker, which redelivers it; ingest is idempotent, so redelivery is safe.
//! When ingest is overloaded or the store is down, the batch is retried and its messages stay
//! unacknowledged, which stops the broker from sending more (its in-flight window is full).

pub mod commands;
mod payload;

use std::sync::Arc;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, Publish, QoS, TlsConfiguration, Transport};
use tokio::sync::{mpsc, watch};

use fb_app::auth::SystemPrincipal;
use fb_app::ingest::{self, Origin};
use fb_core::identity::Principal;

pub use commands::{CommandOptions, CommandPublisher};
pub use payload::parse_message;

/// Content type of MQTT dead letters: the message payload as sent, whose machine and sensor are
/// in the topic (kept in the letter's source, `mqtt:<topic>`).
pub const MQTT_CONTENT_TYPE: &str = "application/vnd.factorybrain.mqtt+json";

/// Reads MQTT dead letters again for replay: the topic is in the letter's source.
pub struct MqttParser {
    pub topic_prefix: String,
}

impl fb_app::ingest::PayloadParser for MqttParser {
    fn parse(
        &self,
        source: &str,
        payload: bytes::Bytes,
    ) -> Result<Vec<ingest::Item>, fb_core::plant::Rejection> {
        let topic = source.strip_prefix("mqtt:").ok_or_else(|| {
            fb_core::plant::Rejection::MalformedJson(format!(
                "source '{source}' names no MQTT topic"
            ))
        })?;
        Ok(parse_message(
            self.topic_prefix.trim_end_matches('/'),
            topic,
            &payload,
        ))
    }
}

/// A batch is stored once no message has arrived for this long (see `run`).
const IDLE_FLUSH: Duration = Duration::from_millis(2);

#[derive(Clone)]
pub struct Options {
    pub host: String,
    pub port: u16,
    /// Fixed, so that the broker keeps the session (and unacknowledged messages) across restarts.
    pub client_id: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// PEM file of the CA that signed the broker's certificate; `Some` turns TLS on.
    pub tls_ca_file: Option<std::path::PathBuf>,
    pub topic_prefix: String,
    /// Messages per ingest batch at most.
    pub batch_max: usize,
    /// How long a batch waits for more messages before it is stored.
    pub batch_linger: Duration,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("client_id", &self.client_id)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[redacted]"))
            .field("topic_prefix", &self.topic_prefix)
            .finish_non_exhaustive()
    }
}

#[derive(Debug)]
pub struct Error(String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Connects and runs until `stop` turns true. Connection losses are retried with backoff.
pub async fn run(
    options: Options,
    ingest: Arc<ingest::Service>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), Error> {
    let mut mqtt = MqttOptions::new(&options.client_id, &options.host, options.port);
    mqtt.set_keep_alive(Duration::from_secs(30));
    mqtt.set_clean_session(false);
    mqtt.set_manual_acks(true);
    mqtt.set_max_packet_size(1 << 20, 1 << 20);
    if let (Some(user), Some(password)) = (&options.username, &options.password) {
        mqtt.set_credentials(user, password);
    }
    if let Some(ca) = &options.tls_ca_file {
        mqtt.set_transport(Transport::tls_with_config(tls_config(ca)?));
    }
    // Room for a whole batch of acknowledgements, so that queueing them rarely waits for the
    // event loop (which sends one queued request per turn while messages stream in).
    let (client, mut eventloop) = AsyncClient::new(mqtt, options.batch_max.max(1) + 16);
    let prefix = options.topic_prefix.trim_end_matches('/').to_owned();
    for filter in [format!("{prefix}/+/+/+"), format!("{prefix}/+/+")] {
        client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .map_err(|e| Error(format!("subscribe: {e}")))?;
    }

    // The event loop must keep being polled (pings, acks going out) while a batch is stored, so
    // it runs apart from the batching below. The hand-over never blocks it: a poller waiting for
    // room would stop sending the acknowledgements the batcher is waiting to queue (a deadlock
    // seen under load). What it holds is bounded by the broker's in-flight window, since every
    // message in it is unacknowledged.
    let (tx, mut rx) = mpsc::unbounded_channel::<Publish>();
    let mut poll_stop = stop.clone();
    let poller = tokio::spawn(async move {
        let mut backoff = Duration::from_millis(100);
        loop {
            let event = tokio::select! {
                event = eventloop.poll() => event,
                _ = poll_stop.wait_for(|s| *s) => break,
            };
            match event {
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    backoff = Duration::from_millis(100);
                    if tx.send(publish).is_err() {
                        break;
                    }
                }
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    backoff = Duration::from_millis(100);
                    tracing::info!(session_present = ack.session_present, "MQTT connected.");
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, retry_ms = backoff.as_millis() as u64, "MQTT connection lost; reconnecting.");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    });

    let system = Principal::system();
    loop {
        let first = tokio::select! {
            first = rx.recv() => first,
            _ = stop.wait_for(|s| *s) => None,
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        let linger = tokio::time::sleep(options.batch_linger);
        tokio::pin!(linger);
        while batch.len() < options.batch_max {
            tokio::select! {
                next = rx.recv() => match next {
                    Some(p) => batch.push(p),
                    None => break,
                },
                () = &mut linger => break,
                // The broker stopped sending: nothing more is coming, or its in-flight window
                // (Mosquitto: max_inflight_messages, 20 by default) is full of messages that
                // wait for this batch's acknowledgements. Either way, waiting longer only adds
                // latency.
                () = tokio::time::sleep(IDLE_FLUSH) => break,
            }
        }
        store_then_ack(&client, &ingest, &system, &prefix, batch, &mut stop).await;
    }
    let _ = client.disconnect().await;
    let _ = poller.await;
    Ok(())
}

/// Stores a batch (retrying while ingest is overloaded or the store is down), then acknowledges
/// every message in it. Nothing is acknowledged before its readings and dead letters committed.
async fn store_then_ack(
    client: &AsyncClient,
    ingest: &ingest::Service,
    system: &Principal,
    prefix: &str,
    batch: Vec<Publish>,
    stop: &mut watch::Receiver<bool>,
) {
    // Messages of one topic share an origin, so their dead letters say where they came from;
    // all topics of the batch are stored in one append.
    let mut parts: Vec<(Origin, Vec<ingest::Item>)> = Vec::new();
    for publish in &batch {
        let items = parse_message(prefix, &publish.topic, &publish.payload);
        let source = format!("mqtt:{}", publish.topic);
        match parts.iter_mut().find(|(o, _)| o.source == source) {
            Some((_, existing)) => existing.extend(items),
            None => parts.push((
                Origin {
                    source,
                    content_type: MQTT_CONTENT_TYPE.into(),
                },
                items,
            )),
        }
    }
    let mut backoff = Duration::from_millis(50);
    loop {
        match ingest.ingest_parts(system, parts.clone()).await {
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %e, messages = batch.len(), "MQTT batch not stored; holding its acknowledgements and retrying.");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    // Shutting down: leave the messages unacknowledged for redelivery.
                    _ = stop.wait_for(|s| *s) => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
    tracing::debug!(messages = batch.len(), "MQTT batch stored; acknowledging.");
    for publish in &batch {
        if let Err(e) = client.ack(publish).await {
            tracing::warn!(error = %e, "Could not queue an MQTT acknowledgement; the broker will redeliver.");
        }
    }
    tracing::debug!(messages = batch.len(), "MQTT batch acknowledged.");
}

fn tls_config(ca_file: &std::path::Path) -> Result<TlsConfiguration, Error> {
    let pem = std::fs::read(ca_file)
        .map_err(|e| Error(format!("cannot read {}: {e}", ca_file.display())))?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        let cert = cert.map_err(|e| Error(format!("{}: {e}", ca_file.display())))?;
        roots
            .add(cert)
            .map_err(|e| Error(format!("{}: {e}", ca_file.display())))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| Error(format!("TLS: {e}")))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(TlsConfiguration::Rustls(Arc::new(config)))
}
