// Test support: a failed expectation should panic, so unwrap is the right tool here.
#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Dev-only support shared by the crates' tests: the storage conformance suite, a fake clock and
//! fixtures. Never a normal dependency of a shipped crate (checked by xtask's tidy test).

pub mod clock;
pub mod conformance;
pub mod fakes;
pub mod fixtures;

pub use clock::FakeClock;
