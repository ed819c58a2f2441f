//! A whole system for one test: the topology, fipd, agents on A and B, and
//! an admin client with the objects every scenario needs.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::harness::{start_agent, start_fipd, FipdOpts, Proc, Topo, ADMIN, F, NET, POOL};

/// A thin JSON client for fipd.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    pub url: String,
}

impl Client {
    pub fn new(url: &str) -> Self {
        Self {
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            url: url.to_owned(),
        }
    }

    /// Sends a request; returns the status and the JSON body (Null if none).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .bearer_auth(token)
            .timeout(Duration::from_secs(10));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, v)
    }

    /// An admin call that must answer `want`.
    pub async fn admin(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        want: StatusCode,
    ) -> Value {
        let (st, v) = self.call(method.clone(), path, ADMIN, body).await;
        assert_eq!(st, want, "{method} {path}: {v}");
        v
    }

    pub async fn fip(&self, id: &str) -> Value {
        self.admin(
            Method::GET,
            &format!("/v1/floating-ips/{id}"),
            None,
            StatusCode::OK,
        )
        .await
    }

    pub async fn events(&self, id: &str) -> Vec<Value> {
        let v = self
            .admin(
                Method::GET,
                &format!("/v1/floating-ips/{id}/events?limit=1000"),
                None,
                StatusCode::OK,
            )
            .await;
        v["items"].as_array().cloned().unwrap_or_default()
    }

    /// Points F at `instance` (or nowhere); returns the new representation.
    pub async fn associate(&self, id: &str, instance: Option<&str>) -> Value {
        self.admin(
            Method::PATCH,
            &format!("/v1/floating-ips/{id}"),
            Some(json!({ "instance_id": instance })),
            StatusCode::OK,
        )
        .await
    }

    pub async fn host_state(&self, name: &str) -> Value {
        let v = self
            .admin(Method::GET, "/v1/hosts?limit=100", None, StatusCode::OK)
            .await;
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no host {name}"))
    }
}

/// Polls `f` every 20 ms until it returns `Some`, panicking after `within`.
pub async fn wait_until<T, Fut: Future<Output = Option<T>>>(
    what: &str,
    within: Duration,
    mut f: impl FnMut() -> Fut,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Milliseconds since the epoch of an RFC 3339 timestamp from the API.
pub fn ms_of(ts: &Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(ts.as_str().expect("timestamp"))
        .expect("RFC 3339")
        .timestamp_millis()
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The first event of `kind` (optionally on `host`) at or after `rev`.
pub fn find_event<'a>(
    events: &'a [Value],
    kind: &str,
    host: Option<&str>,
    rev: i64,
) -> Option<&'a Value> {
    events.iter().find(|e| {
        e["kind"] == kind
            && host.is_none_or(|h| e["host"] == h)
            && e["revision"].as_i64().unwrap_or(0) >= rev
    })
}

/// Prints F's event timeline relative to its first event.
pub fn print_timeline(title: &str, events: &[Value]) {
    let Some(t0) = events.first().map(|e| ms_of(&e["at"])) else {
        return;
    };
    println!("--- {title}: event timeline ---");
    for e in events {
        println!(
            "  +{:>6} ms  rev {:>2}  {:<18} {:<8} {}",
            ms_of(&e["at"]) - t0,
            e["revision"],
            e["kind"].as_str().unwrap_or("?"),
            e["host"].as_str().unwrap_or("-"),
            e["detail"]
        );
    }
}

pub struct Cluster {
    pub topo: Topo,
    pub dir: tempfile::TempDir,
    pub fipd: Option<Proc>,
    pub url: String,
    pub api: Client,
    pub opts: FipdOpts,
    pub agent_a: Option<Proc>,
    pub agent_b: Option<Proc>,
    agent_generation: u32,
    pub net_id: String,
    pub vm_a: String,
    pub vm_b: String,
    pub token_a: PathBuf,
    pub token_b: PathBuf,
}

impl Cluster {
    /// Topology, fipd, network + /64 pool, hosts A and B with instances,
    /// and both agents running and alive.
    pub async fn start(opts: FipdOpts, with_squatter: bool) -> Self {
        Self::start_with(opts, with_squatter, false).await
    }

    /// With `optimistic`, A and B allow optimistic DAD.
    pub async fn start_with(opts: FipdOpts, with_squatter: bool, optimistic: bool) -> Self {
        let topo = Topo::with(with_squatter, optimistic);
        let dir = tempfile::tempdir().unwrap();
        let (fipd, url) = start_fipd("fipd", &topo.mgmt_ip, dir.path(), &opts);
        let api = Client::new(&url);
        let mut c = Self::setup(topo, dir, fipd, url, api, opts).await;
        c.start_agents(None).await;
        c
    }

