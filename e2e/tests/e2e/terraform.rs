//! Issue 12: the Terraform provider joined to real agents. A real CLI
//! (OpenTofu, built by terraform/scripts/install-cli.sh) with the provider
//! built from terraform/ applies a floating IP on an instance of host A;
//! when `apply` returns, F is ACTIVE and in A's kernel. Pointing the
//! configuration at B's instance and applying again moves F break-before-
//! make; `destroy` takes it off the link.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};

use crate::cluster::{Client, Cluster};
use crate::harness::{wait_for, FipdOpts, ADMIN, F};
use crate::moves::f;
use crate::observe::{assert_no_double_holder, usable_intervals, AddrMonitor};

fn terraform_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../terraform")
}

/// The CLI: $FIPD_TF_CLI, else the one install-cli.sh builds (cached).
async fn cli() -> PathBuf {
    if let Ok(p) = std::env::var("FIPD_TF_CLI") {
        return p.into();
    }
    let out = tokio::process::Command::new("bash")
        .arg(terraform_dir().join("scripts/install-cli.sh"))
        .stderr(Stdio::inherit())
        .output()
        .await
        .expect("run install-cli.sh");
    assert!(out.status.success(), "install-cli.sh failed");
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

/// Builds the provider the way the README tells users to
/// (terraform/scripts/dev-override.sh) and returns the CLI config whose
/// dev_overrides point `fipd/fipd` at it.
async fn provider() -> PathBuf {
    let out = tokio::process::Command::new("bash")
        .arg(terraform_dir().join("scripts/dev-override.sh"))
        .stderr(Stdio::inherit())
        .output()
        .await
        .expect("run dev-override.sh (Go is needed for the provider)");
    assert!(out.status.success(), "dev-override.sh failed");
    let export = String::from_utf8(out.stdout).unwrap();
    let rc = export
        .trim()
        .strip_prefix("export TF_CLI_CONFIG_FILE=")
        .unwrap_or_else(|| panic!("dev-override.sh printed {export:?}"));
    PathBuf::from(rc)
}

struct Tf {
    cli: PathBuf,
    rc: PathBuf,
    work: PathBuf,
    url: String,
}

impl Tf {
    /// Runs the CLI in the working directory; returns its exit code and
    /// output, printing both.
    async fn run(&self, args: &[&str]) -> (i32, String) {
        let out = tokio::process::Command::new(&self.cli)
            .args(args)
            .current_dir(&self.work)
            .env("TF_CLI_CONFIG_FILE", &self.rc)
            .env("TF_IN_AUTOMATION", "1")
            .env("FIPD_TOKEN", ADMIN)
            .env("FIPD_ENDPOINT", &self.url)
            .env("NO_PROXY", "*")
            .stdin(Stdio::null())
            .output()
            .await
            .expect("run the Terraform CLI");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("$ tofu {}\n{text}", args.join(" "));
        (out.status.code().unwrap_or(-1), text)
    }

    /// `command` (with `flags`) for the configuration pointing at
    /// `instance`, non-interactive.
    async fn on(&self, command: &str, flags: &[&str], instance: &str) -> (i32, String) {
        let var = format!("instance_id={instance}");
        let mut args = vec![command, "-input=false", "-no-color", "-var", &var];
        args.extend_from_slice(flags);
        self.run(&args).await
    }

    async fn apply(&self, instance: &str) {
        let (code, text) = self.on("apply", &["-auto-approve"], instance).await;
        assert_eq!(code, 0, "apply failed:\n{text}");
    }
}

/// The state's floating IP id, read back through the CLI.
async fn fip_id(tf: &Tf) -> String {
    let (code, text) = tf.run(&["output", "-raw", "fip_id"]).await;
    assert_eq!(code, 0, "output failed: {text}");
    text.lines().next().unwrap_or_default().trim().to_owned()
}

fn status_on(fip: &serde_json::Value, host: &str) -> bool {
    fip["status"] == "ACTIVE" && fip["host"] == host
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terraform_associates_and_moves_a_floating_ip_on_real_agents() {
    let cli = cli().await;
    let c = Cluster::start(FipdOpts::default(), false).await;
    let tmp = tempfile::tempdir().unwrap();
    let rc = provider().await;
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    std::fs::write(
        work.join("main.tf"),
        format!(
            r#"terraform {{
  required_providers {{
    fipd = {{ source = "fipd/fipd" }}
  }}
}}

variable "instance_id" {{
  type = string
}}

provider "fipd" {{}}

resource "fipd_floating_ip" "f" {{
  project_id  = "p"
  network_id  = "{net}"
  address     = "{F}"
  instance_id = var.instance_id
}}

output "fip_id" {{
  value = fipd_floating_ip.f.id
}}
"#,
            net = c.net_id
        ),
    )
    .unwrap();
    let tf = Tf {
        cli,
        rc,
        work,
        url: c.url.clone(),
    };
    let api = Client::new(&c.url);

    // Apply on A: when the CLI returns, F is ACTIVE on A and in its kernel.
    tf.apply(&c.vm_a).await;
    let id = fip_id(&tf).await;
    let fip = api.fip(&id).await;
    assert!(
        status_on(&fip, &c.topo.a.name),
        "ACTIVE on A when apply returns: {fip}"
    );
    assert!(c.topo.a.has_addr(F), "A's kernel holds F");
    assert!(!c.topo.b.has_addr(F), "B's kernel does not");
    let (code, text) = tf.on("plan", &["-detailed-exitcode"], &c.vm_a).await;
    assert_eq!(code, 0, "no changes after apply:\n{text}");

    // Point it at B's instance: moved, never held on both at once.
    let mon_a = AddrMonitor::start(&c.topo.a.ns);
    let mon_b = AddrMonitor::start(&c.topo.b.ns);
    tf.apply(&c.vm_b).await;
    let fip = api.fip(&id).await;
    assert!(
        status_on(&fip, &c.topo.b.name),
        "ACTIVE on B when apply returns: {fip}"
    );
    assert!(c.topo.b.has_addr(F), "B's kernel holds F");
    assert!(!c.topo.a.has_addr(F), "A's kernel no longer does");
    let end = Instant::now();
    let (ev_a, ev_b) = (mon_a.stop(), mon_b.stop());
    let held_a = usable_intervals(&ev_a, f(), None, end);
    let held_b = usable_intervals(&ev_b, f(), None, end);
    assert!(
        !held_a.is_empty() && !held_b.is_empty(),
        "F was on A, then on B"
    );
    assert_no_double_holder(&held_a, &held_b);

    // Destroy releases the address and takes it off the link.
    let (code, text) = tf.on("destroy", &["-auto-approve"], &c.vm_b).await;
    assert_eq!(code, 0, "destroy failed:\n{text}");
    let (st, v) = api
        .call(Method::GET, &format!("/v1/floating-ips/{id}"), ADMIN, None)
        .await;
    assert_eq!(st, StatusCode::NOT_FOUND, "released: {v}");
    wait_for("F to leave B's kernel", Duration::from_secs(10), || {
        !c.topo.b.has_addr(F)
    });
}
