//! The lease as the agent counts it, and the gate every address write
//! passes (docs/agent-daemon.md, "Lease, self-fencing and lifetimes").
//!
//! Time here is `CLOCK_BOOTTIME`: it keeps counting while the machine is
//! suspended, unlike `CLOCK_MONOTONIC` (tokio's clock), so an agent that
//! resumes after its lease ran out in real time knows it at once.
//!
//! The gate is the agent's half of the one promise. An address (or a
//! lifetime refresh, which can re-create one) reaches the kernel only
//! while the gate is `Serving` and the lease is valid by this clock; the
//! fence closes the gate under a write lock, so no write can be half-way
//! through when it starts removing.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{RwLock, RwLockReadGuard};

/// An instant on `CLOCK_BOOTTIME`, as time since boot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BootInstant(Duration);

impl BootInstant {
    pub fn now() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: clock_gettime writes the timespec we pass; BOOTTIME
        // exists on every kernel this agent supports (2.6.39+).
        let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
        assert_eq!(rc, 0, "clock_gettime(CLOCK_BOOTTIME)");
        Self(Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
    }

    /// For tests: an instant this far after boot.
    pub fn from_boot(d: Duration) -> Self {
        Self(d)
    }

    pub fn saturating_duration_since(self, earlier: Self) -> Duration {
        self.0.saturating_sub(earlier.0)
    }
}

impl std::ops::Add<Duration> for BootInstant {
    type Output = Self;
    fn add(self, d: Duration) -> Self {
        Self(self.0 + d)
    }
}

/// Sleeps until `deadline` on the boot clock. tokio's timers run on the
/// monotonic clock, which stops during suspend, so this wakes at least
/// every `step` to look at the boot clock again.
pub async fn sleep_until_boot(deadline: BootInstant, step: Duration) {
    loop {
        let now = BootInstant::now();
        if now >= deadline {
            return;
        }
        tokio::time::sleep(deadline.saturating_duration_since(now).min(step)).await;
    }
}

/// A lease fipd granted. Its clock starts when the request was *sent*:
/// the server cannot have granted it earlier, so the agent's idea of the
/// expiry is never later than fipd's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub sent_at: BootInstant,
    pub ttl: Duration,
}

impl Lease {
    pub fn expires_at(&self) -> BootInstant {
        self.sent_at + self.ttl
    }

    /// Kernel lifetime for managed addresses: the TTL rounded up to whole
    /// seconds (the kernel's unit), at least 1.
    pub fn lifetime_s(&self) -> u32 {
        let ms = self.ttl.as_millis().max(1);
        ms.div_ceil(1000).min(u128::from(u32::MAX - 1)) as u32
    }
}

/// Where the agent stands with its lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// No lease yet since start: addresses from an earlier run stay as
    /// they are (the kernel lifetimes bound them), nothing is written.
    Unleased,
    /// A lease whose streak of renewals began at `since`: when the answer
    /// to its first renewal arrived (not when it was sent: fipd may read a
    /// desired state requested after the send before the renewal commits,
    /// and fence us in between; docs/protocol.md, "The model check").
    /// Writes allowed until it expires.
    Serving { lease: Lease, since: BootInstant },
    /// The lease ran out: the fence is removing every managed address. A
    /// renewal that arrives meanwhile waits in `next`.
    Fencing { next: Option<Lease> },
    /// Fenced: nothing held, nothing written until a new lease.
    Fenced,
}

/// The gate in front of every address write, and the lease standing.
pub struct Gate {
    standing: Mutex<Standing>,
    /// Writes hold it shared while they check and talk to the kernel; the
    /// fence takes it exclusively to close the gate.
    writes: RwLock<()>,
    changed: tokio::sync::watch::Sender<u64>,
}

impl Default for Gate {
    fn default() -> Self {
        Self {
            standing: Mutex::new(Standing::Unleased),
            writes: RwLock::new(()),
            changed: tokio::sync::watch::channel(0).0,
        }
    }
}

/// Permission to write to the kernel; hold it until the write's answer.
pub struct WritePermit<'a>(#[allow(dead_code)] RwLockReadGuard<'a, ()>);

