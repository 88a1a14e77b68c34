//! A remote model server behind [`RemoteInference`] (catalogue B6): live prediction sends the
//! feature rows it computed and takes the server's numbers when they come within the latency
//! budget (the caller falls back to its local model otherwise).
//!
//! Two wire protocols:
//!
//! * **KServe v2** (the Open Inference Protocol of KServe, Triton, Seldon MLServer):
//!   `POST {url}/v2/models/{model}/infer` with one FP64 input tensor `features` of shape
//!   `[rows, features]` (row-major `data`; the feature names as the input's
//!   `parameters.feature_names`), answered with `outputs`, the first of which must hold one
//!   number per row (shape `[rows]` or `[rows, 1]`, flat or nested `data`).
//! * **OpenAI-compatible** chat completions (a Cerebras- or vLLM-style low-latency endpoint):
//!   `POST {url}/v1/chat/completions` with `temperature` 0, a system message asking for a JSON
//!   array of one number per row, and the rows as JSON in the user message; the answer's
//!   `choices[0].message.content` must be that array (code fences are tolerated).
//!
//! Every call goes through an [`Outbound`] (target `inference`): one attempt bounded by the
//! budget and at most one retry inside it, a circuit breaker (half of the last 10 calls failed,
//! at least 5: the server is not asked for 30 s, then probed), all in `/metrics`. Connections go
//! only to the addresses [`resolve_checked`] returned for the URL (checked when the settings
//! loaded), without proxies or redirects; up to 8 idle connections are kept for the next
//! calls. Refused requests (4xx) and unusable answers are the server answering: returned at
//! once and not counted against the breaker; connection failures, time-outs and 5xx are.
//!
//! The API key (a bearer token) lives in [`ApiKey`], whose `Debug` is redacted; no error or log
//! line carries it.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_json::{Value, json};

use fb_core::model::ModelKind;
use fb_core::ports::{InferenceError, InferenceRequest, RemoteInference};
use fb_outbound::{
    Backoff, BreakerSettings, CallError, Classify, ErrorClass, Outbound, OutboundUrl, Policy,
    ResolveError, resolve_checked,
};

/// The outbound target's name in metrics and logs.
pub const TARGET: &str = "inference";
/// Largest answer read.
const ANSWER_MAX_BYTES: usize = 1 << 20;
/// Idle connections kept.
const POOL_MAX: usize = 8;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    KServeV2,
    OpenAi,
}

/// A bearer token; never shown.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// The server's base URL (checked by the SSRF guard when the settings loaded).
    pub url: OutboundUrl,
    pub protocol: Protocol,
    /// The latency budget of a call, retries included.
    pub timeout: Duration,
    pub api_key: Option<ApiKey>,
}

/// Why one attempt failed, for the retry loop and the breaker.
#[derive(Debug)]
enum Failure {
    Resolve(ResolveError),
    Connect(std::io::Error),
    Tls(std::io::Error),
    Http(hyper::Error),
    Status(u16),
    /// The server answered, with something that is not the numbers asked for.
    BadAnswer(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Resolve(e) => write!(f, "{e}"),
            Failure::Connect(e) => write!(f, "cannot connect: {e}"),
            Failure::Tls(e) => write!(f, "TLS: {e}"),
            Failure::Http(e) => write!(f, "HTTP: {e}"),
            Failure::Status(code) => write!(f, "HTTP status {code}"),
            Failure::BadAnswer(why) => write!(f, "{why}"),
        }
    }
}

impl Classify for Failure {
    fn class(&self) -> ErrorClass {
        match self {
            Failure::Resolve(e) => e.class(),
            Failure::Connect(e) => e.class(),
            Failure::Http(_) => ErrorClass::RETRYABLE,
            Failure::Status(code) if *code == 429 || *code >= 500 => ErrorClass::RETRYABLE,
            Failure::Tls(_) | Failure::Status(_) | Failure::BadAnswer(_) => ErrorClass::Permanent,
        }
    }
}

trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

type Sender = SendRequest<Full<Bytes>>;

/// The client; cheap to share (`Arc`).
pub struct RemoteModelServer {
    options: Options,
    outbound: Outbound,
    tls: Option<tokio_rustls::TlsConnector>,
    idle: Mutex<Vec<Sender>>,
}

