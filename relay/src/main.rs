//! The `shieldcall` binary: parses the command line and calls the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Shieldcall: self-hosted 1:1 calls with end-to-end encryption you can verify.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080", env = "SHIELDCALL_BIND")]
        bind: String,
        /// Directory of the browser client.
        #[arg(long, default_value = "www", env = "SHIELDCALL_WWW")]
        www: PathBuf,
    },
    /// Print the 20-digit security code for two certificate fingerprints.
    Code {
        /// Read the fingerprints from two SDP files instead.
        #[arg(long)]
        sdp: bool,
        /// First fingerprint (as after `sha-256 ` in SDP) or SDP file.
        first: String,
        /// Second fingerprint or SDP file.
        second: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Code { sdp, first, second } => code(sdp, &first, &second),
        Command::Serve { bind, www } => match run_server(&bind, www) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("shieldcall: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

fn code(sdp: bool, first: &str, second: &str) -> ExitCode {
    use shieldcall_relay::code_cmd;
    let result = if sdp {
        let read = |p: &str| std::fs::read_to_string(p).map_err(|e| format!("{p}: {e}"));
        read(first)
            .and_then(|a| read(second).and_then(|b| code_cmd::from_sdp((first, &a), (second, &b))))
    } else {
        code_cmd::from_fingerprints(first, second)
    };
    match result {
        Ok(code) => {
            println!("{code}");
            ExitCode::SUCCESS
        }
        Err(reason) => {
            eprintln!("shieldcall code: {reason}");
            ExitCode::FAILURE
        }
    }
}

fn run_server(bind: &str, www: PathBuf) -> anyhow::Result<()> {
    let rt = tokio::runtime::Runtime::new()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        println!("Shieldcall is running at http://{addr}/");
        let state = shieldcall_relay::AppState::new(www);
        shieldcall_relay::serve(listener, state, shutdown_signal()).await?;
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
