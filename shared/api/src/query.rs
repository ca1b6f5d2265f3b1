//! Query parameters: the audit trail's cursor and page size, and the checkpoint verification
//! resumes from. Each is read strictly (a repeated parameter, a number with a sign or leading
//! zeros, a cursor or checkpoint of another form is 400 naming it), and declared in the OpenAPI
//! document from the same constants.

use eucora_domain::audit::Checkpoint;
use eucora_service::usecases::read::{AUDIT_PAGE_DEFAULT, AUDIT_PAGE_MAX};
use lambda_http::{Request, RequestExt};
use serde_json::{Value, json};

use crate::ApiError;
use crate::routes::RouteId;

/// The audit cursor's pattern: 16 lowercase hex digits (opaque to clients).
pub const CURSOR_PATTERN: &str = "^[0-9a-f]{16}$";

/// The cursor of the page after the event at stored position `after`.
pub fn cursor(after: u64) -> String {
    format!("{after:016x}")
}

fn parse_cursor(text: &str) -> Option<u64> {
    let hex = text.len() == 16 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    hex.then(|| u64::from_str_radix(text, 16).ok()).flatten()
}

/// One query parameter, if given (once).
fn single<'a>(req: &'a Request, name: &str) -> Result<Option<&'a str>, ApiError> {
    let params = req.query_string_parameters_ref();
    let all = params.and_then(|p| p.all(name)).unwrap_or_default();
    match all.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        _ => Err(ApiError::bad_field(name, "must be given at most once")),
    }
}

/// `GET /v1/deployments/{id}/audit`'s parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditQuery {
    /// The stored position after which the page starts (`None`: the trail's start).
    pub after: Option<u64>,
    pub limit: usize,
}

impl AuditQuery {
    pub fn of(req: &Request) -> Result<AuditQuery, ApiError> {
        let after = match single(req, "cursor")? {
            None => None,
            Some(c) => Some(parse_cursor(c).ok_or_else(|| {
                ApiError::bad_field(
                    "cursor",
                    "must be a next_cursor this API answered (16 lowercase hex digits)",
                )
            })?),
        };
        let limit = match single(req, "limit")? {
            None => AUDIT_PAGE_DEFAULT,
            Some(l) => {
                let canonical = l == "0" || (!l.starts_with('0') && l.len() <= 4);
                let n = l
                    .parse::<usize>()
                    .ok()
                    .filter(|_| canonical && l.bytes().all(|b| b.is_ascii_digit()));
                n.filter(|n| (1..=AUDIT_PAGE_MAX).contains(n))
                    .ok_or_else(|| {
                        ApiError::bad_field(
                            "limit",
                            &format!("must be a whole number from 1 to {AUDIT_PAGE_MAX}"),
                        )
                    })?
            }
        };
        Ok(AuditQuery { after, limit })
    }
}

/// `GET /v1/deployments/{id}/audit/verify`'s checkpoint, if given.
pub fn checkpoint(req: &Request) -> Result<Option<Checkpoint>, ApiError> {
    single(req, "checkpoint")?
        .map(|c| {
            Checkpoint::parse(c).map_err(|e| ApiError::bad_field("checkpoint", &e.to_string()))
        })
        .transpose()
}

/// The query parameters a route declares in the OpenAPI document.
pub fn parameters(route: RouteId) -> Vec<Value> {
    match route {
        RouteId::GetAudit => vec![
            json!({
                "name": "cursor", "in": "query", "required": false,
                "description": "Where the page starts: the `next_cursor` of the page before (opaque). Without it, the trail's first page.",
                "schema": { "type": "string", "pattern": CURSOR_PATTERN }
            }),
            json!({
                "name": "limit", "in": "query", "required": false,
                "description": format!("The most events in the page (default {AUDIT_PAGE_DEFAULT}). A page may hold fewer, to stay within the response size limit; only `next_cursor: null` means the end."),
                "schema": { "type": "integer", "minimum": 1, "maximum": AUDIT_PAGE_MAX, "default": AUDIT_PAGE_DEFAULT }
            }),
        ],
        RouteId::VerifyAudit => vec![json!({
            "name": "checkpoint", "in": "query", "required": false,
            "description": "Resume from the checkpoint an earlier verification answered, as `<seq>.<hash>`: only the events after it are read. A checkpoint the trail does not continue is answered `valid: false`.",
            "schema": { "type": "string", "pattern": Checkpoint::PATTERN }
        })],
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_read_back_what_they_write() {
        for n in [0, 1, 255, 99_999, u64::MAX] {
            assert_eq!(parse_cursor(&cursor(n)), Some(n));
        }
        for bad in [
            "",
            "0",
            "000000000000000g",
            "000000000000000A",
            "+00000000000000f",
            "00000000000000000",
        ] {
            assert_eq!(parse_cursor(bad), None, "{bad:?}");
        }
    }
}
