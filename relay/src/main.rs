//! The `shieldcall` binary: parses the command line and calls the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    shieldcall_relay::cli::run(shieldcall_relay::cli::Cli::parse())
}
