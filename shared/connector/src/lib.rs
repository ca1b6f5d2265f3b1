//! The rules every connector keeps, whatever the platform:
//!
//! - [`error`]: every failed call is classified — `transient` (429, 503, timeouts, dropped
//!   connections: retry), `permanent` (409 conflict, 400 invalid payload, 404: surface to the
//!   operator), `policy_violation` (403), `unauthorized` (401: refresh the token and the secret once).
//! - [`backoff`]: 2 s base, 60 s cap, jitter, `Retry-After` honoured. Lambda never sleeps it off:
//!   the message goes back to SQS with that visibility delay.
//! - [`breaker`]: a circuit breaker per platform whose state every function instance shares (kept
//!   in DynamoDB): open after 5 consecutive transient failures, half-open after 60 s.
//! - [`ledger`]: a command (correlation id, ring, action, platform) takes effect once; a duplicate
//!   answers 409 and changes nothing on the platform.
//! - [`execute`]: the use case that runs one command through all of the above and records every
//!   external call as an audit event (correlation id, HTTP status, error class, platform ids).

pub mod artifact;
pub mod backoff;
pub mod breaker;
pub mod credentials;
pub mod error;
pub mod execute;
pub mod ledger;
pub mod memory;
pub mod platform;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::{CallError, ErrorClass};
pub use platform::{CallContext, CallRecord, Platform};
