//! Ports: the traits adapters implement. API boundary: changing a signature here changes every
//! adapter and the conformance suite in `fb-testkit`.

mod audit;
mod bus;
mod detection;
mod device;
mod energy;
mod gates;
mod inference;
mod kpi;
mod maintenance;
mod model;
mod plant;
mod procurement;
mod rate_limit;
mod session;
mod store;

pub use audit::{AuditFilter, AuditStore};
pub use bus::{
    Acknowledge, BusError, CONSUMER_NAME_MAX, ConsumerName, ConsumerSpec, DUPLICATE_WINDOW,
    Delivery, EventBus, EventConsumer, Published, RETENTION, validate_consumer,
};
pub use detection::{
    AlertFilter, AlertStore, AnomalyFilter, AnomalyStore, ScoreStore, ScoredPoint,
};
pub use device::DeviceStore;
pub use energy::{RecommendationFilter, RecommendationStore};
pub use gates::{ApprovalFilter, ApprovalStore, DecisionFilter, DecisionStore};
pub use inference::{InferenceError, InferenceRequest, RemoteInference};
pub use kpi::SavingsLedger;
pub use maintenance::{TicketFilter, TicketStore};
pub use model::{Activator, ModelFilter, ModelStore, NewModel};
pub use plant::{
    AppendOutcome, BucketStats, DeadLetter, DeadLetterFilter, DeadLetterStore, MachineStore,
    RangeQuery, ReadingStore, Resolution, RetentionCutoffs, RetentionOutcome,
};
pub use procurement::{OrderFilter, OrderMove, ProcurementStore, QuoteSource, SiteSavings};
pub use rate_limit::RateLimitStore;
pub use session::{MfaStore, SessionStore};
pub use store::{IdentityStore, SecretStore, Storage, StoreError, StoreHealth};
