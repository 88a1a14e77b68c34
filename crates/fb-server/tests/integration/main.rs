//! fb-server's integration tests, in one binary: the HTTP API in-process over a real store,
//! the access table walk, and the real `factorybrain` binary end to end.

// Test code: a failed expectation should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod access;
mod alerts;
mod api;
mod audit;
// The NATS adapter is compiled in with the `nats` feature (the test command enables all).
#[cfg(feature = "nats")]
mod bus;
mod crash;
mod detection;
mod devices;
mod docs;
mod e2e;
mod energy;
mod events;
mod gates;
mod hardening;
mod kpis;
mod machines;
mod models;
mod mqtt;
mod owasp;
mod prediction;
mod procurement;
mod ratelimit;
mod readings;
mod scenarios;
mod schemathesis;
mod scopes;
mod support;
mod tickets;
