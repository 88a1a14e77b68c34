//! The event bus on NATS JetStream ([`EventBus`]), for plants with several nodes or events that
//! must outlive a restart. Compiled into the server with its `nats` feature.
//!
//! One stream (`bus.stream`) holds every subject under the deployment's prefix
//! (`{prefix}.>`) with **interest retention**: a message stays until every consumer whose
//! filter it matches acknowledged it (or gave it up), like the in-process bus. Limits: at most
//! `max_events` messages, refusing new ones when full (discard new: a waiting event is never
//! dropped to make room), at most [`RETENTION`] old, on file storage.
//!
//! - **Publish** sets the `Nats-Msg-Id` header to the event id, so that JetStream's duplicate
//!   window ([`DUPLICATE_WINDOW`]) turns a repeated publish into an acknowledged duplicate.
//!   It waits for the stream's acknowledgement (the event is stored) and goes through
//!   `fb-outbound` (target `nats`): a time-out per attempt, bounded retries with back-off
//!   (safe, since a retry is a duplicate at worst) and a circuit breaker.
//! - **Consumers** are durable pull consumers (`durable_name` = the consumer's name) with
//!   `AckPolicy::Explicit`, `ack_wait`, `max_deliver` and `DeliverPolicy::New`, filtered to
//!   `{prefix}.{filter}`. Acks and naks wait for the server's confirmation (`+ACK` with a
//!   reply), so an acknowledged event is acknowledged when `ack()` returns.
//! - A message whose payload is not a valid envelope, or whose subject is not its envelope's,
//!   is terminated (`+TERM`: never redelivered), counted in `fb_bus_malformed_total` and
//!   logged; consumers never see it.
//!
//! The connection is made in the background and remade after failures (async-nats), so a node
//! starts and serves while NATS is down; publishing then fails fast once the breaker opens.
//! Credentials in the URL are taken out of it and handed to the client apart, so that no
//! address the client logs carries them; errors never include the URL.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, stream};
use async_trait::async_trait;
use futures::StreamExt;

use fb_core::events::{Envelope, SubjectPrefix};
use fb_core::ports::{
    Acknowledge, BusError, ConsumerSpec, DUPLICATE_WINDOW, Delivery, EventBus, EventConsumer,
    Published, RETENTION, validate_consumer,
};
use fb_outbound::{BreakerSettings, CallError, Classify, ErrorClass, Outbound, Policy};

/// The name of the outbound target (metrics, breaker).
pub const OUTBOUND_TARGET: &str = "nats";
/// One request to NATS (publish acknowledgement, consumer creation, ack) at most this long.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// A call, retries included, at most this long.
const CALL_DEADLINE: Duration = Duration::from_secs(12);
const MAX_ATTEMPTS: u32 = 3;
/// A connection attempt at most this long (the client keeps trying in the background).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The server's "maximum messages exceeded" answer to a publish into a full stream.
const STREAM_STORE_FAILED: u64 = 10077;
/// The server's answer to creating a stream that exists with another configuration.
const STREAM_NAME_EXISTS: u64 = 10058;

/// Where the bus lives and how large it may grow.
#[derive(Clone)]
pub struct Options {
    /// `nats://[user:password@]host[:port]` or `tls://…`. Secret when it holds credentials:
    /// never logged by this crate.
    pub url: String,
    /// The JetStream stream's name (letters, digits, `-`, `_`).
    pub stream: String,
    pub prefix: SubjectPrefix,
    /// Most messages the stream holds; publishing is refused beyond.
    pub max_events: i64,
    /// The connection's name, as NATS monitoring shows it.
    pub client_name: String,
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("url", &"[redacted]")
            .field("stream", &self.stream)
            .field("prefix", &self.prefix)
            .field("max_events", &self.max_events)
            .finish()
    }
}

/// The bus on JetStream. Clones share the connection.
#[derive(Clone)]
pub struct NatsBus {
    inner: Arc<Inner>,
}

struct Inner {
    client: async_nats::Client,
    js: jetstream::Context,
    stream_config: stream::Config,
    prefix: SubjectPrefix,
    /// The stream once this bus made sure it exists; cleared when the server says it is gone.
    stream: tokio::sync::Mutex<Option<stream::Stream>>,
    outbound: Outbound,
}

/// A failure of one NATS request, as the resilience layer sees it.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// No answer: disconnected, timed out, no responders.
    #[error("no answer from NATS: {0}")]
    Unreachable(String),
    /// The stream is full (discard new).
    #[error("{0}")]
    Full(String),
    /// The stream this bus publishes to does not exist (any more).
    #[error("the stream does not exist")]
    NoStream,
    /// The server answered and refused.
    #[error("{0}")]
    Refused(String),
}

