//! Repository checks, run as tests (`cargo test -p xtask`) and by `cargo run -p xtask -- tidy`.
//!
//! The dependency rules are the architecture: the domain depends on no adapter, adapters never
//! depend on each other, and only the binary chooses adapters.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Context;
use cargo_metadata::{DependencyKind, Metadata, MetadataCommand};

pub const CORE: &str = "fb-core";
pub const APP: &str = "fb-app";
pub const SERVER: &str = "fb-server";
/// Benchmark tooling: wires the server like `fb-server` does, never shipped.
pub const BENCH: &str = "fb-bench";
pub const TESTKIT: &str = "fb-testkit";
/// Driven adapters: implement ports with a technology. They depend on fb-core (and the SQL
/// support library) only.
pub const DRIVEN: &[&str] = &[
    "fb-sqlite",
    "fb-postgres",
    "fb-redis",
    "fb-nats",
    "fb-inference",
];
/// The plant simulator: domain readings out, no I/O, fb-core only.
pub const SIMULATOR: &str = "fb-sim";
/// Detection: streaming features, detectors and benchmark scoring; pure computation, no I/O.
pub const DETECT: &str = "fb-detect";
/// Failure prediction and RUL: features, gradient-boosted trees, streaming inference; pure
/// computation like fb-detect, fb-core only.
pub const PREDICT: &str = "fb-predict";
/// Evaluation tooling behind `factorybrain eval`: reads data-set files, runs the detectors.
pub const EVAL: &str = "fb-eval";
/// Support library for the SQL adapters: portable queries and helpers, no driver, fb-core only.
pub const SQL_SUPPORT: &str = "fb-sql";
/// Support library that every outbound call goes through (time-outs, retries, circuit breaker,
/// the SSRF guard for URLs). It wraps the I/O others do and does none of its own: fb-core only
/// among ours, no crate from `IO_CRATES`. fb-app, the adapters, fb-server and fb-bench use it.
pub const OUTBOUND: &str = "fb-outbound";
/// Driving adapters: call the application from a protocol (fb-broker: the embedded MQTT broker
/// that fb-mqtt reads from). They depend on fb-app and fb-core at most.
pub const DRIVING: &[&str] = &["fb-http", "fb-mqtt", "fb-broker"];
/// The only external crates fb-core may use: no runtime, no driver, no format. `sha2` is pure
/// hashing (no I/O): the audit chain's hash lives in the domain so that every store and the
/// verifier compute it with one function.
pub const CORE_ALLOWED: &[&str] = &["async-trait", "serde", "sha2", "thiserror", "time", "uuid"];
/// fb-predict's allow-list: fb-core's, plus serde_json for the model's self-describing format
/// (a value in memory; the caller stores it). No runtime, no driver, no file access.
pub const PREDICT_ALLOWED: &[&str] = &[
    "async-trait",
    "serde",
    "serde_json",
    "sha2",
    "thiserror",
    "time",
    "uuid",
];
/// Crates that mean I/O or a wire format; fb-app must reach them through ports.
pub const IO_CRATES: &[&str] = &[
    "sqlx",
    "axum",
    "hyper",
    "tower-http",
    "reqwest",
    "ureq",
    "redis",
    "async-nats",
    "rumqttc",
    "rumqttd",
    "rmcp",
    "tokio-postgres",
    "rusqlite",
    "serde-saphyr",
    "metrics-exporter-prometheus",
];
/// Native crypto builds we never want (one provider: ring / RustCrypto).
pub const BANNED_PACKAGES: &[&str] = &["aws-lc-sys", "aws-lc-rs", "openssl-sys"];

pub fn metadata() -> anyhow::Result<Metadata> {
    MetadataCommand::new()
        .manifest_path(workspace_root().join("Cargo.toml"))
        .exec()
        .context("cargo metadata failed")
}

pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One dependency edge of a workspace crate.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub dev: bool,
}

pub fn workspace_crates(meta: &Metadata) -> BTreeSet<String> {
    meta.workspace_packages()
        .iter()
        .map(|p| p.name.to_string())
        .collect()
}

pub fn edges(meta: &Metadata) -> Vec<Edge> {
    let mut out = Vec::new();
    for package in meta.workspace_packages() {
        for dep in &package.dependencies {
            if dep.kind == DependencyKind::Build {
                continue;
            }
            out.push(Edge {
                from: package.name.to_string(),
                to: dep.name.clone(),
                dev: dep.kind == DependencyKind::Development,
            });
        }
    }
    out
}

