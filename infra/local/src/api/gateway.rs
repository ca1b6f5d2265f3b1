//! What API Gateway does before a function runs: check the token, find the route, and build the
//! payload-format-2.0 event the function receives.

use std::collections::BTreeMap;

use eucora_api::routes::Miss;
use eucora_api::{ApiError, Route};
use eucora_aws::{DynamoStore, SqsQueue};
use eucora_domain::{DeploymentId, ExceptionId, IncidentId, Timestamp};
use eucora_service::usecases::Services;
use lambda_http::Body;
use serde_json::{Value, json};

use super::jwt::LocalIssuer;

/// An HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    fn gateway(status: u16, message: &str) -> Answer {
        Answer {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: json!({ "message": message }).to_string(),
        }
    }
}

/// The route for a method and path, with its path parameters (percent-decoded, as API Gateway
/// hands them to a function); or why there is none (404, or 405 with the methods the path serves).
pub fn route(method: &str, path: &str) -> Result<(&'static Route, BTreeMap<String, String>), Miss> {
    let (route, raw) = eucora_api::routes::find(method, path)?;
    let params = raw
        .into_iter()
        .map(|(name, value)| {
            let decoded = percent_encoding::percent_decode_str(&value).decode_utf8_lossy();
            (name.to_owned(), decoded.into_owned())
        })
        .collect();
    Ok((route, params))
}

/// The payload-format-2.0 event API Gateway sends for this request.
pub fn event(
    route: &Route,
    params: &BTreeMap<String, String>,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &str,
    claims: &BTreeMap<String, String>,
) -> Value {
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), Value::String(v.clone())))
        .collect();
    json!({
        "version": "2.0",
        "routeKey": route.key(),
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": crate::stack::provision::ACCOUNT,
            "apiId": "local",
            "domainName": "localhost",
            "http": { "method": route.method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "local" },
            "requestId": uuid::Uuid::new_v4().to_string(),
            "routeKey": route.key(),
            "stage": "$default",
            "time": "",
            "timeEpoch": 0,
            "authorizer": { "jwt": { "claims": claims, "scopes": null } }
        },
        "pathParameters": params,
        "body": body,
        "isBase64Encoded": false
    })
}

/// Everything the local API needs: the services (table and queues in the emulator) and the
/// token issuer.
#[derive(Debug)]
pub struct Api {
    pub svc: Services<DynamoStore, SqsQueue>,
    pub issuer: LocalIssuer,
}

fn answer(r: &lambda_http::Response<Body>) -> Answer {
    Answer {
        status: r.status().as_u16(),
        headers: r
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        body: match r.body() {
            Body::Text(t) => t.clone(),
            Body::Binary(b) => String::from_utf8_lossy(b).into_owned(),
            _ => String::new(),
        },
    }
}

impl Api {
    /// One request, as API Gateway and the function together answer it.
    pub async fn handle(
        &self,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(String, String)],
        body: &str,
        now: Timestamp,
    ) -> Answer {
        let token = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            .and_then(|(_, v)| v.strip_prefix("Bearer "));
        let Some(claims) = token.and_then(|t| self.issuer.verify(t, now.unix_seconds()).ok())
        else {
            return Answer::gateway(401, "Unauthorized");
        };
        let (route, params) = match route(method, path) {
            Ok(found) => found,
            Err(Miss::NotFound) => return Answer::gateway(404, "Not Found"),
            Err(Miss::MethodNotAllowed(allow)) => {
                let e = ApiError::method_not_allowed(method, path, allow);
                return answer(&eucora_api::response::error(&e));
            }
        };
        let event = event(route, &params, path, query, headers, body, &claims);
        let Ok(req) = lambda_http::request::from_str(&event.to_string()) else {
            return Answer::gateway(500, "Internal Server Error");
        };
        let id = uuid::Uuid::now_v7().simple();
        let response = match route.function {
            "evidence-intake" => match DeploymentId::parse(format!("dep-{id}")) {
                Ok(new_id) => evidence_intake::handler::handle(&self.svc, req, now, new_id).await,
                Err(_) => return Answer::gateway(500, "Internal Server Error"),
            },
            "cab-decisions" => match ExceptionId::parse(format!("exc-{id}")) {
                Ok(new_id) => cab_decisions::handler::handle(&self.svc, req, now, new_id).await,
                Err(_) => return Answer::gateway(500, "Internal Server Error"),
            },
            "gate-evaluation" => match IncidentId::parse(format!("inc-{id}")) {
                Ok(new_id) => gate_evaluation::handler::http(&self.svc, req, now, new_id).await,
                Err(_) => return Answer::gateway(500, "Internal Server Error"),
            },
            _ => return Answer::gateway(404, "Not Found"),
        };
        answer(&response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_with_their_path_parameters() {
        let (r, p) = route("POST", "/v1/deployments/dep-1/exceptions/exc-9/approve").unwrap();
        assert_eq!(r.function, "cab-decisions");
        assert_eq!(p["id"], "dep-1");
        assert_eq!(p["exceptionId"], "exc-9");
        assert_eq!(
            route("DELETE", "/v1/deployments/dep-1").unwrap_err(),
            Miss::MethodNotAllowed(vec!["GET"])
        );
        // A trailing slash names the same resource.
        assert_eq!(
            route("GET", "/v1/deployments/").unwrap_err(),
            Miss::MethodNotAllowed(vec!["POST"])
        );
        assert_eq!(route("GET", "/v1/nothing").unwrap_err(), Miss::NotFound);
    }

    #[test]
    fn path_parameters_are_percent_decoded() {
        let (_, p) = route("GET", "/v1/deployments/dep%3A1%40x").unwrap();
        assert_eq!(p["id"], "dep:1@x");
    }
}
