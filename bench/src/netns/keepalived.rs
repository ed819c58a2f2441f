//! The keepalived baseline: VRRPv3 owning the same address on A and B,
//! one keepalived per host namespace with its own config and pid files.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::topology::{Host, DEV};
use crate::fipd::die_with_us;

/// The keepalived binary, installing Debian's package when allowed.
/// `Err` says why the baselines are skipped.
pub fn locate(may_install: bool) -> std::result::Result<PathBuf, String> {
    if let Some(p) = which("keepalived") {
        return Ok(p);
    }
    if !may_install {
        return Err("keepalived is not installed (quick mode never installs it)".into());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("keepalived is not installed and we are not root".into());
    }
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "keepalived"])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    eprintln!("installing keepalived (apt-get install keepalived)");
    if !install() {
        let _ = Command::new("apt-get")
            .args(["update", "-qq"])
            .stdout(Stdio::null())
            .status();
        if !install() {
            return Err("`apt-get install keepalived` failed, also after `apt-get update`".into());
        }
    }
    // The package may start a system-wide keepalived with its default
    // config; it is not ours to manage, and with no config it does nothing.
    which("keepalived").ok_or_else(|| "keepalived still not found after installing it".into())
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// One keepalived process in a host namespace; killed on drop.
pub struct Keepalived {
    child: Child,
    pub log: PathBuf,
}

/// Writes the config of host `h` into `dir` and returns its path.
/// Both start as BACKUP with `nopreempt`, so a restarted instance does not
/// take the address back: every switchover is one we cause.
pub fn config(dir: &Path, h: &Host, priority: u8, advert_int: &str, addr: &str) -> Result<PathBuf> {
    let text = format!(
        "global_defs {{\n    router_id {name}\n    vrrp_version 3\n}}\n\
         vrrp_instance fipbench {{\n    state BACKUP\n    nopreempt\n    interface {DEV}\n    \
         virtual_router_id 51\n    priority {priority}\n    advert_int {advert_int}\n    \
         virtual_ipaddress {{\n        {addr}/64 dev {DEV}\n    }}\n}}\n",
        name = h.name,
    );
    let p = dir.join(format!("keepalived-{}.conf", h.name));
    std::fs::write(&p, text)?;
    Ok(p)
}

impl Keepalived {
    pub fn start(bin: &Path, h: &Host, conf: &Path, dir: &Path, tag: &str) -> Result<Self> {
        let log = dir.join(format!("keepalived-{}-{tag}.log", h.name));
        let pid = |kind: &str| dir.join(format!("keepalived-{}-{kind}.pid", h.name));
        let child = die_with_us(&mut Command::new("ip"))
            .args(["netns", "exec", &h.ns])
            .arg(bin)
            .args(["--dont-fork", "--log-console", "--log-detail", "--vrrp"])
            .arg("--use-file")
            .arg(conf)
            .arg("--pid")
            .arg(pid("main"))
            .arg("--vrrp_pid")
            .arg(pid("vrrp"))
            .arg("--checkers_pid")
            .arg(pid("checkers"))
            .stdin(Stdio::null())
            .stdout(File::create(&log)?)
            .stderr(Stdio::null())
            .spawn()
            .context("starting keepalived")?;
        Ok(Keepalived { child, log })
    }

    /// SIGTERM and wait for the exit: keepalived sends its priority-0
    /// advert and removes the address on the way out.
    pub fn stop(mut self) -> Result<()> {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        bail!("keepalived did not stop within 10 s")
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        // SIGTERM first: its VRRP child exits with it and removes the
        // address; SIGKILL only if it hangs.
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
