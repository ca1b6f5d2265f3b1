//! The Azure Storage blob behind each content file's SAS URI
//! (`{base}/blob/{fileId}.intunewin.bin?sv=...&si=...&sig=...`): Put Block (`comp=block&blockid=...`),
//! Put Block List (`comp=blocklist`), Get Block List (`GET ...&comp=blocklist&blocklisttype=...`)
//! and Put Blob.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use hyper::Method;
use quick_xml::events::Event;

use crate::faults::Fault;
use crate::state::{Blob, Block, State};
use crate::wire::{Ctx, Reply, http_date, iso, retry_after_value};

/// The version a request runs at when its SAS names none (Intune's URIs say `sv=2017-04-17`;
/// a SAS request runs at its `sv`, whatever `x-ms-version` it sends).
const STORAGE_VERSION: &str = "2017-04-17";
/// Azure's limits at that version: a block of at most 100 MiB, at most 50,000 committed blocks
/// (and as many in a block list), at most 100,000 uncommitted ones.
const MAX_BLOCK_BYTES: usize = 100 * 1024 * 1024;
const MAX_COMMITTED_BLOCKS: usize = 50_000;
const MAX_UNCOMMITTED_BLOCKS: usize = 100_000;
const AUTHENTICATION_FAILED: &str = "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.";

/// Answers one request to `/blob/{fileId}.intunewin.bin`.
pub(crate) fn handle(state: &mut State, ctx: &Ctx) -> Reply {
    let name = ctx
        .path
        .trim_start_matches("/blob/")
        .trim_end_matches(".intunewin.bin")
        .to_ascii_lowercase();
    let (limit, can_read) = (state.config.blob_bytes_kept, state.config.sas_allows_read);
    let signed = state.blobs.get(&name).map(|blob| {
        ctx.query_param("sig").as_deref() == Some(blob.sig.as_str())
            && ctx.query_param("si").as_deref() == Some(blob.policy.as_str())
    });
    match signed {
        None => return no_blob(ctx),
        Some(false) => return signature_mismatch(ctx),
        Some(true) => {}
    }
    let Some(blob) = state.blobs.get_mut(&name) else {
        return no_blob(ctx);
    };
    if ctx.now > blob.expires {
        // Azure's answer to a SAS past its expiry (the policy's, here): the detail names the
        // expiry and the time of the request, which Azure takes as the signed start.
        let detail = format!(
            "Signed expiry time [{}] must be after signed start time [{}]",
            http_date(blob.expires),
            http_date(ctx.now)
        );
        return error_with_detail(
            ctx,
            403,
            "AuthenticationFailed",
            AUTHENTICATION_FAILED,
            &detail,
        );
    }
    let comp = ctx.query_param("comp");
    match (&ctx.method, comp.as_deref()) {
        (&Method::GET, Some("blocklist")) if !can_read => error(
            ctx,
            403,
            "AuthorizationPermissionMismatch",
            "This request is not authorized to perform this operation using this permission.",
        ),
        (&Method::GET, Some("blocklist")) => get_block_list(blob, ctx),
        (&Method::PUT, Some("block")) => {
            let reply = put_block(blob, ctx, limit);
            if reply.status == 201 {
                count_towards_expiry(state, &name, ctx.now);
            }
            reply
        }
        (&Method::PUT, Some("blocklist")) => put_block_list(blob, ctx),
        (&Method::PUT, None) => put_blob(blob, ctx, limit),
        (&Method::PUT, Some(other)) => error(
            ctx,
            400,
            "InvalidQueryParameterValue",
            &format!(
                "Value for one of the query parameters specified in the request URI is invalid: comp={other}"
            ),
        ),
        _ => error(
            ctx,
            405,
            "UnsupportedHttpVerb",
            "The resource doesn't support specified Http Verb.",
        ),
    }
}

fn no_blob(ctx: &Ctx) -> Reply {
    error(
        ctx,
        404,
        "ResourceNotFound",
        "The specified resource does not exist.",
    )
}

fn signature_mismatch(ctx: &Ctx) -> Reply {
    error_with_detail(
        ctx,
        403,
        "AuthenticationFailed",
        AUTHENTICATION_FAILED,
        "Signature did not match. String to sign used was (the simulator does not say)",
    )
}

/// The deterministic SAS expiry: after the set number of accepted blocks, this blob's SAS expires.
fn count_towards_expiry(state: &mut State, name: &str, now: SystemTime) {
    let Some(left) = state.expire_sas_after_blocks.as_mut() else {
        return;
    };
    *left = left.saturating_sub(1);
    if *left == 0 {
        state.expire_sas_after_blocks = None;
        if let Some(blob) = state.blobs.get_mut(name) {
            blob.expires = now.checked_sub(Duration::from_secs(1)).unwrap_or(now);
        }
    }
}

