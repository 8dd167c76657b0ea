//! The pforte binary: parses the command line and hands it to `cli`, which owns every command.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    pforte::cli::run(pforte::cli::Cli::parse()).await
}