/// Every violation of the dependency rules, as readable lines.
pub fn dependency_violations(meta: &Metadata) -> Vec<String> {
    let ours = workspace_crates(meta);
    let mut problems = Vec::new();
    let adapters: Vec<&str> = DRIVEN.iter().chain(DRIVING).copied().collect();
    for edge in edges(meta).into_iter().filter(|e| e.dev) {
        // Even in tests, the domain, the use cases and the adapters never reach into an
        // adapter: they test against ports (fb-testkit's fakes and conformance suite).
        let (from, to) = (edge.from.as_str(), edge.to.as_str());
        let layered = from == CORE || from == APP || adapters.contains(&from);
        if layered && adapters.contains(&to) && from != to {
            problems.push(format!(
                "{from} dev-depends on the adapter {to}; test against ports instead"
            ));
        }
    }
    for edge in edges(meta).into_iter().filter(|e| !e.dev) {
        let internal = ours.contains(&edge.to);
        let from = edge.from.as_str();
        let to = edge.to.as_str();
        let allowed_internal: Option<&[&str]> = match from {
            CORE => Some(&[]),
            APP => Some(&[CORE, DETECT, PREDICT, OUTBOUND]),
            TESTKIT => Some(&[CORE, APP]),
            SQL_SUPPORT | SIMULATOR | DETECT | PREDICT | OUTBOUND => Some(&[CORE]),
            EVAL => Some(&[CORE, DETECT, PREDICT]),
            f if DRIVEN.contains(&f) => Some(&[CORE, SQL_SUPPORT, OUTBOUND]),
            f if DRIVING.contains(&f) => Some(&[CORE, APP, OUTBOUND]),
            _ => None,
        };
        if internal
            && let Some(allowed) = allowed_internal
            && !allowed.contains(&to)
        {
            problems.push(format!(
                "{from} must not depend on {to} (allowed: {allowed:?})"
            ));
        }
        if internal
            && (DRIVEN.contains(&to) || DRIVING.contains(&to))
            && from != SERVER
            && from != BENCH
        {
            problems.push(format!(
                "{from} depends on the adapter {to}; only {SERVER} chooses adapters"
            ));
        }
        if internal && to == SQL_SUPPORT && !DRIVEN.contains(&from) {
            problems.push(format!(
                "{from} uses {SQL_SUPPORT}, which is for the SQL adapters only"
            ));
        }
        if internal && to == TESTKIT {
            problems.push(format!(
                "{from} depends on {TESTKIT} outside dev-dependencies"
            ));
        }
        if (from == CORE || from == DETECT) && !internal && !CORE_ALLOWED.contains(&to) {
            problems.push(format!(
                "{CORE} must stay I/O- and format-free; {to} is not on its allow-list"
            ));
        }
        if from == PREDICT && !internal && !PREDICT_ALLOWED.contains(&to) {
            problems.push(format!(
                "{PREDICT} must stay pure computation; {to} is not on its allow-list"
            ));
        }
        if from == APP && IO_CRATES.contains(&to) {
            problems.push(format!("{APP} must reach {to} through a port in {CORE}"));
        }
        if from == OUTBOUND && IO_CRATES.contains(&to) {
            problems.push(format!(
                "{OUTBOUND} wraps the calls adapters make and must not use {to} itself"
            ));
        }
    }
    problems
}

pub fn banned_packages(meta: &Metadata) -> Vec<String> {
    meta.packages
        .iter()
        .filter(|p| BANNED_PACKAGES.contains(&p.name.as_str()))
        .map(|p| format!("{} {} is in the dependency graph", p.name, p.version))
        .collect()
}

/// Workspace crates that ARCHITECTURE.md's code map does not mention.
pub fn crates_missing_from_architecture(meta: &Metadata) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(workspace_root().join("ARCHITECTURE.md"))
        .context("cannot read ARCHITECTURE.md")?;
    Ok(workspace_crates(meta)
        .into_iter()
        .filter(|name| !text.contains(&format!("`{name}`")))
        .collect())
}

/// Source lines that hide tests instead of fixing them.
pub fn hidden_tests() -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    let needle = ["#[", "ignore"].concat();
    for dir in ["crates", "xtask"] {
        visit(&workspace_root().join(dir), &mut |path, text| {
            for (i, line) in text.lines().enumerate() {
                if line.trim_start().starts_with(&needle) {
                    found.push(format!("{}:{}", path.display(), i + 1));
                }
            }
        })?;
    }
    Ok(found)
}

/// Store methods of the shared SQL macros (`crates/fb-sql/src`) that write without first taking
/// a write turn (`self.write_turn()`): on SQLite such a write meets the readings writer in the
/// busy handler instead of waiting its turn, which costs milliseconds or fails outright under
/// load (see `crates/fb-sqlite/src/turns.rs`). A method writes on its own when it executes a
/// statement on the pool or opens a transaction; reads use `fetch_*`, and helpers that execute
/// on a transaction they are handed run inside their caller's turn. `ping` is the one statement
/// that writes nothing.
pub fn writes_without_a_turn() -> anyhow::Result<Vec<String>> {
    let mut found = Vec::new();
    visit(
        &workspace_root().join("crates/fb-sql/src"),
        &mut |path, text| {
            for (name, line, body) in async_fns(text) {
                let writes =
                    body.contains(".execute(&self.pool)") || body.contains("self.pool.begin()");
                if writes && !body.contains("write_turn()") && name != "ping" {
                    found.push(format!("{}:{line} `{name}`", path.display()));
                }
            }
        },
    )?;
    Ok(found)
}

/// The `async fn`s of a source text with the line they start on and their body, found by
/// brace matching (good enough for the store macros, whose bodies hold no braces in strings
/// that do not balance).
fn async_fns(text: &str) -> Vec<(String, usize, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    let mut offset = 0;
    while let Some(at) = rest.find("async fn ") {
        let start = offset + at;
        let after = &text[start + "async fn ".len()..];
        let name: String = after
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let line = text[..start].matches('\n').count() + 1;
        // The body starts at the first `{` after the signature's `)`.
        let Some(open) = text[start..]
            .find(") ->")
            .or_else(|| text[start..].find(")"))
            .and_then(|close| text[start + close..].find('{').map(|b| start + close + b))
        else {
            break;
        };
        let mut depth = 0usize;
        let mut end = open;
        for (i, c) in text[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.push((name, line, text[open..=end].to_owned()));
        offset = end + 1;
        rest = &text[offset..];
    }
    out
}

fn visit(dir: &std::path::Path, f: &mut dyn FnMut(&std::path::Path, &str)) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            visit(&path, f)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path)?;
            f(&path, &text);
        }
    }
    Ok(())
}
