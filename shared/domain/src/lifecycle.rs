//! The deployment lifecycle as a typed state machine.
//!
//! ```text
//! Submitted ──score──▶ PublishBlocked ──unblocked──┐
//!     │                                            ▼
//!     └──────score──────▶ AwaitingCab(r) ──approved──▶ Approved(r) ──▶ Dispatching(r) ──▶ InRing(r)
//!                               │    ▲         ▲                              │              │
//!                            rejected └─promote (CAB)─┴─promote (no CAB)─────────────────────┤
//!                               ▼                                             ▼              ▼
//!                    Rejected (nothing live)                               Halted(r) ◀──halt─┤
//!                    Held(live ring) ──halt──▶ Halted ──resume──▶ Held      │
//!                                                       Halted(r) ──resume──▶ InRing(r)      │
//!                                                       Halted/InRing/Held(r) ──rolled back──▶ RolledBack(r)
//!                                                                    InRing(last) ──complete──▶ Completed
//! ```
//!
//! Every transition returns a `Result`: an event that does not fit the state is a
//! [`TransitionError`], never a silent no-op. Promotion goes exactly one ring up; nothing leaves a
//! terminal state (`Rejected`, `RolledBack`, `Completed`).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ring::Ring;

/// Where a deployment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeploymentState {
    /// Evidence stored, not yet scored.
    Submitted,
    /// Scored, but publishing is blocked (critical vulnerability or unsigned without exception).
    PublishBlocked,
    /// Waiting for CAB approval to enter `ring`.
    AwaitingCab { ring: Ring },
    /// Authorised to enter `ring`.
    Approved { ring: Ring },
    /// Commands for `ring` sent to the connectors.
    Dispatching { ring: Ring },
    /// Live in `ring`; gates are evaluated on schedule.
    InRing { ring: Ring },
    /// Promotion stopped in `ring` (incident or failed gate).
    Halted { ring: Ring },
    /// CAB rejected the next ring while the package is live in `ring`: the rollout goes no
    /// further, the ring stays watched (its gates evaluated, incidents reported), and the operator
    /// chooses what happens to its devices.
    Held { ring: Ring },
    /// Rolled back from `ring`. Terminal.
    RolledBack { ring: Ring },
    /// Rejected by CAB or withdrawn. Terminal.
    Rejected,
    /// Passed the gates of its last ring. Terminal.
    Completed,
}

impl DeploymentState {
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            DeploymentState::RolledBack { .. }
                | DeploymentState::Rejected
                | DeploymentState::Completed
        )
    }

    /// Live on devices and therefore evaluated by the gate schedule.
    pub fn is_in_flight(self) -> bool {
        !self.is_terminal()
            && !matches!(
                self,
                DeploymentState::Submitted | DeploymentState::PublishBlocked
            )
    }

    pub fn name(self) -> &'static str {
        match self {
            DeploymentState::Submitted => "submitted",
            DeploymentState::PublishBlocked => "publish_blocked",
            DeploymentState::AwaitingCab { .. } => "awaiting_cab",
            DeploymentState::Approved { .. } => "approved",
            DeploymentState::Dispatching { .. } => "dispatching",
            DeploymentState::InRing { .. } => "in_ring",
            DeploymentState::Halted { .. } => "halted",
            DeploymentState::Held { .. } => "held",
            DeploymentState::RolledBack { .. } => "rolled_back",
            DeploymentState::Rejected => "rejected",
            DeploymentState::Completed => "completed",
        }
    }

    /// The ring the state names, if any.
    pub fn ring(self) -> Option<Ring> {
        match self {
            DeploymentState::AwaitingCab { ring }
            | DeploymentState::Approved { ring }
            | DeploymentState::Dispatching { ring }
            | DeploymentState::InRing { ring }
            | DeploymentState::Halted { ring }
            | DeploymentState::Held { ring }
            | DeploymentState::RolledBack { ring } => Some(ring),
            _ => None,
        }
    }
}

impl fmt::Display for DeploymentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ring() {
            Some(r) => write!(f, "{} ({r})", self.name()),
            None => f.write_str(self.name()),
        }
    }
}

