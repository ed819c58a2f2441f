//! fipd on the management bridge and fip-agent in A and B: the API objects
//! a benchmark needs (network, pool, hosts, instances) and helpers to move
//! F and read its bindings and events.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use reqwest::Method;
use serde_json::{json, Value};

use super::topology::{Host, Topo, C_ADDR, POOL};
use crate::api::Api;
use crate::fipd::Fipd;

/// The fipd network name the agents serve on eth0.
pub const NET: &str = "bench";

/// A `fip-agent run` in a host namespace (a kit process), killed on drop.
pub struct Agent {
    proc: fip_testkit::Proc,
    pub log: PathBuf,
}

impl Agent {
    pub fn start(h: &Host, url: &str, token_file: &Path, log: PathBuf) -> Result<Self> {
        let mut spec = fip_testkit::AgentSpec::new(url, token_file, NET, &log);
        spec.args.clear();
        // Quiet by default (logging costs time at 10,000 addresses);
        // FIP_BENCH_AGENT_LOG=info shows what the agent does.
        spec.log_filter = std::env::var("FIP_BENCH_AGENT_LOG").unwrap_or_else(|_| "warn".into());
        let proc = fip_testkit::start_agent(&h.kit, &spec).context("starting fip-agent")?;
        Ok(Agent { proc, log })
    }

    /// `ip netns exec` execs the agent, so this is the agent's pid.
    pub fn pid(&self) -> u32 {
        self.proc.pid() as u32
    }

    /// SIGTERM, then waits up to 10 s (dropping kills it after that).
    pub fn stop(mut self) {
        self.proc.signal(libc::SIGTERM);
        let _ = self.proc.wait_exit(Duration::from_secs(10));
    }
}

/// Settings of one cluster.
#[derive(Clone)]
pub struct Opts {
    pub dad_mode: &'static str,
    pub lease_ttl_ms: u64,
    pub fence_grace_ms: u64,
    /// This PostgreSQL database; SQLite otherwise.
    pub database_url: Option<String>,
    /// fipd processes on the one database (PostgreSQL only for more than 1).
    pub replicas: usize,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            dad_mode: "strict",
            lease_ttl_ms: 10_000,
            fence_grace_ms: 2_000,
            database_url: None,
            replicas: 1,
        }
    }
}

pub struct Cluster {
    pub dir: PathBuf,
    /// The first replica takes the API calls; agents use the last one.
    pub fipds: Vec<Fipd>,
    pub api: Api,
    pub agents: Vec<Agent>,
    pub net_id: String,
    pub vm_a: String,
    pub vm_b: String,
    pub token_a: PathBuf,
    pub token_b: PathBuf,
    /// The URL agents talk to.
    pub agent_url: String,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.agents.clear();
        self.fipds.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Cluster {
    /// fipd (one replica, or two on PostgreSQL), a network with a /64 pool,
    /// hosts A and B with one instance each. Agents are not started.
    pub async fn new(topo: &Topo, opts: &Opts) -> Result<Self> {
        let dir = crate::api::tempdir()?;
        let listen = format!("[{}]:0", topo.mgmt_ip);
        let lease = opts.lease_ttl_ms.to_string();
        let grace = opts.fence_grace_ms.to_string();
        let extra = [
            "--lease-ttl-ms",
            lease.as_str(),
            "--fence-grace-ms",
            grace.as_str(),
            "--dad-mode",
            opts.dad_mode,
        ];
        let mut fipds = Vec::new();
        for i in 0..opts.replicas.max(1) {
            let d = dir.join(format!("fipd{i}"));
            std::fs::create_dir_all(&d)?;
            fipds.push(Fipd::start_on(
                &listen,
                &d,
                opts.database_url.as_deref(),
                &extra,
            )?);
        }
        let api = Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()?,
            url: fipds[0].url.clone(),
        };
        let agent_url = fipds[fipds.len() - 1].url.clone();
        let net = api
            .call(Method::POST, "/v1/networks", Some(json!({ "name": NET })))
            .await?;
        let net_id = str_of(&net, "id")?;
        api.call(
            Method::POST,
            "/v1/pools",
            Some(json!({ "network_id": net_id, "cidr": POOL, "reserved": [C_ADDR] })),
        )
        .await?;
        let mut tokens = Vec::new();
        let mut vms = Vec::new();
        for h in [&topo.a, &topo.b] {
            let created = api
                .call(Method::POST, "/v1/hosts", Some(json!({ "name": h.name })))
                .await?;
            let path = dir.join(format!("token-{}", h.name));
            std::fs::write(&path, str_of(&created, "token")?)?;
            tokens.push(path);
            let vm = api
                .call(
                    Method::POST,
                    "/v1/instances",
                    Some(json!({ "name": format!("vm-{}", h.name), "project_id": "bench", "host": h.name })),
                )
                .await?;
            vms.push(str_of(&vm, "id")?);
        }
        Ok(Cluster {
            dir,
            fipds,
            api,
            agents: Vec::new(),
            net_id,
            vm_a: vms[0].clone(),
            vm_b: vms[1].clone(),
            token_a: tokens[0].clone(),
            token_b: tokens[1].clone(),
            agent_url,
        })
    }

