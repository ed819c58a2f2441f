//! The world a fault-injection run plays in: hosts A, B and D with agents
//! and client C on one link, two fipd replicas on one PostgreSQL behind a
//! load balancer, all in namespaces and processes the run creates. And the
//! levers to hurt it: signals, cut links, a restarted database, stepped
//! clocks.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use fip_testkit::topo::{Cut, HostSpec, TopoSpec};
use fip_testkit::{AgentSpec, FipdSpec, Proc, TempPostgres, Topo};
use reqwest::{Method, StatusCode};
use serde_json::json;

use super::api::{Api, LoadBalancer};
use super::schedule::Fault;

/// The fipd network the agents serve.
pub const NET: &str = "faults";
pub const POOL: &str = "2001:db8:1::/64";
pub const C_ADDR: &str = "2001:db8:1::c";
pub const ADMIN: &str = "faults-admin-token";
/// Host roles, in the order the schedule numbers them.
pub const HOSTS: [&str; 3] = ["a", "b", "d"];

/// libfaketime, multithreaded flavour (fipd runs tokio's worker threads).
const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1";

/// Lease settings of a run: short, so faults play out in seconds.
pub const LEASE_TTL_MS: u64 = 1500;
pub const FENCE_GRACE_MS: u64 = 1000;

struct Replica {
    spec: FipdSpec,
    proc: Option<Proc>,
    /// libfaketime's offset file (`+0`, `+12s`, `-5s`).
    clock: PathBuf,
}

struct AgentSlot {
    spec: AgentSpec,
    proc: Option<Proc>,
    generation: u32,
}

pub struct Rig {
    pub topo: Topo,
    pub dir: PathBuf,
    pub dad: String,
    pg: TempPostgres,
    replicas: Vec<Replica>,
    _lb: LoadBalancer,
    agents: Vec<AgentSlot>,
    /// PostgreSQL is stopped (a replica cannot start until it is back).
    pg_down: bool,
    /// Replicas whose restart waits for PostgreSQL.
    pending_restarts: Vec<usize>,
    pub api: Api,
    pub net_id: String,
    pub instances: Vec<String>,
}

impl Rig {
    /// Builds everything and starts the agents; returns once every host
    /// is alive.
    pub async fn start(dad: &str, dir: PathBuf) -> Result<Self> {
        if !std::path::Path::new(LIBFAKETIME).exists() {
            bail!("{LIBFAKETIME} is missing: install Debian's faketime package (scripts/test.sh does)");
        }
        let optimistic = dad == "optimistic";
        let mut hosts: Vec<HostSpec> = HOSTS
            .iter()
            .map(|r| {
                // 02:00:00:00:00:0a for A, …0b for B, …0d for D.
                HostSpec::new(r, &format!("02:00:00:00:00:0{r}"))
                    .mgmt()
                    .optimistic(optimistic)
            })
            .collect();
        hosts.push(HostSpec::new("c", "02:00:00:00:00:0c").addr(&format!("{C_ADDR}/64")));
        let topo = Topo::build(&TopoSpec { hosts })?;
        let mgmt_ip = topo.mgmt_ip.clone().expect("hosts have management links");

        let pg = TempPostgres::start()?;
        pg.create_db("fipd")?;
        let mut replicas = Vec::new();
        let mut backends = Vec::new();
        for i in 0..2 {
            let clock = dir.join(format!("clock-{i}"));
            std::fs::write(&clock, "+0")?;
            let mut spec = FipdSpec::new(
                &format!("fipd-{i}"),
                &format!("[{mgmt_ip}]:0"),
                &dir.join(format!("fipd-{i}")),
            );
            spec.admin_token = ADMIN.into();
            spec.database_url = Some(pg.url("fipd"));
            spec.lease_ttl_ms = Some(LEASE_TTL_MS);
            spec.fence_grace_ms = Some(FENCE_GRACE_MS);
            spec.dad_mode = Some(dad.into());
            spec.env = vec![
                ("LD_PRELOAD".into(), LIBFAKETIME.into()),
                (
                    "FAKETIME_TIMESTAMP_FILE".into(),
                    clock.to_string_lossy().into(),
                ),
                ("FAKETIME_CACHE_DURATION".into(), "1".into()),
                // Only the wall clock steps; tokio's timers keep running.
                ("FAKETIME_DONT_FAKE_MONOTONIC".into(), "1".into()),
            ];
            let (proc, url) = fip_testkit::start_fipd(&spec)?;
            let addr: SocketAddr = url
                .trim_start_matches("http://")
                .parse()
                .context("fipd's URL")?;
            // Restarts come back on the same port, behind the balancer.
            spec.listen = addr.to_string();
            backends.push(addr);
            replicas.push(Replica {
                spec,
                proc: Some(proc),
                clock,
            });
        }
        let lb = LoadBalancer::start(format!("[{mgmt_ip}]:0").parse()?, backends).await?;
        let url = format!("http://{}", lb.addr);
        let api = Api::new(&url, ADMIN)?;

        let net = api
            .must(
                Method::POST,
                "/v1/networks",
                Some(&json!({ "name": NET })),
                StatusCode::CREATED,
            )
            .await?;
        let net_id = net["id"].as_str().context("network id")?.to_owned();
        api.must(
            Method::POST,
            "/v1/pools",
            Some(&json!({ "network_id": net_id, "cidr": POOL, "reserved": [C_ADDR] })),
            StatusCode::CREATED,
        )
        .await?;
        let mut agents = Vec::new();
        for r in HOSTS {
            let h = topo.host(r);
            let created = api
                .must(
                    Method::POST,
                    "/v1/hosts",
                    Some(&json!({ "name": h.name })),
                    StatusCode::CREATED,
                )
                .await?;
            let token = dir.join(format!("token-{r}"));
            std::fs::write(&token, created["token"].as_str().context("token")?)?;
            let spec = AgentSpec::new(&url, &token, NET, &dir.join(format!("agent-{r}.log")));
            agents.push(AgentSlot {
                spec,
                proc: None,
                generation: 0,
            });
        }
        // Five instances: one per host, and two more (on A and B) that
        // migrate around.
        let mut instances = Vec::new();
        for (i, r) in ["a", "b", "d", "a", "b"].iter().enumerate() {
            let v = api
                .must(
                    Method::POST,
                    "/v1/instances",
                    Some(&json!({ "name": format!("vm{i}"), "project_id": "p", "host": format!("host-{r}") })),
                    StatusCode::CREATED,
                )
                .await?;
            instances.push(v["id"].as_str().context("instance id")?.to_owned());
        }
        let mut rig = Self {
            topo,
            dir,
            dad: dad.into(),
            pg,
            replicas,
            _lb: lb,
            agents,
            pg_down: false,
            pending_restarts: Vec::new(),
            api,
            net_id,
            instances,
        };
        for i in 0..HOSTS.len() {
            rig.start_agent(i)?;
        }
        rig.wait_all_alive(Duration::from_secs(20)).await?;
        Ok(rig)
    }