impl std::fmt::Debug for RemoteModelServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteModelServer")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl RemoteModelServer {
    /// Builds the client (and its breaker, which shows in `/metrics` from now on). An `https`
    /// URL gets TLS with the system's root certificates.
    pub fn new(options: Options) -> Result<Self, String> {
        let tls = match options.url.as_url().scheme() {
            "https" => {
                let mut roots = rustls::RootCertStore::empty();
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err("https: no root certificates found on this system".into());
                }
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
                Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
            }
            "http" => None,
            other => return Err(format!("scheme {other} is neither http nor https")),
        };
        let policy = Policy::new(options.timeout, options.timeout)
            .with_max_attempts(2)
            .with_backoff(Backoff::new(
                Duration::from_millis(1),
                Duration::from_millis(5),
            ));
        Ok(Self {
            outbound: Outbound::new(TARGET, policy, BreakerSettings::default()),
            options,
            tls,
            idle: Mutex::new(Vec::new()),
        })
    }

    /// The breaker's state, for tests and diagnostics.
    pub fn circuit_state(&self) -> fb_outbound::CircuitState {
        self.outbound.circuit_state()
    }

    async fn connect(&self) -> Result<Sender, Failure> {
        let addresses = resolve_checked(&self.options.url)
            .await
            .map_err(Failure::Resolve)?;
        let mut last = None;
        for address in addresses {
            match tokio::net::TcpStream::connect(address).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    let io: Box<dyn Io> = match &self.tls {
                        None => Box::new(stream),
                        Some(tls) => {
                            let name = rustls::pki_types::ServerName::try_from(
                                self.options.url.host().to_owned(),
                            )
                            .map_err(|e| {
                                Failure::Tls(std::io::Error::new(
                                    std::io::ErrorKind::InvalidInput,
                                    e.to_string(),
                                ))
                            })?;
                            Box::new(tls.connect(name, stream).await.map_err(Failure::Tls)?)
                        }
                    };
                    let (sender, connection) =
                        hyper::client::conn::http1::handshake(TokioIo::new(io))
                            .await
                            .map_err(Failure::Http)?;
                    tokio::spawn(async move {
                        // Ends when the sender is dropped or the server closes.
                        let _ = connection.await;
                    });
                    return Ok(sender);
                }
                Err(e) => last = Some(e),
            }
        }
        Err(Failure::Connect(last.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
        })))
    }

    /// An idle connection that is still open, or a new one.
    async fn sender(&self) -> Result<Sender, Failure> {
        loop {
            let idle = self
                .idle
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            match idle {
                Some(sender) if sender.is_ready() => return Ok(sender),
                Some(_) => continue,
                None => return self.connect().await,
            }
        }
    }

    /// One POST of a JSON body to `path` under the base URL: the status and the body.
    async fn post(&self, path: &str, body: &Bytes) -> Result<Bytes, Failure> {
        let mut sender = self.sender().await?;
        let url = self.options.url.as_url();
        let base = url.path().trim_end_matches('/');
        let host = match url.port() {
            Some(port) => format!("{}:{port}", self.options.url.host()),
            None => self.options.url.host().to_owned(),
        };
        let mut request = hyper::Request::post(format!("{base}{path}"))
            .header(hyper::header::HOST, host)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::ACCEPT, "application/json");
        if let Some(key) = &self.options.api_key {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {}", key.0));
        }
        let request = request
            .body(Full::new(body.clone()))
            .map_err(|e| Failure::BadAnswer(format!("cannot build the request: {e}")))?;
        let response = sender.send_request(request).await.map_err(Failure::Http)?;
        let status = response.status().as_u16();
        let answer = Limited::new(response.into_body(), ANSWER_MAX_BYTES)
            .collect()
            .await
            .map_err(|e| match e.downcast::<hyper::Error>() {
                Ok(e) => Failure::Http(*e),
                Err(_) => Failure::BadAnswer(format!(
                    "the answer is larger than {ANSWER_MAX_BYTES} bytes"
                )),
            })?
            .to_bytes();
        if !sender.is_closed() {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < POOL_MAX {
                idle.push(sender);
            }
        }
        if !(200..300).contains(&status) {
            return Err(Failure::Status(status));
        }
        Ok(answer)
    }
}

#[async_trait]
impl RemoteInference for RemoteModelServer {
    fn target(&self) -> &str {
        TARGET
    }

    async fn infer(&self, request: InferenceRequest<'_>) -> Result<Vec<f64>, InferenceError> {
        let rows = request.rows();
        let (path, body) = match self.options.protocol {
            Protocol::KServeV2 => (
                format!("/v2/models/{}/infer", path_segment(request.model)),
                kserve_body(&request),
            ),
            Protocol::OpenAi => ("/v1/chat/completions".to_owned(), openai_body(&request)),
        };
        let body = Bytes::from(body.to_string());
        let protocol = self.options.protocol;
        let result = self
            .outbound
            .call(|| async {
                let answer = self.post(&path, &body).await?;
                let values = match protocol {
                    Protocol::KServeV2 => kserve_values(&answer, rows),
                    Protocol::OpenAi => openai_values(&answer, rows),
                };
                values.map_err(Failure::BadAnswer)
            })
            .await;
        result.map_err(|e| match e {
            CallError::Timeout { .. } => InferenceError::Timeout,
            CallError::CircuitOpen { .. } => InferenceError::CircuitOpen,
            CallError::Failed {
                error: Failure::BadAnswer(why),
                ..
            } => InferenceError::BadAnswer(why),
            CallError::Failed { error, .. } => InferenceError::Failed(error.to_string()),
        })
    }
}