impl Classify for Failure {
    fn class(&self) -> ErrorClass {
        match self {
            Failure::Unreachable(_) => ErrorClass::RETRYABLE,
            Failure::Full(_) | Failure::NoStream | Failure::Refused(_) => ErrorClass::Permanent,
        }
    }
}

fn bus_error(e: CallError<Failure>) -> BusError {
    match e {
        CallError::Failed {
            error: Failure::Full(m),
            ..
        } => BusError::Full(m),
        CallError::Failed {
            error: Failure::Refused(m),
            ..
        } => BusError::Refused(m),
        CallError::Failed {
            error: Failure::NoStream,
            ..
        } => BusError::Unavailable("the stream does not exist".into()),
        other => BusError::Unavailable(other.to_string()),
    }
}

/// The server's error code behind an async-nats error, if the server answered with one.
fn server_code(e: &(dyn std::error::Error + 'static)) -> Option<(u64, String)> {
    let mut source = Some(e);
    while let Some(err) = source {
        if let Some(js) = err.downcast_ref::<jetstream::Error>() {
            return Some((js.error_code().0, js.to_string()));
        }
        source = err.source();
    }
    None
}

impl NatsBus {
    /// Starts the connection (in the background: this returns while NATS is down) and makes
    /// sure the stream exists, which is tried again on first use if NATS does not answer now.
    /// Fails only on a URL the client cannot use.
    pub async fn connect(options: &Options) -> Result<Self, BusError> {
        let (address, credentials) = split_credentials(&options.url)?;
        let mut connect = async_nats::ConnectOptions::new()
            .name(&options.client_name)
            .retry_on_initial_connect()
            .connection_timeout(CONNECT_TIMEOUT)
            .request_timeout(Some(ATTEMPT_TIMEOUT));
        if let Some((user, password)) = credentials {
            connect = connect.user_and_password(user, password);
        }
        let client = connect
            .connect(address.as_str())
            .await
            .map_err(|e| BusError::Refused(format!("bus.url cannot be used: {}", e.kind())))?;
        let mut js = jetstream::new(client.clone());
        js.set_timeout(ATTEMPT_TIMEOUT);
        let policy = Policy::new(ATTEMPT_TIMEOUT, CALL_DEADLINE).with_max_attempts(MAX_ATTEMPTS);
        let breaker = BreakerSettings::new(20, 10, 0.5).with_open_for(Duration::from_secs(10));
        let bus = Self {
            inner: Arc::new(Inner {
                client,
                js,
                stream_config: stream_config(options),
                prefix: options.prefix.clone(),
                stream: tokio::sync::Mutex::new(None),
                outbound: Outbound::new(OUTBOUND_TARGET, policy, breaker),
            }),
        };
        if let Err(e) = bus.stream().await {
            tracing::warn!(stream = %options.stream, error = %e, "Could not make sure the NATS stream exists; trying again on first use.");
        }
        Ok(bus)
    }

    /// The stream, created (or brought to this configuration) on first use.
    async fn stream(&self) -> Result<stream::Stream, BusError> {
        let mut known = self.inner.stream.lock().await;
        if let Some(stream) = known.as_ref() {
            return Ok(stream.clone());
        }
        let inner = &self.inner;
        let stream = inner
            .outbound
            .call(|| async {
                match inner.js.create_stream(inner.stream_config.clone()).await {
                    Ok(stream) => Ok(stream),
                    Err(e) => match server_code(&e) {
                        // Exists with other limits (a changed setting): apply ours.
                        Some((STREAM_NAME_EXISTS, _)) => {
                            inner
                                .js
                                .update_stream(inner.stream_config.clone())
                                .await
                                .map_err(|e| match server_code(&e) {
                                    Some((_, m)) => Failure::Refused(format!(
                                        "stream {} exists with a configuration that cannot be changed to this one: {m}",
                                        inner.stream_config.name
                                    )),
                                    None => Failure::Unreachable(e.to_string()),
                                })?;
                            inner
                                .js
                                .get_stream(&inner.stream_config.name)
                                .await
                                .map_err(|e| Failure::Unreachable(e.to_string()))
                        }
                        Some((_, m)) => Err(Failure::Refused(m)),
                        None => Err(Failure::Unreachable(e.to_string())),
                    },
                }
            })
            .await
            .map_err(bus_error)?;
        *known = Some(stream.clone());
        Ok(stream)
    }

    /// Deletes the stream and every consumer on it (tests, and taking a deployment down).
    pub async fn delete_stream(&self) -> Result<(), BusError> {
        self.inner
            .js
            .delete_stream(&self.inner.stream_config.name)
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))?;
        *self.inner.stream.lock().await = None;
        Ok(())
    }

    /// Waits until everything this client sent reached the server.
    pub async fn flush(&self) -> Result<(), BusError> {
        self.inner
            .client
            .flush()
            .await
            .map_err(|e| BusError::Unavailable(e.to_string()))
    }
}