    fn start_agent(&mut self, i: usize) -> Result<()> {
        let h = self.topo.host(HOSTS[i]).clone();
        let slot = &mut self.agents[i];
        slot.generation += 1;
        let mut spec = slot.spec.clone();
        spec.log = self
            .dir
            .join(format!("agent-{}-{}.log", HOSTS[i], slot.generation));
        slot.proc = Some(fip_testkit::start_agent(&h, &spec)?);
        Ok(())
    }

    /// Hosts by state, from fipd.
    pub async fn host_states(&self) -> Result<Vec<(String, String)>> {
        let v = self
            .api
            .must(Method::GET, "/v1/hosts?limit=100", None, StatusCode::OK)
            .await?;
        Ok(v["items"]
            .as_array()
            .context("hosts")?
            .iter()
            .map(|h| {
                (
                    h["name"].as_str().unwrap_or("").to_owned(),
                    h["state"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect())
    }

    pub async fn wait_all_alive(&self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(states) = self.host_states().await {
                if states.len() == HOSTS.len() && states.iter().all(|(_, s)| s == "alive") {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "hosts not alive within {within:?}: {:?}",
                    self.host_states().await.ok()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Injects `f`.
    pub async fn inject(&mut self, f: Fault) -> Result<()> {
        match f {
            Fault::AgentKill { host } => {
                if let Some(mut p) = self.agents[host].proc.take() {
                    p.signal(libc::SIGKILL);
                    p.wait_exit(Duration::from_secs(10))?;
                }
            }
            Fault::AgentStop { host } => {
                if let Some(p) = &self.agents[host].proc {
                    p.signal(libc::SIGSTOP);
                }
            }
            Fault::ReplicaKill { replica } => {
                if let Some(mut p) = self.replicas[replica].proc.take() {
                    p.signal(libc::SIGKILL);
                    p.wait_exit(Duration::from_secs(10))?;
                }
            }
            Fault::PgRestart => {
                self.pg.kill()?;
                self.pg_down = true;
            }
            Fault::LinkCut { host } => {
                let h = self.topo.host(HOSTS[host]).clone();
                self.topo.cut_link(&h, Cut::Frames)?;
            }
            Fault::MgmtCut { host } => {
                let h = self.topo.host(HOSTS[host]).clone();
                self.topo.cut_mgmt(&h, Cut::Frames)?;
            }
            Fault::ClockStep { replica, by_s } => {
                std::fs::write(&self.replicas[replica].clock, format!("{by_s:+}s"))?;
            }
        }
        Ok(())
    }

    /// Heals `f`.
    pub async fn heal(&mut self, f: Fault) -> Result<()> {
        match f {
            Fault::AgentKill { host } => self.start_agent(host)?,
            Fault::AgentStop { host } => {
                if let Some(p) = &self.agents[host].proc {
                    p.signal(libc::SIGCONT);
                }
            }
            Fault::ReplicaKill { replica } => {
                // fipd needs its database to start: with PostgreSQL down,
                // the restart waits for it.
                if self.pg_down {
                    // The replica may be killed again (a no-op: it is not
                    // running) and healed again before the database is back.
                    if !self.pending_restarts.contains(&replica) {
                        self.pending_restarts.push(replica);
                    }
                } else {
                    self.restart_replica(replica).await?;
                }
            }
            Fault::PgRestart => {
                self.pg.resume()?;
                self.pg_down = false;
                for r in std::mem::take(&mut self.pending_restarts) {
                    self.restart_replica(r).await?;
                }
            }
            Fault::LinkCut { host } => {
                let h = self.topo.host(HOSTS[host]).clone();
                self.topo.heal_link(&h)?;
            }
            Fault::MgmtCut { host } => {
                let h = self.topo.host(HOSTS[host]).clone();
                self.topo.heal_mgmt(&h)?;
            }
            Fault::ClockStep { replica, .. } => {
                std::fs::write(&self.replicas[replica].clock, "+0")?;
            }
        }
        Ok(())
    }

    async fn restart_replica(&mut self, replica: usize) -> Result<()> {
        let r = &mut self.replicas[replica];
        if r.proc.is_some() {
            // Already restarted: a second kill while it waited for the
            // database found nothing to kill. Starting another fipd on the
            // same port would fail (seed 1796576697 in docs/testing.md).
            return Ok(());
        }
        // The port may linger a moment after the kill.
        let mut last = None;
        for _ in 0..50 {
            match fip_testkit::start_fipd(&r.spec) {
                Ok((p, _)) => {
                    r.proc = Some(p);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(last
            .expect("tried at least once")
            .context("restarting a replica"))
    }

    /// Every process still runs (none crashed on its own).
    pub fn all_running(&mut self) -> Result<()> {
        for (i, a) in self.agents.iter_mut().enumerate() {
            let Some(p) = &mut a.proc else {
                bail!("the agent on {} is not running", HOSTS[i]);
            };
            if !p.running() {
                bail!("the agent on {} exited: {}", HOSTS[i], p.log_tail(30));
            }
        }
        for r in &mut self.replicas {
            let Some(p) = &mut r.proc else {
                bail!("{} is not running", r.spec.name);
            };
            if !p.running() {
                bail!("{} exited: {}", r.spec.name, p.log_tail(30));
            }
        }
        Ok(())
    }

    /// How many times the agents fenced themselves (from their logs,
    /// every generation).
    pub fn agent_fences(&self) -> usize {
        let mut n = 0;
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("agent-") && name.ends_with(".log") {
                    n += std::fs::read_to_string(e.path())
                        .unwrap_or_default()
                        .matches("fenced: removed")
                        .count();
                }
            }
        }
        n
    }

    /// The last lines of every log, for a failed run.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for a in &self.agents {
            if let Some(p) = &a.proc {
                s.push_str(&format!("----- {} -----\n{}\n", p.name, p.log_tail(40)));
            }
        }
        for r in &self.replicas {
            if let Some(p) = &r.proc {
                s.push_str(&format!("----- {} -----\n{}\n", p.name, p.log_tail(40)));
            }
        }
        s
    }

    /// The host a kernel-side check looks at.
    pub fn host_of_role(&self, role: &str) -> &fip_testkit::Host {
        self.topo.host(role)
    }

    /// A floating IP of the pool, associated with instance `i` (or not).
    pub async fn create_fip(&self, instance: Option<usize>) -> Result<(String, String)> {
        let body = json!({
            "network_id": self.net_id,
            "project_id": "p",
            "instance_id": instance.map(|i| self.instances[i].clone()),
        });
        let v = self
            .api
            .must(
                Method::POST,
                "/v1/floating-ips",
                Some(&body),
                StatusCode::CREATED,
            )
            .await?;
        let id = v["id"].as_str().ok_or_else(|| anyhow!("no id: {v}"))?;
        let addr = v["address"]
            .as_str()
            .ok_or_else(|| anyhow!("no address: {v}"))?;
        Ok((id.to_owned(), addr.to_owned()))
    }
}
