//! The route table: token routes first, then the Bearer check, then the Jamf Pro API (`/api`)
//! or the Classic API (`/JSSResource`).

mod auth;
mod classic;
pub(crate) mod pro;

use crate::http::{Family, Reply, Request};
use crate::state::{Shared, State};

pub(crate) fn dispatch(shared: &Shared, request: &Request) -> Reply {
    match request.path.as_str() {
        "/api/v1/oauth/token" | "/api/oauth/token" => return auth::oauth_token(shared, request),
        "/api/v1/auth/token" => return auth::user_token(shared, request),
        "/api/v1/auth/keep-alive" => return auth::keep_alive(shared, request),
        "/api/v1/auth/invalidate-token" => return auth::invalidate(shared, request),
        _ => {}
    }
    let family = Family::of(&request.path);
    if family == Family::Other {
        return Reply::error(Family::Other, 404, "NOT_FOUND", "Not Found");
    }
    let mut state = shared.lock();
    if let Err(refused) = authorise(&mut state, request) {
        return refused;
    }
    match family {
        Family::Pro => pro::route(&mut state, request),
        _ => classic::route(&mut state, request),
    }
}

/// The Bearer token's check, then the privilege's: a bad token gets 401; a missing privilege
/// gets 401 on the Classic API (the same page as a bad token), 403 on the Jamf Pro API.
pub(crate) fn authorise(state: &mut State, request: &Request) -> Result<(), Reply> {
    let family = Family::of(&request.path);
    let Some(token) = request.bearer().and_then(|t| state.token(t)) else {
        return Err(Reply::unauthorized(family));
    };
    if state.lacks_privilege(&token, &request.method, &request.path) {
        return Err(Reply::missing_privilege(family));
    }
    Ok(())
}
