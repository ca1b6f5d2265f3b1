//! The route table: token routes first, then the Bearer check, then the Jamf Pro API (`/api`)
//! or the Classic API (`/JSSResource`).

mod auth;
mod classic;
mod pro;

use crate::http::{Family, Reply, Request};
use crate::state::Shared;

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
    let authorised = request
        .bearer()
        .is_some_and(|token| state.token(token).is_some());
    if !authorised {
        return Reply::unauthorized(family);
    }
    if state
        .denied
        .iter()
        .any(|m| m.matches(&request.method, &request.path))
    {
        return Reply::missing_privilege(family);
    }
    match family {
        Family::Pro => pro::route(&mut state, request),
        _ => classic::route(&mut state, request),
    }
}
