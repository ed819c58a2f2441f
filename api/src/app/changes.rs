//! Per-host change signals that long-polling agents wait on.
//!
//! A commit wakes only the hosts whose desired state it may have changed,
//! so the cost of a change does not grow with the size of the fleet; and a
//! host has at most one long poll at a time per replica: a new poll ends
//! the one before it, so one token cannot pile up waiters.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

/// The signals of one host.
struct HostSignals {
    /// Bumped when the host's desired state may have changed. A counter,
    /// not a message: waiters re-read from the database anyway, so a
    /// missed intermediate value loses nothing.
    changed: watch::Sender<u64>,
    /// Bumped when a new long poll for the host starts.
    polls: watch::Sender<u64>,
}

impl HostSignals {
    fn new() -> Self {
        Self {
            changed: watch::channel(0).0,
            polls: watch::channel(0).0,
        }
    }
}

#[derive(Clone)]
pub struct Changes {
    hosts: Arc<Mutex<HashMap<String, HostSignals>>>,
    shutdown: Arc<watch::Sender<bool>>,
}

impl Default for Changes {
    fn default() -> Self {
        Self {
            hosts: Arc::default(),
            shutdown: Arc::new(watch::channel(false).0),
        }
    }
}

/// What a long poll of one host waits on.
pub struct PollSubscription {
    pub changed: watch::Receiver<u64>,
    pub superseded: Supersession,
}

/// Whether a newer long poll of the same host has started.
pub struct Supersession {
    polls: watch::Receiver<u64>,
    generation: u64,
}

impl Supersession {
    /// Resolves once a newer long poll of the same host has started (or
    /// never, if none does). Cancel-safe: it only waits on a watch.
    pub async fn wait(&mut self) {
        let mine = self.generation;
        if self.polls.wait_for(|g| *g != mine).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    pub fn is_set(&self) -> bool {
        *self.polls.borrow() != self.generation
    }
}

/// Which hosts a committed change concerns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Touched {
    #[default]
    Nothing,
    Hosts(HashSet<String>),
    /// Every host (a peer replica could not say which).
    All,
}

impl Touched {
    pub fn host(&mut self, h: impl Into<String>) {
        match self {
            Self::Nothing => *self = Self::Hosts(HashSet::from([h.into()])),
            Self::Hosts(set) => {
                set.insert(h.into());
            }
            Self::All => {}
        }
    }

    pub fn hosts(&mut self, hs: impl IntoIterator<Item = String>) {
        for h in hs {
            self.host(h);
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Self::Nothing => true,
            Self::Hosts(s) => s.is_empty(),
            Self::All => false,
        }
    }

    /// The NOTIFY payload other replicas parse back with [`Touched::parse`]:
    /// host names, one per line, or `*` when they would not fit in
    /// PostgreSQL's 8000-byte payload.
    pub fn payload(&self) -> String {
        match self {
            Self::Nothing => String::new(),
            Self::All => "*".into(),
            Self::Hosts(set) => {
                let joined = set
                    .iter()
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join("\n");
                if joined.len() > 7_000 {
                    "*".into()
                } else {
                    joined
                }
            }
        }
    }

    pub fn parse(payload: &str) -> Self {
        if payload.is_empty() || payload == "*" {
            return Self::All;
        }
        Self::Hosts(payload.lines().map(str::to_owned).collect())
    }
}

impl Changes {
    fn with_host<T>(&self, host: &str, f: impl FnOnce(&HostSignals) -> T) -> T {
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let signals = hosts
            .entry(host.to_owned())
            .or_insert_with(HostSignals::new);
        f(signals)
    }

    /// Wakes the long polls of the touched hosts.
    pub fn bump(&self, touched: &Touched) {
        let hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        let bump = |s: &HostSignals| s.changed.send_modify(|v| *v = v.wrapping_add(1));
        match touched {
            Touched::Nothing => {}
            Touched::All => hosts.values().for_each(bump),
            Touched::Hosts(set) => set.iter().filter_map(|h| hosts.get(h)).for_each(bump),
        }
    }

    /// Starts a long poll of `host`, ending any earlier one of that host.
    pub fn subscribe(&self, host: &str) -> PollSubscription {
        self.with_host(host, |s| {
            let mut generation = 0;
            s.polls.send_modify(|g| {
                *g = g.wrapping_add(1);
                generation = *g;
            });
            PollSubscription {
                changed: s.changed.subscribe(),
                superseded: Supersession {
                    polls: s.polls.subscribe(),
                    generation,
                },
            }
        })
    }

    /// Ends every long poll at once, for a quick graceful shutdown.
    pub fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_wakes_only_the_hosts_it_touches() {
        let c = Changes::default();
        let mut a = c.subscribe("a");
        let b = c.subscribe("b");
        c.bump(&Touched::Hosts(HashSet::from(["a".to_owned()])));
        assert!(a.changed.has_changed().unwrap());
        assert!(!b.changed.has_changed().unwrap());
        a.changed.borrow_and_update();
        c.bump(&Touched::All);
        assert!(a.changed.has_changed().unwrap());
        assert!(b.changed.has_changed().unwrap());
    }

    #[test]
    fn a_new_poll_of_a_host_supersedes_the_previous_one() {
        let c = Changes::default();
        let first = c.subscribe("a");
        let other = c.subscribe("b");
        assert!(!first.superseded.is_set());
        let second = c.subscribe("a");
        assert!(first.superseded.is_set());
        assert!(!second.superseded.is_set());
        assert!(!other.superseded.is_set());
    }

    #[test]
    fn payloads_round_trip_and_fall_back_to_everyone() {
        let mut t = Touched::default();
        t.host("h1");
        t.host("h2");
        assert_eq!(Touched::parse(&t.payload()), t);
        let mut big = Touched::default();
        big.hosts((0..2000).map(|i| format!("host-{i}")));
        assert_eq!(big.payload(), "*");
        assert_eq!(Touched::parse("*"), Touched::All);
    }
}
