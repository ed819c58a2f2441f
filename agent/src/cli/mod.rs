//! The `fip-agent` commands: JSON result lines on stdout, human messages on stderr, exit codes.

use std::io::Write;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::addr::FloatingAddr;
use crate::error::{AgentError, EXIT_BAD_INPUT, EXIT_DAD_FAILED};
use crate::manager::{AddOptions, AddressManager, DadMode, NaOptions, Outcome};

/// Floating IPv6 host agent.
///
/// Each command prints one JSON object per result line on stdout and human
/// messages on stderr. Exit codes: 0 ok/active, 3 dad_failed, 2 bad input,
/// 1 any other failure.
#[derive(Debug, Parser)]
#[command(name = "fip-agent", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Add ADDR with DAD, wait for the kernel's verdict, then announce it.
    Add(AddArgs),
    /// Remove a managed address and confirm it is gone.
    Del(DelArgs),
    /// Send unsolicited Neighbor Advertisements for an address on IF.
    Announce(AnnounceArgs),
    /// List the addresses fip-agent manages.
    List(ListArgs),
    /// Preflight: IPv6 sysctls and link state that matter for DAD and NAs.
    Check(CheckArgs),
    /// Run the daemon: hold a lease with fipd, apply the host's desired
    /// state, report back (docs/agent-daemon.md).
    Run(crate::daemon::config::RunArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum DadArg {
    Strict,
    Optimistic,
    Off,
}

impl From<DadArg> for DadMode {
    fn from(d: DadArg) -> Self {
        match d {
            DadArg::Strict => DadMode::Strict,
            DadArg::Optimistic => DadMode::Optimistic,
            DadArg::Off => DadMode::Off,
        }
    }
}

#[derive(Debug, Args)]
pub struct NaArgs {
    /// Number of unsolicited NAs (RFC 4861 §7.2.6 allows at most 3).
    #[arg(long, default_value_t = 3)]
    pub na_count: u32,
    /// Interval between NAs (RFC 4861: at least RetransTimer, 1 s).
    #[arg(long, default_value_t = 1000)]
    pub na_interval_ms: u64,
}

impl NaArgs {
    fn options(&self) -> NaOptions {
        NaOptions {
            count: self.na_count,
            interval: Duration::from_millis(self.na_interval_ms),
        }
    }
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Interface to add the address on.
    #[arg(long, value_parser = parse_ifname)]
    pub dev: String,
    /// IPv6 address, optionally with a prefix length (default /128).
    pub addr: FloatingAddr,
    /// strict: normal DAD; optimistic: usable at once (needs optimistic_dad=1);
    /// off: nodad (only when you fence by other means).
    #[arg(long, value_enum, default_value = "strict")]
    pub dad: DadArg,
    /// Give up waiting for the DAD verdict after this long.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
    #[command(flatten)]
    pub na: NaArgs,
    /// Valid and preferred lifetime: the kernel removes the address when it
    /// runs out unless refreshed by another `add`.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub lifetime_s: Option<u32>,
}

#[derive(Debug, Args)]
pub struct DelArgs {
    #[arg(long, value_parser = parse_ifname)]
    pub dev: String,
    pub addr: FloatingAddr,
    /// Also remove an address fip-agent does not manage.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct AnnounceArgs {
    #[arg(long, value_parser = parse_ifname)]
    pub dev: String,
    pub addr: FloatingAddr,
    #[command(flatten)]
    pub na: NaArgs,
    /// Also announce an address fip-agent does not manage.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long, value_parser = parse_ifname)]
    pub dev: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[arg(long, value_parser = parse_ifname)]
    pub dev: String,
}

/// Interface names as the kernel accepts them (`dev_valid_name`): this also
/// keeps a name from walking out of `/proc/sys/net/ipv6/conf/` when it is
/// used in a sysctl path.
pub fn parse_ifname(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() < 16
        && s != "."
        && s != ".."
        && !s.chars().any(|c| c == '/' || c == ':' || c.is_whitespace());
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not a valid interface name (1-15 characters, no '/', ':' or spaces)"
        ))
    }
}

/// One JSON object on one line; stdout is line-buffered so a reader sees
/// each result as soon as it is printed.
fn emit<T: Serialize>(v: &T) {
    let line = serde_json::to_string(v).expect("result types serialize");
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[derive(Serialize)]
struct AddLine<'a> {
    #[serde(flatten)]
    outcome: &'a crate::manager::AddOutcome,
    na_sent: u32,
}

/// Runs one command and returns the process exit code.
pub async fn run(cli: Cli) -> i32 {
    let cli = match cli.command {
        Command::Run(args) => return crate::daemon::run(args).await,
        other => other,
    };
    let mgr = match AddressManager::new() {
        Ok(m) => m,
        Err(e) => return fail(&e),
    };
    let res = match cli {
        Command::Add(a) => add(&mgr, a).await,
        Command::Del(a) => del(&mgr, a).await,
        Command::Announce(a) => announce(&mgr, a).await,
        Command::List(a) => list(&mgr, a).await,
        Command::Check(a) => check(&mgr, a).await,
        Command::Run(_) => unreachable!("handled above"),
    };
    res.unwrap_or_else(|e| fail(&e))
}