/// What happens to a deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LifecycleEvent {
    /// Risk scored: blocked from publishing, or cleared for the first ring (with or without CAB).
    Scored {
        publish_blocked: bool,
        cab_required: bool,
    },
    /// An exception now in effect lifts the publishing block.
    Unblocked {
        cab_required: bool,
    },
    CabApproved {
        ring: Ring,
    },
    CabRejected {
        ring: Ring,
    },
    DispatchStarted {
        ring: Ring,
    },
    DispatchConfirmed {
        ring: Ring,
    },
    /// The gates of the current ring passed: go to `to` (exactly the next ring).
    Promote {
        to: Ring,
        cab_required: bool,
    },
    /// The gates of the last ring passed.
    Complete,
    /// An incident or a failed gate stops the rollout.
    Halt,
    /// The incident is resolved; the gates will be re-validated in the ring.
    Resume,
    /// The incident is resolved, but the ring's dispatch had not finished: dispatch again.
    ResumeDispatch,
    RolledBack,
    /// The submitter withdraws a deployment that is not live yet.
    Withdraw,
}

impl LifecycleEvent {
    pub fn name(self) -> &'static str {
        match self {
            LifecycleEvent::Scored { .. } => "scored",
            LifecycleEvent::Unblocked { .. } => "unblocked",
            LifecycleEvent::CabApproved { .. } => "cab_approved",
            LifecycleEvent::CabRejected { .. } => "cab_rejected",
            LifecycleEvent::DispatchStarted { .. } => "dispatch_started",
            LifecycleEvent::DispatchConfirmed { .. } => "dispatch_confirmed",
            LifecycleEvent::Promote { .. } => "promote",
            LifecycleEvent::Complete => "complete",
            LifecycleEvent::Halt => "halt",
            LifecycleEvent::Resume => "resume",
            LifecycleEvent::ResumeDispatch => "resume_dispatch",
            LifecycleEvent::RolledBack => "rolled_back",
            LifecycleEvent::Withdraw => "withdraw",
        }
    }
}

/// An event that does not fit the state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("{state} is terminal; {event} is not possible")]
    Terminal {
        state: DeploymentState,
        event: &'static str,
    },
    #[error("{event} is not possible in state {state}")]
    Illegal {
        state: DeploymentState,
        event: &'static str,
    },
    #[error("{event} names {got} but the deployment is at {expected}")]
    RingMismatch {
        event: &'static str,
        expected: Ring,
        got: Ring,
    },
    #[error("promotion from {from} must go to the next ring, not {to}")]
    SkipsRing { from: Ring, to: Ring },
    #[error("{ring} is beyond the rollout plan, which ends at {last}")]
    BeyondPlan { ring: Ring, last: Ring },
    #[error("the deployment can complete only from its last ring {last}, it is in {ring}")]
    NotLastRing { ring: Ring, last: Ring },
}

/// A deployment's state together with the rings its plan covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lifecycle {
    pub state: DeploymentState,
    pub first_ring: Ring,
    pub last_ring: Ring,
    /// CAB rejected the next ring while a ring was live: the deployment goes no further, and a
    /// halt that is lifted returns it to `Held`, never to promotion.
    #[serde(default)]
    pub held: bool,
}

impl Lifecycle {
    /// A new deployment whose plan covers `first_ring..=last_ring`.
    pub fn new(first_ring: Ring, last_ring: Ring) -> Lifecycle {
        Lifecycle {
            state: DeploymentState::Submitted,
            first_ring,
            last_ring,
            held: false,
        }
    }

    /// The highest ring the package is live in.
    pub fn live_ring(&self) -> Option<Ring> {
        use DeploymentState as S;
        match self.state {
            S::Dispatching { ring }
            | S::InRing { ring }
            | S::Halted { ring }
            | S::Held { ring } => Some(ring),
            S::AwaitingCab { ring } | S::Approved { ring } if ring > self.first_ring => {
                Ring::from_number(i64::from(ring.number()) - 1).ok()
            }
            S::Completed => Some(self.last_ring),
            _ => None,
        }
    }

    /// A rejection of the ring awaited: with a ring live, held there (its devices keep the
    /// package: never orphaned); with nothing live, the deployment ends.
    fn rejected(self) -> Lifecycle {
        match self.live_ring() {
            Some(ring) => Lifecycle {
                state: DeploymentState::Held { ring },
                held: true,
                ..self
            },
            None => Lifecycle {
                state: DeploymentState::Rejected,
                ..self
            },
        }
    }

