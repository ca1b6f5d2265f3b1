//! The local stack's clock: wall-clock time run faster (`speed`), plus jumps (`advance`), so a
//! 48-hour soak can pass in seconds. Everything in the stack reads the time from here: the API,
//! the event-source mappings, the connectors, the gate schedule and the simulators' device fleets
//! (which read it as their [`eucora_domain::Clock`]). Delays the functions ask of SQS are counted
//! on this clock too.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use eucora_domain::Clock as _;
use eucora_domain::Timestamp;

#[derive(Debug, Clone, Copy)]
struct Anchor {
    real: Instant,
    virtual_at: Timestamp,
    speed: f64,
}

/// A clock that runs `speed` times faster than the wall clock and can jump forward.
#[derive(Debug)]
pub struct Clock {
    anchor: Mutex<Anchor>,
}

impl Clock {
    /// Starts at `start`, running at `speed` (0 = stopped until [`Clock::advance`]).
    pub fn new(start: Timestamp, speed: f64) -> Clock {
        Clock {
            anchor: Mutex::new(Anchor {
                real: Instant::now(),
                virtual_at: start,
                speed: speed.max(0.0),
            }),
        }
    }

    /// The wall clock, at its own speed.
    pub fn real() -> Clock {
        Clock::new(eucora_domain::SystemClock.now(), 1.0)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Anchor> {
        self.anchor
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn read(a: &Anchor, at: Instant) -> Timestamp {
        let elapsed = at.saturating_duration_since(a.real).mul_f64(a.speed);
        a.virtual_at
            .plus(time::Duration::try_from(elapsed).unwrap_or(time::Duration::MAX))
    }

    pub fn now(&self) -> Timestamp {
        let a = *self.lock();
        Clock::read(&a, Instant::now())
    }

    pub fn speed(&self) -> f64 {
        self.lock().speed
    }

    /// Changes the speed from now on (0 stops the clock).
    pub fn set_speed(&self, speed: f64) {
        let mut a = self.lock();
        let now = Instant::now();
        a.virtual_at = Clock::read(&a, now);
        a.real = now;
        a.speed = speed.max(0.0);
    }

    /// Jumps forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut a = self.lock();
        let now = Instant::now();
        a.virtual_at =
            Clock::read(&a, now).plus(time::Duration::try_from(by).unwrap_or(time::Duration::MAX));
        a.real = now;
    }

    /// How long `d` on this clock lasts on the wall clock (a stopped clock counts it as a second,
    /// so a delayed message still comes back).
    pub fn to_real(&self, d: Duration) -> Duration {
        let speed = self.speed();
        if speed <= 0.0 {
            Duration::from_secs(1)
        } else {
            d.div_f64(speed)
        }
    }
}

impl eucora_domain::Clock for Clock {
    fn now(&self) -> Timestamp {
        Clock::now(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_at_its_speed_and_jumps() {
        let t0 = Timestamp::parse("2026-11-23T10:00:00Z").unwrap();
        let c = Clock::new(t0, 0.0);
        assert_eq!(c.now(), t0);
        c.advance(Duration::from_secs(3600));
        assert_eq!(c.now(), Timestamp::parse("2026-11-23T11:00:00Z").unwrap());
        c.set_speed(3600.0);
        std::thread::sleep(Duration::from_millis(20));
        // 20 ms at 3600 × is at least 72 s.
        assert!(c.now().since(t0) >= time::Duration::seconds(3600 + 72));
        assert_eq!(c.to_real(Duration::from_secs(3600)), Duration::from_secs(1));
        c.set_speed(0.0);
        assert_eq!(c.to_real(Duration::from_secs(60)), Duration::from_secs(1));
    }
}