    pub async fn setup(
        topo: Topo,
        dir: tempfile::TempDir,
        fipd: Proc,
        url: String,
        api: Client,
        opts: FipdOpts,
    ) -> Self {
        let net = api
            .admin(
                Method::POST,
                "/v1/networks",
                Some(json!({ "name": NET })),
                StatusCode::CREATED,
            )
            .await;
        let net_id = net["id"].as_str().unwrap().to_owned();
        api.admin(
            Method::POST,
            "/v1/pools",
            Some(json!({ "network_id": net_id, "cidr": POOL })),
            StatusCode::CREATED,
        )
        .await;
        let mut tokens = Vec::new();
        for h in [&topo.a, &topo.b] {
            let v = api
                .admin(
                    Method::POST,
                    "/v1/hosts",
                    Some(json!({ "name": h.name })),
                    StatusCode::CREATED,
                )
                .await;
            let path = dir.path().join(format!("{}.token", h.name));
            std::fs::write(&path, format!("{}\n", v["token"].as_str().unwrap())).unwrap();
            tokens.push(path);
        }
        let vm_a = Self::make_instance(&api, "vm-a", &topo.a.name).await;
        let vm_b = Self::make_instance(&api, "vm-b", &topo.b.name).await;
        let token_b = tokens.pop().unwrap();
        let token_a = tokens.pop().unwrap();
        Self {
            topo,
            dir,
            fipd: Some(fipd),
            url,
            api,
            opts,
            agent_a: None,
            agent_b: None,
            agent_generation: 0,
            net_id,
            vm_a,
            vm_b,
            token_a,
            token_b,
        }
    }

    pub async fn make_instance(api: &Client, name: &str, host: &str) -> String {
        let v = api
            .admin(
                Method::POST,
                "/v1/instances",
                Some(json!({ "name": name, "project_id": "p", "host": host })),
                StatusCode::CREATED,
            )
            .await;
        v["id"].as_str().unwrap().to_owned()
    }

    /// Starts both agents (B's against `url_b` when given) and waits until
    /// fipd sees both hosts alive.
    pub async fn start_agents(&mut self, url_b: Option<&str>) {
        self.agent_a = Some(self.spawn_agent('a', &self.url.clone()));
        let ub = url_b.unwrap_or(&self.url).to_owned();
        self.agent_b = Some(self.spawn_agent('b', &ub));
        for h in [self.topo.a.name.clone(), self.topo.b.name.clone()] {
            let api = self.api.clone();
            wait_until(&format!("{h} alive"), Duration::from_secs(10), || {
                let api = api.clone();
                let h = h.clone();
                async move { (api.host_state(&h).await["state"] == "alive").then_some(()) }
            })
            .await;
        }
    }

    pub fn spawn_agent(&mut self, which: char, url: &str) -> Proc {
        self.agent_generation += 1;
        let (h, t) = match which {
            'a' => (&self.topo.a, &self.token_a),
            _ => (&self.topo.b, &self.token_b),
        };
        start_agent(h, url, t, self.dir.path(), self.agent_generation)
    }

    /// Allocates F (the fixed test address) associated with `instance`.
    pub async fn create_fip(&self, instance: Option<&str>) -> String {
        let v = self
            .api
            .admin(
                Method::POST,
                "/v1/floating-ips",
                Some(json!({ "network_id": self.net_id, "project_id": "p", "instance_id": instance, "address": F })),
                StatusCode::CREATED,
            )
            .await;
        v["id"].as_str().unwrap().to_owned()
    }

    /// Waits until F is ACTIVE on `host` at a revision ≥ `rev`; returns F.
    pub async fn wait_active_on(&self, id: &str, host: &str, within: Duration) -> Value {
        let api = self.api.clone();
        wait_until(&format!("F ACTIVE on {host}"), within, || {
            let api = api.clone();
            async move {
                let f = api.fip(id).await;
                (f["status"] == "ACTIVE" && f["host"] == host).then_some(f)
            }
        })
        .await
    }

    /// The binding of F on `host`.
    pub fn binding<'a>(f: &'a Value, host: &str) -> &'a Value {
        f["bindings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["host"] == host)
            .unwrap_or_else(|| panic!("no binding on {host}: {f}"))
    }
}
