//! The `shieldcall` command line: `serve`, `code`, and the admin commands that
//! mirror Teams' `*-CsTeamsEnhancedEncryptionPolicy` cmdlets.
//!
//! Admin commands open the same database as a running server (SQLite allows it);
//! the server notices their changes within its poll interval (250 ms) and pushes
//! new settings to signed-in users. Their audit entries name the actor `cli`.

mod admin;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use shieldcall_proto::E2eePolicyType;

use crate::code_cmd;

pub use admin::utc;
pub use serve::{DEMO_USERS, create_demo, shutdown_signal};

/// Shieldcall: self-hosted 1:1 calls with end-to-end encryption you can verify.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Directory of the database [default: ./data].
    #[arg(long, global = true, env = "SHIELDCALL_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// PostgreSQL instead of the SQLite file in the data directory
    /// (postgres://user:password@host/db). The password is better given in the
    /// environment than on a command line other users can read.
    #[arg(
        long,
        global = true,
        env = "SHIELDCALL_DATABASE_URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
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
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage groups and their members.
    #[command(subcommand)]
    Group(GroupCmd),
    /// Manage enhanced-encryption policies (like *-CsTeamsEnhancedEncryptionPolicy).
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Manage tenants.
    #[command(subcommand)]
    Tenant(TenantCmd),
    /// Print a tenant's audit log, newest first.
    Audit {
        /// The tenant (default: the only one).
        #[arg(long)]
        tenant: Option<String>,
        /// How many entries.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "SHIELDCALL_BIND")]
    bind: Option<String>,
    /// Directory of the browser client [default: www].
    #[arg(long, env = "SHIELDCALL_WWW")]
    www: Option<PathBuf>,
    /// An origin the client is served from, e.g. https://call.example.org (repeatable).
    #[arg(
        long = "public-origin",
        env = "SHIELDCALL_PUBLIC_ORIGIN",
        value_delimiter = ','
    )]
    public_origins: Vec<String>,
    /// Do not create the demo tenant on first start.
    #[arg(long, env = "SHIELDCALL_NO_DEMO")]
    no_demo: bool,
    /// Serve HTTPS/WSS with this PEM certificate chain (with --tls-key; read at start).
    #[arg(long, env = "SHIELDCALL_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key (PKCS#8, RSA or EC) of --tls-cert.
    #[arg(long, env = "SHIELDCALL_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// A TOML config file.
    #[arg(long, env = "SHIELDCALL_CONFIG")]
    config: Option<PathBuf>,
    /// NATS between relay nodes (nats://[token@]host:port): with
    /// --database-url, this relay is one node of several behind a load
    /// balancer (docs/operations.md, "Several relay nodes").
    #[arg(long, env = "SHIELDCALL_BUS_URL", hide_env_values = true)]
    bus_url: Option<String>,
    /// A STUN URL (repeatable).
    #[arg(long = "stun-url", env = "SHIELDCALL_STUN_URL", value_delimiter = ',')]
    stun_urls: Vec<String>,
    /// A TURN URL (repeatable).
    #[arg(long = "turn-url", env = "SHIELDCALL_TURN_URL", value_delimiter = ',')]
    turn_urls: Vec<String>,
    /// coturn's static-auth-secret (prefer the environment variable).
    #[arg(long, env = "SHIELDCALL_TURN_SECRET", hide_env_values = true)]
    turn_secret: Option<String>,
    /// A reverse proxy whose X-Forwarded-For is believed for sign-in limits
    /// (repeatable; by default none is, and the header is ignored).
    #[arg(
        long = "trusted-proxy",
        env = "SHIELDCALL_TRUSTED_PROXY",
        value_delimiter = ','
    )]
    trusted_proxies: Vec<std::net::IpAddr>,
    /// A Python with PocketSphinx (`pip install pocketsphinx==5.1.1`) for live
    /// captions and voicemail transcripts; without it captions are off.
    #[arg(long, env = "SHIELDCALL_CAPTIONS_PYTHON")]
    captions_python: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum UserCmd {
    /// Add a user (and their tenant, if new).
    Add {
        /// `name@domain`.
        user: String,
        /// Read the password from standard input (the only way; never a flag).
        #[arg(long, required = true)]
        password_stdin: bool,
        /// Make the user an admin of their tenant.
        #[arg(long)]
        admin: bool,
        /// The display name shown beside the address ("Alice Example").
        #[arg(long)]
        name: Option<String>,
    },
    /// Set a user's display name, shown beside the address ("" removes it).
    Name {
        /// `name@domain`.
        user: String,
        /// The display name, at most 64 characters.
        name: String,
    },
    /// Change a user's password (signs them out everywhere).
    Passwd {
        /// `name@domain`.
        user: String,
        /// Read the password from standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Remove a user.
    Remove {
        /// `name@domain`.
        user: String,
    },
    /// List users with their effective policy.
    List {
        /// Only this tenant.
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum GroupCmd {
    /// Add a group.
    Add {
        /// Group name.
        name: String,
        /// The tenant (default: the only one).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Remove a group, its memberships and its policy assignment.
    Remove {
        /// Group name.
        name: String,
        /// The tenant (default: the only one).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// List groups and members.
    List {
        /// The tenant (default: the only one).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Manage members (the tenant is the user's domain).
    #[command(subcommand)]
    Member(MemberCmd),
}

#[derive(Debug, Subcommand)]
enum MemberCmd {
    /// Add a user to a group.
    Add {
        /// Group name.
        group: String,
        /// `name@domain`.
        user: String,
    },
    /// Remove a user from a group.
    Remove {
        /// Group name.
        group: String,
        /// `name@domain`.
        user: String,
    },
}

#[derive(Debug, Args)]
struct PolicyFields {
    /// `Global` or `Tag:<name>`.
    #[arg(long)]
    identity: String,
    /// Free text.
    #[arg(long)]
    description: Option<String>,
    /// Disabled | DisabledUserOverride | EnabledUserOverride | Required.
    #[arg(long = "calling-e2ee")]
    calling_e2ee: Option<E2eePolicyType>,
    /// The tenant (default: the only one).
    #[arg(long)]
    tenant: Option<String>,
}

#[derive(Debug, Subcommand)]
enum PolicyCmd {
    /// New-CsTeamsEnhancedEncryptionPolicy (value defaults to Disabled, as in Teams).
    New(PolicyFields),
    /// Set-CsTeamsEnhancedEncryptionPolicy.
    Set(PolicyFields),
    /// Get-CsTeamsEnhancedEncryptionPolicy.
    Get {
        /// Only this policy.
        #[arg(long)]
        identity: Option<String>,
        /// The tenant (default: the only one).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Remove-CsTeamsEnhancedEncryptionPolicy (its assignments go too; not Global).
    Remove {
        /// `Tag:<name>`.
        #[arg(long)]
        identity: String,
        /// The tenant (default: the only one).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Grant-CsTeamsEnhancedEncryptionPolicy: --policy-name "" unassigns.
    Grant {
        /// The policy's identity; empty to remove the assignment.
        #[arg(long)]
        policy_name: String,
        /// To one user.
        #[arg(long, conflicts_with_all = ["group", "global"])]
        user: Option<String>,
        /// To a group's members.
        #[arg(long, conflicts_with = "global")]
        group: Option<String>,
        /// The group assignment's rank (1 is highest).
        #[arg(long, requires = "group")]
        rank: Option<u32>,
        /// To everyone in the tenant.
        #[arg(long)]
        global: bool,
        /// The tenant (default: the user's, or the only one).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Show a user's effective policy and where it comes from.
    Effective {
        /// `name@domain`.
        #[arg(long)]
        user: String,
    },
}

#[derive(Debug, Subcommand)]
enum TenantCmd {
    /// List tenants with their external access and calling policy.
    List,
    /// Set whom a tenant's users may reach in other tenants.
    ExternalAccess {
        /// The tenant's domain.
        domain: String,
        /// allow-all | allow-list | block.
        #[arg(long)]
        mode: String,
        /// With allow-list: an allowed domain (repeatable).
        #[arg(long = "allow")]
        allow: Vec<String>,
    },
    /// Set what a tenant's people may have the server do in their calls
    /// (Teams' calling policy); what is not given stays as it is.
    CallingPolicy {
        /// The tenant's domain.
        domain: String,
        /// AllowCloudRecordingForCalls: calls may be recorded.
        #[arg(long)]
        allow_recording: Option<bool>,
        /// AllowTranscriptionForCalling: live captions, voicemail transcripts.
        #[arg(long)]
        allow_transcription: Option<bool>,
        /// AllowVoicemail: voicemail may be left by and for its people.
        #[arg(long)]
        allow_voicemail: Option<bool>,
    },
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let data_dir = cli.data_dir;
    let database_url = cli.database_url;
    let result = match cli.command {
        Command::Code { sdp, first, second } => return code(sdp, &first, &second),
        Command::Serve(args) => serve::serve(data_dir, database_url, args),
        other => runtime().and_then(|rt| {
            rt.block_on(admin::admin(
                data_dir.unwrap_or_else(|| "data".into()),
                database_url,
                other,
            ))
        }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("shieldcall: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Runtime::new()?)
}

fn code(sdp: bool, first: &str, second: &str) -> ExitCode {
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
