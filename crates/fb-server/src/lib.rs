//! The `factorybrain` binary: command line, settings, wiring of adapters, supervision.
//!
//! Invariant: no business logic lives here. This crate chooses adapters (by settings and Cargo
//! features), builds the services of `fb-app` on them and hands them to the driving adapters.

mod admin;
pub mod cli;
pub mod demo;
pub mod demo_models;
pub mod demo_procurement;
mod eval;
mod logging;
mod serve;
pub mod settings;
mod simulate;
pub mod wire;

pub use cli::run;
