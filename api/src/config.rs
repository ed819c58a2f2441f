//! fipd's settings: command-line flags, then `FIPD_*` environment
//! variables (both through clap), then the TOML file given by `--config`,
//! then defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// Settings as they may appear in the TOML config file; every key optional.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub admin_token: Option<String>,
    pub quarantine_ms: Option<u64>,
    pub lease_ttl_ms: Option<u64>,
    pub fence_grace_ms: Option<u64>,
    pub dad_mode: Option<fip_types::DadMode>,
    pub na_count: Option<u32>,
    pub na_interval_ms: Option<u64>,
    pub event_retention_count: Option<u64>,
    pub event_retention_days: Option<u64>,
    pub quota_floating_ips: Option<i64>,
    pub quota_instances: Option<i64>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {0}")]
    Read(PathBuf, #[source] std::io::Error),
    #[error("config file {0} is not valid")]
    Parse(PathBuf, #[source] toml::de::Error),
    #[error("{key} = {value} is out of range: {why}")]
    OutOfRange {
        key: &'static str,
        value: String,
        why: &'static str,
    },
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read(path.into(), e))?;
        Self::parse(&text).map_err(|e| ConfigError::Parse(path.into(), e))
    }

    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }
}

/// Effective settings after merging.
#[derive(Debug, Clone)]
pub struct Settings {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: String,
    pub admin_token: Option<String>,
    pub quarantine_ms: u64,
    pub lease_ttl_ms: u64,
    pub fence_grace_ms: u64,
    pub dad_mode: fip_types::DadMode,
    pub na_count: u32,
    pub na_interval_ms: u64,
    pub event_retention_count: u64,
    pub event_retention_days: u64,
    /// Default per-project limits; negative is unlimited.
    pub quota_floating_ips: i64,
    pub quota_instances: i64,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./fipd-data";
/// A released address stays out of the pool this long, so caches that
/// still point at its last holder (neighbour caches, DNS, firewall rules)
/// age out before someone else receives it.
pub const DEFAULT_QUARANTINE_MS: u64 = 60_000;
/// Agents renew at a third of this; a host is lost this long after its
/// last renewal.
pub const DEFAULT_LEASE_TTL_MS: u64 = 10_000;
/// Extra wait after a lease runs out before its addresses count as gone,
/// for clock error between fipd and agents.
pub const DEFAULT_FENCE_GRACE_MS: u64 = 2_000;

/// Events kept per floating IP, and for how long.
pub const DEFAULT_EVENT_RETENTION_COUNT: u64 = 1_000;
pub const DEFAULT_EVENT_RETENTION_DAYS: u64 = 30;
/// Per-project limits unless the admin sets others (Neutron's defaults for
/// floating IPs and ports).
pub const DEFAULT_QUOTA_FLOATING_IPS: i64 = 50;
pub const DEFAULT_QUOTA_INSTANCES: i64 = 500;

/// Flag/env values (already merged by clap): the same optional keys as the
/// file, layered over it.
pub type Overrides = FileConfig;

impl Settings {
    pub fn merge(cli: Overrides, file: FileConfig) -> Self {
        let data_dir = cli
            .data_dir
            .or(file.data_dir)
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
        let database_url = cli
            .database_url
            .or(file.database_url)
            .unwrap_or_else(|| crate::store::Store::sqlite_url_for(&data_dir));
        Self {
            listen: cli
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("default listen address")),
            data_dir,
            database_url,
            admin_token: cli
                .admin_token
                .or(file.admin_token)
                .filter(|t| !t.is_empty()),
            quarantine_ms: cli
                .quarantine_ms
                .or(file.quarantine_ms)
                .unwrap_or(DEFAULT_QUARANTINE_MS),
            lease_ttl_ms: cli
                .lease_ttl_ms
                .or(file.lease_ttl_ms)
                .unwrap_or(DEFAULT_LEASE_TTL_MS),
            fence_grace_ms: cli
                .fence_grace_ms
                .or(file.fence_grace_ms)
                .unwrap_or(DEFAULT_FENCE_GRACE_MS),
            dad_mode: cli.dad_mode.or(file.dad_mode).unwrap_or_default(),
            na_count: cli.na_count.or(file.na_count).unwrap_or(3),
            na_interval_ms: cli.na_interval_ms.or(file.na_interval_ms).unwrap_or(1_000),
            event_retention_count: cli
                .event_retention_count
                .or(file.event_retention_count)
                .unwrap_or(DEFAULT_EVENT_RETENTION_COUNT),
            event_retention_days: cli
                .event_retention_days
                .or(file.event_retention_days)
                .unwrap_or(DEFAULT_EVENT_RETENTION_DAYS),
            quota_floating_ips: cli
                .quota_floating_ips
                .or(file.quota_floating_ips)
                .unwrap_or(DEFAULT_QUOTA_FLOATING_IPS),
            quota_instances: cli
                .quota_instances
                .or(file.quota_instances)
                .unwrap_or(DEFAULT_QUOTA_INSTANCES),
        }
    }