    pub fn start_agent(&self, h: &Host, token: &Path, tag: &str) -> Result<Agent> {
        Agent::start(
            h,
            &self.agent_url,
            token,
            self.dir.join(format!("agent-{}-{tag}.log", h.name)),
        )
    }

    /// Starts the agents of A and B and waits until fipd sees both alive.
    pub async fn start_agents(&mut self, topo: &Topo) -> Result<()> {
        let a = self.start_agent(&topo.a, &self.token_a, "0")?;
        let b = self.start_agent(&topo.b, &self.token_b, "0")?;
        self.agents.push(a);
        self.agents.push(b);
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let hosts = self.api.call(Method::GET, "/v1/hosts", None).await?;
            let alive = hosts["items"]
                .as_array()
                .map_or(0, |v| v.iter().filter(|h| h["state"] == "alive").count());
            if alive >= 2 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "agents did not come alive within 15 s: {hosts}\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The tails of the agents' logs, for error messages.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        for a in &self.agents {
            let text = std::fs::read_to_string(&a.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(20).collect();
            s.push_str(&format!("--- {} ---\n", a.log.display()));
            for l in tail.into_iter().rev() {
                s.push_str(l);
                s.push('\n');
            }
        }
        s
    }

    /// A floating IP of the pool associated with `instance`; returns (id, address).
    pub async fn create_fip(&self, instance: &str) -> Result<(String, String)> {
        let f = self
            .api
            .call(
                Method::POST,
                "/v1/floating-ips",
                Some(json!({
                    "network_id": self.net_id,
                    "project_id": "bench",
                    "instance_id": instance,
                })),
            )
            .await?;
        Ok((str_of(&f, "id")?, str_of(&f, "address")?))
    }

    pub async fn fip(&self, id: &str) -> Result<Value> {
        self.api
            .call(Method::GET, &format!("/v1/floating-ips/{id}"), None)
            .await
    }

    pub async fn patch(&self, id: &str, body: Value) -> Result<Value> {
        self.api
            .call(Method::PATCH, &format!("/v1/floating-ips/{id}"), Some(body))
            .await
    }

    pub async fn events(&self, id: &str) -> Result<Vec<Value>> {
        let v = self
            .api
            .call(
                Method::GET,
                &format!("/v1/floating-ips/{id}/events?limit=1000"),
                None,
            )
            .await?;
        Ok(v["items"].as_array().cloned().unwrap_or_default())
    }

    /// Polls F every 10 ms until it is ACTIVE on `host`; returns it.
    pub async fn wait_active_on(&self, id: &str, host: &str, within: Duration) -> Result<Value> {
        let deadline = Instant::now() + within;
        loop {
            let f = self.fip(id).await?;
            if f["status"] == "ACTIVE" && f["host"] == host {
                return Ok(f);
            }
            if Instant::now() > deadline {
                bail!(
                    "F did not become ACTIVE on {host} within {within:?}: {f}\n{}",
                    self.logs()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

pub fn str_of(v: &Value, key: &str) -> Result<String> {
    v[key]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no `{key}` in {v}"))
}

/// The binding of F on `host`.
pub fn binding<'a>(f: &'a Value, host: &str) -> Option<&'a Value> {
    f["bindings"].as_array()?.iter().find(|b| b["host"] == host)
}

/// Milliseconds since the epoch of an RFC 3339 timestamp.
pub fn ms_of(ts: &Value) -> Option<f64> {
    chrono::DateTime::parse_from_rfc3339(ts.as_str()?)
        .ok()
        .map(|t| t.timestamp_micros() as f64 / 1000.0)
}

/// The first event of `kind` on `host` at or after revision `rev`.
pub fn find_event<'a>(events: &'a [Value], kind: &str, host: &str, rev: i64) -> Option<&'a Value> {
    events.iter().find(|e| {
        e["kind"] == kind && e["host"] == host && e["revision"].as_i64().unwrap_or(0) >= rev
    })
}
