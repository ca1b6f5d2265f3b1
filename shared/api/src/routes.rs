//! The route table: every route, the function that serves it and the roles allowed. The
//! functions route with it, check roles with it (anything else is 403), and the OpenAPI document
//! is generated from it.

use eucora_domain::cab::Role;
use lambda_http::request::RequestContext;
use lambda_http::{Request, RequestExt};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteId {
    SubmitDeployment,
    GetDeployment,
    GetAudit,
    VerifyAudit,
    OpenApi,
    CabQueue,
    CabDecision,
    CabWithdrawal,
    RequestException,
    ApproveException,
    RejectException,
    ExtendException,
    ReportIncident,
    ResolveIncident,
    ValidateRollback,
}

/// One route of the API.
#[derive(Debug, Clone, Copy)]
pub struct Route {
    pub id: RouteId,
    pub method: &'static str,
    /// With `{name}` placeholders, as API Gateway's route key writes them.
    pub path: &'static str,
    /// The Lambda function (binary) that serves it.
    pub function: &'static str,
    pub roles: &'static [Role],
    pub summary: &'static str,
    /// The success status.
    pub success: u16,
}

const ALL_ROLES: &[Role] = &[
    Role::Packaging,
    Role::Publisher,
    Role::Cab,
    Role::SecurityReviewer,
    Role::Auditor,
];
const EXCEPTION_DECIDERS: &[Role] = &[Role::SecurityReviewer, Role::Cab];
const OPERATORS: &[Role] = &[Role::Publisher, Role::SecurityReviewer];

pub const ROUTES: &[Route] = &[
    Route {
        id: RouteId::SubmitDeployment,
        method: "POST",
        path: "/v1/deployments",
        function: "evidence-intake",
        roles: &[Role::Packaging],
        summary: "Submit a deployment with its evidence pack (Idempotency-Key header recommended)",
        success: 201,
    },
    Route {
        id: RouteId::GetDeployment,
        method: "GET",
        path: "/v1/deployments/{id}",
        function: "evidence-intake",
        roles: ALL_ROLES,
        summary: "Read a deployment: state, risk breakdown, approvals, current ring, last gate decision",
        success: 200,
    },
    Route {
        id: RouteId::GetAudit,
        method: "GET",
        path: "/v1/deployments/{id}/audit",
        function: "evidence-intake",
        roles: ALL_ROLES,
        summary: "Read a deployment's audit trail, in order, a page at a time (cursor, limit)",
        success: 200,
    },
    Route {
        id: RouteId::VerifyAudit,
        method: "GET",
        path: "/v1/deployments/{id}/audit/verify",
        function: "evidence-intake",
        roles: ALL_ROLES,
        summary: "Verify the audit trail's hash chain, page by page, from the start or a checkpoint",
        success: 200,
    },
    Route {
        id: RouteId::OpenApi,
        method: "GET",
        path: "/v1/openapi.json",
        function: "evidence-intake",
        roles: ALL_ROLES,
        summary: "This document",
        success: 200,
    },
    Route {
        id: RouteId::CabQueue,
        method: "GET",
        path: "/v1/cab/queue",
        function: "cab-decisions",
        roles: &[Role::Cab, Role::Auditor],
        summary: "Deployments awaiting a CAB decision",
        success: 200,
    },
    Route {
        id: RouteId::CabDecision,
        method: "POST",
        path: "/v1/deployments/{id}/cab/decisions",
        function: "cab-decisions",
        roles: &[Role::Cab],
        summary: "Approve (with conditions) or reject the ring a deployment awaits; an approval that expired or was withdrawn may be given again (a renewal)",
        success: 201,
    },
    Route {
        id: RouteId::CabWithdrawal,
        method: "POST",
        path: "/v1/deployments/{id}/cab/withdrawals",
        function: "cab-decisions",
        roles: &[Role::Cab],
        summary: "Withdraw one's own approval standing on the ring a deployment awaits: it stops counting toward quorum and may be given again",
        success: 200,
    },
    Route {
        id: RouteId::RequestException,
        method: "POST",
        path: "/v1/deployments/{id}/exceptions",
        function: "cab-decisions",
        roles: &[Role::Packaging, Role::Publisher],
        summary: "Request an exception (a waived gate or policy)",
        success: 201,
    },
    Route {
        id: RouteId::ApproveException,
        method: "POST",
        path: "/v1/deployments/{id}/exceptions/{exceptionId}/approve",
        function: "cab-decisions",
        roles: EXCEPTION_DECIDERS,
        summary: "Approve an exception (Security Reviewer; CAB where also required)",
        success: 200,
    },
    Route {
        id: RouteId::RejectException,
        method: "POST",
        path: "/v1/deployments/{id}/exceptions/{exceptionId}/reject",
        function: "cab-decisions",
        roles: EXCEPTION_DECIDERS,
        summary: "Reject an exception",
        success: 200,
    },
    Route {
        id: RouteId::ExtendException,
        method: "POST",
        path: "/v1/deployments/{id}/exceptions/{exceptionId}/extend",
        function: "cab-decisions",
        roles: &[Role::SecurityReviewer],
        summary: "Extend an approved exception (once, at most 90 days)",
        success: 200,
    },
    Route {
        id: RouteId::ReportIncident,
        method: "POST",
        path: "/v1/deployments/{id}/incidents",
        function: "gate-evaluation",
        roles: OPERATORS,
        summary: "Report a security incident: the rollout halts",
        success: 201,
    },
    Route {
        id: RouteId::ResolveIncident,
        method: "POST",
        path: "/v1/deployments/{id}/incidents/{incidentId}/resolve",
        function: "gate-evaluation",
        roles: OPERATORS,
        summary: "Resolve an incident: the next gate run re-validates and resumes",
        success: 200,
    },
    Route {
        id: RouteId::ValidateRollback,
        method: "POST",
        path: "/v1/deployments/{id}/rollback/validations",
        function: "gate-evaluation",
        roles: OPERATORS,
        summary: "Record a rollback run on Ring 0 devices (not by the submitter): the rollback gate reads the latest",
        success: 201,
    },
];

