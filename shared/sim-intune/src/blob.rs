//! The Azure Storage blob behind each content file's SAS URI (`{base}/blob/{fileId}?...&sig=...`):
//! Put Block (`comp=block&blockid=...`), Put Block List (`comp=blocklist`) and Put Blob.

use std::collections::HashMap;
use std::time::SystemTime;

use hyper::Method;

use crate::faults::Fault;
use crate::state::{Blob, State};
use crate::wire::{Ctx, Reply, http_date, iso, retry_after_value};

const STORAGE_VERSION: &str = "2019-02-02";

/// Answers one request to `/blob/{fileId}`.
pub(crate) fn handle(state: &mut State, ctx: &Ctx) -> Reply {
    let name = ctx.path.trim_start_matches("/blob/").to_ascii_lowercase();
    let Some(blob) = state.blobs.get_mut(&name) else {
        return error(
            ctx,
            404,
            "ResourceNotFound",
            "The specified resource does not exist.",
        );
    };
    if ctx.method != Method::PUT {
        return error(
            ctx,
            405,
            "UnsupportedHttpVerb",
            "The resource doesn't support specified Http Verb.",
        );
    }
    if ctx.query_param("sig").as_deref() != Some(blob.sig.as_str()) {
        return error(
            ctx,
            403,
            "AuthenticationFailed",
            "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
        );
    }
    if ctx.now > blob.expires {
        let message = format!(
            "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.\nSigned expiry time [{}] must be after signed start time [{}]",
            http_date(blob.expires),
            http_date(ctx.now)
        );
        return error(ctx, 403, "AuthenticationFailed", &message);
    }
    match ctx.query_param("comp").as_deref() {
        Some("block") => put_block(blob, ctx),
        Some("blocklist") => put_block_list(blob, ctx),
        None => put_blob(blob, ctx),
        Some(other) => error(
            ctx,
            400,
            "InvalidQueryParameterValue",
            &format!(
                "Value for one of the query parameters specified in the request URI is invalid: comp={other}"
            ),
        ),
    }
}

fn put_block(blob: &mut Blob, ctx: &Ctx) -> Reply {
    let Some(block_id) = ctx.query_param("blockid").filter(|id| !id.is_empty()) else {
        return error(
            ctx,
            400,
            "MissingRequiredQueryParameter",
            "A query parameter that's mandatory for this request is not specified: blockid.",
        );
    };
    let base64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=');
    if !block_id.chars().all(base64) || block_id.len() > 88 {
        return error(
            ctx,
            400,
            "InvalidQueryParameterValue",
            "Value for one of the query parameters specified in the request URI is invalid: blockid.",
        );
    }
    // Azure: every block id of a blob has the same length.
    let other_length = blob
        .uncommitted
        .keys()
        .chain(blob.committed.iter().map(|(id, _)| id))
        .map(String::len)
        .find(|l| *l != block_id.len());
    if other_length.is_some() {
        return error(
            ctx,
            400,
            "InvalidBlobOrBlock",
            "The specified blob or block content is invalid.",
        );
    }
    blob.uncommitted.insert(block_id, ctx.body.to_vec());
    created(ctx)
}

fn put_block_list(blob: &mut Blob, ctx: &Ctx) -> Reply {
    let Some(entries) = parse_block_list(&String::from_utf8_lossy(&ctx.body)) else {
        return error(
            ctx,
            400,
            "InvalidXmlDocument",
            "XML specified is not syntactically valid.",
        );
    };
    let committed: HashMap<&str, &Vec<u8>> = blob
        .committed
        .iter()
        .map(|(id, data)| (id.as_str(), data))
        .collect();
    let mut list = Vec::with_capacity(entries.len());
    for (kind, id) in &entries {
        let data = match kind.as_str() {
            "Latest" => blob
                .uncommitted
                .get(id)
                .or_else(|| committed.get(id.as_str()).copied()),
            "Uncommitted" => blob.uncommitted.get(id),
            _ => committed.get(id.as_str()).copied(),
        };
        match data {
            Some(data) => list.push((id.clone(), data.clone())),
            None => {
                return error(
                    ctx,
                    400,
                    "InvalidBlockList",
                    "The specified block list is invalid.",
                );
            }
        }
    }
    blob.committed = list;
    blob.uncommitted.clear();
    created(ctx).with_header(
        "etag",
        format!("\"0x8DC{:012X}\"", crate::wire::unix_seconds(ctx.now)),
    )
}

