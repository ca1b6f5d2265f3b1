//! Exponential backoff: 2 s base, 60 s cap, jitter, `Retry-After` honoured.

use std::time::Duration;

pub const BASE: Duration = Duration::from_secs(2);
pub const CAP: Duration = Duration::from_secs(60);

/// The delay before attempt `attempt + 1`, after `attempt` failures (1 = the first failure).
/// `jitter` in `0.0..=1.0` spreads the delay over its upper half, so that instances that failed
/// together do not retry together. A `Retry-After` from the platform wins when it is longer.
pub fn delay(attempt: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
    let exp = BASE.saturating_mul(
        1_u32
            .checked_shl(attempt.saturating_sub(1).min(16))
            .unwrap_or(u32::MAX),
    );
    let capped = exp.min(CAP);
    let jittered = capped.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
    match retry_after {
        Some(r) if r > jittered => r,
        _ => jittered.max(Duration::from_secs(1)),
    }
}

/// A small deterministic jitter source (xorshift), seeded per message so that a test can repeat it.
#[derive(Debug, Clone)]
pub struct Jitter(u64);

impl Jitter {
    pub fn new(seed: u64) -> Jitter {
        Jitter(seed | 1)
    }

    /// The next value in `0.0..1.0`.
    pub fn sample(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        #[allow(clippy::cast_precision_loss)] // 53 bits of a u64 are plenty for jitter
        let v = (self.0 >> 11) as f64 / (1_u64 << 53) as f64;
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_2_s_and_caps_at_60_s() {
        assert_eq!(delay(1, None, 1.0), Duration::from_secs(2));
        assert_eq!(delay(2, None, 1.0), Duration::from_secs(4));
        assert_eq!(delay(5, None, 1.0), Duration::from_secs(32));
        assert_eq!(delay(6, None, 1.0), Duration::from_secs(60));
        assert_eq!(delay(40, None, 1.0), Duration::from_secs(60));
    }

    #[test]
    fn jitter_stays_in_the_upper_half() {
        let mut j = Jitter::new(7);
        for attempt in 1..10 {
            let d = delay(attempt, None, j.sample());
            let full = delay(attempt, None, 1.0);
            assert!(d <= full && d >= full / 2, "{d:?} vs {full:?}");
        }
    }

    #[test]
    fn retry_after_is_honoured_when_longer() {
        assert_eq!(
            delay(1, Some(Duration::from_secs(30)), 0.0),
            Duration::from_secs(30)
        );
        assert_eq!(
            delay(6, Some(Duration::from_secs(3)), 1.0),
            Duration::from_secs(60)
        );
    }
}
