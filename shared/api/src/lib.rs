//! The HTTP API's edge, shared by the functions that serve it: the route table (which also
//! generates the OpenAPI document), the caller's identity from the JWT authorizer's claims,
//! request bodies read with every bad field named, and one place that turns errors into JSON
//! responses.

pub mod bodies;
pub mod error;
pub mod identity;
pub mod openapi;
pub mod response;
pub mod routes;

pub use error::ApiError;
pub use identity::actor;
pub use routes::{ROUTES, Route, RouteId};
