//! The embedded MQTT broker: rumqttd, started in-process so that a laptop or a single plant
//! machine needs no broker of its own. Devices publish to it and the server's MQTT ingest
//! subscribes to it over loopback like to any broker, so every ingest guarantee between the
//! broker and the store holds unchanged.
//!
//! Who may connect is the caller's decision: [`Options::authenticate`] is asked for every
//! connect (client id, user name, password). The server passes a check against its device
//! credentials; this crate knows no store.
//!
//! What it cannot give:
//! - rumqttd keeps messages in memory. A reading the broker acknowledged to a device but the
//!   server had not stored yet is lost if the process stops; a plant that needs every reading
//!   uses an external broker with persistence (Mosquitto) instead.
//! - rumqttd has no topic ACLs: an authenticated device may publish to any topic. Plants that
//!   need each device confined to its own topics use Mosquitto with an `acl_file`.
//! - rumqttd has no call to close a connection. [`EmbeddedBroker::disconnect_user`] closes a
//!   revoked user's connections the way MQTT allows: a new connection with the same client id
//!   takes the session over (MQTT 3.1.1 §3.1.4), and then disconnects.

mod takeover;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use rumqttd::{Broker, Config, ConnectionSettings, RouterConfig, ServerSettings};
use subtle::ConstantTimeEq;

/// Decides whether a client may connect: (client id, user name, password) → allowed.
pub type Authenticate =
    Arc<dyn Fn(String, String, String) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

#[derive(Clone)]
pub struct Options {
    pub listen: SocketAddr,
    /// Asked at every connect. `None`: anonymous clients, no credentials checked at all.
    pub authenticate: Option<Authenticate>,
    /// Users of this process (MQTT ingest's), as (user name, password): checked here, in
    /// constant time, before `authenticate` is asked. Only used with `authenticate`.
    pub local_users: Vec<(String, String)>,
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
            .field("authenticated", &self.authenticate.is_some())
            .field(
                "local_users",
                &self.local_users.iter().map(|(u, _)| u).collect::<Vec<_>>(),
            )
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Error(String);

/// The user name of the broker's own take-over connections; no device can be called this.
const TAKEOVER_USER: &str = "factorybrain-takeover";
/// Client ids remembered per connected user, for [`EmbeddedBroker::disconnect_user`]. Past this
/// many the memory is cleared: forgotten connections are still refused at their next connect.
const REMEMBERED_CLIENTS: usize = 100_000;

/// Which user each client id authenticated as, most recent connect wins.
#[derive(Default)]
struct Clients {
    user_of: Mutex<HashMap<String, String>>,
}

impl Clients {
    fn connected(&self, client_id: String, user: String) {
        let mut map = self.user_of.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= REMEMBERED_CLIENTS && !map.contains_key(&client_id) {
            map.clear();
        }
        map.insert(client_id, user);
    }

    /// Forgets and returns the client ids that last authenticated as `user`.
    fn take(&self, user: &str) -> Vec<String> {
        let mut map = self.user_of.lock().unwrap_or_else(PoisonError::into_inner);
        let ids: Vec<String> = map
            .iter()
            .filter(|(_, u)| u.as_str() == user)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &ids {
            map.remove(id);
        }
        ids
    }
}

/// A running broker. It runs until the process exits (rumqttd has no stop).
pub struct EmbeddedBroker {
    pub addr: SocketAddr,
    clients: Arc<Clients>,
    takeover_password: String,
}

impl std::fmt::Debug for EmbeddedBroker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedBroker")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

impl EmbeddedBroker {
    /// Closes every connection that authenticated as `user` (a device just revoked), on a
    /// thread of its own: each is taken over by a connection with its client id, which then
    /// disconnects. Returns at once. Clients that connected anonymously are not known by user.
    pub fn disconnect_user(&self, user: &str) {
        let client_ids = self.clients.take(user);
        if client_ids.is_empty() {
            return;
        }
        let addr = loopback(self.addr);
        let password = self.takeover_password.clone();
        let user = user.to_owned();
        let spawned = std::thread::Builder::new()
            .name("fb-mqtt-takeover".into())
            .spawn(move || {
                for client_id in client_ids {
                    match takeover::take_over(addr, &client_id, TAKEOVER_USER, &password) {
                        Ok(()) => {
                            tracing::info!(user = %user, client_id = %client_id, "Dropped a revoked device's MQTT connection.");
                        }
                        Err(e) => {
                            tracing::warn!(user = %user, client_id = %client_id, error = %e, "Could not drop a revoked device's MQTT connection; it is refused at its next connect.");
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "Could not start dropping a revoked device's connections.");
        }
    }
}

/// Returns once the broker's thread accepts connections, so that a device (or MQTT ingest)
/// connecting right after [`start`] is not refused by a port nobody listens on yet.
fn wait_until_listening(listen: SocketAddr) -> Result<(), Error> {
    const STEP: std::time::Duration = std::time::Duration::from_millis(10);
    const LIMIT: u32 = 1000;
    let addr = loopback(listen);
    for _ in 0..LIMIT {
        if std::net::TcpStream::connect_timeout(&addr, STEP * 10).is_ok() {
            return Ok(());
        }
        std::thread::sleep(STEP);
    }
    Err(Error(format!(
        "the broker did not start listening on {listen}"
    )))
}

/// The address to reach a broker listening on `addr` from this host.
fn loopback(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    addr
}

/// The process's own users (the take-over user and `local_users`), then the caller's check,
/// remembering who connected.
fn wrap(
    authenticate: Authenticate,
    local_users: HashMap<String, String>,
    clients: Arc<Clients>,
) -> impl Fn(String, String, String) -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync + 'static
{
    move |client_id: String, user: String, password: String| {
        if let Some(expected) = local_users.get(&user) {
            let ok: bool = password.as_bytes().ct_eq(expected.as_bytes()).into();
            return Box::pin(std::future::ready(ok));
        }
        let decided = authenticate(client_id.clone(), user.clone(), password);
        let clients = clients.clone();
        Box::pin(async move {
            let allowed = decided.await;
            if allowed {
                clients.connected(client_id, user);
            }
            allowed
        })
    }
}

/// Starts the broker on its own threads. The address is tried first, so that a port in use is an
/// error here rather than a log line from a broker thread.
pub fn start(options: &Options) -> Result<EmbeddedBroker, Error> {
    let listener = std::net::TcpListener::bind(options.listen)
        .map_err(|e| Error(format!("cannot listen on {}: {e}", options.listen)))?;
    let listen = listener
        .local_addr()
        .map_err(|e| Error(format!("cannot read the listening address: {e}")))?;
    drop(listener);
    let clients = Arc::new(Clients::default());
    let takeover_password = takeover::generate_password();
    let mut connections = ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: options.max_payload_bytes,
        max_inflight_count: options.max_inflight,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    if let Some(authenticate) = &options.authenticate {
        let mut local_users: HashMap<String, String> =
            options.local_users.iter().cloned().collect();
        local_users.insert(TAKEOVER_USER.to_owned(), takeover_password.clone());
        connections.set_auth_handler(wrap(authenticate.clone(), local_users, clients.clone()));
    }
    let server = ServerSettings {
        name: "factorybrain-v4".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
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
    wait_until_listening(listen)?;
    tracing::info!(addr = %listen, authenticated = options.authenticate.is_some(), "Embedded MQTT broker listening.");
    Ok(EmbeddedBroker {
        addr: listen,
        clients,
        takeover_password,
    })
}