fn stream_config(options: &Options) -> stream::Config {
    stream::Config {
        name: options.stream.clone(),
        description: Some("FactoryBrain domain events".to_owned()),
        subjects: vec![options.prefix.all()],
        retention: stream::RetentionPolicy::Interest,
        discard: stream::DiscardPolicy::New,
        max_messages: options.max_events,
        max_age: RETENTION,
        duplicate_window: DUPLICATE_WINDOW,
        storage: stream::StorageType::File,
        num_replicas: 1,
        ..Default::default()
    }
}

/// A user name and password.
type Credentials = (String, String);

/// The URL without credentials, and the credentials (percent-decoded), if any.
fn split_credentials(url: &str) -> Result<(String, Option<Credentials>), BusError> {
    let invalid = || BusError::Refused("bus.url is not a URL".into());
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(invalid());
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        None => Ok((url.to_owned(), None)),
        Some((userinfo, host)) => {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let decoded = (percent_decode(user), percent_decode(password));
            let (Some(user), Some(password)) = decoded else {
                return Err(invalid());
            };
            Ok((format!("{scheme}://{host}{tail}"), Some((user, password))))
        }
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[async_trait]
impl EventBus for NatsBus {
    fn backend(&self) -> &'static str {
        "nats"
    }

    async fn publish(&self, envelope: &Envelope) -> Result<Published, BusError> {
        self.stream().await?;
        let payload = bytes::Bytes::from(
            serde_json::to_vec(envelope).map_err(|e| BusError::Refused(e.to_string()))?,
        );
        let subject = self.inner.prefix.join(envelope.subject());
        let id = envelope.id().to_string();
        let inner = &self.inner;
        let answer = inner
            .outbound
            .call(|| {
                let message = jetstream::message::PublishMessage::build()
                    .payload(payload.clone())
                    .message_id(&id);
                let subject = subject.clone();
                async move {
                    let ack = inner
                        .js
                        .send_publish(subject, message)
                        .await
                        .map_err(publish_failure)?
                        .await
                        .map_err(publish_failure)?;
                    Ok(ack.duplicate)
                }
            })
            .await;
        match answer {
            Ok(false) => Ok(Published::New),
            Ok(true) => Ok(Published::Duplicate),
            Err(CallError::Failed {
                error: Failure::NoStream,
                ..
            }) => {
                // Deleted behind our back: made again on the next use.
                *self.inner.stream.lock().await = None;
                Err(BusError::Unavailable(
                    "the stream does not exist; it is created again on the next publish".into(),
                ))
            }
            Err(e) => Err(bus_error(e)),
        }
    }

    async fn consumer(&self, spec: &ConsumerSpec) -> Result<Box<dyn EventConsumer>, BusError> {
        validate_consumer(spec)?;
        let stream = self.stream().await?;
        let config = consumer::pull::Config {
            durable_name: Some(spec.name.as_str().to_owned()),
            description: Some(format!("FactoryBrain consumer {}", spec.name)),
            filter_subject: self.inner.prefix.join(spec.filter.as_str()),
            deliver_policy: consumer::DeliverPolicy::New,
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: spec.ack_wait,
            max_deliver: i64::from(spec.max_deliver),
            ..Default::default()
        };
        let consumer =
            self.inner
                .outbound
                .call(|| async {
                    stream.create_consumer(config.clone()).await.map_err(|e| {
                        match server_code(&e) {
                            Some((_, m)) => Failure::Refused(format!(
                                "consumer {} cannot be created or updated: {m}",
                                spec.name
                            )),
                            None => Failure::Unreachable(e.to_string()),
                        }
                    })
                })
                .await
                .map_err(bus_error)?;
        Ok(Box::new(NatsConsumer {
            bus: self.clone(),
            consumer,
            name: spec.name.as_str().to_owned(),
            max_deliver: spec.max_deliver,
        }))
    }
}