/// A model name as one URL path segment.
fn path_segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn kserve_body(request: &InferenceRequest<'_>) -> Value {
    json!({
        "inputs": [{
            "name": "features",
            "shape": [request.rows(), request.features.len()],
            "datatype": "FP64",
            "parameters": {"feature_names": request.features},
            "data": request.values,
        }],
        "parameters": {"kind": request.kind.as_str()},
    })
}

/// Every number of a (possibly nested) JSON array, in order.
fn flatten(value: &Value, out: &mut Vec<f64>) -> Result<(), String> {
    match value {
        Value::Array(items) => items.iter().try_for_each(|v| flatten(v, out)),
        Value::Number(n) => {
            out.push(n.as_f64().ok_or("a number out of range")?);
            Ok(())
        }
        other => Err(format!("expected numbers, found {other}")),
    }
}

fn exactly(values: Vec<f64>, rows: usize) -> Result<Vec<f64>, String> {
    if values.len() != rows {
        return Err(format!("{} values for {rows} rows", values.len()));
    }
    if values.iter().any(|v| !v.is_finite()) {
        return Err("a value is not a finite number".into());
    }
    Ok(values)
}

fn kserve_values(answer: &[u8], rows: usize) -> Result<Vec<f64>, String> {
    #[derive(Deserialize)]
    struct Answer {
        outputs: Vec<Output>,
    }
    #[derive(Deserialize)]
    struct Output {
        data: Value,
    }
    let answer: Answer =
        serde_json::from_slice(answer).map_err(|e| format!("not a KServe v2 answer: {e}"))?;
    let first = answer.outputs.first().ok_or("the answer has no outputs")?;
    let mut values = Vec::with_capacity(rows);
    flatten(&first.data, &mut values)?;
    exactly(values, rows)
}

fn openai_body(request: &InferenceRequest<'_>) -> Value {
    let rows: Vec<&[f64]> = request
        .values
        .chunks(request.features.len().max(1))
        .collect();
    let what = match request.kind {
        ModelKind::Failure => {
            "the probability (0 to 1) that the machine fails within the model's horizon"
        }
        ModelKind::Rul => {
            "the machine's remaining useful life in the model's time unit (0 or more)"
        }
    };
    json!({
        "model": request.model,
        "temperature": 0,
        "max_tokens": 16 * request.rows() + 16,
        "messages": [
            {"role": "system", "content": format!(
                "You score machine condition features. For each row answer {what}. Reply with only a JSON array of {} numbers, one per row, in order.",
                request.rows()
            )},
            {"role": "user", "content": json!({"features": request.features, "rows": rows}).to_string()},
        ],
    })
}

fn openai_values(answer: &[u8], rows: usize) -> Result<Vec<f64>, String> {
    #[derive(Deserialize)]
    struct Answer {
        choices: Vec<Choice>,
    }
    #[derive(Deserialize)]
    struct Choice {
        message: Message,
    }
    #[derive(Deserialize)]
    struct Message {
        content: String,
    }
    let answer: Answer =
        serde_json::from_slice(answer).map_err(|e| format!("not a chat completion answer: {e}"))?;
    let content = &answer
        .choices
        .first()
        .ok_or("the answer has no choices")?
        .message
        .content;
    let text = content
        .trim()
        .trim_start_matches("```json")
        .trim_start_matches("```")
        .trim_end_matches("```")
        .trim();
    let value: Value = serde_json::from_str(text)
        .map_err(|_| "the reply is not a JSON array of numbers".to_owned())?;
    let mut values = Vec::with_capacity(rows);
    flatten(&value, &mut values)?;
    exactly(values, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_flat_or_nested_and_must_fit_the_rows() {
        let v2 = br#"{"model_name":"m","outputs":[{"name":"p","shape":[2,1],"datatype":"FP64","data":[[0.25],[0.5]]}]}"#;
        assert_eq!(kserve_values(v2, 2), Ok(vec![0.25, 0.5]));
        assert!(
            kserve_values(v2, 3)
                .unwrap_err()
                .contains("2 values for 3 rows")
        );
        assert!(
            kserve_values(b"{\"outputs\":[]}", 1)
                .unwrap_err()
                .contains("no outputs")
        );
        assert!(
            kserve_values(b"oops", 1)
                .unwrap_err()
                .contains("not a KServe v2 answer")
        );
        let chat = br#"{"choices":[{"message":{"role":"assistant","content":"```json\n[0.1, 0.9]\n```"}}]}"#;
        assert_eq!(openai_values(chat, 2), Ok(vec![0.1, 0.9]));
        let prose = br#"{"choices":[{"message":{"content":"I think 0.3"}}]}"#;
        assert!(openai_values(prose, 1).is_err());
    }

    #[test]
    fn model_names_are_one_path_segment_and_keys_are_never_shown() {
        assert_eq!(
            path_segment("failure-centrifugal_pump"),
            "failure-centrifugal_pump"
        );
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
        assert_eq!(
            format!("{:?}", ApiKey::new("sk-secret")),
            "ApiKey([redacted])"
        );
    }
}
