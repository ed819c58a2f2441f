//! Talking to fipd during faults: a load balancer in front of the replicas
//! (as operators run them), and a JSON client that records every answer
//! that breaks the API's promises under faults: an error that is not
//! problem+json, a 5xx other than 503 (`database_unreachable`,
//! `unavailable`, `timeout`), or a request that hangs past its timeout.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Accepts on one address and forwards each connection to the first
/// replica that accepts it, starting with the next one in turn.
pub struct LoadBalancer {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl LoadBalancer {
    pub async fn start(listen: SocketAddr, backends: Vec<SocketAddr>) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let mut turn = 0usize;
            while let Ok((mut client, _)) = listener.accept().await {
                turn = turn.wrapping_add(1);
                let backends = backends.clone();
                tokio::spawn(async move {
                    for i in 0..backends.len() {
                        let b = backends[(turn + i) % backends.len()];
                        let Ok(Ok(mut server)) = tokio::time::timeout(
                            Duration::from_millis(500),
                            tokio::net::TcpStream::connect(b),
                        )
                        .await
                        else {
                            continue;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                        return;
                    }
                });
            }
        });
        Ok(Self { addr, task })
    }
}

impl Drop for LoadBalancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What went wrong with one API answer.
#[derive(Debug, Clone)]
pub struct Anomaly {
    pub what: String,
    pub at: Instant,
}

/// Counts of answers by status, and the anomalies.
#[derive(Debug, Default)]
pub struct Ledger {
    pub by_status: std::collections::BTreeMap<String, usize>,
    pub anomalies: Vec<Anomaly>,
}

/// A JSON client for fipd that checks every answer against the promises.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    pub url: String,
    pub token: String,
    pub ledger: Arc<Mutex<Ledger>>,
}

/// A request may take at most this long (fipd's own limit is 30 s).
pub const HANG: Duration = Duration::from_secs(35);

impl Api {
    pub fn new(url: &str, token: &str) -> Result<Self> {
        Ok(Self {
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(HANG + Duration::from_secs(5))
                .build()?,
            url: url.into(),
            token: token.into(),
            ledger: Arc::default(),
        })
    }

    fn note(&self, status: String, anomaly: Option<String>) {
        let mut l = self.ledger.lock().unwrap_or_else(|p| p.into_inner());
        *l.by_status.entry(status).or_default() += 1;
        if let Some(what) = anomaly {
            l.anomalies.push(Anomaly {
                what,
                at: Instant::now(),
            });
        }
    }

    /// Sends a request; returns the status and the JSON body (Null if
    /// none), or an error when no answer came (the connection failed).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value)> {
        let started = Instant::now();
        let mut req = self
            .http
            .request(method.clone(), format!("{}{path}", self.url))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let hung = started.elapsed() >= HANG;
                self.note(
                    "no answer".into(),
                    hung.then(|| format!("{method} {path}: no answer within {HANG:?}: {e}")),
                );
                bail!("{method} {path}: {e}");
            }
        };
        let status = resp.status();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = resp.text().await.unwrap_or_default();
        let v: Value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        let took = started.elapsed();
        let mut anomaly = None;
        if took >= HANG {
            anomaly = Some(format!("{method} {path} took {took:?}"));
        }
        if status.is_client_error() || status.is_server_error() {
            let code = v["code"].as_str().unwrap_or("");
            if ct != "application/problem+json" || code.is_empty() {
                anomaly = Some(format!(
                    "{method} {path}: {status} is not problem+json: {ct} {v}"
                ));
            } else if status.is_server_error()
                && !(status == StatusCode::SERVICE_UNAVAILABLE
                    && ["database_unreachable", "unavailable", "timeout"].contains(&code))
            {
                anomaly = Some(format!("{method} {path}: {status} {code}: {v}"));
            }
        }
        self.note(status.as_u16().to_string(), anomaly);
        Ok((status, v))
    }

    /// A call that must succeed with `want`; the body.
    pub async fn must(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        want: StatusCode,
    ) -> Result<Value> {
        let (st, v) = self.call(method.clone(), path, body).await?;
        if st != want {
            bail!("{method} {path}: {st} {v}");
        }
        Ok(v)
    }
}
