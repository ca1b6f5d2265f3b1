//! Fault injection: scripted faults for the next N matching requests, and a seeded rate of
//! transient failures on every request.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::rng::SplitMix64;

/// Which requests a scripted fault applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch {
    /// Every request.
    Any,
    /// The token routes: `POST /api/v1/oauth/token`, `/api/oauth/token`, `/api/v1/auth/token` and
    /// `/api/v1/auth/keep-alive`.
    Token,
    /// Requests whose path (without the query) starts with this prefix.
    Path(String),
    /// Requests with this method (any case) whose path starts with this prefix.
    MethodPath(String, String),
}

impl RouteMatch {
    pub(crate) fn matches(&self, method: &str, path: &str) -> bool {
        match self {
            RouteMatch::Any => true,
            RouteMatch::Token => TOKEN_PATHS.contains(&path),
            RouteMatch::Path(prefix) => path.starts_with(prefix.as_str()),
            RouteMatch::MethodPath(m, prefix) => {
                m.eq_ignore_ascii_case(method) && path.starts_with(prefix.as_str())
            }
        }
    }
}

const TOKEN_PATHS: &[&str] = &[
    "/api/v1/oauth/token",
    "/api/oauth/token",
    "/api/v1/auth/token",
    "/api/v1/auth/keep-alive",
];

/// What an injected fault does to the request it hits.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 429 Too Many Requests, with `Retry-After` (seconds, fractions kept as given) when `Some`.
    /// Jamf Pro has no server-side rate limit; this exercises the connector's handling anyway.
    TooManyRequests { retry_after: Option<f64> },
    /// 503 Service Unavailable (a node restarting, the load balancer with no healthy node).
    ServiceUnavailable,
    /// 401, as for a missing or expired token.
    Unauthorized,
    /// 403: the API client's role lacks the privilege (Jamf Pro API code `INVALID_PRIVILEGE`).
    Forbidden,
    /// 409 Conflict: the Classic API's HTML page with `Error: Duplicate name`, or the Jamf Pro
    /// API's error JSON with code `CONFLICT`.
    Conflict,
    /// Holds the request this long, then answers it normally.
    Slow(Duration),
    /// Closes the connection without an answer. The request has no effect.
    DropConnection,
    /// The request takes effect, but the answer is a 200 whose JSON or XML body is cut short.
    MalformedBody,
    /// The request takes effect, then the connection closes without an answer (the answer is
    /// lost on the way back).
    LostAnswer,
    /// A package upload breaks off: the server reads this many bytes of the body, then closes
    /// the connection without an answer, and the upload has no effect (a dropped connection on
    /// any other request).
    DropAfter(u64),
}

/// The fault controls of one simulator; see [`crate::SimHandle::faults`].
#[derive(Debug, Clone)]
pub struct Faults {
    inner: Arc<Mutex<FaultState>>,
}

#[derive(Debug)]
struct FaultState {
    scripted: Vec<Scripted>,
    transient_percent: u8,
    rng: SplitMix64,
}

#[derive(Debug)]
struct Scripted {
    matcher: RouteMatch,
    fault: Fault,
    remaining: u32,
}