impl Route {
    pub fn key(&self) -> String {
        format!("{} {}", self.method, self.path)
    }

    /// The route with `id`.
    ///
    /// # Panics
    /// Never: every `RouteId` has a route (checked by the tests).
    pub fn get(id: RouteId) -> &'static Route {
        ROUTES
            .iter()
            .find(|r| r.id == id)
            .expect("every RouteId is in ROUTES")
    }
}

/// Why no route serves a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Miss {
    /// No route has this path.
    NotFound,
    /// Routes have this path, with other methods: these (for the `Allow` header).
    MethodNotAllowed(Vec<&'static str>),
}

/// The path parameters of `path` if it fits `template` (`{name}` matches one non-empty segment).
fn params(template: &'static str, path: &str) -> Option<PathParams> {
    let t: Vec<&str> = template.trim_end_matches('/').split('/').collect();
    let p: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    if t.len() != p.len() {
        return None;
    }
    let mut out = Vec::new();
    for (a, b) in t.iter().zip(&p) {
        match a.strip_prefix('{').and_then(|a| a.strip_suffix('}')) {
            Some(name) if !b.is_empty() => out.push((name, (*b).to_owned())),
            None if a == b => {}
            _ => return None,
        }
    }
    Some(out)
}

/// Path parameters by name, as they appear in the path.
pub type PathParams = Vec<(&'static str, String)>;

/// The route for a method and path, with its path parameters as they appear in the path (still
/// percent-encoded); or why there is none: 404 for an unknown path, 405 with the methods the
/// path serves.
pub fn find(method: &str, path: &str) -> Result<(&'static Route, PathParams), Miss> {
    let mut allow: Vec<&'static str> = Vec::new();
    for r in ROUTES {
        let Some(found) = params(r.path, path) else {
            continue;
        };
        if r.method == method {
            return Ok((r, found));
        }
        if !allow.contains(&r.method) {
            allow.push(r.method);
        }
    }
    if allow.is_empty() {
        Err(Miss::NotFound)
    } else {
        allow.sort_unstable();
        Err(Miss::MethodNotAllowed(allow))
    }
}

/// The route a request is for: API Gateway's route key, or else method and path.
pub fn resolve(req: &Request) -> Result<&'static Route, Miss> {
    if let Some(RequestContext::ApiGatewayV2(ctx)) = req.request_context_ref()
        && let Some(key) = ctx.route_key.as_deref()
        && let Some(r) = ROUTES.iter().find(|r| r.key() == key)
    {
        return Ok(r);
    }
    find(req.method().as_str(), req.uri().path()).map(|(r, _)| r)
}

/// A path parameter, or a 400 naming it.
pub fn path_param(req: &Request, name: &str) -> Result<String, crate::ApiError> {
    req.path_parameters()
        .first(name)
        .map(str::to_owned)
        .ok_or_else(|| crate::ApiError::bad_field(name, "path parameter is required"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_paths() {
        let matches = |t, p| params(t, p).is_some();
        assert!(matches("/v1/deployments/{id}", "/v1/deployments/dep-1"));
        assert!(!matches(
            "/v1/deployments/{id}",
            "/v1/deployments/dep-1/audit"
        ));
        assert_eq!(
            params(
                "/v1/deployments/{id}/exceptions/{exceptionId}/approve",
                "/v1/deployments/d/exceptions/e/approve"
            ),
            Some(vec![
                ("id", "d".to_owned()),
                ("exceptionId", "e".to_owned())
            ])
        );
        assert!(!matches("/v1/deployments/{id}", "/v1/deployments/"));
    }

    #[test]
    fn a_path_with_other_methods_is_405_with_them_and_an_unknown_path_404() {
        assert_eq!(
            find("DELETE", "/v1/deployments/dep-1").unwrap_err(),
            Miss::MethodNotAllowed(vec!["GET"])
        );
        assert_eq!(
            find("GET", "/v1/deployments").unwrap_err(),
            Miss::MethodNotAllowed(vec!["POST"])
        );
        assert_eq!(
            find("PUT", "/v1/deployments/d/exceptions/e/approve").unwrap_err(),
            Miss::MethodNotAllowed(vec!["POST"])
        );
        assert_eq!(find("GET", "/v1/nothing").unwrap_err(), Miss::NotFound);
        assert_eq!(
            find("GET", "/v1/cab/queue").unwrap().0.id,
            RouteId::CabQueue
        );
    }

    #[test]
    fn every_route_id_has_a_route() {
        use RouteId as R;
        for id in [
            R::SubmitDeployment,
            R::GetDeployment,
            R::GetAudit,
            R::VerifyAudit,
            R::OpenApi,
            R::CabQueue,
            R::CabDecision,
            R::CabWithdrawal,
            R::RequestException,
            R::ApproveException,
            R::RejectException,
            R::ExtendException,
            R::ReportIncident,
            R::ResolveIncident,
            R::ValidateRollback,
        ] {
            assert_eq!(Route::get(id).id, id);
        }
    }

    #[test]
    fn route_keys_are_unique() {
        let mut keys: Vec<String> = ROUTES.iter().map(Route::key).collect();
        keys.sort();
        keys.dedup();
        assert_eq!(keys.len(), ROUTES.len());
    }
}
