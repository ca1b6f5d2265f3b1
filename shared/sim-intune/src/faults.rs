//! Fault injection: deterministic (`fail_next`) and random but seeded (`transient_rate`).

use std::sync::Mutex;
use std::time::Duration;

use hyper::Method;

use crate::server::lock;
use crate::wire::Prng;

/// Which requests a fault applies to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch {
    /// Every request: token endpoint, Graph and blob uploads.
    Any,
    /// The token endpoint (`POST /{tenant}/oauth2/v2.0/token`).
    Token,
    /// Requests whose path starts with this prefix, e.g. `/v1.0/deviceAppManagement/mobileApps`.
    Path(String),
    /// Requests with this method (any case) whose path starts with this prefix.
    MethodPath(String, String),
    /// Azure Storage Put Block requests (`PUT /blob/{file}?comp=block&blockid=...`): one block of
    /// a content upload, not the block list nor anything on Graph.
    PutBlock,
}

/// What an injected fault does. The error faults answer in the shape of the surface hit: a Graph
/// error body on Graph, an identity-platform error on the token endpoint, an Azure Storage XML
/// error on blob uploads.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// 429 `TooManyRequests`, with `Retry-After: <seconds>` when given (fractions allowed).
    TooManyRequests { retry_after: Option<f64> },
    /// 503 `serviceNotAvailable` (storage: `ServerBusy`).
    ServiceUnavailable,
    /// 500 `InternalServerError` (storage: `OperationTimedOut`, as Azure Storage answers a request
    /// it could not finish in time).
    InternalError,
    /// 401 `InvalidAuthenticationToken` (on the token endpoint: 401 `invalid_client`).
    Unauthorized,
    /// 409 `Conflict`.
    Conflict,
    /// 403 `Forbidden`: the app registration lacks the permission (Graph's `Authorization_RequestDenied`).
    Forbidden,
    /// Storage only: 403 `AuthenticationFailed` "Signature did not match" for a valid SAS, as
    /// Azure answers for up to 30 seconds after a stored access policy is set or changed, until
    /// it takes effect. Elsewhere the request is handled normally.
    SasRefused,
    /// The request is handled normally, and the answer is held back this long.
    Slow(Duration),
    /// The connection is closed without an answer; the request is not handled.
    DropConnection,
    /// The request is handled (its effect happens), then the connection is closed without an
    /// answer: a lost response, the case idempotent clients exist for.
    DropResponse,
    /// The request is handled, then answered 200 with the first half of its JSON body.
    MalformedBody,
}

/// The surface a request reached; faults and error shapes depend on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Surface {
    Token,
    Graph,
    Blob,
    Other,
}

#[derive(Debug)]
struct Rule {
    matcher: RouteMatch,
    fault: Fault,
    /// Matching requests still let through before the fault starts.
    skip: u32,
    remaining: u32,
}

#[derive(Debug)]
struct FaultState {
    rules: Vec<Rule>,
    transient_percent: u8,
    rng: Prng,
}

/// Fault injection control, shared with the server (thread-safe; every method takes `&self`).
#[derive(Debug)]
pub struct Faults {
    inner: Mutex<FaultState>,
}

impl Faults {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            inner: Mutex::new(FaultState {
                rules: Vec::new(),
                transient_percent: 0,
                rng: Prng::new(seed ^ 0xFA17_FA17_FA17_FA17),
            }),
        }
    }

    /// The next `times` requests that `matcher` matches get `fault`. Rules are consumed in the
    /// order they were added; a request takes at most one.
    pub fn fail_next(&self, matcher: RouteMatch, fault: Fault, times: u32) {
        self.fail_after(matcher, 0, fault, times);
    }

    /// The first `after` requests that `matcher` matches are handled normally, then the next
    /// `times` get `fault`: e.g. the connection dropped after the tenth block of an upload. A rule
    /// still letting requests through does not stop a later rule from taking them.
    pub fn fail_after(&self, matcher: RouteMatch, after: u32, fault: Fault, times: u32) {
        if times > 0 {
            lock(&self.inner).rules.push(Rule {
                matcher,
                fault,
                skip: after,
                remaining: times,
            });
        }
    }

    /// On `percent` % of Graph requests (not the token endpoint, not blob uploads) answer a
    /// transient error, drawn from the seed: a third 429 with `Retry-After` (0.05–0.5 s), a third
    /// 429 without it, a third 503. `0` turns it off; values above 100 count as 100.
    pub fn transient_rate(&self, percent: u8) {
        lock(&self.inner).transient_percent = percent.min(100);
    }

    /// Removes every pending fault and turns the transient rate off.
    pub fn clear(&self) {
        let mut state = lock(&self.inner);
        state.rules.clear();
        state.transient_percent = 0;
    }

    /// How many injected faults are still waiting for a request.
    pub fn remaining(&self) -> u32 {
        lock(&self.inner).rules.iter().map(|r| r.remaining).sum()
    }

    /// The fault this request gets, if any (consuming one use of a `fail_next` rule).
    pub(crate) fn pick(
        &self,
        method: &Method,
        path: &str,
        query: Option<&str>,
        surface: Surface,
    ) -> Option<Fault> {
        let mut state = lock(&self.inner);
        let mut found = None;
        for (index, rule) in state.rules.iter_mut().enumerate() {
            if !rule.matcher.matches(method, path, query, surface) {
                continue;
            }
            if rule.skip > 0 {
                rule.skip -= 1;
                continue;
            }
            found = Some(index);
            break;
        }
        if let Some(index) = found {
            let rule = &mut state.rules[index];
            rule.remaining -= 1;
            let fault = rule.fault.clone();
            if rule.remaining == 0 {
                state.rules.remove(index);
            }
            return Some(fault);
        }
        if surface != Surface::Graph || state.transient_percent == 0 {
            return None;
        }
        if state.rng.below(100) >= u64::from(state.transient_percent) {
            return None;
        }
        Some(match state.rng.below(3) {
            0 => {
                let millis = 50 + state.rng.below(451);
                #[allow(clippy::cast_precision_loss)] // at most 500
                let seconds = millis as f64 / 1000.0;
                Fault::TooManyRequests {
                    retry_after: Some(seconds),
                }
            }
            1 => Fault::TooManyRequests { retry_after: None },
            _ => Fault::ServiceUnavailable,
        })
    }
}

