//! The `shieldcall` command line: `serve`, `code`, and the admin commands that
//! mirror Teams' `*-CsTeamsEnhancedEncryptionPolicy` cmdlets.
//!
//! Admin commands open the same database as a running server (SQLite allows it);
//! the server notices their changes within its poll interval (250 ms) and pushes
//! new settings to signed-in users. Their audit entries name the actor `cli`.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;
use shieldcall_proto::E2eePolicyType;

use crate::auth::{self, PasswordCost};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ops::{self, Ops};
use crate::policy::{ExternalAccess, Target};
use crate::store::{SqliteStore, Store};
use crate::{AppState, code_cmd};

/// Shieldcall: self-hosted 1:1 calls with end-to-end encryption you can verify.
#[derive(Debug, Parser)]
#[command(version, about)]
pub struct Cli {
    /// Directory of the database [default: ./data].
    #[arg(long, global = true, env = "SHIELDCALL_DATA_DIR")]
    data_dir: Option<PathBuf>,
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
    /// TLS certificate (not supported: terminate TLS in a reverse proxy).
    #[arg(long, env = "SHIELDCALL_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// TLS key (not supported: terminate TLS in a reverse proxy).
    #[arg(long, env = "SHIELDCALL_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// A TOML config file.
    #[arg(long, env = "SHIELDCALL_CONFIG")]
    config: Option<PathBuf>,
    /// A STUN URL (repeatable).
    #[arg(long = "stun-url", env = "SHIELDCALL_STUN_URL", value_delimiter = ',')]
    stun_urls: Vec<String>,
    /// A TURN URL (repeatable).
    #[arg(long = "turn-url", env = "SHIELDCALL_TURN_URL", value_delimiter = ',')]
    turn_urls: Vec<String>,
    /// coturn's static-auth-secret (prefer the environment variable).
    #[arg(long, env = "SHIELDCALL_TURN_SECRET", hide_env_values = true)]
    turn_secret: Option<String>,
}

/// The optional TOML file; flags and `SHIELDCALL_*` variables win over it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    bind: Option<String>,
    data_dir: Option<PathBuf>,
    www: Option<PathBuf>,
    #[serde(default)]
    public_origins: Vec<String>,
    demo: Option<bool>,
    #[serde(default)]
    stun_urls: Vec<String>,
    #[serde(default)]
    turn_urls: Vec<String>,
    turn_secret: Option<String>,
    turn_ttl_secs: Option<u64>,
    /// Per-connection sustained messages per second (default 20).
    ws_rate_per_sec: Option<f64>,
    /// Per-connection burst (default 60).
    ws_burst: Option<f64>,
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
    /// List tenants with their external access.
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
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    let data_dir = cli.data_dir;
    let result = match cli.command {
        Command::Code { sdp, first, second } => return code(sdp, &first, &second),
        Command::Serve(args) => serve(data_dir, args),
        other => runtime()
            .and_then(|rt| rt.block_on(admin(data_dir.unwrap_or_else(|| "data".into()), other))),
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

fn read_password() -> Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Error::Invalid(format!("reading the password: {e}")))?;
    let pw = line.trim_end_matches(['\r', '\n']).to_string();
    if pw.chars().count() < 8 {
        return Err(Error::Invalid(
            "the password must have at least 8 characters".into(),
        ));
    }
    Ok(pw)
}

async fn only_tenant(store: &dyn Store, tenant: Option<String>) -> Result<String> {
    if let Some(t) = tenant {
        return Ok(t.to_ascii_lowercase());
    }
    let all = store.tenants().await?;
    match all.as_slice() {
        [one] => Ok(one.domain.clone()),
        [] => Err(Error::Invalid(
            "there is no tenant yet; add a user first".into(),
        )),
        _ => Err(Error::Invalid(
            "there are several tenants; name one with --tenant".into(),
        )),
    }
}

fn print_policy(p: &crate::policy::Policy) {
    println!("Identity                              : {}", p.identity);
    println!("Description                           : {}", p.description);
    println!("CallingEndtoEndEncryptionEnabledType  : {}", p.calling_e2ee);
    println!();
}

