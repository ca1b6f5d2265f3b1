//! The simulated Macs: computers, computer groups, the simulated clock, and which policies each
//! computer has run by that clock.
//!
//! A computer runs a policy when the policy is enabled, has `trigger_checkin` set and scopes the
//! computer (`all_computers`, the computer itself or one of its groups, less the exclusions). The
//! run happens the computer's `after` past the moment all of that first became true, and is logged
//! with the computer's outcome. A run fails whatever the computer's outcome when a package the
//! policy installs has no file the distribution service has processed by then (nothing to
//! download yet). A failed run is tried again at the computer's next check-in
//! ([`CHECK_IN_EVERY`] later) when the policy's `retry_event` is `check-in`, up to its
//! `retry_attempts` times; without that it stays failed. Every frequency counts as "once per
//! computer", except that a change to the policy's packages counts as a log flush: the computers
//! in scope run it again.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use time::OffsetDateTime;

use crate::catalog::Package;
use crate::cluster::Origin;
use crate::policy::Policy;
use crate::rng::SplitMix64;
use crate::xml::Element;

/// How often a Mac that checks in contacts Jamf Pro (Jamf's default check-in frequency).
pub(crate) const CHECK_IN_EVERY: Duration = Duration::from_secs(15 * 60);
/// How often a Mac submits inventory when no policy asks for it (Jamf's default: once a day).
pub(crate) const INVENTORY_EVERY: Duration = Duration::from_secs(86_400);

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

/// The make-up of a generated fleet (see [`SimComputer::generate`]): per mille of the Macs that fail
/// the policy and that never check in, the rest complete it; each runs it at a time spread
/// evenly over `within` after it starts applying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetMix {
    pub failed_per_mille: u32,
    pub never_check_in_per_mille: u32,
    pub within: Duration,
    /// Seeds who fails, who never checks in and when each runs: the same seed, the same fleet.
    pub seed: u64,
}

impl Default for FleetMix {
    /// 1 % fail, 1 % never check in, the rest complete within 24 hours.
    fn default() -> Self {
        Self {
            failed_per_mille: 10,
            never_check_in_per_mille: 10,
            within: Duration::from_secs(86_400),
            seed: 7,
        }
    }
}

impl SimComputer {
    /// `count` Macs with ids `first_id..first_id + count`, outcomes and check-in delays drawn
    /// from `mix`. Cheap: 10,000 Macs take a few megabytes and a few milliseconds.
    pub fn generate(first_id: u32, count: u32, mix: &FleetMix) -> Vec<SimComputer> {
        let mut rng = SplitMix64::new(mix.seed ^ u64::from(first_id));
        let within = mix.within.as_secs().max(1);
        (first_id..first_id.saturating_add(count))
            .map(|id| {
                let roll = u32::try_from(rng.below(1000)).unwrap_or(0);
                let outcome = if roll < mix.never_check_in_per_mille {
                    ComputerOutcome::NeverCheckIn
                } else if roll < mix.never_check_in_per_mille + mix.failed_per_mille {
                    ComputerOutcome::Failed
                } else {
                    ComputerOutcome::Completed
                };
                SimComputer::new(id, outcome, Duration::from_secs(1 + rng.below(within)))
            })
            .collect()
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
    /// Its last contact that the fleet recorded (added, or ran a policy); see
    /// [`Computer::last_contact_at`] for the regular check-ins in between.
    pub(crate) last_contact: OffsetDateTime,
    pub(crate) enrolled: OffsetDateTime,
    /// Packages Jamf Pro installed on it, each with the inventory report that first listed it.
    pub(crate) receipts: Vec<Receipt>,
    /// Its last inventory report besides those that brought receipts: when it was added, or
    /// when it ran a policy that updates inventory (whatever the run's outcome).
    pub(crate) inventoried: OffsetDateTime,
}

/// A "Packages installed by Jamf Pro" receipt (the package's file name), as inventory lists it.
#[derive(Debug, Clone)]
pub(crate) struct Receipt {
    pub(crate) file_name: String,
    /// When an inventory report first carried it: at once when the policy updates inventory
    /// (`maintenance/recon`), else at the Mac's next daily inventory.
    pub(crate) reported: OffsetDateTime,
}

impl Computer {
    /// Its last contact by `now`: a Mac that checks in contacts Jamf every [`CHECK_IN_EVERY`]
    /// from its last recorded contact; one that never checks in keeps its last one.
    pub(crate) fn last_contact_at(&self, now: OffsetDateTime) -> OffsetDateTime {
        if self.spec.outcome == ComputerOutcome::NeverCheckIn || now <= self.last_contact {
            return self.last_contact;
        }
        let since = Duration::try_from(now - self.last_contact).unwrap_or(Duration::ZERO);
        let every = CHECK_IN_EVERY.as_secs();
        self.last_contact + Duration::from_secs(since.as_secs() / every * every)
    }