fn put_block(blob: &mut Blob, ctx: &Ctx, limit: u64) -> Reply {
    let Some(block_id) = ctx.query_param("blockid").filter(|id| !id.is_empty()) else {
        return error(
            ctx,
            400,
            "MissingRequiredQueryParameter",
            "A query parameter that's mandatory for this request is not specified: blockid.",
        );
    };
    let base64 = |c: char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=');
    // Azure: a block id is base64 of at most 64 bytes.
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
    if ctx.body.len() > MAX_BLOCK_BYTES {
        return error(
            ctx,
            413,
            "RequestBodyTooLarge",
            "The request body is too large and exceeds the maximum permissible limit.",
        );
    }
    if blob.uncommitted.len() >= MAX_UNCOMMITTED_BLOCKS && !blob.uncommitted.contains_key(&block_id)
    {
        return error(
            ctx,
            409,
            "BlockCountExceedsLimit",
            "The uncommitted block count cannot exceed the maximum limit of 100,000 blocks.",
        );
    }
    // A block uploaded again under the same id replaces the earlier one.
    if blob.uncommitted.remove(&block_id).is_some() {
        blob.recount();
    }
    let block = blob.block(&ctx.body, limit);
    blob.bytes_received += block.len;
    *blob.block_puts.entry(block_id.clone()).or_default() += 1;
    blob.uncommitted.insert(block_id, block);
    created(ctx)
}

/// `GET ...?comp=blocklist&blocklisttype=committed|uncommitted|all` (committed when not given).
fn get_block_list(blob: &Blob, ctx: &Ctx) -> Reply {
    let kind = ctx
        .query_param("blocklisttype")
        .unwrap_or_else(|| "committed".into());
    let (committed, uncommitted) = match kind.to_ascii_lowercase().as_str() {
        "committed" => (true, false),
        "uncommitted" => (false, true),
        "all" => (true, true),
        _ => {
            return error(
                ctx,
                400,
                "InvalidQueryParameterValue",
                "Value for one of the query parameters specified in the request URI is invalid: blocklisttype.",
            );
        }
    };
    if blob.committed.is_empty() && blob.uncommitted.is_empty() {
        return error(
            ctx,
            404,
            "BlobNotFound",
            "The specified blob does not exist.",
        );
    }
    let list = |blocks: &mut dyn Iterator<Item = (&String, &Block)>| {
        blocks.fold(String::new(), |mut out, (id, block)| {
            let _ = write!(
                out,
                "<Block><Name>{id}</Name><Size>{}</Size></Block>",
                block.len
            );
            out
        })
    };
    let mut body = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>");
    if committed {
        body.push_str("<CommittedBlocks>");
        body.push_str(&list(&mut blob.committed.iter().map(|(id, b)| (id, b))));
        body.push_str("</CommittedBlocks>");
    }
    if uncommitted {
        // Azure lists uncommitted blocks in no promised order; the simulator sorts them by id.
        let mut blocks: Vec<(&String, &Block)> = blob.uncommitted.iter().collect();
        blocks.sort_by(|a, b| a.0.cmp(b.0));
        body.push_str("<UncommittedBlocks>");
        body.push_str(&list(&mut blocks.into_iter()));
        body.push_str("</UncommittedBlocks>");
    }
    body.push_str("</BlockList>");
    let mut reply = Reply::new(200, "application/xml", body);
    if !blob.committed.is_empty() {
        reply = reply.with_header("x-ms-blob-content-length", blob.committed_len().to_string());
    }
    reply
}

fn put_block_list(blob: &mut Blob, ctx: &Ctx) -> Reply {
    let Some(entries) = parse_block_list(&ctx.body) else {
        return error(
            ctx,
            400,
            "InvalidXmlDocument",
            "XML specified is not syntactically valid.",
        );
    };
    if entries.len() > MAX_COMMITTED_BLOCKS {
        return error(
            ctx,
            400,
            "BlockListTooLong",
            "The block list may not contain more than 50,000 blocks.",
        );
    }
    let committed: HashMap<&str, &Block> = blob
        .committed
        .iter()
        .map(|(id, block)| (id.as_str(), block))
        .collect();
    let mut list = Vec::with_capacity(entries.len());
    for (kind, id) in &entries {
        let block = match kind.as_str() {
            "Latest" => blob
                .uncommitted
                .get(id)
                .or_else(|| committed.get(id.as_str()).copied()),
            "Uncommitted" => blob.uncommitted.get(id),
            _ => committed.get(id.as_str()).copied(),
        };
        match block {
            Some(block) => list.push((id.clone(), block.clone())),
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
    blob.recount();
    created(ctx).with_header(
        "etag",
        format!("\"0x8DC{:012X}\"", crate::wire::unix_seconds(ctx.now)),
    )
}

fn put_blob(blob: &mut Blob, ctx: &Ctx, limit: u64) -> Reply {
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
            blob.committed.clear();
            blob.uncommitted.clear();
            blob.kept = 0;
            let block = blob.block(&ctx.body, limit);
            blob.committed = vec![(String::new(), block)];
            created(ctx)
        }
    }
}

