//! EUCORA's AWS adapters, one module per AWS service. Each maps between the service's wire types
//! and the ports of `eucora-service` in one place, and classifies every SDK error as retryable
//! or not.

pub mod artifacts;
pub mod config;
pub mod connector_lambda;
pub mod connector_state;
pub mod consumer;
pub mod dynamodb;
pub mod gate_run;
pub mod secrets;
pub mod sqs;
pub mod telemetry;

pub use dynamodb::DynamoStore;
pub use secrets::{SecretCache, SecretError};
pub use sqs::{QueueUrls, SqsQueue};
