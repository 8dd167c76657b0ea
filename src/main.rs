//! The pforte binary: parses the command line and hands it to `cli`, which owns every command.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of glibc's malloc (see Cargo.toml: allocation was a tenth of a token's CPU).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    pforte::cli::run(pforte::cli::Cli::parse()).await
}