fn publish_failure(e: jetstream::context::PublishError) -> Failure {
    use jetstream::context::PublishErrorKind as Kind;
    match e.kind() {
        Kind::TimedOut | Kind::BrokenPipe | Kind::MaxAckPending => {
            Failure::Unreachable(e.to_string())
        }
        Kind::StreamNotFound => Failure::NoStream,
        _ => match server_code(&e) {
            Some((STREAM_STORE_FAILED, m)) => Failure::Full(format!(
                "the stream holds as many events as bus.max_events allows ({m})"
            )),
            Some((_, m)) => Failure::Refused(m),
            None => Failure::Refused(e.to_string()),
        },
    }
}

struct NatsConsumer {
    bus: NatsBus,
    consumer: consumer::Consumer<consumer::pull::Config>,
    name: String,
    max_deliver: u32,
}

/// Shortest pull request: JetStream answers shorter ones at once.
const MIN_PULL: Duration = Duration::from_millis(10);

#[async_trait]
impl EventConsumer for NatsConsumer {
    async fn next(&mut self, wait: Duration) -> Result<Option<Delivery>, BusError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let mut batch = self
                .consumer
                .batch()
                .max_messages(1)
                .expires(left.max(MIN_PULL))
                .messages()
                .await
                .map_err(|e| BusError::Unavailable(e.to_string()))?;
            let message = match batch.next().await {
                Some(Ok(message)) => message,
                Some(Err(e)) => return Err(BusError::Unavailable(e.to_string())),
                None if tokio::time::Instant::now() >= deadline => return Ok(None),
                // The pull ended early (e.g. the server's own limit): ask again.
                None => continue,
            };
            match self.delivery(message).await {
                Some(delivery) => return Ok(Some(delivery)),
                None if tokio::time::Instant::now() >= deadline => return Ok(None),
                None => continue,
            }
        }
    }
}

impl NatsConsumer {
    /// The delivery of a message, or `None` for a malformed one (terminated).
    async fn delivery(&self, message: jetstream::Message) -> Option<Delivery> {
        let attempt = message
            .info()
            .ok()
            .and_then(|info| u32::try_from(info.delivered).ok())
            .unwrap_or(1);
        let subject = message.subject.to_string();
        let problem = match serde_json::from_slice::<Envelope>(&message.payload) {
            Ok(envelope) => {
                if self.bus.inner.prefix.strip(&subject) == Some(envelope.subject()) {
                    return Some(Delivery::new(
                        envelope,
                        attempt,
                        self.max_deliver,
                        Box::new(NatsAck {
                            bus: self.bus.clone(),
                            message,
                        }),
                    ));
                }
                format!(
                    "published under {subject} but its envelope names {}",
                    envelope.subject()
                )
            }
            Err(e) => e.to_string(),
        };
        metrics::counter!("fb_bus_malformed_total", "consumer" => self.name.clone()).increment(1);
        tracing::warn!(consumer = %self.name, subject = %subject, problem = %problem, "A message on the bus is not a valid event; it was terminated.");
        if let Err(e) = message.ack_with(AckKind::Term).await {
            tracing::warn!(consumer = %self.name, error = %e, "Could not terminate a malformed message; it will come back.");
        }
        None
    }
}

struct NatsAck {
    bus: NatsBus,
    message: jetstream::Message,
}

impl NatsAck {
    async fn send(&self, kind: AckKind) -> Result<(), BusError> {
        self.bus
            .inner
            .outbound
            .call(|| async {
                self.message
                    .double_ack_with(kind)
                    .await
                    .map_err(|e| Failure::Unreachable(e.to_string()))
            })
            .await
            .map_err(bus_error)
    }
}

#[async_trait]
impl Acknowledge for NatsAck {
    async fn ack(&self) -> Result<(), BusError> {
        self.send(AckKind::Ack).await
    }

    async fn nak(&self) -> Result<(), BusError> {
        self.send(AckKind::Nak(None)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_leave_the_url_decoded() {
        let (url, creds) = split_credentials("nats://fb:p%40ss%3Aw@10.0.0.5:4222").unwrap();
        assert_eq!(url, "nats://10.0.0.5:4222");
        assert_eq!(creds, Some(("fb".into(), "p@ss:w".into())));
        let (url, creds) = split_credentials("tls://nats.plant.lan").unwrap();
        assert_eq!((url.as_str(), creds), ("tls://nats.plant.lan", None));
        assert!(split_credentials("nats://a:%zz@h").is_err());
        assert!(split_credentials("127.0.0.1:4222").is_err());
    }

    #[test]
    fn options_never_show_the_url() {
        let options = Options {
            url: "nats://fb:hunter2@nats:4222".into(),
            stream: "FB".into(),
            prefix: SubjectPrefix::parse("p", "fb").unwrap(),
            max_events: 10,
            client_name: "factorybrain".into(),
        };
        assert!(!format!("{options:?}").contains("hunter2"));
    }
}