    /// Promotion from `ring` to `to`: exactly the next ring, within the plan.
    fn promotion(
        self,
        ring: Ring,
        to: Ring,
        cab_required: bool,
    ) -> Result<DeploymentState, TransitionError> {
        if ring.next() != Some(to) {
            return Err(TransitionError::SkipsRing { from: ring, to });
        }
        if to > self.last_ring {
            return Err(TransitionError::BeyondPlan {
                ring: to,
                last: self.last_ring,
            });
        }
        Ok(Self::entry(to, cab_required))
    }

    fn entry(ring: Ring, cab_required: bool) -> DeploymentState {
        if cab_required {
            DeploymentState::AwaitingCab { ring }
        } else {
            DeploymentState::Approved { ring }
        }
    }

    /// Applies an event, returning the new lifecycle or why the event does not fit.
    pub fn apply(self, event: LifecycleEvent) -> Result<Lifecycle, TransitionError> {
        use DeploymentState as S;
        use LifecycleEvent as E;
        let state = self.state;
        let illegal = || TransitionError::Illegal {
            state,
            event: event.name(),
        };
        let same_ring = |expected: Ring, got: Ring| {
            if expected == got {
                Ok(())
            } else {
                Err(TransitionError::RingMismatch {
                    event: event.name(),
                    expected,
                    got,
                })
            }
        };
        if state.is_terminal() {
            return Err(TransitionError::Terminal {
                state,
                event: event.name(),
            });
        }
        let next = match (state, event) {
            (
                S::Submitted,
                E::Scored {
                    publish_blocked: true,
                    ..
                },
            ) => S::PublishBlocked,
            (
                S::Submitted,
                E::Scored {
                    publish_blocked: false,
                    cab_required,
                },
            )
            | (S::PublishBlocked, E::Unblocked { cab_required }) => {
                Self::entry(self.first_ring, cab_required)
            }
            (S::AwaitingCab { ring }, E::CabApproved { ring: r }) => {
                same_ring(ring, r)?;
                S::Approved { ring }
            }
            (S::AwaitingCab { ring }, E::CabRejected { ring: r }) => {
                same_ring(ring, r)?;
                return Ok(self.rejected());
            }
            (S::Approved { ring }, E::DispatchStarted { ring: r }) => {
                same_ring(ring, r)?;
                S::Dispatching { ring }
            }
            (S::Dispatching { ring }, E::DispatchConfirmed { ring: r }) => {
                same_ring(ring, r)?;
                S::InRing { ring }
            }
            (S::InRing { ring }, E::Promote { to, cab_required }) => {
                self.promotion(ring, to, cab_required)?
            }
            (S::InRing { ring }, E::Complete) => {
                if ring != self.last_ring {
                    return Err(TransitionError::NotLastRing {
                        ring,
                        last: self.last_ring,
                    });
                }
                S::Completed
            }
            (S::InRing { ring } | S::Dispatching { ring } | S::Held { ring }, E::Halt) => {
                S::Halted { ring }
            }
            (S::AwaitingCab { .. } | S::Approved { .. }, E::Halt) => match self.live_ring() {
                Some(ring) => S::Halted { ring },
                None => return Err(illegal()),
            },
            (S::Halted { ring }, E::Resume) if self.held => S::Held { ring },
            (S::Halted { ring }, E::Resume) => S::InRing { ring },
            (S::Halted { ring }, E::ResumeDispatch) if !self.held => S::Dispatching { ring },
            (S::Halted { ring } | S::InRing { ring } | S::Held { ring }, E::RolledBack) => {
                S::RolledBack { ring }
            }
            (
                S::Submitted | S::PublishBlocked | S::AwaitingCab { .. } | S::Approved { .. },
                E::Withdraw,
            ) if self.live_ring().is_none() => S::Rejected,
            _ => return Err(illegal()),
        };
        Ok(Lifecycle {
            state: next,
            ..self
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn walk(l: Lifecycle, events: &[LifecycleEvent]) -> Result<Lifecycle, TransitionError> {
        events.iter().try_fold(l, |l, e| l.apply(*e))
    }

    #[test]
    fn low_risk_walks_ring_1_to_ring_2_and_completes() {
        use LifecycleEvent as E;
        let l = walk(
            Lifecycle::new(Ring::Canary, Ring::Pilot),
            &[
                E::Scored {
                    publish_blocked: false,
                    cab_required: false,
                },
                E::DispatchStarted { ring: Ring::Canary },
                E::DispatchConfirmed { ring: Ring::Canary },
                E::Promote {
                    to: Ring::Pilot,
                    cab_required: false,
                },
                E::DispatchStarted { ring: Ring::Pilot },
                E::DispatchConfirmed { ring: Ring::Pilot },
                E::Complete,
            ],
        )
        .unwrap();
        assert_eq!(l.state, DeploymentState::Completed);
    }

    #[test]
    fn a_skipped_ring_is_an_error() {
        let l = Lifecycle {
            state: DeploymentState::InRing { ring: Ring::Canary },
            first_ring: Ring::Canary,
            last_ring: Ring::Global,
            held: false,
        };
        assert_eq!(
            l.apply(LifecycleEvent::Promote {
                to: Ring::Department,
                cab_required: false
            }),
            Err(TransitionError::SkipsRing {
                from: Ring::Canary,
                to: Ring::Department
            })
        );
    }

    #[test]
    fn an_illegal_event_is_an_error_not_a_no_op() {
        let l = Lifecycle::new(Ring::Canary, Ring::Pilot);
        let err = l
            .apply(LifecycleEvent::DispatchStarted { ring: Ring::Canary })
            .unwrap_err();
        assert!(matches!(err, TransitionError::Illegal { .. }));
        let done = Lifecycle {
            state: DeploymentState::Rejected,
            ..l
        };
        assert!(matches!(
            done.apply(LifecycleEvent::Resume),
            Err(TransitionError::Terminal { .. })
        ));
    }

    #[test]
    fn halting_while_awaiting_cab_for_the_next_ring_halts_the_live_ring() {
        let l = Lifecycle {
            state: DeploymentState::AwaitingCab { ring: Ring::Pilot },
            first_ring: Ring::Canary,
            last_ring: Ring::Global,
            held: false,
        };
        assert_eq!(l.live_ring(), Some(Ring::Canary));
        assert_eq!(
            l.apply(LifecycleEvent::Halt).unwrap().state,
            DeploymentState::Halted { ring: Ring::Canary }
        );
        let fresh = Lifecycle {
            state: DeploymentState::AwaitingCab { ring: Ring::Canary },
            ..l
        };
        assert!(fresh.apply(LifecycleEvent::Halt).is_err());
    }

    #[test]
    fn a_rejection_of_the_next_ring_holds_the_live_ring_and_a_lifted_halt_returns_there() {
        use LifecycleEvent as E;
        let l = Lifecycle {
            state: DeploymentState::AwaitingCab { ring: Ring::Pilot },
            first_ring: Ring::Canary,
            last_ring: Ring::Global,
            held: false,
        };
        let held = l.apply(E::CabRejected { ring: Ring::Pilot }).unwrap();
        assert_eq!(held.state, DeploymentState::Held { ring: Ring::Canary });
        assert!(!held.state.is_terminal());
        assert_eq!(held.live_ring(), Some(Ring::Canary));
        // A failing gate or an incident halts it; lifting the halt returns to held, not to
        // promotion.
        let halted = held.apply(E::Halt).unwrap();
        assert_eq!(halted.state, DeploymentState::Halted { ring: Ring::Canary });
        let back = halted.apply(E::Resume).unwrap();
        assert_eq!(back.state, DeploymentState::Held { ring: Ring::Canary });
        assert!(
            back.apply(E::Promote {
                to: Ring::Pilot,
                cab_required: false
            })
            .is_err()
        );
        assert_eq!(
            back.apply(E::RolledBack).unwrap().state,
            DeploymentState::RolledBack { ring: Ring::Canary }
        );
        // With nothing live, a rejection ends the deployment.
        let first = Lifecycle {
            state: DeploymentState::AwaitingCab { ring: Ring::Canary },
            ..l
        };
        assert_eq!(
            first
                .apply(E::CabRejected { ring: Ring::Canary })
                .unwrap()
                .state,
            DeploymentState::Rejected
        );
    }
}
