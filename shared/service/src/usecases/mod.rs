//! The use cases, one module per function's job.

pub mod cab;
pub mod connector;
pub mod dispatch;
pub mod exceptions;
pub mod gates;
pub mod read;
pub mod rollback;
pub mod score;
pub mod submit;

use eucora_domain::policy::Policy;

use crate::ports::StoreError;

/// What the use cases work with: a store, a queue and the policy. Built once per container.
#[derive(Debug)]
pub struct Services<S, Q> {
    pub store: S,
    pub queue: Q,
    pub policy: Policy,
}

/// Errors every use case shares.
#[derive(Debug, thiserror::Error)]
pub enum Common {
    #[error(transparent)]
    Forbidden(#[from] crate::actor::Forbidden),
    #[error("deployment {0} not found")]
    NotFound(eucora_domain::DeploymentId),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// How many times a use case re-reads and retries after losing an optimistic-lock race.
pub(crate) const CONFLICT_RETRIES: usize = 3;