impl Faults {
    pub(crate) fn new(seed: u64) -> Self {
        let state = FaultState {
            scripted: Vec::new(),
            transient_percent: 0,
            rng: SplitMix64::new(seed ^ 0x6A61_6D66),
        };
        Self {
            inner: Arc::new(Mutex::new(state)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, FaultState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next `times` requests matching `matcher` get `fault`. Scripted faults are consulted in
    /// the order they were added; each request consumes at most one.
    pub fn fail_next(&self, matcher: RouteMatch, fault: Fault, times: u32) {
        if times > 0 {
            self.lock().scripted.push(Scripted {
                matcher,
                fault,
                remaining: times,
            });
        }
    }

    /// From now on `percent` % of the requests no scripted fault hit fail transiently, chosen by the
    /// seeded generator: of those, 80 % answer 503, 10 % answer 429 with `Retry-After: 1` and
    /// 10 % answer 429 without it. 0 turns this off; values over 100 count as 100.
    pub fn transient_rate(&self, percent: u8) {
        self.lock().transient_percent = percent.min(100);
    }

    /// Removes every scripted fault and turns the transient rate off.
    pub fn clear(&self) {
        let mut state = self.lock();
        state.scripted.clear();
        state.transient_percent = 0;
    }

    /// How many scripted faults are still to be served.
    pub fn pending(&self) -> u32 {
        self.lock().scripted.iter().map(|s| s.remaining).sum()
    }

    /// The fault for this request, if any, consuming it.
    pub(crate) fn take(&self, method: &str, path: &str) -> Option<Fault> {
        let mut state = self.lock();
        if let Some(i) = state
            .scripted
            .iter()
            .position(|s| s.matcher.matches(method, path))
        {
            let scripted = &mut state.scripted[i];
            let fault = scripted.fault.clone();
            scripted.remaining -= 1;
            if scripted.remaining == 0 {
                state.scripted.remove(i);
            }
            return Some(fault);
        }
        let percent = u64::from(state.transient_percent);
        if percent == 0 || state.rng.below(100) >= percent {
            return None;
        }
        Some(match state.rng.below(10) {
            0 => Fault::TooManyRequests {
                retry_after: Some(1.0),
            },
            1 => Fault::TooManyRequests { retry_after: None },
            _ => Fault::ServiceUnavailable,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Fault, Faults, RouteMatch};

    #[test]
    fn scripted_faults_are_consumed_in_order() {
        let faults = Faults::new(1);
        faults.fail_next(
            RouteMatch::MethodPath("post".into(), "/JSSResource/policies".into()),
            Fault::Conflict,
            1,
        );
        faults.fail_next(RouteMatch::Any, Fault::ServiceUnavailable, 2);
        assert_eq!(faults.pending(), 3);
        assert_eq!(
            faults.take("GET", "/JSSResource/policies/id/1"),
            Some(Fault::ServiceUnavailable)
        );
        assert_eq!(
            faults.take("POST", "/JSSResource/policies/id/0"),
            Some(Fault::Conflict)
        );
        assert_eq!(
            faults.take("POST", "/JSSResource/policies/id/0"),
            Some(Fault::ServiceUnavailable)
        );
        assert_eq!(faults.take("POST", "/JSSResource/policies/id/0"), None);
    }

    #[test]
    fn token_matcher_covers_the_token_routes_only() {
        let faults = Faults::new(1);
        faults.fail_next(RouteMatch::Token, Fault::Unauthorized, 10);
        assert_eq!(faults.take("POST", "/api/v1/packages"), None);
        assert_eq!(
            faults.take("POST", "/api/oauth/token"),
            Some(Fault::Unauthorized)
        );
        assert_eq!(
            faults.take("POST", "/api/v1/auth/token"),
            Some(Fault::Unauthorized)
        );
    }

    #[test]
    fn transient_rate_is_seeded_and_roughly_right() {
        let run = |seed| {
            let faults = Faults::new(seed);
            faults.transient_rate(30);
            (0..1000)
                .map(|_| faults.take("GET", "/api/v1/packages"))
                .collect::<Vec<_>>()
        };
        let a = run(5);
        assert_eq!(a, run(5));
        let hits = a.iter().filter(|f| f.is_some()).count();
        assert!((200..400).contains(&hits), "{hits}");
        assert!(a.contains(&Some(Fault::TooManyRequests { retry_after: None })));
        assert!(a.contains(&Some(Fault::TooManyRequests {
            retry_after: Some(1.0)
        })));
        let faults = Faults::new(5);
        faults.transient_rate(30);
        faults.clear();
        assert!((0..100).all(|_| faults.take("GET", "/").is_none()));
    }
}