async fn admin(data_dir: PathBuf, cmd: Command) -> anyhow::Result<()> {
    let store = SqliteStore::open(&data_dir).await?;
    let store: &dyn Store = &store;
    let ops = Ops {
        store,
        actor: "cli",
    };
    let cost = PasswordCost::default();
    match cmd {
        Command::User(UserCmd::Add { user, admin, .. }) => {
            let hash = auth::hash_password(cost, read_password()?).await?;
            let name = ops.add_user(&user, hash, admin).await?;
            println!("added {name}{}", if admin { " (admin)" } else { "" });
        }
        Command::User(UserCmd::Passwd { user, .. }) => {
            let hash = auth::hash_password(cost, read_password()?).await?;
            ops.set_password(&user, &hash).await?;
            println!("password changed; {user} is signed out everywhere");
        }
        Command::User(UserCmd::Remove { user }) => {
            ops.remove_user(&user).await?;
            println!("removed {user}");
        }
        Command::User(UserCmd::List { tenant }) => {
            for u in store.users(tenant.as_deref()).await? {
                let s = ops::effective_setting(store, &u.name).await?;
                println!(
                    "{}\t{}\te2ee={}\tpolicy={} ({:?})",
                    u.name,
                    if u.admin { "admin" } else { "user" },
                    if s.enabled { "on" } else { "off" },
                    s.policy_identity,
                    s.source
                );
            }
        }
        Command::Group(GroupCmd::Add { name, tenant }) => {
            let t = only_tenant(store, tenant).await?;
            ops.add_group(&t, &name).await?;
            println!("added group {name} in {t}");
        }
        Command::Group(GroupCmd::Remove { name, tenant }) => {
            let t = only_tenant(store, tenant).await?;
            ops.remove_group(&t, &name).await?;
            println!("removed group {name} from {t}");
        }
        Command::Group(GroupCmd::List { tenant }) => {
            let t = only_tenant(store, tenant).await?;
            for g in store.groups(&t).await? {
                println!("{}\t{}", g.name, g.members.join(" "));
            }
        }
        Command::Group(GroupCmd::Member(MemberCmd::Add { group, user })) => {
            let user = ops::normalize_user(&user)?;
            ops.add_member(crate::policy::domain_of(&user), &group, &user)
                .await?;
            println!("added {user} to {group}");
        }
        Command::Group(GroupCmd::Member(MemberCmd::Remove { group, user })) => {
            let user = ops::normalize_user(&user)?;
            ops.remove_member(crate::policy::domain_of(&user), &group, &user)
                .await?;
            println!("removed {user} from {group}");
        }
        Command::Policy(PolicyCmd::New(f)) => {
            let t = only_tenant(store, f.tenant).await?;
            print_policy(
                &ops.new_policy(&t, &f.identity, f.description.as_deref(), f.calling_e2ee)
                    .await?,
            );
        }
        Command::Policy(PolicyCmd::Set(f)) => {
            let t = only_tenant(store, f.tenant).await?;
            print_policy(
                &ops.set_policy(&t, &f.identity, f.description.as_deref(), f.calling_e2ee)
                    .await?,
            );
        }
        Command::Policy(PolicyCmd::Get { identity, tenant }) => {
            let t = only_tenant(store, tenant).await?;
            for p in ops.get_policies(&t, identity.as_deref()).await? {
                print_policy(&p);
            }
        }
        Command::Policy(PolicyCmd::Remove { identity, tenant }) => {
            let t = only_tenant(store, tenant).await?;
            ops.remove_policy(&t, &identity).await?;
            println!("removed {identity}; its users fall back to their next rule");
        }
        Command::Policy(PolicyCmd::Grant {
            policy_name,
            user,
            group,
            rank,
            global,
            tenant,
        }) => {
            let (target, tenant) = match (user, group, global) {
                (Some(user), None, false) => {
                    let user = ops::normalize_user(&user)?;
                    let t = tenant.unwrap_or_else(|| crate::policy::domain_of(&user).to_string());
                    (Target::User { user }, t)
                }
                (None, Some(group), false) => (
                    Target::Group { group, rank },
                    only_tenant(store, tenant).await?,
                ),
                (None, None, true) => (Target::Global, only_tenant(store, tenant).await?),
                _ => anyhow::bail!("give exactly one of --user, --group [--rank N] or --global"),
            };
            ops.grant(&tenant, &target, Some(policy_name.as_str()))
                .await?;
            if policy_name.is_empty() {
                println!("assignment removed");
            } else {
                println!("granted {policy_name}");
            }
        }
        Command::Policy(PolicyCmd::Effective { user }) => {
            let user = ops::normalize_user(&user)?;
            let s = ops::effective_setting(store, &user).await?;
            println!("{}", serde_json::to_string_pretty(&s)?);
        }
        Command::Tenant(TenantCmd::List) => {
            for t in store.tenants().await? {
                println!(
                    "{}\t{}",
                    t.domain,
                    serde_json::to_string(&t.external_access)?
                );
            }
        }
        Command::Tenant(TenantCmd::ExternalAccess {
            domain,
            mode,
            allow,
        }) => {
            let access = match mode.as_str() {
                "allow-all" => ExternalAccess::AllowAll,
                "allow-list" => ExternalAccess::AllowList { domains: allow },
                "block" => ExternalAccess::Block,
                _ => anyhow::bail!("--mode is allow-all, allow-list or block"),
            };
            ops.set_external_access(&domain, &access).await?;
            println!("{domain}: {}", serde_json::to_string(&access)?);
        }
        Command::Audit { tenant, limit } => {
            let t = only_tenant(store, tenant).await?;
            for e in store.audit_log(&t, limit).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{} -> {}",
                    utc(e.at),
                    e.audit.actor,
                    e.audit.action,
                    e.audit.target,
                    e.audit.old.as_deref().unwrap_or("-"),
                    e.audit.new.as_deref().unwrap_or("-")
                );
            }
        }
        Command::Serve(_) | Command::Code { .. } => {}
    }
    Ok(())
}

/// Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (proleptic Gregorian, UTC).
pub fn utc(secs: i64) -> String {
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The demo tenant's users, created on first start with an empty database.
pub const DEMO_USERS: [(&str, bool); 3] = [
    ("admin@example.test", true),
    ("alice@example.test", false),
    ("bob@example.test", false),
];

/// Creates the demo tenant if the store has no users; returns the one-time
/// passwords it chose.
pub async fn create_demo(state: &AppState) -> Result<Vec<(String, String)>> {
    if !state.store().users(None).await?.is_empty() {
        return Ok(Vec::new());
    }
    let ops = Ops {
        store: state.store(),
        actor: "demo",
    };
    let mut out = Vec::new();
    for (name, admin) in DEMO_USERS {
        let password = auth::random_hex::<8>()?;
        let hash = auth::hash_password(state.config().password_cost, password.clone()).await?;
        ops.add_user(name, hash, admin).await?;
        out.push((name.to_string(), password));
    }
    Ok(out)
}

fn build_config(
    data_dir: Option<PathBuf>,
    args: &ServeArgs,
) -> anyhow::Result<(Config, String, bool)> {
    let file: FileConfig = match &args.config {
        Some(path) => toml::from_str(
            &std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        )
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?,
        None => FileConfig::default(),
    };
    let mut config = Config::new(data_dir.or(file.data_dir).unwrap_or_else(|| "data".into()));
    config.www = args
        .www
        .clone()
        .or(file.www)
        .unwrap_or_else(|| "www".into());
    config.public_origins = if args.public_origins.is_empty() {
        file.public_origins
    } else {
        args.public_origins.clone()
    };
    for o in &config.public_origins {
        if !(o.starts_with("http://") || o.starts_with("https://")) {
            anyhow::bail!(
                "--public-origin {o:?}: expected http://host[:port] or https://host[:port]"
            );
        }
    }
    config.ice.stun_urls = if args.stun_urls.is_empty() {
        file.stun_urls
    } else {
        args.stun_urls.clone()
    };
    config.ice.turn_urls = if args.turn_urls.is_empty() {
        file.turn_urls
    } else {
        args.turn_urls.clone()
    };
    config.ice.turn_secret = args.turn_secret.clone().or(file.turn_secret);
    if let Some(ttl) = file.turn_ttl_secs {
        config.ice.turn_ttl = Duration::from_secs(ttl);
    }
    if let Some(rate) = file.ws_rate_per_sec.filter(|r| *r > 0.0) {
        config.msg_rate = rate;
    }
    if let Some(burst) = file.ws_burst.filter(|b| *b >= 1.0) {
        config.msg_burst = burst;
    }
    let bind = args
        .bind
        .clone()
        .or(file.bind)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let demo = !args.no_demo && file.demo.unwrap_or(true);
    Ok((config, bind, demo))
}

fn serve(data_dir: Option<PathBuf>, args: ServeArgs) -> anyhow::Result<()> {
    if args.tls_cert.is_some() || args.tls_key.is_some() {
        anyhow::bail!(
            "built-in TLS is not supported (it would need a TLS stack this relay does not ship); \
             terminate TLS in a reverse proxy (Caddy, nginx) and pass --public-origin https://your.host; \
             see docs/operations.md"
        );
    }
    let (config, bind, demo) = build_config(data_dir, &args)?;
    let rt = runtime()?;
    rt.block_on(async move {
        tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_env("SHIELDCALL_LOG")
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            )
            .with_writer(std::io::stderr)
            .init();
        let state = AppState::open(config).await?;
        if demo {
            let created = create_demo(&state).await?;
            if !created.is_empty() {
                println!(
                    "Created the demo tenant example.test. One-time passwords (shown only now):"
                );
                for (user, pw) in &created {
                    println!("  {user}  {pw}");
                }
            }
        }
        let stop = shutdown_signal();
        let listener = tokio::net::TcpListener::bind(&bind).await?;
        let addr = listener.local_addr()?;
        println!("Shieldcall is running at http://{addr}/");
        crate::serve(listener, state, stop).await?;
        println!("Shieldcall stopped.");
        Ok(())
    })
}

/// A future that completes on Ctrl-C or SIGTERM. The handlers are installed when
/// this is called (not when the future is first polled), so a signal that
/// arrives right after start-up is not lost. Call it inside the runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let ctrl_c = tokio::signal::ctrl_c();
    async move {
        #[cfg(unix)]
        let term = async move {
            match term {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        #[cfg(not(unix))]
        let term = std::future::pending::<()>();
        tokio::select! {
            _ = ctrl_c => {},
            () = term => {},
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(super::utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::utc(1_767_225_600), "2026-01-01T00:00:00Z");
    }
}
