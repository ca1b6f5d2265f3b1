//! The simulator driven over HTTP, as the Jamf connector will drive it.

mod auth;
mod classic_formats;
mod cluster;
mod concurrency;
mod faults;
mod fleet;
mod helpers;
mod openapi;
mod packages;
mod policies;
mod pro_schema;
mod scale;
mod uploads;
