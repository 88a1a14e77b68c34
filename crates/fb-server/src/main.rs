use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = fb_server::cli::Cli::parse();
    fb_server::run(cli)
}