fn put_blob(blob: &mut Blob, ctx: &Ctx) -> Reply {
    match ctx.header("x-ms-blob-type") {
        None => error(
            ctx,
            400,
            "MissingRequiredHeader",
            "An HTTP header that's mandatory for this request is not specified: x-ms-blob-type.",
        ),
        Some(kind) if kind != "BlockBlob" => error(
            ctx,
            400,
            "InvalidHeaderValue",
            "The value for one of the HTTP headers is not in the correct format: x-ms-blob-type.",
        ),
        Some(_) => {
            blob.committed = vec![(String::new(), ctx.body.to_vec())];
            blob.uncommitted.clear();
            created(ctx)
        }
    }
}

/// `<BlockList><Latest>id</Latest><Committed>id</Committed><Uncommitted>id</Uncommitted></BlockList>`
/// → `[(kind, id)]` in document order.
fn parse_block_list(xml: &str) -> Option<Vec<(String, String)>> {
    let start = xml.find("<BlockList>")? + "<BlockList>".len();
    let end = xml.rfind("</BlockList>")?;
    let mut rest = xml.get(start..end)?.trim();
    let mut entries = Vec::new();
    while !rest.is_empty() {
        let kind = ["Latest", "Committed", "Uncommitted"]
            .into_iter()
            .find(|k| rest.starts_with(&format!("<{k}>")))?;
        let open = format!("<{kind}>");
        let close = format!("</{kind}>");
        let close_at = rest.find(&close)?;
        entries.push((
            kind.to_owned(),
            rest[open.len()..close_at].trim().to_owned(),
        ));
        rest = rest[close_at + close.len()..].trim_start();
    }
    Some(entries)
}

fn created(ctx: &Ctx) -> Reply {
    Reply::empty(201)
        .with_header("x-ms-request-server-encrypted", "true")
        .with_header("last-modified", http_date(ctx.now))
}

/// Azure Storage's XML error body, with its `x-ms-error-code` header.
fn error(ctx: &Ctx, status: u16, code: &str, message: &str) -> Reply {
    let body = format!(
        "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{message}\nRequestId:{}\nTime:{}</Message></Error>",
        ctx.request_id,
        iso(ctx.now)
    );
    Reply::new(status, "application/xml", body).with_header("x-ms-error-code", code.to_owned())
}

/// An injected fault, answered as Azure Storage would.
pub(crate) fn fault_reply(ctx: &Ctx, fault: &Fault) -> Option<Reply> {
    Some(match fault {
        Fault::TooManyRequests { retry_after } => {
            let reply = error(ctx, 429, "ServerBusy", "The server is busy.");
            match retry_after {
                Some(seconds) => reply.with_header("retry-after", retry_after_value(*seconds)),
                None => reply,
            }
        }
        Fault::ServiceUnavailable => error(ctx, 503, "ServerBusy", "The server is busy."),
        Fault::Unauthorized => error(
            ctx,
            401,
            "AuthenticationFailed",
            "Server failed to authenticate the request.",
        ),
        Fault::Forbidden => error(
            ctx,
            403,
            "AuthorizationFailure",
            "This request is not authorized to perform this operation.",
        ),
        Fault::Conflict => error(
            ctx,
            409,
            "BlobAlreadyExists",
            "The specified blob already exists.",
        ),
        _ => return None,
    })
}

/// Headers Azure Storage sets on every answer.
pub(crate) fn finish(ctx: &Ctx, reply: Reply, now: SystemTime) -> Reply {
    let mut reply = reply
        .with_header("x-ms-request-id", ctx.request_id.clone())
        .with_header(
            "x-ms-version",
            ctx.header("x-ms-version")
                .unwrap_or(STORAGE_VERSION)
                .to_owned(),
        )
        .with_header("server", "Windows-Azure-Blob/1.0 Microsoft-HTTPAPI/2.0")
        .with_header("date", http_date(now));
    if let Some(id) = ctx.header("x-ms-client-request-id") {
        reply = reply.with_header("x-ms-client-request-id", id.to_owned());
    }
    reply
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_lists_keep_document_order() {
        let xml = "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Latest>AAA=</Latest>\n<Committed>BBB=</Committed><Uncommitted>CCC=</Uncommitted></BlockList>";
        let entries = parse_block_list(xml).unwrap();
        assert_eq!(
            entries,
            [
                ("Latest".into(), "AAA=".into()),
                ("Committed".into(), "BBB=".into()),
                ("Uncommitted".into(), "CCC=".into())
            ]
        );
        assert_eq!(parse_block_list("<BlockList></BlockList>"), Some(vec![]));
        assert_eq!(
            parse_block_list("<BlockList><Other>x</Other></BlockList>"),
            None
        );
        assert_eq!(parse_block_list("nonsense"), None);
    }
}
