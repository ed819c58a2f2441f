//! A fipd process under test (started by the kit, fip-testkit):
//! addressed, measured, stopped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, Result};
use fip_testkit::{FipdSpec, Proc};

pub const ADMIN: &str = "bench-admin-token";

/// Makes `cmd`'s process get SIGTERM when this process dies, so fipd,
/// agents and helpers never outlive a benchmark killed by a signal.
/// (The kernel sends it when the spawning *thread* exits: spawn only from
/// threads that live as long as the run, as the main thread does.)
pub fn die_with_us(cmd: &mut Command) -> &mut Command {
    fip_testkit::proc::die_with_parent(cmd, libc::SIGTERM)
}

/// A binary built next to this one (`cargo build --release -p fipd -p fip-bench`).
pub fn sibling_binary(name: &str) -> Result<PathBuf> {
    fip_testkit::binary(name)
}

pub struct Fipd {
    proc: Proc,
    pub url: String,
}

impl Fipd {
    pub fn start(data_dir: &Path, database_url: Option<&str>, extra: &[&str]) -> Result<Self> {
        Self::start_on("127.0.0.1:0", data_dir, database_url, extra)
    }

    /// Like `start`, listening on `listen` (e.g. `[2001:db8::1]:0`). Its
    /// log is `fipd.log` in the data directory.
    pub fn start_on(
        listen: &str,
        data_dir: &Path,
        database_url: Option<&str>,
        extra: &[&str],
    ) -> Result<Self> {
        let mut spec = FipdSpec::new("fipd", listen, data_dir);
        spec.admin_token = ADMIN.into();
        (spec.lease_ttl_ms, spec.fence_grace_ms) = (None, None);
        spec.database_url = database_url.map(str::to_owned);
        spec.args = extra.iter().map(|s| s.to_string()).collect();
        spec.log_filter = "warn".into();
        let (proc, url) = fip_testkit::start_fipd(&spec)?;
        Ok(Self { proc, url })
    }

    pub fn pid(&self) -> i32 {
        self.proc.pid()
    }

    /// Peak resident set size so far (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> Result<f64> {
        peak_rss_mib(self.proc.pid() as u32)
    }

    /// SIGTERM, then up to 10 s for a clean exit (dropping kills it).
    pub fn stop(mut self) {
        self.proc.signal(libc::SIGTERM);
        let _ = self.proc.wait_exit(Duration::from_secs(10));
    }
}

/// VmHWM of a process, in MiB.
pub fn peak_rss_mib(pid: u32) -> Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow!("no VmHWM for pid {pid}"))?;
    Ok(kb / 1024.0)
}
