//! Topology and processes: a bridge namespace joining hosts A, B (agents),
//! client C and optionally squatter S; a management bridge in the root
//! namespace where fipd listens; fipd and fip-agent as real child processes.
//! Everything is torn down by Drop guards, also when a test panics.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The data interface in every host namespace.
pub const DEV: &str = "eth0";
/// The management interface (to fipd) in A's and B's namespaces.
pub const MGMT: &str = "mgmt";
/// The fipd network name the agents serve on eth0.
pub const NET: &str = "public";
/// The pool; a /64 so C reaches F on-link.
pub const POOL: &str = "2001:db8:1::/64";
/// The floating address the scenarios move around.
pub const F: &str = "2001:db8:1::100";
/// C's own address in the pool's /64.
pub const C_ADDR: &str = "2001:db8:1::c";
pub const ADMIN: &str = "e2e-admin-token";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Runs `ip`, panicking with its stderr on failure.
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `f` on a fresh thread that entered namespace `ns`; only that
/// thread changes namespace, and sockets it opens stay there.
pub fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> JoinHandle<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
        // SAFETY: setns on this thread only, with a valid namespace fd.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
        f()
    })
}

/// Writes a sysctl under /proc/sys/net of namespace `ns`.
pub fn sysctl(ns: &str, key: &str, value: &str) {
    let (k, v) = (key.to_owned(), value.to_owned());
    in_ns(ns, move || {
        let p = format!("/proc/sys/net/{k}");
        std::fs::write(&p, &v).unwrap_or_else(|e| panic!("write {p}: {e}"));
    })
    .join()
    .unwrap();
}

/// Polls `cond` every 10 ms until it holds, panicking after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// target/debug/<name>, next to the directory of this test executable
/// (target/debug/deps/e2e-…).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target/debug");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: build the workspace first (`cargo build --workspace`, \
         or run `cargo nextest run --workspace`)",
        p.display()
    );
    p
}

/// Deletes namespaces and root links of e2e test processes that died
/// without running their Drop guards: their names carry the pid.
fn sweep_dead_runs() {
    // Only names of exactly our shape, `{prefix}{pid}x{counter}{role}`,
    // so a foreign link that happens to start with "fb" is never touched.
    let dead = |name: &str, prefix: &str| -> bool {
        let Some((pid, rest)) = name.strip_prefix(prefix).and_then(|r| r.split_once('x')) else {
            return false;
        };
        let ours = !pid.is_empty()
            && pid.bytes().all(|b| b.is_ascii_digit())
            && rest.bytes().next().is_some_and(|b| b.is_ascii_digit());
        ours && pid
            .parse::<u32>()
            .is_ok_and(|pid| pid > 1 && !Path::new(&format!("/proc/{pid}")).exists())
    };
    if let Ok(entries) = std::fs::read_dir("/run/netns") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if dead(&name, "fipe") {
                let _ = Command::new("ip").args(["netns", "del", &name]).status();
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir("/sys/class/net") {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if dead(&name, "fb") || dead(&name, "fm") {
                let _ = Command::new("ip").args(["link", "del", &name]).status();
            }
        }
    }
}

pub struct Host {
    pub name: String,
    pub ns: String,
    pub mac: String,
    /// The host's management address (A and B only).
    pub mgmt_addr: Option<String>,
    /// The root-namespace end of its management veth.
    pub mgmt_port: Option<String>,
    /// The bridge-namespace end of its data veth.
    pub data_port: String,
}

