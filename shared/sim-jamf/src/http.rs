//! The HTTP/1.1 server: connections, the per-request pipeline (count in, hold, fault, route,
//! record, count out), and the request and answer types the routes work with.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue, SET_COOKIE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::catalog::FieldError;
use crate::cluster::{COOKIE_NAME, Vantage};
use crate::faults::Fault;
use crate::routes;
use crate::state::Shared;
use crate::views::RecordedRequest;
use crate::xml::Element;

/// Accepts connections until the handle's shutdown sender goes away.
pub(crate) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<()>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    // Out of file descriptors or similar: back off instead of spinning.
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                };
                let shared = Arc::clone(&shared);
                let mut closing = shutdown.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |request| handle(Arc::clone(&shared), request));
                    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = connection => {}
                        _ = closing.changed() => {}
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
}

/// Returned by the service to make hyper close the connection without answering.
#[derive(Debug)]
pub(crate) struct Dropped;

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for Dropped {}

async fn handle(
    shared: Arc<Shared>,
    request: hyper::Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Dropped> {
    let _in_flight = shared.enter();
    let seq = shared.arrivals.fetch_add(1, Ordering::SeqCst);
    let (parts, body) = request.into_parts();
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_ascii_lowercase(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let cookies = parse_cookies(&headers);
    let pinned = cookies
        .iter()
        .find(|(name, _)| name == COOKIE_NAME)
        .map(|(_, value)| value.as_str());
    let at = shared.vantage(pinned, seq);
    let mut request = Request {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        raw_query: parts.uri.query().unwrap_or_default().to_owned(),
        headers,
        cookies,
        body: Bytes::new(),
        at,
    };
    // A package's file is read as it arrives, never held whole (see `upload.rs`).
    let streamed = crate::upload::is_upload(&request.method, &request.path);
    let mut body = Some(body);
    if !streamed && let Some(body) = body.take() {
        request.body = body.collect().await.map_err(|_| Dropped)?.to_bytes();
    }

    shared.pass_gate().await;
    if !shared.hold.is_zero() {
        tokio::time::sleep(shared.hold).await;
    }
    if !shared.latency.is_zero() {
        tokio::time::sleep(shared.latency).await;
    }
    let fault = shared.faults.take(&request.method, &request.path);
    if let Some(Fault::Slow(pause)) = &fault {
        tokio::time::sleep(*pause).await;
    }
    let family = Family::of(&request.path);
    let reply = match fault {
        Some(Fault::DropConnection) => {
            record(&shared, &request, 0);
            return Err(Dropped);
        }
        Some(Fault::TooManyRequests { retry_after }) => {
            let reply = Reply::error(family, 429, "TOO_MANY_REQUESTS", "Too many requests");
            match retry_after {
                Some(seconds) => reply.with_header("retry-after", format_seconds(seconds)),
                None => reply,
            }
        }
        Some(Fault::ServiceUnavailable) => {
            Reply::error(family, 503, "SERVICE_UNAVAILABLE", "Service unavailable")
        }
        Some(Fault::Unauthorized) => Reply::unauthorized(family),
        Some(Fault::Forbidden) => Reply::error(family, 403, "INVALID_PRIVILEGE", "Forbidden"),
        Some(Fault::Conflict) => Reply::error(family, 409, "CONFLICT", "Duplicate name"),
        Some(
            ref fault @ (Fault::MalformedBody
            | Fault::LostAnswer
            | Fault::DropAfter(_)
            | Fault::Slow(_)),
        ) => {
            let reply = if streamed {
                let drop_after = match fault {
                    Fault::DropAfter(bytes) => Some(*bytes),
                    _ => None,
                };
                crate::upload::receive(&shared, &mut request, body.take(), drop_after).await?
            } else if matches!(fault, Fault::DropAfter(_)) {
                record(&shared, &request, 0);
                return Err(Dropped);
            } else {
                routes::dispatch(&shared, &request)
            };
            match fault {
                Fault::MalformedBody => reply.malformed(family),
                Fault::LostAnswer => {
                    record(&shared, &request, 0);
                    return Err(Dropped);
                }
                _ => reply,
            }
        }
        None if streamed => {
            crate::upload::receive(&shared, &mut request, body.take(), None).await?
        }
        None => routes::dispatch(&shared, &request),
    };
    Ok(respond(&shared, &request, reply).await)
}

/// Holds a list answer its extra time, records the request and adds the server's headers.
async fn respond(shared: &Shared, request: &Request, reply: Reply) -> Response<Full<Bytes>> {
    let per_record = shared
        .latency_per_record
        .saturating_mul(u32::try_from(reply.records).unwrap_or(u32::MAX));
    if !per_record.is_zero() {
        tokio::time::sleep(per_record).await;
    }
    record(shared, request, reply.status);
    // The server's own clock, as every Jamf Pro answer carries it (a client can measure token
    // lifetimes against it whatever its own clock says).
    let date = httpdate::fmt_http_date(shared.clock.now().to_system_time());
    reply
        .with_header("date", date)
        .into_response(&shared.cookies[request.at.node])
}

/// `1` for whole seconds, `2.128` otherwise.
fn format_seconds(seconds: f64) -> String {
    if seconds.fract() == 0.0 && seconds.abs() < 1e15 {
        format!("{seconds:.0}")
    } else {
        seconds.to_string()
    }
}

pub(crate) fn record(shared: &Shared, request: &Request, status: u16) {
    let recorded = RecordedRequest {
        seq: request.at.seq,
        method: request.method.clone(),
        path: request.path.clone(),
        query: request.raw_query.clone(),
        headers: request.headers.clone(),
        body: request.body_text().into_owned(),
        status,
        cookies: request.cookies.clone(),
        node: request.at.node,
    };
    shared.lock().requests.push(recorded);
}

fn parse_cookies(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .filter(|(name, _)| name == "cookie")
        .flat_map(|(_, value)| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

/// Which API a path belongs to; errors are JSON on one, HTML pages on the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    /// `/api/...`: the Jamf Pro API.
    Pro,
    /// `/JSSResource/...`: the Classic API.
    Classic,
    Other,
}

impl Family {
    pub(crate) fn of(path: &str) -> Self {
        if path == "/api" || path.starts_with("/api/") {
            Family::Pro
        } else if path == "/JSSResource" || path.starts_with("/JSSResource/") {
            Family::Classic
        } else {
            Family::Other
        }
    }
}

/// A request as the routes see it.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) raw_query: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) cookies: Vec<(String, String)>,
    pub(crate) body: Bytes,
    pub(crate) at: Vantage,
}

impl Request {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn body_text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The path's segments, percent-decoded, without empty ones.
    pub(crate) fn segments(&self) -> Vec<String> {
        self.path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(|s| percent_decode(s, false))
            .collect()
    }

    /// Every value of a query parameter, decoded.
    pub(crate) fn params(&self, name: &str) -> Vec<String> {
        form_pairs(&self.raw_query)
            .into_iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v)
            .collect()
    }

    pub(crate) fn param(&self, name: &str) -> Option<String> {
        self.params(name).into_iter().next()
    }

    /// The body read as `application/x-www-form-urlencoded`.
    pub(crate) fn form(&self) -> Vec<(String, String)> {
        form_pairs(&self.body_text())
    }

    /// The token of an `Authorization: Bearer` header.
    pub(crate) fn bearer(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
    }

    /// The user and password of an `Authorization: Basic` header.
    pub(crate) fn basic(&self) -> Option<(String, String)> {
        let value = self.header("authorization")?;
        let (scheme, encoded) = value.split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
        let (user, password) = decoded.split_once(':')?;
        Some((user.to_owned(), password.to_owned()))
    }

    /// Whether the request's `Accept` prefers JSON to XML: the Classic API answers a `GET` in
    /// JSON when asked for `application/json`, and in XML otherwise (no `Accept`, `*/*`,
    /// `application/xml`, `text/xml`). Between the two, the higher quality wins, then the
    /// first listed.
    pub(crate) fn wants_json(&self) -> bool {
        let mut json: Option<(f32, usize)> = None;
        let mut xml: Option<(f32, usize)> = None;
        let accept = self.header("accept").unwrap_or_default();
        for (index, range) in accept.split(',').enumerate() {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
            let quality = parts
                .filter_map(|p| p.trim().strip_prefix("q="))
                .find_map(|q| q.trim().parse::<f32>().ok())
                .unwrap_or(1.0);
            let slot = match media.as_str() {
                "application/json" => &mut json,
                "application/xml" | "text/xml" => &mut xml,
                _ => continue,
            };
            if quality > 0.0 && slot.is_none_or(|(q, _)| quality > q) {
                *slot = Some((quality, index));
            }
        }
        match (json, xml) {
            (Some(_), None) => true,
            (Some((jq, ji)), Some((xq, xi))) => jq.total_cmp(&xq).then(xi.cmp(&ji)).is_gt(),
            _ => false,
        }
    }

    /// `http://host:port`, as the client addressed the server.
    pub(crate) fn base_url(&self) -> String {
        format!("http://{}", self.header("host").unwrap_or("127.0.0.1"))
    }
}

fn form_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key, true), percent_decode(value, true))
        })
        .collect()
}

