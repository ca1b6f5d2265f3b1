//! The local stack: what `infra/dev run` starts on this machine. The AWS emulator (moto from the
//! project's venv) with the resources `template.yaml` declares, created by reading the template
//! itself; the two platform simulators with their fleets; the SQS event-source mappings and the
//! gate schedule running the functions' own handlers; the HTTP API behind a stand-in JWT
//! authorizer; all on one clock that can run faster than the wall clock. Also: the API client the
//! operator CLI and the demo use, and the demo's scenarios.

pub mod api;
pub mod cli;
pub mod client;
pub mod clock;
pub mod demo;
pub mod packages;
pub mod render;
pub mod stack;