impl Host {
    pub fn addr_lines(&self) -> Vec<String> {
        ip(&["-n", &self.ns, "-6", "-d", "-o", "addr", "show", "dev", DEV])
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Whether `a` is on eth0, and its flags line.
    pub fn addr_line(&self, a: &str) -> Option<String> {
        self.addr_lines()
            .into_iter()
            .find(|l| l.contains(&format!(" {a}/")))
    }

    pub fn has_addr(&self, a: &str) -> bool {
        self.addr_line(a).is_some()
    }

    /// The MAC this host's neighbour cache holds for `a`.
    pub fn neigh_mac(&self, a: &str) -> Option<String> {
        let out = ip(&["-n", &self.ns, "-6", "neigh", "show", a, "dev", DEV]);
        let words: Vec<&str> = out.lines().next()?.split_whitespace().collect();
        words
            .iter()
            .position(|w| *w == "lladdr")
            .map(|i| words[i + 1].to_owned())
    }
}

/// Hosts A and B (with management links to fipd), client C and optionally
/// squatter S on one bridge. Dropping it deletes every namespace and link.
pub struct Topo {
    namespaces: Vec<String>,
    root_links: Vec<String>,
    /// fipd's address on the management bridge (root namespace).
    pub mgmt_ip: String,
    pub a: Host,
    pub b: Host,
    pub c: Host,
    pub s: Option<Host>,
    pub bridge_ns: String,
}

impl Drop for Topo {
    fn drop(&mut self) {
        // Deleting a namespace destroys its veth ends and with them the
        // peers (including the root-side management ports).
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        for l in &self.root_links {
            let _ = Command::new("ip")
                .args(["link", "del", l])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A /112 of 2001:db8:ffff::/64 no other live test uses.
fn free_mgmt_subnet(seed: u32) -> u16 {
    let taken = ip(&["-6", "-o", "addr", "show"]);
    let mut t = (seed.wrapping_mul(2654435761) >> 16) as u16 | 1;
    while taken.contains(&format!("2001:db8:ffff::{t:x}:1/")) {
        t = t.wrapping_add(1) | 1;
    }
    t
}

impl Topo {
    pub fn new(with_squatter: bool) -> Self {
        sweep_dead_runs();
        let pid = std::process::id();
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let p = format!("fipe{pid}x{n}");
        let link_id = format!("{pid}x{n}");
        let br_ns = format!("{p}br");
        let mgmt_br = format!("fb{link_id}");
        let tag = free_mgmt_subnet(pid * 64 + n);
        let mgmt_ip = format!("2001:db8:ffff::{tag:x}:1");
        let host = |role: &str, mac: &str, mgmt: bool| Host {
            name: format!("host-{role}"),
            ns: format!("{p}{role}"),
            mac: mac.into(),
            mgmt_addr: mgmt.then(|| format!("2001:db8:ffff::{tag:x}:{role}")),
            mgmt_port: mgmt.then(|| format!("fm{link_id}{role}")),
            data_port: format!("v{role}"),
        };
        let mut t = Topo {
            namespaces: Vec::new(),
            root_links: Vec::new(),
            mgmt_ip: mgmt_ip.clone(),
            a: host("a", "02:00:00:00:00:0a", true),
            b: host("b", "02:00:00:00:00:0b", true),
            c: host("c", "02:00:00:00:00:0c", false),
            s: with_squatter.then(|| host("5", "02:00:00:00:00:05", false)),
            bridge_ns: br_ns.clone(),
        };
        let mut all = vec![
            br_ns.clone(),
            t.a.ns.clone(),
            t.b.ns.clone(),
            t.c.ns.clone(),
        ];
        if let Some(s) = &t.s {
            all.push(s.ns.clone());
        }
        for ns in &all {
            ip(&["netns", "add", ns]);
            t.namespaces.push(ns.clone());
        }
        // The data bridge: a plain switch without IPv6 of its own and
        // without multicast snooping (which could drop DAD probes).
        sysctl(&br_ns, "ipv6/conf/default/disable_ipv6", "1");
        ip(&[
            "-n",
            &br_ns,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ip(&["-n", &br_ns, "link", "set", "br0", "up"]);
        // The management bridge in the root namespace, where fipd listens.
        t.root_links.push(mgmt_br.clone());
        ip(&[
            "link",
            "add",
            &mgmt_br,
            "type",
            "bridge",
            "mcast_snooping",
            "0",
        ]);
        ip(&[
            "-6",
            "addr",
            "add",
            &format!("{mgmt_ip}/112"),
            "dev",
            &mgmt_br,
            "nodad",
        ]);
        ip(&["link", "set", &mgmt_br, "up"]);

        let mut hosts: Vec<&Host> = vec![&t.a, &t.b, &t.c];
        if let Some(s) = &t.s {
            hosts.push(s);
        }
        for h in hosts {
            ip(&[
                "-n",
                &br_ns,
                "link",
                "add",
                &h.data_port,
                "type",
                "veth",
                "peer",
                "name",
                DEV,
                "netns",
                &h.ns,
            ]);
            ip(&[
                "-n",
                &br_ns,
                "link",
                "set",
                &h.data_port,
                "master",
                "br0",
                "up",
            ]);
            ip(&["-n", &h.ns, "link", "set", DEV, "address", &h.mac]);
            let conf = format!("/proc/sys/net/ipv6/conf/{DEV}");
            wait_for(
                "IPv6 conf of the moved veth",
                Duration::from_secs(5),
                || {
                    let c = conf.clone();
                    in_ns(&h.ns, move || Path::new(&c).exists()).join().unwrap()
                },
            );
            // Fast DAD: one probe at once, verdict after 100 ms.
            sysctl(
                &h.ns,
                &format!("ipv6/conf/{DEV}/router_solicitation_delay"),
                "0",
            );
            sysctl(&h.ns, &format!("ipv6/neigh/{DEV}/retrans_time_ms"), "100");
            ip(&["-n", &h.ns, "link", "set", "lo", "up"]);
            ip(&["-n", &h.ns, "link", "set", DEV, "up"]);
            if let (Some(port), Some(addr)) = (&h.mgmt_port, &h.mgmt_addr) {
                ip(&[
                    "link", "add", port, "type", "veth", "peer", "name", MGMT, "netns", &h.ns,
                ]);
                t.root_links.push(port.clone());
                ip(&["link", "set", port, "master", &mgmt_br, "up"]);
                ip(&[
                    "-n",
                    &h.ns,
                    "-6",
                    "addr",
                    "add",
                    &format!("{addr}/112"),
                    "dev",
                    MGMT,
                    "nodad",
                ]);
                ip(&["-n", &h.ns, "link", "set", MGMT, "up"]);
            }
        }
        ip(&[
            "-n",
            &t.c.ns,
            "-6",
            "addr",
            "add",
            &format!("{C_ADDR}/64"),
            "dev",
            DEV,
            "nodad",
        ]);
        // Link-local DAD over before the test starts, so its NDP traffic
        // does not mix with the scenario's.
        let mut hosts: Vec<&Host> = vec![&t.a, &t.b, &t.c];
        if let Some(s) = &t.s {
            hosts.push(s);
        }
        for h in hosts {
            wait_for("link-local DAD", Duration::from_secs(5), || {
                let lines = h.addr_lines();
                lines.iter().any(|l| l.contains("fe80::"))
                    && !lines.iter().any(|l| l.contains("tentative"))
            });
        }
        // The management path works before any agent starts.
        for h in [&t.a, &t.b] {
            let ns = h.ns.clone();
            let target = mgmt_ip.clone();
            wait_for("management link", Duration::from_secs(5), || {
                let out = Command::new("ip")
                    .args(["-n", &ns, "-6", "route", "get", &target])
                    .output()
                    .unwrap();
                out.status.success()
            });
        }
        t
    }

    /// Cuts host `h` off: its bridge port and its management port go down
    /// on the *far* side, so its own interfaces stay admin-up and keep
    /// their addresses (an admin down would delete them).
    pub fn cut_off(&self, h: &Host) {
        ip(&["-n", &self.bridge_ns, "link", "set", &h.data_port, "down"]);
        if let Some(p) = &h.mgmt_port {
            ip(&["link", "set", p, "down"]);
        }
    }
}

impl Topo {
    /// Undoes [`Topo::cut_off`].
    pub fn reconnect(&self, h: &Host) {
        ip(&["-n", &self.bridge_ns, "link", "set", &h.data_port, "up"]);
        if let Some(p) = &h.mgmt_port {
            ip(&["link", "set", p, "up"]);
        }
    }
}

/// A child process with its stderr in a file, killed on drop. The log is
/// printed when a test fails, to see what happened.
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

    /// Waits for the process to exit; returns its exit code (None if killed
    /// by a signal).
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st.code();
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {within:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let text = self.log_text();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            eprintln!("----- last lines of {} -----", self.name);
            for l in tail.into_iter().rev() {
                eprintln!("{l}");
            }
        }
    }
}

/// Settings of a fipd process.
#[derive(Clone)]
pub struct FipdOpts {
    pub lease_ttl_ms: u64,
    pub fence_grace_ms: u64,
    pub database_url: Option<String>,
    /// Reuse this port (a restart).
    pub port: u16,
}

impl Default for FipdOpts {
    fn default() -> Self {
        Self {
            lease_ttl_ms: 1500,
            fence_grace_ms: 1000,
            database_url: None,
            port: 0,
        }
    }
}

/// Children die with the test: if the test process is killed before its
/// Drop guards run, the kernel SIGKILLs fipd and the agents (the death
/// signal survives `ip netns exec`'s execve).
fn die_with_parent(cmd: &mut Command) {
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Starts `fipd serve` listening on `[ip]:port` and returns it with its URL.
pub fn start_fipd(name: &str, ip_addr: &str, data_dir: &Path, opts: &FipdOpts) -> (Proc, String) {
    std::fs::create_dir_all(data_dir).unwrap();
    let log = data_dir.join(format!("{name}.log"));
    let listen = format!("[{ip_addr}]:{}", opts.port);
    let mut cmd = Command::new(binary("fipd"));
    cmd.args(["serve", "--listen", &listen, "--admin-token", ADMIN])
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--lease-ttl-ms", &opts.lease_ttl_ms.to_string()])
        .args(["--fence-grace-ms", &opts.fence_grace_ms.to_string()])
        .args(["--quarantine-ms", "0"])
        .args(["--quota-floating-ips", "-1", "--quota-instances", "-1"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(File::create(&log).unwrap());
    if let Some(db) = &opts.database_url {
        cmd.args(["--database-url", db]);
    }
    die_with_parent(&mut cmd);
    let mut child = cmd.spawn().expect("spawn fipd");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let proc = Proc {
        name: name.to_owned(),
        child,
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("{name} did not start: {}", proc.log_text()));
        if let Some(url) = line.strip_prefix("fipd listening on ") {
            return (proc, url.trim().to_owned());
        }
    }
}

/// Starts `fip-agent run` inside host `h`'s namespace.
pub fn start_agent(h: &Host, url: &str, token_file: &Path, dir: &Path, generation: u32) -> Proc {
    let log = dir.join(format!("agent-{}-{generation}.log", h.name));
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &h.ns])
        .arg(binary("fip-agent"))
        .args(["run", "--api-url", url])
        .arg("--token-file")
        .arg(token_file)
        .args(["--network", &format!("{NET}={DEV}"), "--resync-s", "5"])
        .env("FIP_AGENT_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).unwrap());
    die_with_parent(&mut cmd);
    let child = cmd.spawn().expect("spawn fip-agent");
    Proc {
        name: format!("fip-agent on {}", h.name),
        child,
        log,
    }
}
