//! One IPv6 address-event subscription per agent, routing each event to
//! whoever waits on that address.
//!
//! A subscription per waiting add made every add see every event of the
//! host: with thousands of adds in flight the work grew with the square of
//! their number. Here the kernel's events are read once and looked up by
//! (interface, address). An event is only a hint to look again: waiters
//! read the kernel's current state after each one, so a stale event queued
//! before they registered, or one lost in an overrun, cannot mislead them.

use std::collections::{HashMap, HashSet};
use std::net::Ipv6Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::net::netlink::{AddrEvent, AddrEvents};

/// (interface index, address).
type Key = (u32, Ipv6Addr);

#[derive(Default)]
struct Routes {
    waiters: HashMap<Key, Vec<(u64, Arc<Notify>)>>,
    /// Told about events of these interfaces that no waiter claims.
    listener: Option<(HashSet<u32>, Arc<Notify>)>,
}

#[derive(Default)]
struct Shared {
    routes: Mutex<Routes>,
    next_id: AtomicU64,
}

impl Shared {
    fn routes(&self) -> MutexGuard<'_, Routes> {
        // A panic while holding the lock leaves plain maps behind, still usable.
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn route(&self, ev: &AddrEvent) {
        let (AddrEvent::New(k) | AddrEvent::Del(k)) = ev;
        let routes = self.routes();
        if let Some(ws) = routes.waiters.get(&(k.index, k.addr)) {
            for (_, n) in ws {
                n.notify_one();
            }
            return;
        }
        if let Some((served, n)) = &routes.listener {
            if served.contains(&k.index) {
                n.notify_one();
            }
        }
    }

    /// After a gap in the subscription anything may have changed.
    fn wake_all(&self) {
        let routes = self.routes();
        for (_, n) in routes.waiters.values().flatten() {
            n.notify_one();
        }
        if let Some((_, n)) = &routes.listener {
            n.notify_one();
        }
    }
}

/// Aborts the reader task when the last handle goes.
struct Reader(JoinHandle<()>);

impl Drop for Reader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The agent's address-event subscription. Cheap to clone.
#[derive(Clone)]
pub struct AddrMonitor {
    shared: Arc<Shared>,
    _reader: Arc<Reader>,
}

impl AddrMonitor {
    /// Subscribes now, in the calling thread's network namespace, so that a
    /// waiter registered right after this returns misses nothing. If the
    /// subscription fails it is retried in the background; waiters then
    /// only have their own periodic look.
    pub fn start() -> Self {
        let shared = Arc::new(Shared::default());
        let first = AddrEvents::subscribe()
            .map_err(|e| tracing::warn!("cannot subscribe to address events: {e}; retrying"))
            .ok();
        let reader = tokio::spawn(read_events(shared.clone(), first));
        Self {
            shared,
            _reader: Arc::new(Reader(reader)),
        }
    }

    /// Starts routing the events of `(index, addr)` to the returned waiter.
    pub fn watch(&self, index: u32, addr: Ipv6Addr) -> AddrWaiter {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let notify = Arc::new(Notify::new());
        self.shared
            .routes()
            .waiters
            .entry((index, addr))
            .or_default()
            .push((id, notify.clone()));
        AddrWaiter {
            shared: self.shared.clone(),
            key: (index, addr),
            id,
            notify,
        }
    }

    /// `notify` is woken by events of `indices` that no waiter claims: an
    /// address of ours removed by someone else, a lifetime that ran out.
    pub fn set_listener(&self, indices: HashSet<u32>, notify: Arc<Notify>) {
        self.shared.routes().listener = Some((indices, notify));
    }
}

async fn read_events(shared: Arc<Shared>, mut first: Option<AddrEvents>) {
    loop {
        let mut events = match first.take() {
            Some(e) => e,
            None => match AddrEvents::subscribe() {
                Ok(e) => {
                    shared.wake_all();
                    e
                }
                Err(e) => {
                    tracing::warn!("cannot subscribe to address events: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
        };
        while let Some(ev) = events.next().await {
            shared.route(&ev);
        }
        // A netlink overrun ends a multicast subscription.
        tracing::warn!("address event subscription closed; subscribing again");
    }
}

/// Woken by every event of one address until dropped.
pub struct AddrWaiter {
    shared: Arc<Shared>,
    key: Key,
    id: u64,
    notify: Arc<Notify>,
}

impl AddrWaiter {
    /// Waits for the next event of the address (or a gap in the
    /// subscription). An event that came since the last call wakes it at
    /// once. Cancel-safe: the permit stays stored until a call takes it.
    pub async fn changed(&self) {
        self.notify.notified().await;
    }
}

impl Drop for AddrWaiter {
    fn drop(&mut self) {
        let mut routes = self.shared.routes();
        if let Some(ws) = routes.waiters.get_mut(&self.key) {
            ws.retain(|(id, _)| *id != self.id);
            if ws.is_empty() {
                routes.waiters.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::netlink::{AddrFlags, KernelAddr};

    fn ev(index: u32, addr: &str) -> AddrEvent {
        AddrEvent::New(KernelAddr {
            index,
            addr: addr.parse().unwrap(),
            prefix_len: 64,
            flags: AddrFlags::default(),
            proto: 0,
            valid_lft: None,
            preferred_lft: None,
        })
    }

    fn woken(n: &Notify) -> bool {
        let f = n.notified();
        tokio::pin!(f);
        // `enable` consumes a stored permit: true when one was there.
        f.as_mut().enable()
    }

    #[test]
    fn an_event_goes_to_the_waiters_of_its_address_only() {
        let shared = Arc::new(Shared::default());
        let listener = Arc::new(Notify::new());
        shared.routes().listener = Some(([3].into(), listener.clone()));
        let mine = Arc::new(Notify::new());
        let other = Arc::new(Notify::new());
        {
            let mut r = shared.routes();
            r.waiters
                .insert((3, "2001:db8::1".parse().unwrap()), vec![(0, mine.clone())]);
            r.waiters.insert(
                (3, "2001:db8::2".parse().unwrap()),
                vec![(1, other.clone())],
            );
        }
        shared.route(&ev(3, "2001:db8::1"));
        assert!(woken(&mine));
        assert!(!woken(&other));
        assert!(
            !woken(&listener),
            "a claimed event does not wake the listener"
        );
    }

    #[test]
    fn unclaimed_events_of_served_interfaces_wake_the_listener() {
        let shared = Arc::new(Shared::default());
        let listener = Arc::new(Notify::new());
        shared.routes().listener = Some(([3].into(), listener.clone()));
        shared.route(&ev(4, "2001:db8::1"));
        assert!(!woken(&listener), "interface 4 is not served");
        shared.route(&ev(3, "2001:db8::1"));
        assert!(woken(&listener));
    }

    #[tokio::test]
    async fn a_dropped_waiter_is_forgotten_and_others_on_the_address_stay() {
        let m = AddrMonitor::start();
        let a: Ipv6Addr = "2001:db8::1".parse().unwrap();
        let w1 = m.watch(3, a);
        let w2 = m.watch(3, a);
        drop(w1);
        m.shared.route(&ev(3, "2001:db8::1"));
        assert!(woken(&w2.notify));
        drop(w2);
        assert!(m.shared.routes().waiters.is_empty());
    }
}