/// Decodes `%XX` escapes (and `+` as a space in forms); a malformed escape stays as it is.
pub(crate) fn percent_decode(text: &str, plus_is_space: bool) -> String {
    // A literal `+` arrives as `%2B`, so a bare one can only be a form's space.
    let text = if plus_is_space {
        std::borrow::Cow::Owned(text.replace('+', " "))
    } else {
        std::borrow::Cow::Borrowed(text)
    };
    percent_encoding::percent_decode_str(&text)
        .decode_utf8_lossy()
        .into_owned()
}

/// An answer before the load balancer adds its cookie.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: u16,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    headers: Vec<(&'static str, String)>,
    /// How many records the answer lists (for [`crate::SimConfig::latency_per_record`]).
    pub(crate) records: usize,
}

const JSON: &str = "application/json;charset=UTF-8";
const XML: &str = "text/xml;charset=UTF-8";
const HTML: &str = "text/html;charset=UTF-8";

impl Reply {
    pub(crate) fn json(status: u16, value: &Value) -> Self {
        Self {
            status,
            content_type: Some(JSON),
            body: value.to_string().into_bytes(),
            headers: Vec::new(),
            records: 0,
        }
    }

    pub(crate) fn xml(status: u16, element: &Element) -> Self {
        Self {
            status,
            content_type: Some(XML),
            body: element.to_document().into_bytes(),
            headers: Vec::new(),
            records: 0,
        }
    }