impl Gate {
    pub fn standing(&self) -> Standing {
        *self.standing.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, s: Standing) {
        *self.standing.lock().unwrap_or_else(|p| p.into_inner()) = s;
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Bumped on every change of standing.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// A permit to add an address or change its lifetime, if the lease
    /// allows one now; `None` once it ran out, even before the fence ran.
    pub async fn write_permit(&self) -> Option<WritePermit<'_>> {
        let guard = self.writes.read().await;
        match self.standing() {
            Standing::Serving { lease, .. } if BootInstant::now() < lease.expires_at() => {
                Some(WritePermit(guard))
            }
            _ => None,
        }
    }

    /// Records a successful renewal: `lease` was sent at its `sent_at` and
    /// its answer arrived at `received`. Returns whether a new streak
    /// began (the desired state must then be fetched again).
    pub fn renewed(&self, lease: Lease, received: BootInstant) -> bool {
        let mut s = self.standing.lock().unwrap_or_else(|p| p.into_inner());
        let (next, new_streak) = match *s {
            Standing::Unleased | Standing::Fenced => (
                Standing::Serving {
                    lease,
                    since: received,
                },
                true,
            ),
            Standing::Serving { lease: old, since } => {
                if received >= old.expires_at() {
                    // The old lease ran out before this answer: fipd may
                    // have fenced us meanwhile. The fence comes first.
                    (Standing::Fencing { next: Some(lease) }, false)
                } else if lease.expires_at() > old.expires_at() {
                    (Standing::Serving { lease, since }, false)
                } else {
                    (Standing::Serving { lease: old, since }, false)
                }
            }
            Standing::Fencing { .. } => (Standing::Fencing { next: Some(lease) }, false),
        };
        *s = next;
        drop(s);
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
        new_streak
    }

    /// Closes the gate if the lease ran out (or a late renewal said it
    /// had). Waits for writes in progress to finish first, so the fence
    /// that follows sees everything they did. Returns whether the caller
    /// must now fence.
    pub async fn close_if_expired(&self) -> bool {
        let _writes = self.writes.write().await;
        let fence = match self.standing() {
            Standing::Serving { lease, .. } => BootInstant::now() >= lease.expires_at(),
            Standing::Fencing { .. } => true,
            Standing::Unleased | Standing::Fenced => false,
        };
        if fence {
            let next = match self.standing() {
                Standing::Fencing { next } => next,
                _ => None,
            };
            self.set(Standing::Fencing { next });
        }
        fence
    }

    /// The fence removed everything: serve again on a renewal that arrived
    /// meanwhile (still valid), else stay fenced. Returns whether a new
    /// streak began.
    pub fn fenced(&self) -> bool {
        let next = match self.standing() {
            Standing::Fencing { next } => next,
            _ => None,
        };
        match next {
            Some(lease) if BootInstant::now() < lease.expires_at() => {
                // Its answer arrived before now; a desired state requested
                // from now on was read after that renewal committed.
                self.set(Standing::Serving {
                    lease,
                    since: BootInstant::now(),
                });
                true
            }
            _ => {
                self.set(Standing::Fenced);
                false
            }
        }
    }