/// `<BlockList><Latest>id</Latest><Committed>id</Committed><Uncommitted>id</Uncommitted></BlockList>`
/// → `[(kind, id)]` in document order; `None` when it is not such a document.
fn parse_block_list(xml: &[u8]) -> Option<Vec<(String, String)>> {
    let xml = std::str::from_utf8(xml).ok()?;
    let mut reader = quick_xml::Reader::from_str(xml.trim_start_matches('\u{feff}'));
    reader.config_mut().trim_text(true);
    let mut entries = Vec::new();
    let mut depth = 0;
    let mut seen_root = false;
    let mut kind: Option<String> = None;
    let mut text = String::new();
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => {
                let name = e.local_name().as_ref().to_owned();
                match (depth, name.as_str()) {
                    (0, "BlockList") if !seen_root => seen_root = true,
                    (1, "Latest" | "Committed" | "Uncommitted") => {
                        kind = Some(name);
                        text.clear();
                    }
                    _ => return None,
                }
                depth += 1;
            }
            Event::Text(t) => {
                kind.as_ref()?;
                text.push_str(&t.xml10_content());
            }
            Event::End(_) => {
                depth -= 1;
                if depth == 1 {
                    entries.push((kind.take()?, text.trim().to_owned()));
                }
            }
            // `<BlockList/>`: an empty list.
            Event::Empty(e)
                if depth == 0 && !seen_root && e.local_name().as_ref() == "BlockList" =>
            {
                seen_root = true;
            }
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => break,
            _ => return None,
        }
    }
    (seen_root && depth == 0).then_some(entries)
}

fn created(ctx: &Ctx) -> Reply {
    Reply::empty(201)
        .with_header("x-ms-request-server-encrypted", "true")
        .with_header("last-modified", http_date(ctx.now))
}

/// Azure Storage's XML error body, with its `x-ms-error-code` header.
fn error(ctx: &Ctx, status: u16, code: &str, message: &str) -> Reply {
    error_body(ctx, status, code, message, "")
}

/// An authentication failure: Azure says why in `AuthenticationErrorDetail`.
fn error_with_detail(ctx: &Ctx, status: u16, code: &str, message: &str, detail: &str) -> Reply {
    error_body(
        ctx,
        status,
        code,
        message,
        &format!("<AuthenticationErrorDetail>{detail}</AuthenticationErrorDetail>"),
    )
}

fn error_body(ctx: &Ctx, status: u16, code: &str, message: &str, extra: &str) -> Reply {
    let body = format!(
        "\u{feff}<?xml version=\"1.0\" encoding=\"utf-8\"?><Error><Code>{code}</Code><Message>{message}\nRequestId:{}\nTime:{}</Message>{extra}</Error>",
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
        Fault::ServiceUnavailable => error(
            ctx,
            503,
            "ServerBusy",
            "The server is currently unable to receive requests. Please retry your request.",
        ),
        Fault::InternalError => error(
            ctx,
            500,
            "OperationTimedOut",
            "Operation could not be completed within the specified time.",
        ),
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
        Fault::SasRefused => signature_mismatch(ctx),
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
            ctx.query_param("sv")
                .unwrap_or_else(|| STORAGE_VERSION.to_owned()),
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
        let entries = parse_block_list(xml.as_bytes()).unwrap();
        assert_eq!(
            entries,
            [
                ("Latest".into(), "AAA=".into()),
                ("Committed".into(), "BBB=".into()),
                ("Uncommitted".into(), "CCC=".into())
            ]
        );
        assert_eq!(parse_block_list(b"<BlockList></BlockList>"), Some(vec![]));
        assert_eq!(parse_block_list(b"<BlockList/>"), Some(vec![]));
        assert_eq!(
            parse_block_list(b"<BlockList>\n  <Latest> QQ== </Latest>\n</BlockList>"),
            Some(vec![("Latest".into(), "QQ==".into())])
        );
        assert_eq!(
            parse_block_list(b"<BlockList><Other>x</Other></BlockList>"),
            None
        );
        assert_eq!(parse_block_list(b"nonsense"), None);
        assert_eq!(parse_block_list(b"<BlockList><Latest>x</Latest>"), None);
    }
}
