//! Architecture and hygiene rules, checked on every test run.

// Test code: a failed expectation should panic with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cargo_metadata::Metadata;
use std::sync::OnceLock;

fn meta() -> &'static Metadata {
    static META: OnceLock<Metadata> = OnceLock::new();
    META.get_or_init(|| xtask::metadata().unwrap())
}

#[test]
fn dependency_directions_hold() {
    let problems = xtask::dependency_violations(meta());
    assert!(
        problems.is_empty(),
        "dependency rules broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_rules_know_every_workspace_crate() {
    let known: Vec<&str> = [
        xtask::CORE,
        xtask::APP,
        xtask::SERVER,
        xtask::TESTKIT,
        xtask::SQL_SUPPORT,
        xtask::SIMULATOR,
        xtask::DETECT,
        xtask::PREDICT,
        xtask::EVAL,
        xtask::BENCH,
        xtask::OUTBOUND,
        "xtask",
    ]
    .into_iter()
    .chain(xtask::DRIVEN.iter().copied())
    .chain(xtask::DRIVING.iter().copied())
    .collect();
    for name in xtask::workspace_crates(meta()) {
        assert!(
            known.contains(&name.as_str()),
            "{name} has no dependency rule: classify it in xtask/src/lib.rs"
        );
    }
}

#[test]
fn the_rules_catch_a_forbidden_edge() {
    // Guard against a rule that can never fire: feed it an edge that breaks it.
    let mut meta = meta().clone();
    let core = meta
        .packages
        .iter()
        .position(|p| p.name.as_str() == xtask::CORE)
        .unwrap();
    let sqlite_dep = meta
        .packages
        .iter()
        .flat_map(|p| &p.dependencies)
        .find(|d| d.name == "fb-sqlite")
        .unwrap()
        .clone();
    meta.packages[core].dependencies.push(sqlite_dep);
    let problems = xtask::dependency_violations(&meta);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("fb-core must not depend on fb-sqlite")),
        "{problems:?}"
    );
}

/// Where a workspace crate sits in the metadata's package list.
fn position(meta: &Metadata, name: &str) -> usize {
    meta.packages
        .iter()
        .position(|p| p.name.as_str() == name)
        .unwrap()
}

/// Some crate's dependency edge on `name`, to graft onto another crate.
fn dependency(meta: &Metadata, name: &str) -> cargo_metadata::Dependency {
    meta.packages
        .iter()
        .flat_map(|p| &p.dependencies)
        .find(|d| d.name == name)
        .unwrap()
        .clone()
}

#[test]
fn the_rules_keep_fb_outbound_a_support_library() {
    let mut meta = meta().clone();
    let (outbound, sim) = (
        position(&meta, xtask::OUTBOUND),
        position(&meta, xtask::SIMULATOR),
    );
    let (ureq, app) = (dependency(&meta, "ureq"), dependency(&meta, xtask::APP));
    // An edge to fb-outbound, made from fb-core's (a crate fb-sim may use) and renamed.
    let mut uses_outbound = dependency(&meta, xtask::CORE);
    uses_outbound.name = xtask::OUTBOUND.to_string();
    meta.packages[outbound].dependencies.extend([ureq, app]);
    meta.packages[sim].dependencies.push(uses_outbound);
    let problems = xtask::dependency_violations(&meta);
    for expected in [
        "fb-outbound wraps the calls adapters make and must not use ureq itself",
        "fb-outbound must not depend on fb-app",
        "fb-sim must not depend on fb-outbound",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{expected:?} not in {problems:?}"
        );
    }
}

#[test]
fn the_rules_keep_fb_predict_pure_computation() {
    let mut meta = meta().clone();
    let predict = position(&meta, xtask::PREDICT);
    let (tokio, detect) = (dependency(&meta, "tokio"), dependency(&meta, xtask::DETECT));
    meta.packages[predict].dependencies.extend([tokio, detect]);
    let problems = xtask::dependency_violations(&meta);
    for expected in [
        "fb-predict must stay pure computation; tokio is not on its allow-list",
        "fb-predict must not depend on fb-detect",
    ] {
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "{expected:?} not in {problems:?}"
        );
    }
}

#[test]
fn one_crypto_provider_and_no_native_tls() {
    let found = xtask::banned_packages(meta());
    assert!(found.is_empty(), "{}", found.join("\n"));
}

#[test]
fn architecture_md_describes_every_crate() {
    let missing = xtask::crates_missing_from_architecture(meta()).unwrap();
    assert!(
        missing.is_empty(),
        "add these crates to ARCHITECTURE.md's code map: {missing:?}"
    );
}

#[test]
fn no_test_is_hidden_with_ignore() {
    let hidden = xtask::hidden_tests().unwrap();
    assert!(
        hidden.is_empty(),
        "fix the test or the behaviour instead: {hidden:?}"
    );
}

#[test]
fn every_sql_write_takes_its_turn() {
    let found = xtask::writes_without_a_turn().unwrap();
    assert!(
        found.is_empty(),
        "these store methods write without `let _turn = self.write_turn().await;`: {found:?}"
    );
}