fn fail(e: &AgentError) -> i32 {
    let mut msg = format!("fip-agent: error: {e}");
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        msg.push_str(&format!(": {s}"));
        src = s.source();
    }
    eprintln!("{msg}");
    e.exit_code()
}

async fn add(mgr: &AddressManager, a: AddArgs) -> Result<i32, AgentError> {
    let dad: DadMode = a.dad.into();
    if dad == DadMode::Off {
        eprintln!(
            "fip-agent: warning: --dad off adds {} without DAD; a duplicate on the link will go unnoticed",
            a.addr
        );
    }
    let opts = AddOptions {
        dad,
        timeout: Duration::from_millis(a.timeout_ms),
        lifetime_s: a.lifetime_s,
    };
    let (outcome, sent) = mgr
        .add_and_announce(&a.dev, a.addr, &opts, &a.na.options(), |o, n| {
            emit(&AddLine {
                outcome: o,
                na_sent: n,
            })
        })
        .await?;
    Ok(match outcome.outcome {
        Outcome::DadFailed => {
            let by = outcome
                .defender_mac
                .map_or("an unseen node".to_owned(), |m| m.to_string());
            eprintln!(
                "fip-agent: {} is in use on the link of {} (defended by {by}); our copy was removed",
                a.addr, a.dev
            );
            EXIT_DAD_FAILED
        }
        _ => {
            if !outcome.changed {
                let what = if a.lifetime_s.is_some() {
                    "lifetimes refreshed, no DAD"
                } else {
                    "nothing changed"
                };
                eprintln!("fip-agent: {} already active on {}; {what}", a.addr, a.dev);
            } else {
                eprintln!(
                    "fip-agent: {} active on {}, {sent} NA(s) sent",
                    a.addr, a.dev
                );
            }
            0
        }
    })
}

#[derive(Serialize)]
struct DelLine<'a> {
    address: std::net::Ipv6Addr,
    dev: &'a str,
    outcome: crate::manager::RemoveOutcome,
}

async fn del(mgr: &AddressManager, a: DelArgs) -> Result<i32, AgentError> {
    let outcome = mgr.remove(&a.dev, a.addr.addr(), a.force).await?;
    emit(&DelLine {
        address: a.addr.addr(),
        dev: &a.dev,
        outcome,
    });
    Ok(0)
}

#[derive(Serialize)]
struct AnnounceLine<'a> {
    address: std::net::Ipv6Addr,
    dev: &'a str,
    na_sent: u32,
    router: bool,
}

async fn announce(mgr: &AddressManager, a: AnnounceArgs) -> Result<i32, AgentError> {
    let mut ann = mgr.announcer(&a.dev, a.addr.addr(), false, a.force).await?;
    let opts = a.na.options();
    let res = ann.send_until(opts.count, opts.interval, |_| {}).await;
    emit(&AnnounceLine {
        address: a.addr.addr(),
        dev: &a.dev,
        na_sent: ann.sent(),
        router: ann.router(),
    });
    res?;
    Ok(0)
}

async fn list(mgr: &AddressManager, a: ListArgs) -> Result<i32, AgentError> {
    for m in mgr.list_managed(a.dev.as_deref()).await? {
        emit(&m);
    }
    Ok(0)
}

async fn check(mgr: &AddressManager, a: CheckArgs) -> Result<i32, AgentError> {
    let r = mgr.check(&a.dev).await?;
    for w in &r.warnings {
        eprintln!("fip-agent: warning: {w}");
    }
    emit(&r);
    // An interface that cannot take IPv6 addresses fails the preflight the
    // same way `add` on it would: as bad input.
    Ok(if r.ipv6.disable_ipv6 {
        EXIT_BAD_INPUT
    } else {
        0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_interface_names_are_accepted() {
        for n in ["eth0", "br-ext", "eth0.100", "a", "fifteen_chars_x"] {
            assert_eq!(parse_ifname(n).as_deref(), Ok(n));
        }
    }

    #[test]
    fn names_the_kernel_rejects_are_refused() {
        for n in [
            "",
            ".",
            "..",
            "sixteen_chars_xx",
            "a/b",
            "../../x",
            "eth0:1",
            "eth 0",
        ] {
            assert!(parse_ifname(n).is_err(), "{n:?}");
        }
    }

    #[test]
    fn the_command_line_parses_every_command() {
        Cli::try_parse_from([
            "fip-agent",
            "add",
            "--dev",
            "eth0",
            "2001:db8::1/64",
            "--dad",
            "off",
        ])
        .unwrap();
        Cli::try_parse_from([
            "fip-agent",
            "del",
            "--dev",
            "eth0",
            "2001:db8::1",
            "--force",
        ])
        .unwrap();
        Cli::try_parse_from(["fip-agent", "announce", "--dev", "eth0", "2001:db8::1"]).unwrap();
        Cli::try_parse_from(["fip-agent", "list"]).unwrap();
        Cli::try_parse_from(["fip-agent", "check", "--dev", "eth0"]).unwrap();
    }

    #[test]
    fn zero_lifetime_is_refused() {
        assert!(Cli::try_parse_from([
            "fip-agent",
            "add",
            "--dev",
            "eth0",
            "2001:db8::1",
            "--lifetime-s",
            "0"
        ])
        .is_err());
    }
}
