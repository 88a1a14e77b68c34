//! FactoryBrain's use cases. Each area is a module with an `Options`, a `Service` and an
//! `Error` that carries a stable [`fb_core::Code`].
//!
//! Invariant: this crate orchestrates ports from `fb_core::ports` and never names an adapter.

pub mod agents;
pub mod alerts;
pub mod audit;
pub mod auth;
pub mod bus;
pub mod detection;
pub mod devices;
pub mod energy;
pub mod gates;
pub mod ingest;
pub mod machine_cache;
pub mod maintenance;
pub mod models;
pub mod optimizer;
pub mod plant;
pub mod prediction;
pub mod procurement;
pub mod rate_limit;
pub mod scope;
