//! EUCORA's use cases.
//!
//! Each use case is a plain async function over narrow [`ports`]: it loads what it needs, decides
//! through `eucora_domain`, and writes the new state together with its audit events in one atomic
//! step. The Lambda functions call these; the tests call them with the in-memory adapter
//! ([`memory`]); production wires the DynamoDB and SQS adapters (`eucora-aws`).

pub mod actor;
pub mod budget;
pub mod memory;
pub mod messages;
pub mod ports;
pub mod record;
pub mod usecases;

pub use actor::{Actor, Forbidden};
pub use record::DeploymentRecord;
