//! fb-server's integration tests, in one binary: the HTTP API in-process over a real store,
//! the access table walk, and the real `factorybrain` binary end to end.

mod access;
mod api;
mod e2e;
mod support;