    /// Refuses settings that cannot work, with a sentence naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        fn range<T: PartialOrd + ToString>(
            key: &'static str,
            v: T,
            lo: T,
            hi: T,
            why: &'static str,
        ) -> Result<(), ConfigError> {
            if v < lo || v > hi {
                return Err(ConfigError::OutOfRange {
                    key,
                    value: v.to_string(),
                    why,
                });
            }
            Ok(())
        }
        const DAY_MS: u64 = 24 * 3600 * 1000;
        range(
            "lease_ttl_ms",
            self.lease_ttl_ms,
            300,
            600_000,
            "agents renew at a third of it; use 300 ms to 10 min",
        )?;
        range(
            "fence_grace_ms",
            self.fence_grace_ms,
            100,
            600_000,
            "it must cover the agents' self-fencing; use 100 ms to 10 min",
        )?;
        range(
            "quarantine_ms",
            self.quarantine_ms,
            0,
            30 * DAY_MS,
            "use 0 to 30 days",
        )?;
        range(
            "na_count",
            self.na_count,
            0,
            10,
            "use 0 to 10 (RFC 4861 sends 3)",
        )?;
        range(
            "na_interval_ms",
            self.na_interval_ms,
            10,
            60_000,
            "use 10 ms to 60 s (RFC 4861: 1000)",
        )?;
        range(
            "event_retention_count",
            self.event_retention_count,
            10,
            1_000_000,
            "events kept per floating IP; use 10 to 1,000,000",
        )?;
        range(
            "event_retention_days",
            self.event_retention_days,
            1,
            3650,
            "use 1 to 3650",
        )?;
        range(
            "quota_floating_ips",
            self.quota_floating_ips,
            -1,
            i64::MAX,
            "use -1 for unlimited, else 0 or more",
        )?;
        range(
            "quota_instances",
            self.quota_instances,
            -1,
            i64::MAX,
            "use -1 for unlimited, else 0 or more",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_file_over_defaults() {
        let file = FileConfig::parse(
            "listen = \"127.0.0.1:9000\"\ndata_dir = \"/var/lib/fipd\"\nquarantine_ms = 5\n",
        )
        .unwrap();
        let cli = Overrides {
            listen: Some("127.0.0.1:9999".parse().unwrap()),
            ..Default::default()
        };
        let s = Settings::merge(cli, file);
        assert_eq!(s.listen.port(), 9999);
        assert_eq!(s.data_dir, PathBuf::from("/var/lib/fipd"));
        assert_eq!(s.database_url, "sqlite:///var/lib/fipd/fipd.db");
        assert_eq!(s.quarantine_ms, 5);
    }

    #[test]
    fn defaults_apply_without_flags_or_file() {
        let s = Settings::merge(Overrides::default(), FileConfig::default());
        assert_eq!(s.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(s.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert!(s.database_url.starts_with("sqlite://"));
        assert_eq!(s.admin_token, None);
    }

    #[test]
    fn nonsensical_settings_are_refused_with_the_key_named() {
        let ok = Settings::merge(Overrides::default(), FileConfig::default());
        assert!(ok.validate().is_ok());
        for (file, key) in [
            ("lease_ttl_ms = 0", "lease_ttl_ms"),
            ("fence_grace_ms = 0", "fence_grace_ms"),
            ("na_count = 1000", "na_count"),
            ("na_interval_ms = 0", "na_interval_ms"),
            ("quota_floating_ips = -2", "quota_floating_ips"),
            ("event_retention_count = 0", "event_retention_count"),
        ] {
            let s = Settings::merge(Overrides::default(), FileConfig::parse(file).unwrap());
            let e = s.validate().expect_err(file);
            assert!(e.to_string().starts_with(key), "{e}");
        }
    }

    #[test]
    fn unknown_config_keys_are_rejected() {
        assert!(FileConfig::parse("listne = \"127.0.0.1:1\"").is_err());
    }
}

#[cfg(test)]
mod example_config {
    use super::*;

    /// The shipped example must always parse, so it never rots.
    #[test]
    fn deploy_example_config_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/fipd.toml");
        let file = FileConfig::load(Path::new(path)).expect("deploy/fipd.toml parses");
        assert_eq!(
            file.listen.map(|l| l.to_string()).as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(file.lease_ttl_ms, Some(10_000));
        assert_eq!(file.dad_mode, Some(fip_types::DadMode::Strict));
        let s = Settings::merge(Overrides::default(), file);
        assert_eq!(s.data_dir, PathBuf::from("/var/lib/fipd"));
        assert_eq!(s.database_url, "sqlite:///var/lib/fipd/fipd.db");
    }
}
