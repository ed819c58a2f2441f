//! `fip-agent run` settings: a TOML file, overridden by flags and `FIP_AGENT_*` environment variables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;

use crate::cli::{parse_ifname, DadArg};
use crate::manager::DadMode;

/// Flags of `fip-agent run`. Every one also reads a `FIP_AGENT_*`
/// variable (clap `env`); a flag or variable wins over the config file.
#[derive(Debug, Default, Args)]
pub struct RunArgs {
    /// TOML config file (see deploy/fip-agent.toml).
    #[arg(long, env = "FIP_AGENT_CONFIG")]
    pub config: Option<PathBuf>,
    /// Base URL of fipd, e.g. http://[2001:db8:ffff::1]:8080 (plain HTTP only).
    #[arg(long, env = "FIP_AGENT_API_URL")]
    pub api_url: Option<String>,
    /// File holding this host's agent token (from `POST /v1/hosts`).
    #[arg(long, env = "FIP_AGENT_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// NAME=IFACE: serve fipd network NAME on interface IFACE. Repeatable;
    /// when given, replaces the config file's `[networks]` table.
    #[arg(long = "network", env = "FIP_AGENT_NETWORKS", value_delimiter = ',', value_parser = parse_network)]
    pub networks: Vec<(String, String)>,
    /// Override the DAD mode fipd asks for (strict|optimistic|off).
    #[arg(long, env = "FIP_AGENT_DAD", value_enum)]
    pub dad: Option<DadArg>,
    /// Override the number of unsolicited NAs fipd asks for.
    #[arg(long, env = "FIP_AGENT_NA_COUNT")]
    pub na_count: Option<u32>,
    /// Override the interval between NAs fipd asks for.
    #[arg(long, env = "FIP_AGENT_NA_INTERVAL_MS")]
    pub na_interval_ms: Option<u64>,
    /// Full reconcile pass at least this often, in seconds (default 30).
    #[arg(long, env = "FIP_AGENT_RESYNC_S")]
    pub resync_s: Option<u64>,
    /// Give up waiting for a DAD verdict after this long (default 10000).
    #[arg(long, env = "FIP_AGENT_DAD_TIMEOUT_MS")]
    pub dad_timeout_ms: Option<u64>,
}

/// `NAME=IFACE`, the interface name checked as the kernel would.
pub fn parse_network(s: &str) -> Result<(String, String), String> {
    let (name, dev) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not NAME=IFACE (e.g. public=eth1)"))?;
    let name = name.trim();
    if name.is_empty() {
        return Err(format!("`{s}`: the network name is empty"));
    }
    Ok((name.to_owned(), parse_ifname(dev.trim())?))
}

/// The config file; every key optional, unknown keys refused (a typo
/// should fail loudly, not silently fall back to a default).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub api_url: Option<String>,
    pub token_file: Option<PathBuf>,
    /// network name in fipd → interface
    #[serde(default)]
    pub networks: BTreeMap<String, String>,
    pub dad: Option<fip_types::DadMode>,
    pub na_count: Option<u32>,
    pub na_interval_ms: Option<u64>,
    pub resync_s: Option<u64>,
    pub dad_timeout_ms: Option<u64>,
}

impl FileConfig {
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| format!("config file {} is not valid: {e}", path.display()))
    }
}

/// Effective settings of the daemon.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Without a trailing slash.
    pub api_url: String,
    pub token: String,
    /// (network name, interface), in a stable order.
    pub networks: Vec<(String, String)>,
    pub dad: Option<DadMode>,
    pub na_count: Option<u32>,
    pub na_interval_ms: Option<u64>,
    pub resync: Duration,
    pub dad_timeout: Duration,
}

pub const DEFAULT_RESYNC_S: u64 = 30;
pub const DEFAULT_DAD_TIMEOUT_MS: u64 = 10_000;

