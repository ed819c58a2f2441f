//! A fipd process under test: started, addressed, measured, stopped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

pub const ADMIN: &str = "bench-admin-token";

/// Makes `cmd`'s process get SIGTERM when this process dies, so fipd,
/// agents and helpers never outlive a benchmark killed by a signal.
/// (The kernel sends it when the spawning *thread* exits: spawn only from
/// threads that live as long as the run, as the main thread does.)
pub fn die_with_us(cmd: &mut Command) -> &mut Command {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        })
    }
}

/// A binary built next to this one (`cargo build --release -p fipd -p fip-bench`).
pub fn sibling_binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow!("no directory for {}", exe.display()))?;
    let p = dir.join(name);
    if !p.exists() {
        bail!(
            "{} not found; build it with the same profile (cargo build --release -p {name})",
            p.display()
        );
    }
    Ok(p)
}

pub struct Fipd {
    child: Child,
    pub url: String,
}

impl Fipd {
    pub fn start(data_dir: &Path, database_url: Option<&str>, extra: &[&str]) -> Result<Self> {
        Self::start_on("127.0.0.1:0", data_dir, database_url, extra)
    }

    /// Like `start`, listening on `listen` (e.g. `[2001:db8::1]:0`).
    pub fn start_on(
        listen: &str,
        data_dir: &Path,
        database_url: Option<&str>,
        extra: &[&str],
    ) -> Result<Self> {
        let bin = sibling_binary("fipd")?;
        let mut cmd = Command::new(bin);
        cmd.args([
            "serve",
            "--listen",
            listen,
            "--admin-token",
            ADMIN,
            "--quarantine-ms",
            "0",
            // Benchmarks measure scale; quotas are operator policy.
            "--quota-floating-ips",
            "-1",
            "--quota-instances",
            "-1",
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .args(extra)
        .env("FIPD_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
        if let Some(url) = database_url {
            cmd.args(["--database-url", url]);
        }
        let mut child = die_with_us(&mut cmd).spawn().context("starting fipd")?;
        let stdout = child.stdout.take().expect("piped");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("fipd listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => Ok(Self { child, url }),
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("fipd did not start within 30 s")
            }
        }
    }

    /// Peak resident set size so far (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> Result<f64> {
        peak_rss_mib(self.child.id())
    }

    pub fn stop(mut self) {
        unsafe_terminate(self.child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Fipd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_terminate(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
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
