//! fipd and fip-agent as real child processes: started with their output
//! in a log file, killed when dropped (and by the kernel if the test
//! process dies first), signalled on purpose to inject faults.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::topo::{Host, DEV};

/// A binary of this workspace built with the same profile as the running
/// executable: next to it (`target/release/fip-bench`) or one directory
/// up (tests run from `target/debug/deps/`).
pub fn binary(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow!("no directory for {}", exe.display()))?;
    for d in [Some(dir), dir.parent()].into_iter().flatten() {
        let p = d.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    bail!(
        "{name} is not built next to {}: build the workspace first (`cargo build --workspace`, \
         or the release profile for benchmarks)",
        exe.display()
    )
}

/// Children die with the test: if the test process is killed before its
/// Drop guards run, the kernel signals fipd and the agents (the death
/// signal survives `ip netns exec`'s execve).
pub fn die_with_parent(cmd: &mut Command, sig: libc::c_int) -> &mut Command {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork
    // and exec.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, sig) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// A child process with its stderr in a file, killed on drop. The tail of
/// the log is printed when a test fails, to see what happened.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid(), sig) };
    }

    /// Whether the process still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the process to exit; returns its exit code (None when a
    /// signal killed it), or an error after `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Result<Option<i32>> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait()? {
                return Ok(st.code());
            }
            if Instant::now() >= deadline {
                bail!("{} did not exit within {within:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let text = self.log_text();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        // Bounded: an agent holding thousands of sockets can take long in
        // the kernel on its way out; init reaps it then.
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if !matches!(self.child.try_wait(), Ok(None)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if std::thread::panicking() {
            eprintln!("----- last lines of {} -----", self.name);
            eprintln!("{}", self.log_tail(60));
        }
    }
}

/// How to run one fipd.
#[derive(Debug, Clone)]
pub struct FipdSpec {
    pub name: String,
    /// Where it listens: `[ip]:port` (port 0: any).
    pub listen: String,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub admin_token: String,
    /// `--lease-ttl-ms`, `--fence-grace-ms`, `--dad-mode` (fipd's defaults
    /// when `None`).
    pub lease_ttl_ms: Option<u64>,
    pub fence_grace_ms: Option<u64>,
    pub dad_mode: Option<String>,
    /// More flags.
    pub args: Vec<String>,
    /// Environment, e.g. libfaketime's.
    pub env: Vec<(String, String)>,
    /// A program to run fipd through (e.g. `faketime`), with its args.
    pub wrapper: Vec<String>,
    /// `FIPD_LOG`.
    pub log_filter: String,
}

impl FipdSpec {
    pub fn new(name: &str, listen: &str, data_dir: &Path) -> Self {
        Self {
            name: name.into(),
            listen: listen.into(),
            data_dir: data_dir.into(),
            database_url: None,
            admin_token: "testkit-admin-token".into(),
            lease_ttl_ms: Some(1500),
            fence_grace_ms: Some(1000),
            dad_mode: None,
            args: Vec::new(),
            env: Vec::new(),
            wrapper: Vec::new(),
            log_filter: "info,sqlx=warn".into(),
        }
    }
}

/// Starts `fipd serve` and waits until it listens; returns it and its URL.
/// Quotas are off (scenarios create what they need) and the quarantine is
/// zero (addresses come back at once).
pub fn start_fipd(spec: &FipdSpec) -> Result<(Proc, String)> {
    std::fs::create_dir_all(&spec.data_dir)?;
    let log = spec.data_dir.join(format!("{}.log", spec.name));
    let fipd = binary("fipd")?;
    let mut cmd = match spec.wrapper.split_first() {
        Some((prog, rest)) => {
            let mut c = Command::new(prog);
            c.args(rest).arg(fipd);
            c
        }
        None => Command::new(fipd),
    };
    cmd.args([
        "serve",
        "--listen",
        &spec.listen,
        "--admin-token",
        &spec.admin_token,
    ])
    .arg("--data-dir")
    .arg(&spec.data_dir)
    .args(["--quarantine-ms", "0"])
    .args(["--quota-floating-ips", "-1", "--quota-instances", "-1"])
    .args(&spec.args)
    .env("FIPD_LOG", &spec.log_filter)
    .envs(spec.env.iter().map(|(k, v)| (k, v)))
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(
        File::options()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("open {}", log.display()))?,
    );
    if let Some(db) = &spec.database_url {
        cmd.args(["--database-url", db]);
    }
    if let Some(v) = spec.lease_ttl_ms {
        cmd.args(["--lease-ttl-ms", &v.to_string()]);
    }
    if let Some(v) = spec.fence_grace_ms {
        cmd.args(["--fence-grace-ms", &v.to_string()]);
    }
    if let Some(v) = &spec.dad_mode {
        cmd.args(["--dad-mode", v]);
    }
    die_with_parent(&mut cmd, libc::SIGKILL);
    let mut child = cmd.spawn().context("spawn fipd")?;
    let stdout = child.stdout.take().expect("piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let proc = Proc {
        name: spec.name.clone(),
        child,
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            bail!("{} did not start: {}", spec.name, proc.log_tail(30));
        };
        if let Some(url) = line.strip_prefix("fipd listening on ") {
            return Ok((proc, url.trim().to_owned()));
        }
    }
}

/// How to run one agent.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    pub url: String,
    pub token_file: PathBuf,
    /// `NAME=IFACE` pairs; default: one network on `eth0`.
    pub networks: Vec<String>,
    pub args: Vec<String>,
    pub log: PathBuf,
    /// `FIP_AGENT_LOG`.
    pub log_filter: String,
}

impl AgentSpec {
    pub fn new(url: &str, token_file: &Path, network: &str, log: &Path) -> Self {
        Self {
            url: url.into(),
            token_file: token_file.into(),
            networks: vec![format!("{network}={DEV}")],
            args: vec!["--resync-s".into(), "5".into()],
            log: log.into(),
            log_filter: "info".into(),
        }
    }
}

/// Starts `fip-agent run` inside host `h`'s namespace.
pub fn start_agent(h: &Host, spec: &AgentSpec) -> Result<Proc> {
    let mut cmd = h.command(&binary("fip-agent")?);
    cmd.args(["run", "--api-url", &spec.url])
        .arg("--token-file")
        .arg(&spec.token_file);
    for n in &spec.networks {
        cmd.args(["--network", n]);
    }
    cmd.args(&spec.args)
        .env("FIP_AGENT_LOG", &spec.log_filter)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            File::options()
                .create(true)
                .append(true)
                .open(&spec.log)
                .with_context(|| format!("open {}", spec.log.display()))?,
        );
    die_with_parent(&mut cmd, libc::SIGKILL);
    let child = cmd.spawn().context("spawn fip-agent")?;
    Ok(Proc {
        name: format!("fip-agent on {}", h.name),
        child,
        log: spec.log.clone(),
    })
}
