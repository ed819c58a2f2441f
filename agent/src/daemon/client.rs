//! The HTTP client for fipd's agent endpoints: lease, long-polled desired state, reports.

use std::time::Duration;

use fip_types::{DesiredState, LeaseRequest, LeaseResponse, ReportBatch, ReportResult};
use serde::de::DeserializeOwned;

/// Why a call to fipd failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("cannot reach fipd")]
    Transport(#[source] reqwest::Error),
    #[error("fipd answered {status}: {body}")]
    Status {
        status: reqwest::StatusCode,
        body: String,
    },
}

impl ApiError {
    /// The request never got an answer (connection refused or reset,
    /// timeout).
    pub fn is_transport(&self) -> bool {
        matches!(self, Self::Transport(_))
    }

    /// A 4xx other than 408/409/429: retrying the same request will not
    /// help. (409 is a long poll superseded by a newer one.)
    pub fn is_client_error(&self) -> bool {
        matches!(self, Self::Status { status, .. }
            if status.is_client_error() && !matches!(status.as_u16(), 408 | 409 | 429))
    }
}

/// The message with its sources, for one log line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

/// A client bound to one fipd and one host token.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    auth: String,
}

impl Api {
    pub fn new(base: &str, token: &str) -> Result<Self, ApiError> {
        let http = reqwest::Client::builder()
            // fipd is on a management network; an HTTP proxy from the
            // environment would only add a failure mode.
            .no_proxy()
            .connect_timeout(Duration::from_secs(2))
            // fipd closes connections idle for 60 s; dropping ours well
            // before means a request never races that close.
            .pool_idle_timeout(Duration::from_secs(20))
            // A peer that vanished (a partition) is noticed on an idle
            // or long-polling connection, not only when a timeout runs out.
            .tcp_keepalive(Duration::from_secs(5))
            .build()
            .map_err(ApiError::Transport)?;
        Ok(Self {
            http,
            base: base.to_owned(),
            auth: format!("Bearer {token}"),
        })
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<T, ApiError> {
        let resp = req
            .header(reqwest::header::AUTHORIZATION, &self.auth)
            .timeout(timeout)
            .send()
            .await
            .map_err(ApiError::Transport)?;
        let status = resp.status();
        if !status.is_success() {
            let mut body = resp.text().await.unwrap_or_default();
            body.truncate(512);
            return Err(ApiError::Status { status, body });
        }
        resp.json().await.map_err(ApiError::Transport)
    }

    /// `POST /v1/agent/lease`.
    pub async fn lease(
        &self,
        req: &LeaseRequest,
        timeout: Duration,
    ) -> Result<LeaseResponse, ApiError> {
        let url = format!("{}/v1/agent/lease", self.base);
        self.send(self.http.post(url).json(req), timeout).await
    }

    /// `GET /v1/agent/desired-state?after=REV&wait_ms=N`: returns at once when
    /// the host's revision is past `after`, else when it changes, else after
    /// `wait`.
    pub async fn desired_state(
        &self,
        after: i64,
        wait: Duration,
    ) -> Result<DesiredState, ApiError> {
        let url = format!(
            "{}/v1/agent/desired-state?after={after}&wait_ms={}",
            self.base,
            wait.as_millis()
        );
        // The server holds the request up to `wait`; allow for its own work.
        self.send(self.http.get(url), wait + Duration::from_secs(10))
            .await
    }

    /// `POST /v1/agent/reports`.
    pub async fn reports(&self, batch: &ReportBatch) -> Result<ReportResult, ApiError> {
        let url = format!("{}/v1/agent/reports", self.base);
        self.send(self.http.post(url).json(batch), Duration::from_secs(10))
            .await
    }
}
