//! The embedded MQTT broker: rumqttd, started in-process so that a laptop or a single plant
//! machine needs no broker of its own. Devices publish to it and the server's MQTT ingest
//! subscribes to it over loopback like to any broker, so every ingest guarantee between the
//! broker and the store holds unchanged.
//!
//! What it cannot give: rumqttd keeps messages in memory. A reading the broker acknowledged to
//! a device but the server had not stored yet is lost if the process stops; a plant that needs
//! every reading uses an external broker with persistence (Mosquitto) instead.

use std::collections::HashMap;
use std::net::SocketAddr;

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};

#[derive(Clone)]
pub struct Options {
    pub listen: SocketAddr,
    /// User name → password of the clients allowed to connect; empty: anonymous clients.
    pub credentials: Vec<(String, String)>,
    pub max_connections: usize,
    /// Largest accepted message, in bytes.
    pub max_payload_bytes: usize,
    /// Unacknowledged QoS 1 messages in flight per connection.
    pub max_inflight: usize,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("listen", &self.listen)
            .field(
                "users",
                &self.credentials.iter().map(|(u, _)| u).collect::<Vec<_>>(),
            )
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

/// A running broker. It runs until the process exits (rumqttd has no stop).
#[derive(Debug)]
pub struct EmbeddedBroker {
    pub addr: SocketAddr,
}

/// Starts the broker on its own threads. The address is tried first, so that a port in use is an
/// error here rather than a log line from a broker thread.
pub fn start(options: &Options) -> Result<EmbeddedBroker, Error> {
    drop(
        std::net::TcpListener::bind(options.listen)
            .map_err(|e| Error(format!("cannot listen on {}: {e}", options.listen)))?,
    );
    let auth = (!options.credentials.is_empty()).then(|| {
        options
            .credentials
            .iter()
            .cloned()
            .collect::<HashMap<_, _>>()
    });
    let server = ServerSettings {
        name: "factorybrain-v4".into(),
        listen: options.listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections: ConnectionSettings {
            connection_timeout_ms: 60_000,
            max_payload_size: options.max_payload_bytes,
            max_inflight_count: options.max_inflight,
            auth,
            external_auth: None,
            dynamic_filters: true,
        },
    };
    let config = Config {
        id: 0,
        router: RouterConfig {
            max_connections: options.max_connections,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
        },
        v4: Some(HashMap::from([("1".to_owned(), server)])),
        v5: None,
        ws: None,
        cluster: None,
        console: None,
        bridge: None,
        prometheus: None,
        metrics: None,
    };
    let mut broker = Broker::new(config);
    std::thread::Builder::new()
        .name("fb-mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = broker.start() {
                tracing::error!(error = %e, "The embedded MQTT broker stopped.");
            }
        })
        .map_err(|e| Error(format!("cannot start the broker thread: {e}")))?;
    tracing::info!(addr = %options.listen, authenticated = !options.credentials.is_empty(), "Embedded MQTT broker listening.");
    Ok(EmbeddedBroker {
        addr: options.listen,
    })
}
