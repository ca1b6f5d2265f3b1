//! Test helpers for the functions' handler tests: the sample events in `events/api/`.

use lambda_http::{Body, Request, Response};

fn path(name: &str) -> String {
    format!(
        "{}/../../events/api/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    )
}

/// The sample event's text.
///
/// # Panics
/// If the sample does not exist.
pub fn raw(name: &str) -> String {
    std::fs::read_to_string(path(name)).unwrap_or_else(|e| panic!("{}: {e}", path(name)))
}

/// The sample event as a request.
///
/// # Panics
/// If the sample does not exist or is not an API Gateway event.
pub fn event(name: &str) -> Request {
    lambda_http::request::from_str(&raw(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The sample event's JSON with its `eucora:roles` claim replaced.
///
/// # Panics
/// If the sample does not exist or is not JSON.
pub fn raw_with_roles(name: &str, roles: &str) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(&raw(name)).expect("sample is JSON");
    v["requestContext"]["authorizer"]["jwt"]["claims"]["eucora:roles"] = roles.into();
    v
}

/// The sample event with its `eucora:roles` claim replaced.
///
/// # Panics
/// If the sample does not exist or is not an API Gateway event.
pub fn event_with_roles(name: &str, roles: &str) -> Request {
    let mut v: serde_json::Value = serde_json::from_str(&raw(name)).expect("sample is JSON");
    v["requestContext"]["authorizer"]["jwt"]["claims"]["eucora:roles"] = roles.into();
    lambda_http::request::from_str(&v.to_string()).expect("still an API Gateway event")
}

/// Makes the sample event's claims name another person: `person` as the subject (`sub`) and, the
/// samples being Entra ID tokens, as the object id (`oid`) the actor is keyed on.
pub fn set_person(event: &mut serde_json::Value, person: &str) {
    let claims = &mut event["requestContext"]["authorizer"]["jwt"]["claims"];
    claims["sub"] = person.into();
    claims["oid"] = person.into();
}

/// The sample event sent by another person (see [`set_person`]) with other roles.
///
/// # Panics
/// If the sample does not exist or is not an API Gateway event.
pub fn event_as(name: &str, sub: &str, roles: &str) -> Request {
    let mut v: serde_json::Value = serde_json::from_str(&raw(name)).expect("sample is JSON");
    set_person(&mut v, sub);
    v["requestContext"]["authorizer"]["jwt"]["claims"]["eucora:roles"] = roles.into();
    lambda_http::request::from_str(&v.to_string()).expect("still an API Gateway event")
}

/// A response's JSON body.
pub fn json_of(r: &Response<Body>) -> serde_json::Value {
    match r.body() {
        Body::Text(t) => serde_json::from_str(t).unwrap_or(serde_json::Value::Null),
        _ => serde_json::Value::Null,
    }
}
