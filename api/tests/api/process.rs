//! The `fipd` binary: first start, config precedence, migrate, openapi,
//! and draining on SIGTERM.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::helpers::*;

const FIPD: &str = env!("CARGO_BIN_EXE_fipd");

/// The binary the process tests run: this build's, or `$FIPD_BIN` (to run
/// a regression test against an older build and watch it fail).
pub fn fipd_bin() -> String {
    std::env::var("FIPD_BIN")
        .ok()
        .filter(|b| !b.is_empty())
        .unwrap_or_else(|| FIPD.to_owned())
}

/// A fipd child process, killed on drop.
pub struct Fipd {
    pub child: Child,
    pub url: String,
    pub stdout_lines: Vec<String>,
    stderr: mpsc::Receiver<String>,
}

impl Drop for Fipd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines_of<R: Read + Send + 'static>(r: R) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Fipd {
    /// Starts `fipd serve` with `args` and waits for its listening line.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Self {
        // No wrapper process (such as `faketime`): it would fork, and
        // killing it on drop would leave fipd running.
        let mut cmd = Command::new(fipd_bin());
        cmd.arg("serve")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn fipd");
        let out: ChildStdout = child.stdout.take().unwrap();
        let err: ChildStderr = child.stderr.take().unwrap();
        let stdout = lines_of(out);
        let stderr = lines_of(err);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut lines = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = stdout.recv_timeout(left) else {
                let _ = child.kill();
                let _ = child.wait();
                let log: Vec<String> = stderr.try_iter().collect();
                panic!("fipd did not start; stdout {lines:?}; stderr {log:?}")
            };
            if let Some(url) = line.strip_prefix("fipd listening on ") {
                let url = url.to_owned();
                lines.push(line);
                return Self {
                    child,
                    url,
                    stdout_lines: lines,
                    stderr,
                };
            }
            lines.push(line);
        }
    }

    /// The stderr lines written so far (and not yet consumed).
    pub fn stderr_so_far(&self) -> Vec<String> {
        self.stderr.try_iter().collect()
    }

    /// Waits for a stderr line containing `needle`.
    pub fn wait_stderr(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(line) = self.stderr.recv_timeout(left) else {
                panic!("no {needle:?} on stderr; saw {seen:?}");
            };
            if line.contains(needle) {
                return;
            }
            seen.push(line);
        }
    }

    pub fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "fipd did not exit in {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// Issue 9 item 12: an empty admin-token file that someone created with
/// a readable mode must not receive the token as is: the token is written
/// to a fresh 0600 file that replaces it.
#[tokio::test]
async fn a_generated_admin_token_never_lands_in_a_readable_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let token_file = data.join("admin-token");
    std::fs::write(&token_file, "").unwrap();
    std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let fipd = Fipd::start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data.to_str().unwrap(),
        ],
        &[],
    );
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert!(token.trim().starts_with("fipa_"));
    assert_eq!(mode(&token_file), 0o600);
    drop(fipd);
}

#[tokio::test]
async fn first_start_generates_and_keeps_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let first = Fipd::start(&["--listen", "127.0.0.1:0", "--data-dir", data_s], &[]);
    let token_file = data.join("admin-token");
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_owned();
    assert!(token.starts_with("fipa_") && token.len() > 40);
    assert_eq!(mode(&token_file), 0o600);
    // Issue 9 item 12: the token goes to its file only, never to the log;
    // the output says where to find it.
    assert!(
        !first.stdout_lines.iter().any(|l| l.contains(&token)),
        "the token itself is never printed: {:?}",
        first.stdout_lines
    );
    assert!(
        first
            .stdout_lines
            .iter()
            .any(|l| l.contains(token_file.to_str().unwrap())),
        "says where the token is: {:?}",
        first.stdout_lines
    );
    let r = reqwest::Client::new()
        .get(format!("{}/v1/networks", first.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    drop(first);

    let second = Fipd::start(&["--listen", "127.0.0.1:0", "--data-dir", data_s], &[]);
    assert!(
        !second.stdout_lines.iter().any(|l| l.contains(&token)),
        "not printed again"
    );
    assert_eq!(std::fs::read_to_string(&token_file).unwrap().trim(), token);
    let r = reqwest::Client::new()
        .get(format!("{}/v1/networks", second.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the kept token still works");
}

#[tokio::test]
async fn flags_override_environment_and_environment_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("fipd.toml");
    let data = dir.path().join("data");
    std::fs::write(
        &cfg,
        format!(
            "listen = \"127.0.0.1:1\"\ndata_dir = \"{}\"\nadmin_token = \"from-file\"\n",
            data.display()
        ),
    )
    .unwrap();
    // The file's port 1 would fail to bind; the flag wins. The token comes
    // from the environment, not the file.
    let p = Fipd::start(
        &["--config", cfg.to_str().unwrap(), "--listen", "127.0.0.1:0"],
        &[("FIPD_ADMIN_TOKEN", "from-env")],
    );
    let client = reqwest::Client::new();
    let ok = client
        .get(format!("{}/v1/networks", p.url))
        .bearer_auth("from-env")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let no = client
        .get(format!("{}/v1/networks", p.url))
        .bearer_auth("from-file")
        .send()
        .await
        .unwrap();
    assert_eq!(no.status(), 401);
    assert!(data.join("fipd.db").exists(), "data_dir from the file");
    assert!(
        !data.join("admin-token").exists(),
        "no token generated when one is configured"
    );
}

#[test]
fn bad_config_and_database_urls_fail_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "listne = 1\n").unwrap();
    let out = Command::new(FIPD)
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("listne"), "{err}");
    let out = Command::new(FIPD)
        .args([
            "migrate",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--database-url",
            "mysql://x",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("neither postgres:// nor sqlite:"));
}

#[test]
fn migrate_and_openapi_commands_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(FIPD)
        .args(["migrate", "--data-dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("fipd.db").exists());
    let out = Command::new(FIPD).arg("openapi").output().unwrap();
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc, fipd::http::openapi());
}

#[test]
fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Fipd::start(
        &[
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().to_str().unwrap(),
            "--admin-token",
            ADMIN,
        ],
        &[("FIPD_LOG", "info,fipd=debug")],
    );
    let addr = p.url.trim_start_matches("http://").to_owned();
    let body = br#"{"name":"drained"}"#;
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        conn,
        "POST /v1/networks HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ADMIN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    conn.write_all(&body[..5]).unwrap();
    conn.flush().unwrap();
    // The request is in flight (headers in, body half sent) when SIGTERM lands.
    p.wait_stderr("request started");
    unsafe { libc::kill(p.child.id() as i32, libc::SIGTERM) };
    p.wait_stderr("shutdown requested");
    conn.write_all(&body[5..]).unwrap();
    let mut reply = String::new();
    let mut buf = [0u8; 4096];
    while !reply.contains("drained") {
        let n = conn.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed before the response: {reply}");
        reply.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(reply.starts_with("HTTP/1.1 201"), "{reply}");
    drop(conn);
    let status = p.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "exit status {status:?}");
}

/// Issue 9 item 12: settings that cannot work are refused at start with a
/// sentence naming the key, and exit code 2.
#[test]
fn nonsensical_settings_are_refused_at_start() {
    for (args, key) in [
        (vec!["--lease-ttl-ms", "0"], "lease_ttl_ms"),
        (vec!["--fence-grace-ms", "0"], "fence_grace_ms"),
        (vec!["--quota-floating-ips", "-5"], "quota_floating_ips"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new(FIPD)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{args:?}: {err}");
        assert!(
            !dir.path().join("fipd.db").exists(),
            "nothing is opened before the settings are checked"
        );
    }
}
