//! Small wire helpers shared by the three surfaces: the answer type, time formats, a seeded PRNG,
//! base64url and query-string parsing.

use std::fmt::Write as _;
use std::time::SystemTime;

use bytes::Bytes;
use hyper::{HeaderMap, Method};
use serde_json::Value;
use time::OffsetDateTime;
use time::macros::format_description;

/// One answer before it becomes an HTTP response: status, extra headers, body.
#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub(crate) fn new(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Self {
        Self {
            status,
            headers: vec![("content-type", content_type.to_owned())],
            body: body.into(),
        }
    }

    pub(crate) fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub(crate) fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

/// What a handler sees of one request.
#[derive(Debug)]
pub(crate) struct Ctx {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// `http://127.0.0.1:PORT`, for links that point back at the simulator.
    pub base_url: String,
    /// This request's id (`request-id`, `x-ms-request-id`, AAD `trace_id`).
    pub request_id: String,
    /// The simulated wall clock: real time plus everything `advance` added.
    pub now: SystemTime,
}

impl Ctx {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The caller's `client-request-id`, or this request's id when it sent none (Graph does the same).
    pub(crate) fn client_request_id(&self) -> String {
        self.header("client-request-id")
            .map_or_else(|| self.request_id.clone(), str::to_owned)
    }

    /// The first value of a query parameter, percent-decoded.
    pub(crate) fn query_param(&self, name: &str) -> Option<String> {
        query_param(self.query.as_deref(), name)
    }

    pub(crate) fn json_body(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

pub(crate) fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Percent-encodes a query value (spaces as `%20`, as Graph writes its links).
pub(crate) fn encode_query_value(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// `2024-05-01T10:00:00Z` — Graph's `DateTimeOffset`.
pub(crate) fn iso(t: SystemTime) -> String {
    OffsetDateTime::from(t)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default()
}

/// `2024-05-01T10:00:00` — the `date` in a Graph error's `innerError` (no zone, as Graph writes it).
pub(crate) fn inner_error_date(t: SystemTime) -> String {
    OffsetDateTime::from(t)
        .format(format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second]"
        ))
        .unwrap_or_default()
}

/// `2024-05-01 10:00:00Z` — the `timestamp` of an identity-platform error.
pub(crate) fn aad_timestamp(t: SystemTime) -> String {
    OffsetDateTime::from(t)
        .format(format_description!(
            "[year]-[month]-[day] [hour]:[minute]:[second]Z"
        ))
        .unwrap_or_default()
}

/// `Wed, 01 May 2024 10:00:00 GMT` — the HTTP `Date` header.
pub(crate) fn http_date(t: SystemTime) -> String {
    OffsetDateTime::from(t)
        .format(format_description!(
            "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
        ))
        .unwrap_or_default()
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A small deterministic PRNG (`SplitMix64`): the simulator's ids, tokens and random faults come
/// from the configured seed, so a run can be repeated exactly.
#[derive(Debug, Clone)]
pub(crate) struct Prng(u64);

impl Prng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// A number in `0..n` (`n > 0`).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A version-4 GUID in Graph's lower-case form.
    pub(crate) fn guid(&mut self) -> String {
        let mut bytes = [0_u8; 16];
        bytes[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        bytes[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }

    /// `words` × 16 lower-case hex digits.
    pub(crate) fn hex(&mut self, words: usize) -> String {
        let mut out = String::with_capacity(words * 16);
        for _ in 0..words {
            let _ = write!(out, "{:016x}", self.next_u64());
        }
        out
    }
}

/// The `SplitMix64` finaliser, also used to derive stateless values (request ids) from a counter.
pub(crate) fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A GUID derived from two numbers, without state (for request ids).
pub(crate) fn derived_guid(a: u64, b: u64) -> String {
    let mut bytes = [0_u8; 16];
    bytes[..8].copy_from_slice(&mix(a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_le_bytes());
    bytes[8..].copy_from_slice(&mix(b.wrapping_add(a.rotate_left(17)) ^ 0x5EED_0F1D).to_le_bytes());
    uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// FNV-1a, to derive stable values (serial numbers, user ids) from a string.
pub(crate) fn fnv64(text: &str) -> u64 {
    text.bytes().fold(0xCBF2_9CE4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01B3)
    })
}

/// Unpadded base64url (RFC 4648 §5), enough to make tokens look like the JWTs they stand in for.
pub(crate) fn base64url(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let symbols = chunk.len() + 1;
        for i in 0..symbols {
            let index = (n >> (18 - 6 * i)) & 0x3F;
            out.push(char::from(ALPHABET[index as usize]));
        }
    }
    out
}

/// `2.128` → `"2.128"`, `2.0` → `"2"`: `Retry-After` as Graph writes it.
pub(crate) fn retry_after_value(seconds: f64) -> String {
    let rounded = (seconds * 1000.0).round() / 1000.0;
    format!("{rounded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64url_matches_the_rfc_examples() {
        assert_eq!(base64url(b""), "");
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64url(&[0xFB, 0xFF]), "-_8");
    }

    #[test]
    fn the_prng_is_repeatable() {
        let mut a = Prng::new(7);
        let mut b = Prng::new(7);
        assert_eq!(a.guid(), b.guid());
        assert_ne!(a.guid(), Prng::new(8).guid());
    }

    #[test]
    fn derived_guids_differ_from_the_first_digit() {
        assert_ne!(derived_guid(1, 1)[..8], derived_guid(1, 2)[..8]);
        assert_eq!(derived_guid(3, 4), derived_guid(3, 4));
    }

    #[test]
    fn retry_after_is_written_without_needless_decimals() {
        assert_eq!(retry_after_value(2.0), "2");
        assert_eq!(retry_after_value(2.128_4), "2.128");
    }

    #[test]
    fn times_have_the_formats_each_surface_uses() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_714_557_600);
        assert_eq!(iso(t), "2024-05-01T10:00:00Z");
        assert_eq!(inner_error_date(t), "2024-05-01T10:00:00");
        assert_eq!(aad_timestamp(t), "2024-05-01 10:00:00Z");
        assert_eq!(http_date(t), "Wed, 01 May 2024 10:00:00 GMT");
    }
}
