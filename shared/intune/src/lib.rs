//! The Microsoft Intune adapter: Microsoft Graph v1.0, as the platform fact sheet describes it.
//!
//! - Token: `OAuth2` client credentials at `{login}/{tenant}/oauth2/v2.0/token`, cached, refreshed
//!   5 minutes before it expires, and on a 401 (token and secret refreshed once, then one retry).
//! - Publish: find the app (by display name and the `eucora:` note carrying the correlation id,
//!   matched as the whole note or a whole line of it) or create the Win32 LOB app with
//!   `setupFilePath` from the package's `Detection.xml`; content version, file, block upload to
//!   the storage URI, commit, committed content version; wait until published; assign the ring's
//!   group by reading the assignments and posting the merged list (`assign` replaces all of them).
//!   The package is read by range and streamed, never held whole (`intunewin.rs`, `upload.rs`):
//!   its encrypted file goes to Azure in `chunk_size` blocks, a few at a time, resumable from
//!   Azure's block list across invocations; the storage URI is renewed before it gets old and on
//!   Azure's 403 for its expiry; the block list and the file are committed only once every byte's
//!   SHA-256 is the evidence pack's. Slow background steps (storage URI, renewal, commit,
//!   publishing) are waited on across invocations (`CallError::resume_later`), on the same
//!   content version; a failed commit halts with Intune's state. Packages over Intune's 30 GB
//!   are refused before anything is created.
//! - Status: the ring's population is its Entra ID group's device members (earlier rings'
//!   groups' members left out), joined through the managed devices' `azureADDeviceId` with the
//!   v1.0 `retrieveDeviceAppInstallationStatusReport`, paged side by side; its rows (one per
//!   device and user) folded into one result per device, the worst state winning
//!   (`report::one_per_device`); a device without a row is not reported (`status.rs`).
//! - Rollback: `uninstall` intent for the ring's group, or (re-pin) remove the group from this
//!   version so the previous version's assignment applies again.
//! - Every call carries `client-request-id` (the correlation id, as a GUID when it is not one) and
//!   `X-Correlation-ID`, and is recorded for the audit trail without query strings or tokens.

pub mod client;
pub mod intunewin;
mod model;
mod publish;
pub mod report;
mod status;
mod upload;

pub use client::{IntuneClient, IntuneConfig, client_request_id};