impl Settings {
    /// Merges flags/env over the file (if any) and validates the result.
    /// Every error is a plain sentence for stderr.
    pub fn load(args: RunArgs) -> Result<Self, String> {
        let file = match &args.config {
            Some(p) => FileConfig::load(p)?,
            None => FileConfig::default(),
        };
        Self::merge(args, file)
    }

    pub fn merge(args: RunArgs, file: FileConfig) -> Result<Self, String> {
        let api_url = args
            .api_url
            .or(file.api_url)
            .ok_or("no API URL: pass --api-url, set FIP_AGENT_API_URL or api_url in the config")?;
        let api_url = validate_url(&api_url)?;
        let token_file = args.token_file.or(file.token_file).ok_or(
            "no token file: pass --token-file, set FIP_AGENT_TOKEN_FILE or token_file in the config",
        )?;
        let token = std::fs::read_to_string(&token_file)
            .map_err(|e| format!("cannot read token file {}: {e}", token_file.display()))?
            .trim()
            .to_owned();
        if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "token file {} must hold one token (it is empty or has inner whitespace)",
                token_file.display()
            ));
        }
        let networks = if args.networks.is_empty() {
            let mut v = Vec::new();
            for (name, dev) in file.networks {
                v.push(parse_network(&format!("{name}={dev}"))?);
            }
            v
        } else {
            args.networks
        };
        if networks.is_empty() {
            return Err(
                "no networks to serve: pass --network NAME=IFACE or fill [networks] in the config"
                    .into(),
            );
        }
        let mut names: Vec<&str> = networks.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(format!("network {} is given twice", w[0]));
        }
        let resync_s = args.resync_s.or(file.resync_s).unwrap_or(DEFAULT_RESYNC_S);
        if resync_s == 0 {
            return Err("resync_s must be at least 1".into());
        }
        let dad_timeout_ms = args
            .dad_timeout_ms
            .or(file.dad_timeout_ms)
            .unwrap_or(DEFAULT_DAD_TIMEOUT_MS);
        if dad_timeout_ms == 0 {
            return Err("dad_timeout_ms must be at least 1".into());
        }
        Ok(Self {
            api_url,
            token,
            networks,
            dad: args.dad.map(DadMode::from).or(file.dad),
            na_count: args.na_count.or(file.na_count),
            na_interval_ms: args.na_interval_ms.or(file.na_interval_ms),
            resync: Duration::from_secs(resync_s),
            dad_timeout: Duration::from_millis(dad_timeout_ms),
        })
    }
}

