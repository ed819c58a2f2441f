//! `fip-bench`: each figure next to its baseline, measured in the same run.
//!
//! `fip-bench api` needs no root (PostgreSQL and SQLite, loopback only);
//! `fip-bench netns` runs the namespace benchmarks as root. `--quick` runs
//! a few iterations so CI keeps the code working; full runs are for people.

mod api;
mod fipd;
mod fleet;
mod netns;
mod report;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "fip-bench",
    about = "Benchmarks of fipd and fip-agent against same-run baselines"
)]
struct Cli {
    #[command(subcommand)]
    suite: Suite,
    /// A few iterations only (for CI); results are not written unless --out is given.
    #[arg(long, global = true)]
    quick: bool,
    /// Where to write the results table [default: bench/results.md for full runs].
    #[arg(long, global = true)]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Suite {
    /// API throughput (figure 3), allocation at scale (figure 4), fipd memory (figure 6).
    Api {
        /// PostgreSQL server to create scratch databases on.
        #[arg(
            long,
            env = "DATABASE_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/postgres"
        )]
        database_url: String,
    },
    /// Namespace benchmarks, as root: planned-move outage (figure 1), host
    /// cut off (1b), change-to-kernel latency (2), agent scale (5), agent
    /// memory (6).
    Netns {
        /// Run only these figures (1, 1b, 2, 5; 6 comes with 5); default all.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Floating IPs for figure 5 [default: 10000, quick: 200].
        #[arg(long)]
        addresses: Option<usize>,
        /// PostgreSQL server for the two-replica run (figure 2).
        #[arg(
            long,
            env = "DATABASE_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/postgres"
        )]
        database_url: String,
    },
    /// Fleet scale: simulated agents on two replicas, moves at a fixed
    /// rate (figure F, issue 13).
    Fleet {
        /// PostgreSQL server to create scratch databases on.
        #[arg(
            long,
            env = "DATABASE_URL",
            default_value = "postgres://postgres@127.0.0.1:5432/postgres"
        )]
        database_url: String,
    },
    /// Probe responder run inside a host namespace by `netns` (internal).
    #[command(hide = true)]
    Responder {
        #[arg(long)]
        addr: std::net::Ipv6Addr,
        #[arg(long)]
        port: u16,
        #[arg(long)]
        name: String,
        #[arg(long, default_value_t = 3600)]
        max_s: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Suite::Responder {
        addr,
        port,
        name,
        max_s,
    } = &cli.suite
    {
        let max = std::time::Duration::from_secs(*max_s);
        return match netns::probe::respond(*addr, *port, name, max) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("fip-bench responder: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let mode = if cli.quick { "quick" } else { "full" };
    let result = rt.block_on(async {
        let mut rows = Vec::new();
        let mut notes = Vec::new();
        let mut failed = false;
        let suite = match &cli.suite {
            Suite::Api { database_url } => {
                let opts = api::Opts {
                    pg_admin_url: database_url.clone(),
                    quick: cli.quick,
                };
                api::throughput(&opts, &mut rows).await?;
                api::allocation_at_scale(&opts, &mut rows).await?;
                "api"
            }
            Suite::Fleet { database_url } => {
                let opts = fleet::Opts {
                    pg_admin_url: database_url.clone(),
                    quick: cli.quick,
                };
                fleet::run(&opts, &mut rows).await?;
                "fleet"
            }
            Suite::Netns {
                database_url,
                only,
                addresses,
            } => {
                let opts = netns::Opts {
                    quick: cli.quick,
                    only: only.clone(),
                    addresses: *addresses,
                    pg_admin_url: database_url.clone(),
                };
                let o = netns::run(&opts, &mut rows).await?;
                notes = o.notes;
                failed = o.failed;
                "netns"
            }
            Suite::Responder { .. } => unreachable!("handled before the runtime"),
        };
        anyhow::Ok((suite, rows, notes, failed))
    });
    let (suite, rows, notes, failed) = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fip-bench: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let out = cli.out.clone().or_else(|| {
        (!cli.quick).then(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/results.md")))
    });
    if let Some(path) = out {
        let machine = machine();
        let date = chrono::Utc::now().format("%Y-%m-%d").to_string();
        let mut body = report::markdown(&rows, &machine, &date, mode);
        for n in &notes {
            body.push_str(&format!("\n{n}\n"));
        }
        if let Err(e) = report::write_section(&path, suite, &body) {
            eprintln!("fip-bench: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        eprintln!("results written to {}", path.display());
    }
    if failed {
        eprintln!("fip-bench: some figures failed (see above)");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

/// "2 cores, 23 GiB, kernel 6.18": enough to compare runs.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores, {mem_gib:.0} GiB, Linux {}", kernel.trim())
}
