//! The HTTP API's edge, shared by the functions that serve it: the route table (which also
//! generates the OpenAPI document), the caller's identity from the JWT authorizer's claims,
//! request bodies read with every bad field named, and one place that turns errors into JSON
//! responses.

pub mod bodies;
pub mod error;
pub mod identity;
pub mod openapi;
pub mod query;
pub mod response;
pub mod routes;
#[cfg(feature = "testing")]
pub mod testing;

pub use error::ApiError;
pub use identity::actor;
pub use routes::{ROUTES, Route, RouteId};

use eucora_service::Actor;
use lambda_http::Request;

/// Resolves the request's route among those this function serves, identifies the caller and
/// checks the route's roles: 404 for an unknown path or a route served elsewhere, 405 (with
/// `Allow`) for a method the path does not serve, 401 without identity, 403 for a role the route
/// does not allow.
pub fn authorize(req: &Request, function: &str) -> Result<(Actor, &'static Route), ApiError> {
    let (method, path) = (req.method().as_str(), req.uri().path());
    let route = match routes::resolve(req) {
        Ok(r) if r.function == function => r,
        Ok(_) | Err(routes::Miss::NotFound) => {
            return Err(ApiError::not_found(format!("no route {method} {path}")));
        }
        Err(routes::Miss::MethodNotAllowed(allow)) => {
            return Err(ApiError::method_not_allowed(method, path, allow));
        }
    };
    let actor = identity::actor(req)?;
    actor
        .require(route.roles)
        .map_err(|f| ApiError::forbidden(&f))?;
    Ok((actor, route))
}

/// The request body as text (API Gateway may base64-encode it).
pub fn body_text(req: &Request) -> Result<&str, ApiError> {
    match req.body() {
        lambda_http::Body::Empty => Ok(""),
        lambda_http::Body::Text(t) => Ok(t),
        lambda_http::Body::Binary(b) => {
            std::str::from_utf8(b).map_err(|_| ApiError::bad_field("(body)", "must be UTF-8 JSON"))
        }
        _ => Err(ApiError::bad_field("(body)", "unsupported body")),
    }
}
