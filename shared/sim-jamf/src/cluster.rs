//! The two-node Jamf Cloud cluster behind a load balancer.
//!
//! Every answer sets `Set-Cookie: jpro-ingress=<node>; Path=/; HttpOnly`. A request carrying the
//! cookie of a node is served by that node; one without it (or with an unknown value) goes to the
//! nodes in turn, A, B, A, B… Both nodes share one database (tokens, duplicate-name checks,
//! references between objects, and the writes themselves are cluster-wide), but each serves reads
//! from its own cache, which Jamf Cloud refreshes every minute: an object created through one node
//! is visible through the other only [`REPLICATION_LAG`] later on the simulator's clock, and a
//! policy or package updated through one node reads as it was before the update through the other
//! for as long. A client that does not keep the cookie therefore sees create-then-use fail with a
//! 404 on the id it was just given, and a read after its own update answer the old version,
//! whenever its next request lands on the other node.

use std::time::Duration;

use time::OffsetDateTime;

use crate::rng::SplitMix64;

/// How long the other node takes to see a write (Jamf Cloud refreshes its nodes every minute).
pub(crate) const REPLICATION_LAG: Duration = Duration::from_secs(60);

pub(crate) const COOKIE_NAME: &str = "jpro-ingress";

/// Where and when (on the simulator's clock) an object was created or last updated through the
/// API; `None` for objects that exist from the start or were added by the test harness (visible
/// everywhere).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Origin {
    node: usize,
    at: OffsetDateTime,
}

/// The node serving a request, the request's arrival number, and the simulator's time then.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Vantage {
    pub(crate) node: usize,
    pub(crate) seq: u64,
    /// Whether replication lag is simulated at all.
    pub(crate) lag: bool,
    pub(crate) now: OffsetDateTime,
}

impl Vantage {
    /// The origin to record for an object this request creates or updates.
    pub(crate) fn origin(self) -> Origin {
        Origin {
            node: self.node,
            at: self.now,
        }
    }

    /// Whether this request's node already sees a write.
    pub(crate) fn sees(self, origin: Option<Origin>) -> bool {
        match origin {
            None => true,
            Some(o) => !self.lag || o.node == self.node || self.now >= o.at + REPLICATION_LAG,
        }
    }
}

/// An object whose updates the other node sees a minute late: the version before its last
/// update through the API, kept until every node has caught up.
#[derive(Debug, Clone)]
pub(crate) struct Replica<T> {
    /// The last update through the API.
    updated: Option<Origin>,
    /// The object as it was before that update.
    previous: Option<Box<T>>,
}

impl<T> Default for Replica<T> {
    fn default() -> Self {
        Self {
            updated: None,
            previous: None,
        }
    }
}

/// An object the cluster replicates: created somewhere, updated now and then.
pub(crate) trait Replicated: Clone {
    fn created(&self) -> Option<Origin>;
    fn replica(&self) -> &Replica<Self>;
    fn replica_mut(&mut self) -> &mut Replica<Self>;

    /// The object as the request's node reads it: `None` while it has not seen the creation,
    /// the version before the last update while it has not seen that.
    fn seen_by(&self, at: Vantage) -> Option<&Self> {
        if !at.sees(self.created()) {
            return None;
        }
        let replica = self.replica();
        match (&replica.previous, replica.updated) {
            (Some(previous), updated) if !at.sees(updated) => Some(previous),
            _ => Some(self),
        }
    }

    /// Records an update made through `at`'s node: `before` is the object as it was.
    fn updated_from(&mut self, before: &Self, at: Vantage) {
        let mut previous = before.clone();
        *previous.replica_mut() = Replica::default();
        let replica = self.replica_mut();
        replica.previous = Some(Box::new(previous));
        replica.updated = Some(at.origin());
    }
}

/// The cookie values of the two nodes, stable for a seed.
pub(crate) fn node_cookies(seed: u64) -> [String; 2] {
    let mut rng = SplitMix64::new(seed ^ 0x6E6F_6465);
    [0, 1].map(|_| format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64()))
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::{Vantage, node_cookies};

    fn at(node: usize, seconds: i64) -> Vantage {
        Vantage {
            node,
            seq: 0,
            lag: true,
            now: datetime!(2026-01-01 10:00 UTC) + time::Duration::seconds(seconds),
        }
    }

    #[test]
    fn the_other_node_sees_a_write_a_minute_later() {
        let origin = Some(at(0, 0).origin());
        assert!(at(0, 1).sees(origin));
        assert!(!at(1, 1).sees(origin));
        assert!(!at(1, 59).sees(origin));
        assert!(at(1, 60).sees(origin));
        assert!(
            Vantage {
                lag: false,
                ..at(1, 1)
            }
            .sees(origin)
        );
        assert!(at(1, 0).sees(None));
    }

    #[test]
    fn cookies_differ_per_node_and_repeat_per_seed() {
        let [a, b] = node_cookies(3);
        assert_ne!(a, b);
        assert_eq!(node_cookies(3), [a, b]);
    }
}
