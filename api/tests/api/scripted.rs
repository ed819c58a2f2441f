//! A scripted agent that speaks the agent protocol over HTTP, and small
//! helpers for tests of the protocol and the controller.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

/// A scripted agent speaking the protocol with its host's token.
pub struct Agent<'a> {
    pub app: &'a TestApp,
    pub token: String,
}

impl<'a> Agent<'a> {
    pub async fn register(app: &'a TestApp, host: &str) -> Self {
        let token = app.host(host).await.expect("new host");
        Self { app, token }
    }

    pub async fn lease(&self) -> Value {
        self.lease_with(json!({})).await
    }

    /// A renewal with extra fields (e.g. `kernel_lifetime_max_ms`).
    pub async fn lease_with(&self, extra: Value) -> Value {
        let mut body = json!({ "agent_version": "test", "networks": [{ "network": "n", "interface": "eth0", "mac": "02:00:00:00:00:01" }] });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = self.app.post("/v1/agent/lease", &self.token, body).await;
        expect(r, StatusCode::OK).await
    }

    /// The ids in the current desired state's addresses and removals.
    pub async fn wanted_and_removals(&self) -> (Vec<String>, Vec<String>) {
        let st = self.desired(0, 0).await;
        (ids(&st["addresses"]), ids(&st["removals"]))
    }

    pub async fn desired(&self, after: i64, wait_ms: u64) -> Value {
        let r = self
            .app
            .get(
                &format!("/v1/agent/desired-state?after={after}&wait_ms={wait_ms}"),
                &self.token,
            )
            .await;
        expect(r, StatusCode::OK).await
    }

    pub async fn report(&self, fip: &str, revision: i64, state: &str, extra: Value) -> Value {
        let mut rep = json!({
            "floating_ip_id": fip, "revision": revision, "state": state,
            "dad_ms": null, "defender_mac": null, "na_sent": null, "detail": null,
            "observed_at": chrono::Utc::now().to_rfc3339(),
        });
        for (k, v) in extra.as_object().unwrap() {
            rep[k] = v.clone();
        }
        let r = self
            .app
            .post(
                "/v1/agent/reports",
                &self.token,
                json!({ "reports": [rep] }),
            )
            .await;
        expect(r, StatusCode::OK).await
    }
}

pub fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|a| a["floating_ip_id"].as_str().unwrap().to_owned())
        .collect()
}

pub async fn fip_on(app: &TestApp, net: &str, vm: &str) -> Value {
    let r = app
        .post(
            "/v1/floating-ips",
            ADMIN,
            json!({ "network_id": net, "project_id": "p", "instance_id": vm }),
        )
        .await;
    expect(r, StatusCode::CREATED).await
}

pub async fn get_fip(app: &TestApp, id: &str) -> Value {
    expect(
        app.get(&format!("/v1/floating-ips/{id}"), ADMIN).await,
        StatusCode::OK,
    )
    .await
}

/// Polls `f` until it returns `Some`, within `within`.
pub async fn wait_for<T, F, Fut>(within: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
