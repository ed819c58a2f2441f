//! A change counter that long-polling agents wait on.

use std::sync::Arc;

use tokio::sync::watch;

/// Bumped after every committed change that may alter some host's desired
/// state; waiters re-read their state when it moves. A counter (not a
/// message) because waiters recompute from the database anyway: a missed
/// intermediate value loses nothing.
#[derive(Clone)]
pub struct Changes {
    tx: Arc<watch::Sender<u64>>,
    shutdown: Arc<watch::Sender<bool>>,
}

impl Default for Changes {
    fn default() -> Self {
        Self {
            tx: Arc::new(watch::channel(0).0),
            shutdown: Arc::new(watch::channel(false).0),
        }
    }
}

impl Changes {
    pub fn bump(&self) {
        self.tx.send_modify(|v| *v = v.wrapping_add(1));
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.tx.subscribe()
    }

    /// Ends every long poll at once, for a quick graceful shutdown.
    pub fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }
}
