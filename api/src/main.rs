//! `fipd`: the floating-IPv6 API server's command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use fipd::config::{FileConfig, Overrides, Settings};
use fipd::http::error::error_chain;

#[derive(Parser)]
#[command(
    name = "fipd",
    version,
    about = "Floating IPv6 control plane API server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API server (applies migrations first).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(ServeArgs),
    /// Print the OpenAPI document.
    Openapi,
}

#[derive(Args)]
struct ServeArgs {
    /// TOML config file; flags and FIPD_* variables override it.
    #[arg(long, env = "FIPD_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "FIPD_LISTEN")]
    listen: Option<SocketAddr>,
    /// Data directory, created on first start [default: ./fipd-data].
    #[arg(long, env = "FIPD_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// postgres://… or sqlite:… [default: SQLite file in the data directory].
    #[arg(long, env = "FIPD_DATABASE_URL")]
    database_url: Option<String>,
    /// Admin bearer token [default: generated on first start, kept in the data directory].
    #[arg(long, env = "FIPD_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// How long a released address stays out of the pool, in ms [default: 60000].
    #[arg(long, env = "FIPD_QUARANTINE_MS")]
    quarantine_ms: Option<u64>,
    /// Agent lease length in ms; agents renew at a third of it [default: 10000].
    #[arg(long, env = "FIPD_LEASE_TTL_MS")]
    lease_ttl_ms: Option<u64>,
    /// Wait after a lease runs out before the host's addresses count as gone, in ms [default: 2000].
    #[arg(long, env = "FIPD_FENCE_GRACE_MS")]
    fence_grace_ms: Option<u64>,
    /// DAD mode sent to agents: strict, optimistic or off [default: strict].
    #[arg(long, env = "FIPD_DAD_MODE", value_parser = parse_dad)]
    dad_mode: Option<fip_types::DadMode>,
    /// Unsolicited NAs agents send after DAD [default: 3].
    #[arg(long, env = "FIPD_NA_COUNT")]
    na_count: Option<u32>,
    /// Interval between those NAs in ms [default: 1000].
    #[arg(long, env = "FIPD_NA_INTERVAL_MS")]
    na_interval_ms: Option<u64>,
    /// Events kept per floating IP; older ones are deleted [default: 1000].
    #[arg(long, env = "FIPD_EVENT_RETENTION_COUNT")]
    event_retention_count: Option<u64>,
    /// Events older than this many days are deleted [default: 30].
    #[arg(long, env = "FIPD_EVENT_RETENTION_DAYS")]
    event_retention_days: Option<u64>,
    /// Floating IPs per project unless the admin sets a quota; -1 is unlimited [default: 50].
    #[arg(long, env = "FIPD_QUOTA_FLOATING_IPS", allow_negative_numbers = true)]
    quota_floating_ips: Option<i64>,
    /// Instances per project unless the admin sets a quota; -1 is unlimited [default: 500].
    #[arg(long, env = "FIPD_QUOTA_INSTANCES", allow_negative_numbers = true)]
    quota_instances: Option<i64>,
}

fn parse_dad(s: &str) -> Result<fip_types::DadMode, String> {
    match s {
        "strict" => Ok(fip_types::DadMode::Strict),
        "optimistic" => Ok(fip_types::DadMode::Optimistic),
        "off" => Ok(fip_types::DadMode::Off),
        _ => Err("expected strict, optimistic or off".into()),
    }
}

impl ServeArgs {
    fn settings(self) -> Result<Settings, fipd::config::ConfigError> {
        let file = match &self.config {
            Some(path) => FileConfig::load(path)?,
            None => FileConfig::default(),
        };
        let cli = Overrides {
            listen: self.listen,
            data_dir: self.data_dir,
            database_url: self.database_url,
            admin_token: self.admin_token,
            quarantine_ms: self.quarantine_ms,
            lease_ttl_ms: self.lease_ttl_ms,
            fence_grace_ms: self.fence_grace_ms,
            dad_mode: self.dad_mode,
            na_count: self.na_count,
            na_interval_ms: self.na_interval_ms,
            event_retention_count: self.event_retention_count,
            event_retention_days: self.event_retention_days,
            quota_floating_ips: self.quota_floating_ips,
            quota_instances: self.quota_instances,
        };
        let settings = Settings::merge(cli, file);
        settings.validate()?;
        Ok(settings)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FIPD_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    // Bad settings are the operator's to fix: one sentence and exit 2,
    // before anything is opened or started.
    let command = match cli.command {
        Command::Openapi => Ok(Run::Openapi),
        Command::Migrate(args) => args.settings().map(Run::Migrate),
        Command::Serve(args) => args.settings().map(Run::Serve),
    };
    let command = match command {
        Ok(c) => c,
        Err(e) => {
            eprintln!("fipd: {}", error_chain(&e));
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
    let result: Result<(), Box<dyn std::error::Error>> = runtime.block_on(async {
        match command {
            Run::Openapi => {
                let doc = fipd::http::openapi();
                println!("{}", serde_json::to_string_pretty(&doc)?);
                Ok(())
            }
            Run::Migrate(settings) => {
                fipd::server::open_store(&settings).await?;
                eprintln!("migrations applied to {}", redact(&settings.database_url));
                Ok(())
            }
            Run::Serve(settings) => {
                fipd::server::serve(settings).await?;
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("fipd: {}", error_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// A command with its validated settings.
enum Run {
    Openapi,
    Migrate(Settings),
    Serve(Settings),
}

/// Hides a password in a database URL before printing it.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => match url[s + 3..at].find(':') {
            Some(c) => format!("{}:***{}", &url[..s + 3 + c], &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}
