//! The seeded schedule of a run: what happens when. Every random choice of
//! a run comes from one seed, so the same seed gives the same schedule and
//! a failing run replays (FoundationDB's habit). Pure, so it is tested here.

use std::fmt;
use std::time::Duration;

/// splitmix64: small, fast, and the same on every machine.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi` milliseconds.
    pub fn ms(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next_u64() % (hi - lo + 1))
    }

    /// True with probability `p` percent.
    pub fn percent(&mut self, p: u64) -> bool {
        self.next_u64() % 100 < p
    }
}

/// A change an operator (or Terraform) makes through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Associate floating IP `fip` with instance `instance`.
    Associate {
        fip: usize,
        instance: usize,
    },
    Disassociate {
        fip: usize,
    },
    /// Migrate instance `instance` to host `host`.
    Migrate {
        instance: usize,
        host: usize,
    },
    /// Set the standby instances of floating IP `fip`.
    Standbys {
        fip: usize,
        instances: Vec<usize>,
    },
    /// Delete floating IP `fip` and create a new one in its slot,
    /// associated with `instance` (or not).
    Recreate {
        fip: usize,
        instance: Option<usize>,
    },
}

/// A fault, injected for a while and then healed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// SIGKILL the agent of host `host`; start it again at the heal.
    AgentKill { host: usize },
    /// SIGSTOP the agent; SIGCONT at the heal.
    AgentStop { host: usize },
    /// SIGKILL fipd replica `replica`; start it again at the heal.
    ReplicaKill { replica: usize },
    /// Stop PostgreSQL at once (as a crash); start it at the heal.
    PgRestart,
    /// Drop the host's frames at the bridge, carrier up.
    LinkCut { host: usize },
    /// Drop the host's management frames (fipd only), data link fine.
    MgmtCut { host: usize },
    /// Step replica `replica`'s wall clock by `by_s` seconds; back at the heal.
    ClockStep { replica: usize, by_s: i64 },
}

impl Fault {
    /// What the fault occupies: at most one fault at a time per host, per
    /// replica, and for the database.
    fn target(&self) -> Target {
        match *self {
            Self::AgentKill { host }
            | Self::AgentStop { host }
            | Self::LinkCut { host }
            | Self::MgmtCut { host } => Target::Host(host),
            Self::ReplicaKill { replica } | Self::ClockStep { replica, .. } => {
                Target::Replica(replica)
            }
            Self::PgRestart => Target::Database,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Self::AgentKill { .. } => "agent SIGKILL",
            Self::AgentStop { .. } => "agent SIGSTOP",
            Self::ReplicaKill { .. } => "fipd replica SIGKILL",
            Self::PgRestart => "PostgreSQL restart",
            Self::LinkCut { .. } => "host cut off the link (carrier up)",
            Self::MgmtCut { .. } => "host cut off fipd only",
            Self::ClockStep { .. } => "clock step on a replica",
        }
    }

    pub const KINDS: [&'static str; 7] = [
        "agent SIGKILL",
        "agent SIGSTOP",
        "fipd replica SIGKILL",
        "PostgreSQL restart",
        "host cut off the link (carrier up)",
        "host cut off fipd only",
        "clock step on a replica",
    ];
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Host(usize),
    Replica(usize),
    Database,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum What {
    Action(Action),
    Fault { fault: Fault, lasts: Duration },
}

/// One entry of the schedule, `at` after the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub at: Duration,
    pub what: What,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.at.as_secs_f64();
        match &self.what {
            What::Action(a) => write!(f, "{t:7.2}s  {a:?}"),
            What::Fault { fault, lasts } => {
                write!(f, "{t:7.2}s  {fault:?} for {:.2}s", lasts.as_secs_f64())
            }
        }
    }
}

/// The size of the world a schedule plays in.
#[derive(Debug, Clone, Copy)]
pub struct World {
    pub hosts: usize,
    pub replicas: usize,
    pub fips: usize,
    pub instances: usize,
}