    /// The receipts inventory reports by `now`, each file name once.
    pub(crate) fn receipts_at(&self, now: OffsetDateTime) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .receipts
            .iter()
            .filter(|r| r.reported <= now)
            .map(|r| r.file_name.as_str())
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// Its last inventory report by `now`.
    pub(crate) fn report_date_at(&self, now: OffsetDateTime) -> OffsetDateTime {
        self.receipts
            .iter()
            .map(|r| r.reported)
            .filter(|at| *at <= now)
            .fold(self.inventoried.min(now), OffsetDateTime::max)
    }
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

/// A run waiting for its computer: when it is due, and how many retries are left after it.
#[derive(Debug, Clone, Copy)]
struct Pending {
    due: OffsetDateTime,
    retries_left: u32,
}

#[derive(Debug)]
pub(crate) struct Fleet {
    pub(crate) computers: BTreeMap<u32, Computer>,
    pub(crate) groups: BTreeMap<u32, Group>,
    pub(crate) logs: Vec<SimPolicyLog>,
    /// Runs waiting for their computer's check-in.
    pending: BTreeMap<RunKey, Pending>,
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
                    receipts: Vec::new(),
                    inventoried: last_contact,
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

    /// Removes a computer from the inventory (Classic reads answer 404, the Jamf Pro API's
    /// inventory leaves it out). Group memberships are the harness's and stay as they are, as
    /// a membership read just before the deletion would list it.
    pub(crate) fn delete(&mut self, id: u32) -> bool {
        self.computers.remove(&id).is_some()
    }

    /// Moves the clock and lets every computer run what has come due.
    pub(crate) fn advance(
        &mut self,
        by: Duration,
        policies: &BTreeMap<u32, Policy>,
        packages: &BTreeMap<u32, Package>,
    ) {
        self.evaluate(policies, packages);
        self.elapsed += by;
        self.evaluate(policies, packages);
    }

    /// Brings the run bookkeeping up to date with the policies and groups as they are now: new
    /// (policy, computer) pairs start waiting, pairs no longer in scope stop waiting, and waits
    /// that have come due are logged (a failed run waits again for the next check-in while the
    /// policy allows retries).
    pub(crate) fn evaluate(
        &mut self,
        policies: &BTreeMap<u32, Policy>,
        packages: &BTreeMap<u32, Package>,
    ) {
        let now = self.now();
        let mut applicable = BTreeMap::new();
        for policy in policies.values().filter(|p| p.enabled && p.trigger_checkin) {
            for computer in self.in_scope(policy) {
                let key = RunKey {
                    policy: policy.id,
                    computer,
                    generation: policy.package_generation,
                };
                applicable.insert(key, policy.check_in_retries());
            }
        }
        self.pending.retain(|key, _| applicable.contains_key(key));
        for (key, retries) in applicable {
            if self.done.contains(&key) || self.pending.contains_key(&key) {
                continue;
            }
            let Some(computer) = self.computers.get(&key.computer) else {
                continue;
            };
            self.pending.insert(
                key,
                Pending {
                    due: now + computer.spec.after,
                    retries_left: retries,
                },
            );
        }
        loop {
            let mut due: Vec<(OffsetDateTime, RunKey)> = self
                .pending
                .iter()
                .filter(|(key, pending)| {
                    pending.due <= now
                        && self
                            .computers
                            .get(&key.computer)
                            .is_some_and(|c| c.spec.outcome != ComputerOutcome::NeverCheckIn)
                })
                .map(|(key, pending)| (pending.due, *key))
                .collect();
            if due.is_empty() {
                break;
            }
            due.sort();
            for (at, key) in due {
                if let Some(pending) = self.pending.remove(&key) {
                    self.run(at, key, pending, policies, packages);
                }
            }
        }
    }

    /// A computer runs a policy at `at`: logged, receipts left on success, and waiting again for
    /// its next check-in when it failed and the policy allows a retry.
    fn run(
        &mut self,
        at: OffsetDateTime,
        key: RunKey,
        pending: Pending,
        policies: &BTreeMap<u32, Policy>,
        packages: &BTreeMap<u32, Package>,
    ) {
        let policy = policies.get(&key.policy);
        let downloadable = policy.is_some_and(|p| {
            p.packages.iter().filter(|pp| pp.installs()).all(|pp| {
                packages
                    .get(&pp.id)
                    .and_then(|pkg| pkg.upload.as_ref())
                    .is_some_and(|u| u.processed(at))
            })
        });
        let Some(computer) = self.computers.get_mut(&key.computer) else {
            return;
        };
        let failed = computer.spec.outcome == ComputerOutcome::Failed || !downloadable;
        computer.last_contact = computer.last_contact.max(at);
        if policy.is_some_and(Policy::updates_inventory) {
            computer.inventoried = computer.inventoried.max(at);
        }
        if !failed && let Some(policy) = policy {
            let reported = if policy.updates_inventory() {
                at
            } else {
                at + INVENTORY_EVERY
            };
            for package in policy.packages.iter().filter(|p| p.installs()) {
                if let Some(file) = packages.get(&package.id).map(|p| p.text("fileName")) {
                    computer.receipts.push(Receipt {
                        file_name: file,
                        reported,
                    });
                }
            }
        }
        let policy_name = policy.map(|p| p.name.clone()).unwrap_or_default();
        self.logs.push(SimPolicyLog {
            computer_id: key.computer,
            policy_id: key.policy,
            policy_name,
            username: "localadmin".to_owned(),
            at,
            status: if failed { "Failed" } else { "Completed" }.to_owned(),
        });
        if failed && pending.retries_left > 0 {
            self.pending.insert(
                key,
                Pending {
                    due: at + CHECK_IN_EVERY,
                    retries_left: pending.retries_left - 1,
                },
            );
        } else {
            self.done.insert(key);
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