/// Only `http://host[:port][/path]`: this build has no TLS stack.
fn validate_url(s: &str) -> Result<String, String> {
    let u =
        reqwest::Url::parse(s.trim()).map_err(|e| format!("API URL `{s}` is not a URL: {e}"))?;
    match u.scheme() {
        "http" => {}
        "https" => {
            return Err(format!(
                "API URL `{s}`: https is not supported by this build (no TLS stack); \
                 use http:// on a management network"
            ))
        }
        other => return Err(format!("API URL `{s}`: unsupported scheme {other}")),
    }
    if u.host().is_none() {
        return Err(format!("API URL `{s}` has no host"));
    }
    Ok(u.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn token_file() -> (tempdir::Dir, PathBuf) {
        let d = tempdir::Dir::new();
        let p = d.0.join("token");
        let mut f = std::fs::File::create(&p).unwrap();
        writeln!(f, "  fipa_secret \n").unwrap();
        (d, p)
    }

    /// A throwaway directory without a dev-dependency.
    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicU32, Ordering};
                static N: AtomicU32 = AtomicU32::new(0);
                let p = std::env::temp_dir().join(format!(
                    "fip-agent-cfg-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::SeqCst)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Self(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    #[test]
    fn the_example_config_in_deploy_parses_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/fip-agent.toml");
        let file = FileConfig::load(&path).unwrap();
        assert!(file.api_url.is_some());
        assert!(!file.networks.is_empty());
        // Everything but the token file (which names a path on a real host)
        // passes validation.
        let (_d, tf) = token_file();
        let s = Settings::merge(
            RunArgs {
                token_file: Some(tf),
                ..Default::default()
            },
            file,
        )
        .unwrap();
        assert!(s.api_url.starts_with("http://"));
    }

    #[test]
    fn the_systemd_unit_grants_what_the_agent_needs_and_runs_the_daemon() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/fip-agent.service");
        let unit = std::fs::read_to_string(path).unwrap();
        let value = |key: &str| -> String {
            unit.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("no {key}= in the unit"))
                .to_owned()
        };
        assert!(value("ExecStart").contains(" run --config /etc/fip-agent/fip-agent.toml"));
        for key in ["CapabilityBoundingSet", "AmbientCapabilities"] {
            assert_eq!(value(key), "CAP_NET_ADMIN CAP_NET_RAW", "{key}");
        }
        let families = value("RestrictAddressFamilies");
        for f in ["AF_NETLINK", "AF_PACKET", "AF_INET6"] {
            assert!(families.contains(f), "{f} missing: {families}");
        }
        assert_eq!(value("NoNewPrivileges"), "yes");
        assert_eq!(value("ProtectSystem"), "strict");
    }

    #[test]
    fn flags_win_over_the_file_and_the_token_is_trimmed() {
        let (_d, tf) = token_file();
        let file = FileConfig::parse(
            "api_url = \"http://[2001:db8::1]:8080/\"\nresync_s = 10\nna_count = 2\n[networks]\npublic = \"eth1\"\n",
        )
        .unwrap();
        let args = RunArgs {
            token_file: Some(tf),
            networks: vec![("a".into(), "eth0".into())],
            resync_s: Some(5),
            ..Default::default()
        };
        let s = Settings::merge(args, file).unwrap();
        assert_eq!(s.api_url, "http://[2001:db8::1]:8080");
        assert_eq!(s.token, "fipa_secret");
        assert_eq!(s.networks, vec![("a".into(), "eth0".into())]);
        assert_eq!(s.resync, Duration::from_secs(5));
        assert_eq!(s.na_count, Some(2));
        assert_eq!(s.na_interval_ms, None, "not given: fipd's value is used");
        assert_eq!(s.dad, None);
    }

    #[test]
    fn network_flags_must_be_name_equals_interface() {
        assert_eq!(
            parse_network("public=eth1").unwrap(),
            ("public".into(), "eth1".into())
        );
        assert!(parse_network("public").is_err());
        assert!(parse_network("=eth1").is_err());
        assert!(parse_network("public=a/b").is_err());
    }

    #[test]
    fn missing_or_bad_settings_are_plain_errors() {
        let (_d, tf) = token_file();
        let base = || RunArgs {
            api_url: Some("http://127.0.0.1:1".into()),
            token_file: Some(tf.clone()),
            networks: vec![("n".into(), "eth0".into())],
            ..Default::default()
        };
        assert!(Settings::merge(base(), FileConfig::default()).is_ok());
        let e = Settings::merge(
            RunArgs {
                api_url: None,
                ..base()
            },
            FileConfig::default(),
        )
        .unwrap_err();
        assert!(e.contains("--api-url"), "{e}");
        let e = Settings::merge(
            RunArgs {
                api_url: Some("https://x".into()),
                ..base()
            },
            FileConfig::default(),
        )
        .unwrap_err();
        assert!(e.contains("TLS"), "{e}");
        let e = Settings::merge(
            RunArgs {
                networks: vec![],
                ..base()
            },
            FileConfig::default(),
        )
        .unwrap_err();
        assert!(e.contains("no networks"), "{e}");
        let e = Settings::merge(
            RunArgs {
                token_file: Some("/nonexistent/token".into()),
                ..base()
            },
            FileConfig::default(),
        )
        .unwrap_err();
        assert!(e.contains("/nonexistent/token"), "{e}");
        assert!(FileConfig::parse("api_urll = \"http://x\"").is_err());
        assert!(FileConfig::parse("dad = \"sometimes\"").is_err());
    }
}