/// The schedule for `seed`, over `duration`: an event every 0.3–1.5 s,
/// four in ten of them faults (when their target is free).
pub fn generate(seed: u64, duration: Duration, w: World) -> Vec<Step> {
    let mut rng = Rng::new(seed);
    let mut steps = Vec::new();
    // When each target is free again.
    let mut busy: Vec<(Target, Duration)> = Vec::new();
    let mut t = rng.ms(300, 1000);
    while t < duration {
        busy.retain(|(_, until)| *until > t);
        let free = |tg: Target, busy: &[(Target, Duration)]| busy.iter().all(|(b, _)| *b != tg);
        let mut what = None;
        if rng.percent(40) {
            let fault = match rng.below(7) {
                0 => Fault::AgentKill {
                    host: rng.below(w.hosts),
                },
                1 => Fault::AgentStop {
                    host: rng.below(w.hosts),
                },
                2 => Fault::ReplicaKill {
                    replica: rng.below(w.replicas),
                },
                3 => Fault::PgRestart,
                4 => Fault::LinkCut {
                    host: rng.below(w.hosts),
                },
                5 => Fault::MgmtCut {
                    host: rng.below(w.hosts),
                },
                _ => Fault::ClockStep {
                    replica: rng.below(w.replicas),
                    by_s: if rng.percent(50) { 1 } else { -1 } * (2 + rng.below(29) as i64),
                },
            };
            // Mostly short faults, and a long tail: a fault has to outlast
            // a lease, the fence and a failover to exercise all of them.
            let lasts = match fault {
                Fault::PgRestart => rng.ms(500, 3000),
                Fault::ClockStep { .. } => rng.ms(2000, 10_000),
                _ if rng.percent(25) => rng.ms(6000, 15_000),
                _ => rng.ms(500, 6000),
            };
            if free(fault.target(), &busy) {
                busy.push((fault.target(), t + lasts));
                what = Some(What::Fault { fault, lasts });
            }
        }
        let what = what.unwrap_or_else(|| {
            What::Action(match rng.below(10) {
                0..=3 => Action::Associate {
                    fip: rng.below(w.fips),
                    instance: rng.below(w.instances),
                },
                4 => Action::Disassociate {
                    fip: rng.below(w.fips),
                },
                5 | 6 => Action::Migrate {
                    instance: rng.below(w.instances),
                    host: rng.below(w.hosts),
                },
                7 | 8 => {
                    let n = rng.below(3);
                    Action::Standbys {
                        fip: rng.below(w.fips),
                        instances: (0..n).map(|_| rng.below(w.instances)).collect(),
                    }
                }
                _ => Action::Recreate {
                    fip: rng.below(w.fips),
                    instance: rng.percent(70).then(|| rng.below(w.instances)),
                },
            })
        });
        steps.push(Step { at: t, what });
        t += rng.ms(300, 1500);
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: World = World {
        hosts: 3,
        replicas: 2,
        fips: 4,
        instances: 5,
    };

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let a = generate(42, Duration::from_secs(120), W);
        let b = generate(42, Duration::from_secs(120), W);
        assert_eq!(a, b);
        let c = generate(43, Duration::from_secs(120), W);
        assert_ne!(a, c);
    }

    #[test]
    fn a_target_has_one_fault_at_a_time_and_every_kind_occurs() {
        let s = generate(7, Duration::from_secs(900), W);
        let mut kinds = std::collections::HashSet::new();
        let faults: Vec<(Duration, Duration, Target)> = s
            .iter()
            .filter_map(|st| match &st.what {
                What::Fault { fault, lasts } => {
                    kinds.insert(fault.kind());
                    Some((st.at, st.at + *lasts, fault.target()))
                }
                _ => None,
            })
            .collect();
        for (i, a) in faults.iter().enumerate() {
            for b in &faults[i + 1..] {
                assert!(
                    a.2 != b.2 || a.1 <= b.0 || b.1 <= a.0,
                    "overlapping faults on {:?}",
                    a.2
                );
            }
        }
        assert_eq!(kinds.len(), Fault::KINDS.len(), "{kinds:?}");
    }
}
