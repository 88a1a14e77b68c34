//! `cargo run -p xtask -- tidy`: the repository checks, outside the test harness.

use std::process::ExitCode;

#[allow(clippy::print_stdout, clippy::print_stderr)]
fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    if task != "tidy" {
        eprintln!("usage: cargo run -p xtask -- tidy");
        return ExitCode::from(2);
    }
    let meta = match xtask::metadata() {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let mut problems = xtask::dependency_violations(&meta);
    problems.extend(xtask::banned_packages(&meta));
    match xtask::crates_missing_from_architecture(&meta) {
        Ok(missing) => problems.extend(
            missing
                .into_iter()
                .map(|c| format!("ARCHITECTURE.md does not describe {c}")),
        ),
        Err(e) => problems.push(format!("{e:#}")),
    }
    match xtask::hidden_tests() {
        Ok(hidden) => problems.extend(hidden.into_iter().map(|l| format!("ignored test at {l}"))),
        Err(e) => problems.push(format!("{e:#}")),
    }
    if problems.is_empty() {
        println!("tidy: ok");
        ExitCode::SUCCESS
    } else {
        for p in &problems {
            eprintln!("tidy: {p}");
        }
        ExitCode::FAILURE
    }
}
