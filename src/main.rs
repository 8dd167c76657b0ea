use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    pforte::cli::run(pforte::cli::Cli::parse()).await
}
