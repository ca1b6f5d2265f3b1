//! The simulated Macs: computers, computer groups, the simulated clock, and which policies each
//! computer has run by that clock.
//!
//! A computer runs a policy when the policy is enabled, has `trigger_checkin` set and scopes the
//! computer (`all_computers`, the computer itself or one of its groups, less the exclusions). The
//! run happens the computer's `after` past the moment all of that first became true, and is logged
//! with the computer's outcome. Every frequency counts as "once per computer", except that a change
//! to the policy's packages counts as a log flush: the computers in scope run it again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use time::OffsetDateTime;

use crate::cluster::Origin;
use crate::policy::Policy;
use crate::xml::Element;

/// A simulated Mac, given to [`crate::SimHandle::add_computer_group`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimComputer {
    pub id: u32,
    pub name: String,
    pub udid: String,
    /// What happens when it runs a policy.
    pub outcome: ComputerOutcome,
    /// How long after a policy starts applying to it the computer checks in and runs it.
    pub after: Duration,
}

impl SimComputer {
    /// A computer named `mac-0007` (for id 7) with a UDID derived from its id.
    pub fn new(id: u32, outcome: ComputerOutcome, after: Duration) -> Self {
        Self {
            id,
            name: format!("mac-{id:04}"),
            udid: udid_for(id),
            outcome,
            after,
        }
    }
}

/// A UUID-shaped UDID, stable for an id.
fn udid_for(id: u32) -> String {
    format!("5A1D0000-0000-4000-8000-{id:012X}")
}

/// What a computer does with a policy that applies to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ComputerOutcome {
    /// Runs it; the log says `Completed`.
    Completed,
    /// Runs it; the log says `Failed`.
    Failed,
    /// Never checks in: no log, and its `lastContactTime` stays 30 days in the past.
    NeverCheckIn,
}

/// One line of a computer's policy history, as [`crate::SimHandle::policy_logs`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SimPolicyLog {
    pub computer_id: u32,
    pub policy_id: u32,
    pub policy_name: String,
    pub username: String,
    pub at: OffsetDateTime,
    /// `Completed` or `Failed`.
    pub status: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Computer {
    pub(crate) spec: SimComputer,
    pub(crate) last_contact: OffsetDateTime,
    pub(crate) enrolled: OffsetDateTime,
}

#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub(crate) id: u32,
    pub(crate) name: String,
    pub(crate) smart: bool,
    pub(crate) members: Vec<u32>,
    pub(crate) criteria: Option<Element>,
    pub(crate) origin: Option<Origin>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct RunKey {
    policy: u32,
    computer: u32,
    generation: u32,
}

#[derive(Debug)]
pub(crate) struct Fleet {
    pub(crate) computers: BTreeMap<u32, Computer>,
    pub(crate) groups: BTreeMap<u32, Group>,
    pub(crate) logs: Vec<SimPolicyLog>,
    /// Runs waiting for their computer's check-in, with the moment the policy started applying.
    pending: BTreeMap<RunKey, OffsetDateTime>,
    done: BTreeSet<RunKey>,
    epoch: OffsetDateTime,
    elapsed: Duration,
}

impl Fleet {
    pub(crate) fn new(epoch: OffsetDateTime) -> Self {
        Self {
            computers: BTreeMap::new(),
            groups: BTreeMap::new(),
            logs: Vec::new(),
            pending: BTreeMap::new(),
            done: BTreeSet::new(),
            epoch,
            elapsed: Duration::ZERO,
        }
    }

    /// The simulated clock.
    pub(crate) fn now(&self) -> OffsetDateTime {
        self.epoch + self.elapsed
    }

    /// Adds or replaces computers; a computer that never checks in last made contact 30 days ago.
    pub(crate) fn upsert_computers(&mut self, computers: Vec<SimComputer>) {
        let now = self.now();
        for spec in computers {
            let last_contact = match spec.outcome {
                ComputerOutcome::NeverCheckIn => now - Duration::from_secs(30 * 86_400),
                _ => now,
            };
            let enrolled = last_contact - Duration::from_secs(86_400);
            self.computers.insert(
                spec.id,
                Computer {
                    spec,
                    last_contact,
                    enrolled,
                },
            );
        }
    }