impl RouteMatch {
    fn matches(&self, method: &Method, path: &str, query: Option<&str>, surface: Surface) -> bool {
        match self {
            Self::PutBlock => {
                surface == Surface::Blob
                    && *method == Method::PUT
                    && crate::wire::query_param(query, "comp").as_deref() == Some("block")
            }
            Self::Any => true,
            Self::Token => surface == Surface::Token,
            Self::Path(prefix) => path.starts_with(prefix.as_str()),
            Self::MethodPath(m, prefix) => {
                method.as_str().eq_ignore_ascii_case(m) && path.starts_with(prefix.as_str())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_is_used_the_given_number_of_times_then_dropped() {
        let faults = Faults::new(1);
        faults.fail_next(
            RouteMatch::MethodPath("post".into(), "/v1.0/a".into()),
            Fault::Conflict,
            2,
        );
        assert_eq!(
            faults.pick(&Method::GET, "/v1.0/a", None, Surface::Graph),
            None
        );
        assert_eq!(
            faults.pick(&Method::POST, "/v1.0/a/b", None, Surface::Graph),
            Some(Fault::Conflict)
        );
        assert_eq!(faults.remaining(), 1);
        assert_eq!(
            faults.pick(&Method::POST, "/v1.0/a", None, Surface::Graph),
            Some(Fault::Conflict)
        );
        assert_eq!(
            faults.pick(&Method::POST, "/v1.0/a", None, Surface::Graph),
            None
        );
    }

    #[test]
    fn a_rule_can_let_requests_through_first_and_put_block_matches_blocks_only() {
        let faults = Faults::new(1);
        faults.fail_after(RouteMatch::PutBlock, 2, Fault::DropConnection, 1);
        let block = Some("sv=1&comp=block&blockid=QQ%3D%3D");
        let list = Some("sv=1&comp=blocklist");
        assert_eq!(
            faults.pick(&Method::PUT, "/blob/f", list, Surface::Blob),
            None
        );
        assert_eq!(
            faults.pick(&Method::GET, "/blob/f", list, Surface::Blob),
            None
        );
        assert_eq!(
            faults.pick(&Method::PUT, "/blob/f", block, Surface::Blob),
            None
        );
        assert_eq!(
            faults.pick(&Method::PUT, "/blob/f", block, Surface::Blob),
            None
        );
        assert_eq!(
            faults.pick(&Method::PUT, "/blob/f", block, Surface::Blob),
            Some(Fault::DropConnection)
        );
        assert_eq!(
            faults.pick(&Method::PUT, "/blob/f", block, Surface::Blob),
            None
        );
        assert_eq!(faults.remaining(), 0);
    }

    #[test]
    fn the_transient_rate_is_seeded_and_spares_other_surfaces() {
        let draw = |seed| {
            let faults = Faults::new(seed);
            faults.transient_rate(50);
            (0..200)
                .map(|_| faults.pick(&Method::GET, "/v1.0/x", None, Surface::Graph))
                .collect::<Vec<_>>()
        };
        let first = draw(9);
        assert_eq!(first, draw(9));
        let hits = first.iter().filter(|f| f.is_some()).count();
        assert!((60..140).contains(&hits), "{hits} of 200");
        assert!(
            first
                .iter()
                .any(|f| matches!(f, Some(Fault::TooManyRequests { retry_after: None })))
        );
        assert!(first.iter().any(|f| matches!(
            f,
            Some(Fault::TooManyRequests {
                retry_after: Some(_)
            })
        )));
        assert!(
            first
                .iter()
                .any(|f| matches!(f, Some(Fault::ServiceUnavailable)))
        );
        let faults = Faults::new(9);
        faults.transient_rate(100);
        assert_eq!(
            faults.pick(&Method::POST, "/t/oauth2/v2.0/token", None, Surface::Token),
            None
        );
        assert_eq!(
            faults.pick(&Method::PUT, "/blob/x", None, Surface::Blob),
            None
        );
    }
}
