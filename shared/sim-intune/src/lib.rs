//! A local simulator of Microsoft Graph (Intune) and the Microsoft identity platform's token
//! endpoint, with fault injection, for the Intune connector's tests and EUCORA's local run.
//!
//! It reproduces the platform facts in `shared/reference/platform-apis.md` (section A): the
//! client-credentials token endpoint and its `AADSTS` errors; Graph's bearer check, error body,
//! `request-id`/`client-request-id` headers and tenant write limit (429 with `Retry-After`);
//! Win32 LOB apps with the whole content upload (content version, file, SAS blob blocks, commit,
//! `committedContentVersion`, publishing); assignments that `assign` replaces; managed devices
//! paged by `@odata.nextLink`; Entra ID group membership (`members`, `transitiveMembers`, cast
//! to `microsoft.graph.device`, `$top` up to 999); and the install status reports, fed by
//! simulated devices that report on a simulated clock (`SimHandle::advance`): a row per device
//! and user, only once the device has checked in, in no promised order.
//!
//! Every answer takes a realistic time (`SimConfig::latency`, 100 to 400 ms by default; tests
//! set it low), and [`Fleet`] generates fleets of ten thousand devices per ring cheaply.
//!
//! ```no_run
//! # async fn demo() {
//! use std::time::Duration;
//! use eucora_sim_intune::{Fault, RouteMatch, SimConfig, SimDevice, start};
//! let sim = start(SimConfig { write_limit: 5, ..SimConfig::default() }).await;
//! sim.add_group("ring-1", vec![SimDevice::installed("d1", "PC-01", Duration::from_secs(600))]);
//! sim.faults().fail_next(RouteMatch::Token, Fault::ServiceUnavailable, 1);
//! // ... run the connector against sim.base_url() ...
//! sim.advance(Duration::from_secs(3600));
//! # }
//! ```
//!
//! Long-running steps are seen once (or `SimConfig::pending_polls` times), then settle: a new
//! content file shows `azureStorageUriRequestPending` in the answer to its POST and
//! `azureStorageUriRequestSuccess` from the next GET; after a commit, the next GET shows
//! `commitFilePending`, the one after `commitFileSuccess` (or `commitFileFailed`); after
//! `renewUpload`, `azureStorageUriRenewalPending` then `azureStorageUriRenewalSuccess`; after the
//! `committedContentVersion` PATCH the next read of the app shows `processing`, later reads
//! `published`. `advance` settles them all.
//!
//! Content uploads go to a simulated Azure blob (`blob.rs`) as strict as Azure Storage: Put
//! Block, Put Block List, Get Block List (`blocklisttype`), block ids of one length, Azure's
//! limits at the SAS's version `2017-04-17` (100 MiB a block, 50,000 blocks in a list, 100,000
//! uncommitted), a SAS URI that names a stored access policy and expires on the simulator's clock
//! (`SimConfig::sas_lifetime`, or after a set number of blocks:
//! `SimHandle::expire_sas_after_blocks`) with Azure's 403 `AuthenticationFailed` body, renewed by
//! `renewUpload` (same URI, later expiry). Uploads take time (`storage_bytes_per_second`) and
//! fail as told (`RouteMatch::PutBlock` with `Fault::ServiceUnavailable`, `Fault::InternalError`,
//! `Fault::DropConnection`, `Fault::SasRefused` for a SAS whose policy is not in effect yet,
//! after N blocks with `Faults::fail_after`). Whether a SAS may list blocks is
//! `SimConfig::sas_allows_read` (Intune's permissions are UNCONFIRMED). A blob keeps block bytes
//! only up to `SimConfig::blob_bytes_kept`, then lengths and SHA-256s; `SimHandle::content_files`
//! counts every block accepted, so a test sees a block sent twice.

mod blob;
mod config;
mod devices;
mod faults;
mod fleet;
mod graph;
mod groups;
mod odata;
mod reports;
mod server;
mod state;
mod token;
mod wire;

pub use config::{DeviceOutcome, IntuneSim, SimConfig, SimDevice, SimUser};
pub use faults::{Fault, Faults, RouteMatch};
pub use fleet::Fleet;
pub use server::{RecordedRequest, SimBlock, SimContentFile, SimHandle, start, start_on};
pub use state::{PublishingState, SimApp, SimAssignment};
