//! The two-node Jamf Cloud cluster behind a load balancer.
//!
//! Every answer sets `Set-Cookie: jpro-ingress=<node>; Path=/; HttpOnly`. A request carrying the
//! cookie of a node is served by that node; one without it (or with an unknown value) goes to the
//! nodes in turn, A, B, A, B… Both nodes share one database (tokens, duplicate-name checks and
//! references between objects are cluster-wide), but each serves reads from its own cache: an
//! object created through one node is visible through the other only from the second request the
//! cluster receives after the creating one, or one second after it, whichever comes first. A
//! client that does not keep the cookie therefore sees create-then-use fail now and then with a
//! 404 on the id it was just given. Updates and deletions are seen by both nodes at once.

use std::time::{Duration, Instant};

use crate::rng::SplitMix64;

/// How many requests after the creating one pass before the other node sees a new object.
pub(crate) const REPLICATION_REQUESTS: u64 = 2;
/// How long before the other node sees a new object anyway.
pub(crate) const REPLICATION_TIME: Duration = Duration::from_secs(1);

pub(crate) const COOKIE_NAME: &str = "jpro-ingress";

/// Where and when an object was created through the API; `None` for objects that exist from the
/// start or were added by the test harness (visible everywhere).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Origin {
    node: usize,
    seq: u64,
    at: Instant,
}

/// The node serving a request, and the request's arrival number.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Vantage {
    pub(crate) node: usize,
    pub(crate) seq: u64,
    /// Whether replication lag is simulated at all.
    pub(crate) lag: bool,
}

impl Vantage {
    /// The origin to record for an object created by this request.
    pub(crate) fn origin(self) -> Origin {
        Origin {
            node: self.node,
            seq: self.seq,
            at: Instant::now(),
        }
    }

    /// Whether this request's node already sees an object.
    pub(crate) fn sees(self, origin: Option<Origin>) -> bool {
        match origin {
            None => true,
            Some(o) => {
                !self.lag
                    || o.node == self.node
                    || self.seq >= o.seq + REPLICATION_REQUESTS
                    || o.at.elapsed() >= REPLICATION_TIME
            }
        }
    }
}

/// The cookie values of the two nodes, stable for a seed.
pub(crate) fn node_cookies(seed: u64) -> [String; 2] {
    let mut rng = SplitMix64::new(seed ^ 0x6E6F_6465);
    [0, 1].map(|_| format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64()))
}

#[cfg(test)]
mod tests {
    use super::{Vantage, node_cookies};

    #[test]
    fn the_other_node_sees_a_new_object_from_the_second_request_on() {
        let creator = Vantage {
            node: 0,
            seq: 10,
            lag: true,
        };
        let origin = Some(creator.origin());
        assert!(
            Vantage {
                node: 0,
                seq: 11,
                lag: true
            }
            .sees(origin)
        );
        assert!(
            !Vantage {
                node: 1,
                seq: 11,
                lag: true
            }
            .sees(origin)
        );
        assert!(
            Vantage {
                node: 1,
                seq: 12,
                lag: true
            }
            .sees(origin)
        );
        assert!(
            Vantage {
                node: 1,
                seq: 11,
                lag: false
            }
            .sees(origin)
        );
        assert!(
            Vantage {
                node: 1,
                seq: 0,
                lag: true
            }
            .sees(None)
        );
    }

    #[test]
    fn cookies_differ_per_node_and_repeat_per_seed() {
        let [a, b] = node_cookies(3);
        assert_ne!(a, b);
        assert_eq!(node_cookies(3), [a, b]);
    }
}
