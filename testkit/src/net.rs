//! Primitives: run `ip` and `nft`, enter a namespace on a thread of its
//! own, write a sysctl in a namespace, wait for a condition, and sweep
//! what runs that died left behind.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

/// Every namespace, link and nftables table the kit makes starts with this
/// and the pid of the process that made it.
pub const PREFIX: &str = "fk";

/// Runs `ip ARGS`; an error carries ip's stderr.
pub fn ip(args: &[&str]) -> Result<String> {
    run("ip", args, None)
}

/// Runs `nft` with `script` on its standard input, inside namespace `ns`
/// (or the current one).
pub fn nft(ns: Option<&str>, script: &str) -> Result<()> {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, "nft", "-f", "-"]);
            c
        }
        None => {
            let mut c = Command::new("nft");
            c.args(["-f", "-"]);
            c
        }
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running nft (is nftables installed? scripts/test.sh installs it)")?;
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(script.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "nft: {}\n{script}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn run(prog: &str, args: &[&str], ns: Option<&str>) -> Result<String> {
    let mut cmd = match ns {
        Some(ns) => {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", ns, prog]);
            c
        }
        None => Command::new(prog),
    };
    let out = cmd
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {prog} (is it installed?)"))?;
    if !out.status.success() {
        bail!(
            "{prog} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Runs `f` on a fresh thread inside namespace `ns`: only that thread
/// changes namespace, and sockets it opens stay there.
pub fn in_ns<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> JoinHandle<Result<T>> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        enter_ns(&path)?;
        Ok(f())
    })
}

/// Moves the calling thread into the network namespace at `path`.
pub fn enter_ns(path: &str) -> Result<()> {
    let file = File::open(path).with_context(|| format!("open {path}"))?;
    // SAFETY: setns on the calling thread with a valid namespace fd.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        bail!("setns {path}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

/// Writes `value` to /proc/sys/net/`key` inside namespace `ns`.
pub fn sysctl(ns: &str, key: &str, value: &str) -> Result<()> {
    let (k, v) = (format!("/proc/sys/net/{key}"), value.to_owned());
    in_ns(ns, move || {
        std::fs::write(&k, &v).with_context(|| format!("write {v} to {k}"))
    })
    .join()
    .map_err(|_| anyhow!("sysctl thread panicked"))??
}

/// Polls `cond` every 10 ms until it holds; an error after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() >= deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

/// Whether `name` is one of ours (`fk{pid}x…`) and its process is gone.
fn of_dead_run(name: &str) -> bool {
    let Some((pid, rest)) = name.strip_prefix(PREFIX).and_then(|r| r.split_once('x')) else {
        return false;
    };
    let ours = !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && rest.bytes().next().is_some_and(|b| b.is_ascii_digit());
    ours && pid
        .parse::<u32>()
        .is_ok_and(|pid| pid > 1 && !Path::new(&format!("/proc/{pid}")).exists())
}

/// Deletes the namespaces, root-namespace links and nftables tables of
/// runs whose process died without cleaning up.
pub fn sweep_dead_runs() {
    if let Ok(entries) = std::fs::read_dir("/run/netns") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if of_dead_run(&name) {
                let _ = Command::new("ip")
                    .args(["netns", "del", &name])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir("/sys/class/net") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if of_dead_run(&name) {
                let _ = Command::new("ip")
                    .args(["link", "del", &name])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
    if let Ok(out) = run("nft", &["list", "tables", "bridge"], None) {
        for line in out.lines() {
            if let Some(t) = line.strip_prefix("table bridge ") {
                if of_dead_run(t.trim()) {
                    let _ = nft(None, &format!("delete table bridge {}\n", t.trim()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_names_of_our_shape_and_of_dead_processes_are_swept() {
        assert!(!of_dead_run("fk1x0a"), "pid 1 is never dead");
        assert!(of_dead_run("fk999999999x0a"));
        assert!(!of_dead_run(&format!("fk{}x0a", std::process::id())));
        assert!(!of_dead_run("fkz"));
        assert!(!of_dead_run("eth0"));
        assert!(!of_dead_run("fk999999999xa"), "the counter must follow");
    }
}
