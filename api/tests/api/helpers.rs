//! Test harness: a real fipd on port 0 with a fresh database per test, on
//! SQLite or PostgreSQL.

use fipd::app::{hash_token, App, AppConfig};
use fipd::store::Store;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use serde_json::{json, Value};
use std::net::SocketAddr;

pub const ADMIN: &str = "test-admin-token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server tests use (scripts/test.sh sets DATABASE_URL).
pub fn pg_admin_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A database that exists for one test and is removed afterwards.
pub struct TestDb {
    pub url: String,
    pg_name: Option<String>,
    _dir: tempfile::TempDir,
}

impl TestDb {
    pub async fn new(backend: Backend) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        match backend {
            Backend::Sqlite => Self {
                url: format!("sqlite://{}", dir.path().join("fipd.db").display()),
                pg_name: None,
                _dir: dir,
            },
            Backend::Postgres => {
                let admin = pg_admin_url();
                let name = format!("fipd_test_{}", uuid::Uuid::new_v4().simple());
                let store = Store::connect(&admin).await.unwrap_or_else(|e| {
                    panic!("PostgreSQL at {admin} is needed (run scripts/test.sh): {e}")
                });
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(store.pool())
                    .await
                    .expect("create test database");
                store.close().await;
                let base = admin.rsplit_once('/').expect("url has a database").0;
                Self {
                    url: format!("{base}/{name}"),
                    pg_name: Some(name),
                    _dir: dir,
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some(name) = self.pg_name.take() else {
            return;
        };
        // Drop runs outside any async context we can rely on; use a thread
        // with its own runtime.
        let admin = pg_admin_url();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(store) = Store::connect(&admin).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(store.pool())
                        .await;
                    store.close().await;
                }
            });
        })
        .join();
    }
}

/// A running fipd and a client for it.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub store: Store,
    pub app: App,
    server: tokio::task::JoinHandle<()>,
    _db: TestDb,
}

struct AbortOnDrop(Vec<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl TestApp {
    pub async fn spawn(backend: Backend) -> Self {
        Self::spawn_with(backend, 0).await
    }

    pub async fn spawn_with(backend: Backend, quarantine_ms: i64) -> Self {
        Self::spawn_config(backend, |c| c.quarantine_ms = quarantine_ms).await
    }

    /// A server with the controller running, as `fipd serve` runs it.
    pub async fn spawn_config(backend: Backend, tweak: impl FnOnce(&mut AppConfig)) -> Self {
        let db = TestDb::new(backend).await;
        let store = Store::connect(&db.url).await.expect("connect");
        store.migrate().await.expect("migrate");
        let mut config = AppConfig::new(hash_token(ADMIN));
        config.quarantine_ms = 0;
        tweak(&mut config);
        let app = App::new(store.clone(), config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = app.clone();
        let server = tokio::spawn(async move {
            // The background tasks end with this task: aborting it drops
            // the guard, which aborts them.
            let _background = AbortOnDrop(fipd::server::spawn_background(&served));
            fipd::server::serve_http(listener, fipd::http::router(served), std::future::pending())
                .await;
        });
        Self {
            addr,
            client: reqwest::Client::new(),
            store,
            app,
            server,
            _db: db,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn req(&self, method: Method, path: &str, token: &str) -> RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(token)
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.req(Method::GET, path, token).send().await.unwrap()
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.req(Method::POST, path, token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Response {
        self.req(Method::PATCH, path, token)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.req(Method::DELETE, path, token).send().await.unwrap()
    }

    /// Creates a network and returns its id.
    pub async fn network(&self, name: &str) -> String {
        let r = self
            .post("/v1/networks", ADMIN, json!({ "name": name }))
            .await;
        id_of(expect(r, StatusCode::CREATED).await)
    }

    /// Creates a pool and returns its id.
    pub async fn pool(&self, network: &str, cidr: &str) -> String {
        let r = self
            .post(
                "/v1/pools",
                ADMIN,
                json!({ "network_id": network, "cidr": cidr }),
            )
            .await;
        id_of(expect(r, StatusCode::CREATED).await)
    }

    /// Registers a host (if it is not registered yet); returns its agent
    /// token, or `None` when it existed already.
    pub async fn host(&self, name: &str) -> Option<String> {
        let r = self.post("/v1/hosts", ADMIN, json!({ "name": name })).await;
        if r.status() == StatusCode::CONFLICT {
            return None;
        }
        Some(
            expect(r, StatusCode::CREATED).await["token"]
                .as_str()
                .unwrap()
                .to_owned(),
        )
    }

    /// Creates an instance of `project` on `host` (registering the host).
    pub async fn instance(&self, project: &str, host: &str) -> String {
        self.host(host).await;
        let r = self
            .post(
                "/v1/instances",
                ADMIN,
                json!({ "name": "vm", "project_id": project, "host": host }),
            )
            .await;
        id_of(expect(r, StatusCode::CREATED).await)
    }

    /// Allocates a floating IP in `project` from `network`; returns the body.
    pub async fn fip(&self, network: &str, project: &str) -> Value {
        let r = self
            .post(
                "/v1/floating-ips",
                ADMIN,
                json!({ "network_id": network, "project_id": project }),
            )
            .await;
        expect(r, StatusCode::CREATED).await
    }

    /// Creates a project token and returns its secret.
    pub async fn project_token(&self, project: &str) -> String {
        let r = self
            .post("/v1/tokens", ADMIN, json!({ "project_id": project }))
            .await;
        expect(r, StatusCode::CREATED).await["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

pub fn id_of(v: Value) -> String {
    v["id"].as_str().expect("body has an id").to_owned()
}

/// Asserts the status and returns the JSON body (Null when empty).
pub async fn expect(r: Response, status: StatusCode) -> Value {
    let got = r.status();
    let text = r.text().await.unwrap();
    assert_eq!(got, status, "unexpected status; body: {text}");
    if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    }
}

/// Asserts a problem+json response with `status` and `code`; returns it.
pub async fn expect_problem(r: Response, status: StatusCode, code: &str) -> Value {
    let ct = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let request_id = r
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = expect(r, status).await;
    assert_eq!(
        ct, "application/problem+json",
        "problem content type; body {body}"
    );
    assert_eq!(body["code"], code, "problem code; body {body}");
    assert_eq!(body["status"], status.as_u16());
    assert_eq!(body["type"], format!("urn:fipd:problem:{code}"));
    assert!(body["title"].is_string() && body["detail"].is_string());
    assert_eq!(
        body["request_id"].as_str(),
        request_id.as_deref(),
        "request id matches header"
    );
    assert!(!body["request_id"].as_str().unwrap().is_empty());
    body
}

/// Runs each listed `async fn name(backend: Backend)` once per backend.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            )*
        }
    };
}
