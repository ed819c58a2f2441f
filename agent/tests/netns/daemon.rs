//! `fip-agent run` refuses bad configuration with one sentence on stderr and exit 2, before touching anything.
//!
//! (The daemon's behaviour against a real fipd is proven in the fip-e2e crate.)

use std::io::Write;

use crate::harness::{Topo, DEV};

fn token_file(dir: &std::path::Path, text: &str) -> String {
    let p = dir.join("token");
    std::fs::File::create(&p)
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
fn run_with_bad_settings_exits_2_with_a_message() {
    let t = Topo::new();
    let dir = std::env::temp_dir().join(format!("fip-agent-run-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good_token = token_file(&dir, "fipa_x\n");
    let bad_cfg = dir.join("bad.toml");
    std::fs::write(&bad_cfg, "api_urll = \"http://[::1]:1\"\n").unwrap();
    let bad_cfg = bad_cfg.to_string_lossy().into_owned();
    let net = format!("public={DEV}");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["run", "--token-file", &good_token, "--network", &net],
            "--api-url",
        ),
        (
            vec!["run", "--api-url", "http://[::1]:1", "--network", &net],
            "token file",
        ),
        (
            vec![
                "run",
                "--api-url",
                "http://[::1]:1",
                "--token-file",
                "/nonexistent/t",
                "--network",
                &net,
            ],
            "/nonexistent/t",
        ),
        (
            vec![
                "run",
                "--api-url",
                "http://[::1]:1",
                "--token-file",
                &good_token,
            ],
            "no networks",
        ),
        (
            vec![
                "run",
                "--api-url",
                "https://[::1]:1",
                "--token-file",
                &good_token,
                "--network",
                &net,
            ],
            "tls",
        ),
        (
            vec![
                "run",
                "--api-url",
                "http://[::1]:1",
                "--token-file",
                &good_token,
                "--network",
                "public=nosuch0",
            ],
            "no such interface",
        ),
        (vec!["run", "--config", &bad_cfg], "api_urll"),
        (vec!["run", "--network", "public"], "name=iface"),
    ];
    for (args, needle) in cases {
        let run = t.a.agent(&args);
        assert_eq!(run.code, 2, "{args:?}: {run:#?}");
        assert!(
            run.stderr.to_lowercase().contains(&needle.to_lowercase()),
            "{args:?}: expected {needle:?} in {:?}",
            run.stderr
        );
        assert!(run.stdout.is_empty());
    }
    let _ = std::fs::remove_dir_all(&dir);
}
