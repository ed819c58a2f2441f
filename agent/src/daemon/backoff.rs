//! Capped exponential backoff with jitter for DAD-failure and error retries.

use std::time::Duration;

/// First retry after about this long.
pub const BASE: Duration = Duration::from_secs(1);
/// Never wait longer than this between retries.
pub const CAP: Duration = Duration::from_secs(30);

/// The delay before retry number `failures` (1 = after the first failure):
/// `BASE * 2^(failures-1)`, capped at `CAP`, then scaled by `jitter` in
/// [0.5, 1.0] so agents that failed together do not retry in lockstep.
pub fn delay(failures: u32, jitter: f64) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    let raw = BASE.saturating_mul(1u32 << exp).min(CAP);
    raw.mul_f64(jitter.clamp(0.5, 1.0))
}

/// A small xorshift generator: jitter needs no cryptographic quality, and
/// this keeps a `rand` dependency out of the agent.
pub struct Jitter(u64);

impl Jitter {
    pub fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            ^ (u64::from(std::process::id()) << 32);
        Self(seed | 1)
    }

    /// A factor in [0.5, 1.0).
    pub fn factor(&mut self) -> f64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        0.5 + (x >> 11) as f64 / (1u64 << 53) as f64 / 2.0
    }
}

impl Default for Jitter {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_from_one_second() {
        assert_eq!(delay(1, 1.0), Duration::from_secs(1));
        assert_eq!(delay(2, 1.0), Duration::from_secs(2));
        assert_eq!(delay(4, 1.0), Duration::from_secs(8));
    }

    #[test]
    fn delays_are_capped_at_thirty_seconds() {
        assert_eq!(delay(6, 1.0), CAP);
        assert_eq!(delay(1000, 1.0), CAP);
    }

    #[test]
    fn jitter_stays_between_half_and_full() {
        let mut j = Jitter::new();
        for _ in 0..1000 {
            let f = j.factor();
            assert!((0.5..1.0).contains(&f), "{f}");
        }
        assert_eq!(delay(1, 0.5), Duration::from_millis(500));
    }
}