    /// When the current lease runs out, if the agent is serving.
    pub fn deadline(&self) -> Option<BootInstant> {
        match self.standing() {
            Standing::Serving { lease, .. } => Some(lease.expires_at()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(at_ms: u64, ttl_ms: u64) -> Lease {
        Lease {
            sent_at: BootInstant::now() + Duration::from_millis(at_ms),
            ttl: Duration::from_millis(ttl_ms),
        }
    }

    #[test]
    fn lifetimes_are_the_ttl_rounded_up_to_whole_seconds() {
        assert_eq!(lease(0, 1500).lifetime_s(), 2);
        assert_eq!(lease(0, 10_000).lifetime_s(), 10);
        assert_eq!(lease(0, 10_001).lifetime_s(), 11);
        assert_eq!(lease(0, 1).lifetime_s(), 1);
    }

    #[test]
    fn the_boot_clock_moves_forward() {
        let a = BootInstant::now();
        let b = BootInstant::now();
        assert!(b >= a);
    }

    #[tokio::test]
    async fn writes_need_a_valid_lease() {
        let g = Gate::default();
        assert!(g.write_permit().await.is_none(), "no lease yet");
        let l = lease(0, 60_000);
        assert!(g.renewed(l, l.sent_at), "the first lease begins a streak");
        assert!(g.write_permit().await.is_some());
    }

    /// Issue 10 item 2: a lease that ran out by the boot clock allows no
    /// write, even before the fence ran (as after a suspend: the monotonic
    /// timers have not fired yet).
    #[tokio::test]
    async fn an_expired_lease_allows_no_write_before_the_fence_runs() {
        let g = Gate::default();
        let l = Lease {
            sent_at: BootInstant::from_boot(Duration::from_millis(1)),
            ttl: Duration::from_millis(1),
        };
        g.renewed(l, l.sent_at);
        assert!(g.write_permit().await.is_none());
        assert!(g.close_if_expired().await);
        assert_eq!(g.standing(), Standing::Fencing { next: None });
        assert!(!g.fenced());
        assert_eq!(g.standing(), Standing::Fenced);
    }

    /// Issue 10 item 3: after a fence, a renewal starts a new streak,
    /// which the daemon turns into "fetch the desired state again".
    #[tokio::test]
    async fn a_renewal_after_a_fence_begins_a_new_streak() {
        let g = Gate::default();
        let l = lease(0, 60_000);
        g.renewed(l, l.sent_at);
        let again = lease(10, 60_000);
        assert!(!g.renewed(again, again.sent_at), "same streak");
        g.set(Standing::Fenced);
        let back = lease(20, 60_000);
        let received = back.sent_at + Duration::from_millis(5);
        assert!(g.renewed(back, received));
        assert!(matches!(g.standing(), Standing::Serving { lease, .. } if lease == back));
    }

    /// Found by the model check (docs/protocol.md, "The model check"): the
    /// agent sends a renewal, then a desired-state request; fipd answers
    /// the request first (F still on this host), fences the host, moves F
    /// away, and only then commits the renewal. Counted from the renewal's
    /// send, that stale answer was fresh and F was added on two hosts with
    /// DAD off. The streak begins when the renewal's answer arrives.
    #[tokio::test]
    async fn a_streak_begins_when_the_renewal_answer_arrives() {
        let g = Gate::default();
        let back = lease(0, 60_000);
        let requested_meanwhile = back.sent_at + Duration::from_millis(1);
        let received = back.sent_at + Duration::from_millis(5);
        assert!(g.renewed(back, received));
        let Standing::Serving { since, .. } = g.standing() else {
            panic!("serving expected, got {:?}", g.standing());
        };
        assert_eq!(since, received);
        assert!(
            requested_meanwhile < since,
            "a desired state requested before the answer arrived is stale"
        );
    }

    /// A renewal whose answer arrives after the old lease ran out cannot
    /// tell whether fipd fenced the host meanwhile: fence first, then
    /// serve on the new lease with a new streak.
    #[tokio::test]
    async fn a_renewal_that_arrives_after_the_expiry_fences_first() {
        let g = Gate::default();
        let old = Lease {
            sent_at: BootInstant::from_boot(Duration::from_millis(1)),
            ttl: Duration::from_millis(1),
        };
        g.renewed(old, old.sent_at);
        let late = lease(0, 60_000);
        assert!(!g.renewed(late, BootInstant::now()));
        assert!(matches!(g.standing(), Standing::Fencing { next: Some(_) }));
        assert!(g.write_permit().await.is_none(), "no write while fencing");
        assert!(g.close_if_expired().await);
        assert!(g.fenced(), "the waiting lease starts a new streak");
        assert!(g.write_permit().await.is_some());
    }

    #[tokio::test]
    async fn a_renewal_never_moves_the_expiry_back() {
        let g = Gate::default();
        let long = lease(0, 60_000);
        g.renewed(long, long.sent_at);
        let short = lease(5, 1_000);
        g.renewed(short, short.sent_at);
        assert_eq!(g.deadline(), Some(long.expires_at()));
    }

    /// The fence waits for a write in progress, so it never starts
    /// removing while an add is half way into the kernel.
    #[tokio::test]
    async fn the_gate_closes_only_after_writes_in_progress() {
        let g = std::sync::Arc::new(Gate::default());
        let l = Lease {
            sent_at: BootInstant::now(),
            ttl: Duration::from_millis(50),
        };
        g.renewed(l, l.sent_at);
        let permit = g.write_permit().await.expect("valid");
        let g2 = g.clone();
        let closer = tokio::spawn(async move { g2.close_if_expired().await });
        sleep_until_boot(l.expires_at(), Duration::from_millis(10)).await;
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        assert!(!closer.is_finished(), "waits for the write in progress");
        assert!(matches!(g.standing(), Standing::Serving { .. }));
        drop(permit);
        assert!(closer.await.unwrap());
    }
}
