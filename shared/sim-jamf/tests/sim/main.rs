//! The simulator driven over HTTP, as the Jamf connector will drive it.

mod auth;
mod cluster;
mod concurrency;
mod faults;
mod fleet;
mod helpers;
mod packages;
mod policies;
