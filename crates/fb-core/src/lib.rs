//! FactoryBrain's domain: types, ports (traits the adapters implement), pure policies and the
//! error-code table.
//!
//! Invariant: this crate does no I/O and knows no wire or storage format. Adapters translate
//! their errors into [`ports::StoreError`]; the HTTP edge maps [`error::ErrorKind`] to status codes.

pub mod alerts;
pub mod audit;
pub mod clock;
pub mod detection;
pub mod device;
pub mod energy;
pub mod error;
pub mod events;
pub mod gates;
pub mod identity;
pub mod kpi;
pub mod maintenance;
pub mod model;
pub mod plant;
pub mod ports;
pub mod procurement;
pub mod rate_limit;
pub mod rng;
pub mod session;

pub use clock::{Clock, SystemClock};
pub use error::{Code, Coded, ErrorKind, FieldError};
