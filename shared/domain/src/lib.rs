//! The governance domain of EUCORA.
//!
//! Everything here is pure: no AWS types, no I/O, no clock reads (the [`Clock`] type is defined
//! here for the adapters to share; nothing here reads it). Time is always passed in as a
//! [`Timestamp`]. The functions and adapters around this crate turn HTTP requests, queue messages
//! and table items into these types and back.
//!
//! | module | concept |
//! |---|---|
//! | [`evidence`] | the deployment intent and its evidence pack: validation, canonical form, content hash |
//! | [`policy`] | the versioned policy file: risk weights and rubrics, CAB quorum, gates, exceptions |
//! | [`risk`] | risk model v1.0: eight factors, explainable score |
//! | [`cab`] | blast radius, CAB requirement, quorum, separation of duties, decisions |
//! | [`exception`] | exceptions: types, approvers, expiry, extension |
//! | [`incident`] | who may resolve a security incident |
//! | [`rollback`] | rollback validation records: who may record one, when the gate counts it |
//! | [`gates`] | promotion gates per ring and the promote / hold / halt verdict |
//! | [`lifecycle`] | the deployment's typed state machine |
//! | [`audit`] | audit events and the hash chain over a deployment's trail |

#[macro_use]
mod macros;
pub mod fields;
pub mod units;

pub mod audit;
pub mod cab;
pub mod evidence;
pub mod exception;
pub mod gates;
pub mod ids;
pub mod incident;
pub mod lifecycle;
pub mod policy;
pub mod ring;
pub mod risk;
pub mod rollback;
pub mod time;

pub use fields::FieldError;
pub use ids::{ActorId, CorrelationId, DeploymentId, ExceptionId, IncidentId};
pub use ring::Ring;
pub use time::{Clock, ManualClock, SystemClock, Timestamp};