    /// A Classic API `GET`'s answer: JSON when the request asks for it, else XML.
    pub(crate) fn classic(request: &Request, status: u16, element: &Element) -> Self {
        if request.wants_json() {
            Self::json(status, &element.to_json_document())
        } else {
            Self::xml(status, element)
        }
    }

    pub(crate) fn empty(status: u16) -> Self {
        Self {
            status,
            content_type: None,
            body: Vec::new(),
            headers: Vec::new(),
            records: 0,
        }
    }

    /// The Classic API's error page; `detail` is its second `<p>`.
    pub(crate) fn page(status: u16, detail: &str) -> Self {
        Self {
            status,
            content_type: Some(HTML),
            body: status_page(status, detail).into_bytes(),
            headers: Vec::new(),
            records: 0,
        }
    }

    /// The Jamf Pro API's error body with one error.
    pub(crate) fn pro_error(
        status: u16,
        code: &str,
        description: &str,
        field: Option<&str>,
    ) -> Self {
        let error = json!({ "code": code, "field": field, "description": description, "id": "0" });
        Self::json(status, &json!({ "httpStatus": status, "errors": [error] }))
    }

    pub(crate) fn pro_errors(status: u16, errors: &[FieldError]) -> Self {
        let errors: Vec<Value> = errors
            .iter()
            .map(|e| json!({ "code": e.code, "field": e.field, "description": e.description, "id": "0" }))
            .collect();
        Self::json(status, &json!({ "httpStatus": status, "errors": errors }))
    }

    /// An error in the shape of the path's API.
    pub(crate) fn error(family: Family, status: u16, code: &str, description: &str) -> Self {
        match family {
            Family::Pro => Self::pro_error(status, code, description, None),
            Family::Classic => Self::page(status, &format!("Error: {description}")),
            Family::Other => Self {
                status,
                content_type: Some("text/plain;charset=UTF-8"),
                body: description.as_bytes().to_vec(),
                headers: Vec::new(),
                records: 0,
            },
        }
    }

    pub(crate) fn unauthorized(family: Family) -> Self {
        match family {
            Family::Classic => Self::page(401, "The request requires user authentication"),
            _ => Self::pro_error(401, "INVALID_TOKEN", "Unauthorized", None),
        }
    }

    /// The API client's role lacks the privilege: the Classic API answers 401 with the very page
    /// it answers a bad token with (it names no privilege), the Jamf Pro API 403
    /// `INVALID_PRIVILEGE`.
    pub(crate) fn missing_privilege(family: Family) -> Self {
        match family {
            Family::Classic => Self::unauthorized(family),
            _ => Self::pro_error(403, "INVALID_PRIVILEGE", "Forbidden", None),
        }
    }

    #[must_use]
    pub(crate) fn with_records(mut self, records: usize) -> Self {
        self.records = records;
        self
    }

    pub(crate) fn not_found(family: Family) -> Self {
        match family {
            Family::Classic => Self::page(
                404,
                "The server has not found anything matching the request URI",
            ),
            _ => Self::pro_error(404, "NOT_FOUND", "Not Found", None),
        }
    }

