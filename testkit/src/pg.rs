//! A throwaway PostgreSQL cluster that a test owns, so it can stop and
//! restart the database as a fault. It runs as the `postgres` user (initdb
//! refuses root) from the system's binaries, in a temporary directory, on
//! a free loopback port; dropping it stops it and deletes everything.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

pub struct TempPostgres {
    dir: PathBuf,
    bin: PathBuf,
    pub port: u16,
}

/// The newest `/usr/lib/postgresql/*/bin`.
fn pg_bin() -> Result<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .context("PostgreSQL's binaries are not installed (Debian package postgresql; scripts/test.sh installs it)")?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found
        .pop()
        .context("no initdb under /usr/lib/postgresql/*/bin")
}

/// Runs a PostgreSQL binary as the `postgres` user.
fn as_postgres(bin: &Path, prog: &str, args: &[&str]) -> Result<()> {
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(bin.join(prog))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {prog} as postgres"))?;
    if !out.status.success() {
        bail!(
            "{prog} {}: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Stops and deletes the clusters of runs whose process died (pg_ctl
/// runs the server as a daemon, so it outlives a killed test).
fn sweep_dead_clusters(bin: &Path) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("fk")
            .and_then(|r| r.split_once("x-pg-"))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid > 1 && !Path::new(&format!("/proc/{pid}")).exists() {
            let data = e.path().join("data");
            let _ = as_postgres(
                bin,
                "pg_ctl",
                &[
                    "-D",
                    &data.to_string_lossy(),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                ],
            );
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

impl TempPostgres {
    /// initdb, then start on a free port.
    pub fn start() -> Result<Self> {
        let bin = pg_bin()?;
        sweep_dead_clusters(&bin);
        let dir =
            std::env::temp_dir().join(format!("fk{}x-pg-{}", std::process::id(), free_port()?));
        std::fs::create_dir_all(&dir)?;
        let chown = Command::new("chown")
            .args(["postgres"])
            .arg(&dir)
            .status()
            .context("chown the cluster directory (is there a postgres user?)")?;
        if !chown.success() {
            bail!("chown postgres {} failed", dir.display());
        }
        let data = dir.join("data");
        as_postgres(
            &bin,
            "initdb",
            &[
                "-D",
                data.to_str().expect("utf-8 path"),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
        )?;
        let pg = Self {
            dir,
            bin,
            port: free_port()?,
        };
        pg.start_server()?;
        Ok(pg)
    }

    fn start_server(&self) -> Result<()> {
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c max_connections=200",
            self.port,
            self.dir.display()
        );
        as_postgres(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("utf-8 path"),
                "-w",
                "-l",
                log.to_str().expect("utf-8 path"),
                "-o",
                &opts,
                "start",
            ],
        )
    }

    /// A URL for database `db` (`postgres` always exists).
    pub fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }

    /// Stops the server at once, as a crash would (`-m immediate`).
    pub fn kill(&self) -> Result<()> {
        let data = self.dir.join("data");
        as_postgres(
            &self.bin,
            "pg_ctl",
            &[
                "-D",
                data.to_str().expect("utf-8 path"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
        )
    }

    /// Starts the server again on the same port and data.
    pub fn resume(&self) -> Result<()> {
        self.start_server()
    }

    /// Creates database `db`.
    pub fn create_db(&self, db: &str) -> Result<()> {
        as_postgres(
            &self.bin,
            "psql",
            &[
                "-h",
                self.dir.to_str().expect("utf-8 path"),
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
                "-q",
                "-c",
                &format!("CREATE DATABASE {db}"),
            ],
        )
    }

    /// The server's log, for failures.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let _ = self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
