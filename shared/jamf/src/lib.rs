//! The Jamf Pro adapter, as the platform fact sheet and the Jamf connector specification describe it.
//!
//! - Auth: `OAuth` client credentials at `/api/v1/oauth/token`, falling back to the older
//!   `/api/oauth/token`; without `OAuth` credentials (or on a server without it), a Basic-auth user
//!   token from `/api/v1/auth/token`, kept alive with `/api/v1/auth/keep-alive`. Tokens are renewed
//!   5 minutes early (a quarter of the lifetime early for a shorter-lived token), and on a 401
//!   (token and secret refreshed once, then one retry; a 401 to the fresh token is a missing
//!   privilege, `policy_violation`).
//! - Never more than 5 requests in flight to one server across every connector container (Jamf's
//!   guidance; it has no rate limiting): each container keeps to its share, 5 divided by the
//!   containers SQS may run at once (see [`JamfConfig`]), and the load balancer's `jpro-ingress` cookie is kept so that create-then-use sequences reach
//!   the node that created the object.
//! - Publish (see `publish.rs`): find or create the package holding exactly the approved bytes
//!   (Jamf's hash of its file compared with the evidence pack's; a same-named package with other
//!   bytes is never used: the version gets a package of its own, or the publish halts naming the
//!   clash), streaming the file to Jamf in bounded memory when the package does not hold it; then
//!   find or create the policy (Classic XML API) with the `control-plane-auto` category, the
//!   package, retries at check-in, and the ring's smart group added to its scope (exclusions
//!   kept), enabled only once Jamf has processed the package.
//! - Status: the ring's smart group membership less earlier rings' members, then the Jamf Pro
//!   API's inventory in bulk (last contact and package receipts), and the policy logs (Classic
//!   `computerhistory`) only of the Macs that may have failed, within a time budget (see `status`).
//! - Rollback: the package action becomes `Uninstall` (uninstall), or the ring's group leaves the
//!   scope (re-pin: the previous version's policy applies again).

mod client;
mod publish;
mod status;
mod xml;

pub use client::{CONTAINERS_ENV, JAMF_CONNECTION_LIMIT, JamfClient, JamfConfig};
pub use publish::CATEGORY;