    pub(crate) fn method_not_allowed(family: Family) -> Self {
        match family {
            Family::Classic => Self::page(
                405,
                "The method specified in the request is not allowed for the resource identified by the request URI",
            ),
            _ => Self::pro_error(405, "METHOD_NOT_ALLOWED", "Method Not Allowed", None),
        }
    }

    #[must_use]
    pub(crate) fn with_header(mut self, name: &'static str, value: String) -> Self {
        self.headers.push((name, value));
        self
    }

    /// A 200 whose body is cut in half (or a bare opening when it had none).
    #[must_use]
    pub(crate) fn malformed(mut self, family: Family) -> Self {
        self.status = 200;
        if self.body.len() >= 2 {
            self.body.truncate(self.body.len() / 2);
        } else if family == Family::Classic {
            self.body = br#"<?xml version="1.0" encoding="UTF-8"?><"#.to_vec();
            self.content_type = Some(XML);
        } else {
            self.body = b"{\"".to_vec();
            self.content_type = Some(JSON);
        }
        self
    }

    fn into_response(self, node_cookie: &str) -> Response<Full<Bytes>> {
        let mut response = Response::new(Full::new(Bytes::from(self.body)));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let headers = response.headers_mut();
        if let Some(content_type) = self.content_type {
            headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        }
        if let Ok(cookie) =
            HeaderValue::from_str(&format!("{COOKIE_NAME}={node_cookie}; Path=/; HttpOnly"))
        {
            headers.insert(SET_COOKIE, cookie);
        }
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.append(name, value);
            }
        }
        response
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

/// The section of RFC 2616 the page links to for a status.
fn rfc_section(status: u16) -> &'static str {
    match status {
        400 => "10.4.1",
        401 => "10.4.2",
        403 => "10.4.4",
        404 => "10.4.5",
        405 => "10.4.6",
        409 => "10.4.10",
        415 => "10.4.16",
        503 => "10.5.4",
        _ => "10.5.1",
    }
}

/// The status page Jamf Pro's Classic API answers errors with, as a real server writes it (the
/// first `<p>` carries a style and the status, the second what went wrong, the third a link and
/// an unclosed `<br>`).
fn status_page(status: u16, detail: &str) -> String {
    format!(
        "<html>\n<head>\n   <title>Status page</title>\n</head>\n<body style=\"font-family: sans-serif;\">\n\
         <p style=\"font-size: 1.2em;font-weight: bold;margin: 1em 0px;\">{}</p>\n<p>{}</p>\n\
         <p>You can get technical details <a href=\"http://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec{}\">here</a>.<br>\n\
         Please continue your visit at our <a href=\"/\">home page</a>.\n</p>\n</body>\n</html>\n",
        reason(status),
        crate::xml::escape(detail),
        rfc_section(status)
    )
}

#[cfg(test)]
mod tests {
    use super::{format_seconds, percent_decode, status_page};

    #[test]
    fn decodes_percent_escapes_and_plus() {
        assert_eq!(
            percent_decode("general.name%3D%3D%22mac%2001%22", false),
            "general.name==\"mac 01\""
        );
        assert_eq!(percent_decode("a+b", true), "a b");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("100%", true), "100%");
        assert_eq!(percent_decode("%zz%4", true), "%zz%4");
    }

    #[test]
    fn retry_after_keeps_fractions() {
        assert_eq!(format_seconds(2.0), "2");
        assert_eq!(format_seconds(2.128), "2.128");
    }

    #[test]
    fn the_status_page_carries_the_detail_in_its_second_paragraph() {
        let page = status_page(409, "Error: Duplicate name");
        let paragraphs: Vec<&str> = page.split("<p").skip(1).collect();
        assert!(paragraphs[0].contains(">Conflict</p>"));
        assert!(paragraphs[1].starts_with(">Error: Duplicate name</p>"));
    }

    /// The 401 page exactly as a Jamf Pro server answered a client without the privilege
    /// (jamf/mut issue 130).
    #[test]
    fn the_401_page_is_the_real_servers() {
        assert_eq!(
            status_page(401, "The request requires user authentication"),
            "<html>\n<head>\n   <title>Status page</title>\n</head>\n<body style=\"font-family: sans-serif;\">\n\
             <p style=\"font-size: 1.2em;font-weight: bold;margin: 1em 0px;\">Unauthorized</p>\n\
             <p>The request requires user authentication</p>\n\
             <p>You can get technical details <a href=\"http://www.w3.org/Protocols/rfc2616/rfc2616-sec10.html#sec10.4.2\">here</a>.<br>\n\
             Please continue your visit at our <a href=\"/\">home page</a>.\n</p>\n</body>\n</html>\n"
        );
    }
}
