//! What an error says about the call: worth another attempt, or not.

use std::time::Duration;

/// How an outbound error is treated by the retry loop and the circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The dependency could not answer now (connection refused or reset, HTTP 429, 502, 503,
    /// 504, a broker that is restarting). Another attempt may succeed, and the breaker counts
    /// it as a failure: enough of them mean the dependency is down.
    Retryable {
        /// The dependency's own hint (HTTP `Retry-After`, an MQTT or gRPC back-off): the
        /// earliest time another attempt is welcome. The retry waits at least this long, and
        /// gives up at once when the hint reaches past the call's deadline.
        retry_after: Option<Duration>,
    },
    /// The dependency answered and refused the request itself (HTTP 400, 401, 403, 404, 422, a
    /// payload it cannot parse). The same request would be refused again, so it is returned at
    /// once. The breaker counts it as a success: the dependency is up and answering, and
    /// opening the circuit on a caller's mistakes would cut off the callers that are right.
    Permanent,
}

impl ErrorClass {
    /// Retryable, without a hint from the dependency.
    pub const RETRYABLE: Self = Self::Retryable { retry_after: None };
}

/// Implemented by every error an outbound operation returns, usually in the adapter that knows
/// the protocol (an HTTP client classifies by status code, an MQTT one by reason code).
///
/// When in doubt, an error is `Permanent`: retrying what cannot succeed multiplies the load on
/// a dependency that is already struggling, while a missed retry costs one failed call.
pub trait Classify {
    fn class(&self) -> ErrorClass;
}

impl Classify for std::io::Error {
    /// Network-level failures that a new connection may not meet again are retryable; the rest
    /// (bad input, permissions, not found) are not.
    fn class(&self) -> ErrorClass {
        use std::io::ErrorKind::*;
        match self.kind() {
            ConnectionRefused | ConnectionReset | ConnectionAborted | NotConnected | BrokenPipe
            | TimedOut | Interrupted | WouldBlock | UnexpectedEof | HostUnreachable
            | NetworkUnreachable | NetworkDown | AddrInUse | AddrNotAvailable | ResourceBusy => {
                ErrorClass::RETRYABLE
            }
            _ => ErrorClass::Permanent,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Error, ErrorKind};

    #[test]
    fn io_errors_of_the_network_are_retryable_and_the_rest_permanent() {
        let retryable = ErrorClass::RETRYABLE;
        for (kind, class) in [
            (ErrorKind::ConnectionRefused, retryable),
            (ErrorKind::ConnectionReset, retryable),
            (ErrorKind::TimedOut, retryable),
            (ErrorKind::UnexpectedEof, retryable),
            (ErrorKind::InvalidInput, ErrorClass::Permanent),
            (ErrorKind::InvalidData, ErrorClass::Permanent),
            (ErrorKind::PermissionDenied, ErrorClass::Permanent),
            (ErrorKind::NotFound, ErrorClass::Permanent),
        ] {
            assert_eq!(Error::from(kind).class(), class, "{kind:?}");
        }
    }
}
