//! What every outbound call goes through (D6): a time-out per attempt and a deadline per call,
//! retries of retryable errors with exponential back-off and full jitter, and a circuit breaker
//! per target, all visible in `/metrics`; plus the SSRF guard for the URLs those calls use.
//!
//! An outbound client (an LLM endpoint, a webhook, a ticketing system) holds one [`Outbound`]
//! per target and runs every request through [`Outbound::call`]. Its error type implements
//! [`Classify`], which decides what is retried and what the breaker counts. A URL that comes
//! from settings or input passes [`UrlPolicy::check`] when it is accepted and
//! [`resolve_checked`] before each connection.
//!
//! ```
//! use std::time::Duration;
//! use fb_outbound::{
//!     BreakerSettings, CallError, Classify, ErrorClass, Outbound, Policy, ResolveError,
//!     UrlPolicy, resolve_checked,
//! };
//!
//! #[derive(Debug)]
//! enum InferenceError {
//!     Resolve(ResolveError),
//!     Status(u16),
//! }
//!
//! impl Classify for InferenceError {
//!     fn class(&self) -> ErrorClass {
//!         match self {
//!             Self::Resolve(error) => error.class(),
//!             Self::Status(429 | 502 | 503 | 504) => ErrorClass::RETRYABLE,
//!             Self::Status(_) => ErrorClass::Permanent,
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // From settings: the plant's own inference server on its LAN may be a private address.
//! let endpoint = UrlPolicy::internal()
//!     .check("llm.url", "http://10.20.0.7:11434/api/generate")
//!     .map_err(|errors| format!("{errors:?}"))
//!     .unwrap();
//!
//! let llm = Outbound::new(
//!     "llm",
//!     Policy::new(Duration::from_secs(20), Duration::from_secs(60)).with_max_attempts(3),
//!     BreakerSettings::default(),
//! );
//! let answer = llm
//!     .call(|| async {
//!         let addresses = resolve_checked(&endpoint).await.map_err(InferenceError::Resolve)?;
//!         // A real client connects to `addresses` only and sends its request here.
//!         Ok::<_, InferenceError>(format!("asked {}", addresses[0]))
//!     })
//!     .await;
//! assert_eq!(answer.unwrap(), "asked 10.20.0.7:11434");
//!
//! // A 400 is the request's fault: returned at once, not retried.
//! let refused = llm.call(|| async { Err::<(), _>(InferenceError::Status(400)) }).await;
//! assert!(matches!(refused, Err(CallError::Failed { attempts: 1, .. })));
//! # }
//! ```

mod breaker;
mod call;
mod classify;
mod policy;
pub mod telemetry;
#[cfg(test)]
mod test_recorder;
pub mod url;

pub use crate::url::{AddressClass, OutboundUrl, ResolveError, UrlPolicy, resolve_checked};
/// `start + wait`, or 30 years from `start` (as tokio's own "far future") for a wait too long to
/// add: settings may say `Duration::MAX` for "no limit", and `Instant + Duration` panics on
/// overflow.
fn instant_after(start: tokio::time::Instant, wait: std::time::Duration) -> tokio::time::Instant {
    const FAR_FUTURE: std::time::Duration = std::time::Duration::from_secs(86_400 * 365 * 30);
    start
        .checked_add(wait)
        .unwrap_or_else(|| start + FAR_FUTURE)
}

pub use breaker::{BreakerSettings, CircuitBreaker, CircuitState, Permit, Rejected};
pub use call::{CallError, Outbound};
pub use classify::{Classify, ErrorClass};
pub use policy::{Backoff, Policy};