    pub(crate) fn group_of_name(&self, name: &str) -> Option<&Group> {
        self.groups
            .values()
            .find(|g| g.name.eq_ignore_ascii_case(name))
    }

    pub(crate) fn computer_of_name(&self, name: &str) -> Option<&Computer> {
        self.computers
            .values()
            .find(|c| c.spec.name.eq_ignore_ascii_case(name))
    }

    /// The groups a computer belongs to.
    pub(crate) fn groups_of(&self, computer: u32) -> impl Iterator<Item = &Group> {
        self.groups
            .values()
            .filter(move |g| g.members.contains(&computer))
    }

    /// Moves the clock and lets every computer run what has come due.
    pub(crate) fn advance(&mut self, by: Duration, policies: &BTreeMap<u32, Policy>) {
        self.evaluate(policies);
        self.elapsed += by;
        self.evaluate(policies);
    }

    /// Brings the run bookkeeping up to date with the policies and groups as they are now: new
    /// (policy, computer) pairs start waiting, pairs no longer in scope stop waiting, and waits
    /// that have come due are logged.
    pub(crate) fn evaluate(&mut self, policies: &BTreeMap<u32, Policy>) {
        let now = self.now();
        let mut applicable = BTreeSet::new();
        for policy in policies.values().filter(|p| p.enabled && p.trigger_checkin) {
            for computer in self.in_scope(policy) {
                applicable.insert(RunKey {
                    policy: policy.id,
                    computer,
                    generation: policy.package_generation,
                });
            }
        }
        self.pending.retain(|key, _| applicable.contains(key));
        for key in applicable {
            if !self.done.contains(&key) {
                self.pending.entry(key).or_insert(now);
            }
        }
        let mut due: Vec<(OffsetDateTime, RunKey)> = self
            .pending
            .iter()
            .filter_map(|(key, since)| {
                let computer = self.computers.get(&key.computer)?;
                if computer.spec.outcome == ComputerOutcome::NeverCheckIn {
                    return None;
                }
                let at = *since + computer.spec.after;
                (at <= now).then_some((at, *key))
            })
            .collect();
        due.sort();
        for (at, key) in due {
            self.pending.remove(&key);
            self.done.insert(key);
            let Some(computer) = self.computers.get_mut(&key.computer) else {
                continue;
            };
            let status = if computer.spec.outcome == ComputerOutcome::Failed {
                "Failed"
            } else {
                "Completed"
            };
            computer.last_contact = computer.last_contact.max(at);
            let policy_name = policies
                .get(&key.policy)
                .map(|p| p.name.clone())
                .unwrap_or_default();
            self.logs.push(SimPolicyLog {
                computer_id: key.computer,
                policy_id: key.policy,
                policy_name,
                username: "localadmin".to_owned(),
                at,
                status: status.to_owned(),
            });
        }
    }

    /// The computers a policy's scope reaches.
    fn in_scope(&self, policy: &Policy) -> BTreeSet<u32> {
        let scope = &policy.scope;
        let mut reached: BTreeSet<u32> = if scope.all_computers {
            self.computers.keys().copied().collect()
        } else {
            let direct = scope.computers.iter().copied();
            let via_groups = scope
                .groups
                .iter()
                .filter_map(|g| self.groups.get(g))
                .flat_map(|g| g.members.iter().copied());
            direct
                .chain(via_groups)
                .filter(|c| self.computers.contains_key(c))
                .collect()
        };
        for excluded in &scope.excluded_computers {
            reached.remove(excluded);
        }
        for group in scope
            .excluded_groups
            .iter()
            .filter_map(|g| self.groups.get(g))
        {
            for member in &group.members {
                reached.remove(member);
            }
        }
        reached
    }
}
