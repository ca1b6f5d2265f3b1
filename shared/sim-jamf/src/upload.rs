//! `POST /api/v1/packages/{id}/upload`, read as it arrives: the multipart body is scanned for its
//! `file` part chunk by chunk, every byte of the file hashed (SHA-256, SHA3-512, MD5) on the way,
//! and the file itself kept only while it is small, so a 4 GiB upload costs the simulator a few
//! buffers, not 4 GiB. The body is read at [`crate::SimConfig::upload_bytes_per_second`] at most,
//! as a real upload takes its time.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt as _;
use hyper::body::Incoming;
use md5::Digest as _;
use sha2::Digest as _;

use crate::catalog::Upload;
use crate::cluster::Replicated as _;
use crate::http::{Dropped, Reply, Request, record};
use crate::state::Shared;

/// Whether a request is a package upload (its body is streamed).
pub(crate) fn is_upload(method: &str, path: &str) -> bool {
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    method == "POST" && matches!(segments.as_slice(), ["api", "v1", "packages", _, "upload"])
}

/// Receives an upload: checks the token, the package and the body's type before reading a byte,
/// then reads the body (closing the connection after `drop_after` bytes when given, with no
/// effect), and records the file on the package.
pub(crate) async fn receive(
    shared: &Shared,
    request: &mut Request,
    body: Option<Incoming>,
    drop_after: Option<u64>,
) -> Result<Reply, Dropped> {
    let Some(mut body) = body else {
        return Err(Dropped);
    };
    let id = request
        .path
        .split('/')
        .filter(|s| !s.is_empty())
        .nth(3)
        .unwrap_or_default()
        .to_owned();
    {
        let mut state = shared.lock();
        if let Err(refused) = crate::routes::authorise(&mut state, request) {
            return Ok(refused);
        }
        if crate::routes::pro::visible_package(&state, request, &id).is_none() {
            return Ok(crate::routes::pro::package_not_found(&id));
        }
    }
    let Some(boundary) = boundary(request.header("content-type").unwrap_or_default()) else {
        return Ok(no_file_part());
    };
    let mut scanner = Scanner::new(&boundary, shared.keep_upload_bytes_under);
    let started = Instant::now();
    let mut received: u64 = 0;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else {
            // The client went away mid-upload: nothing changes.
            request.body = note(received);
            record(shared, request, 0);
            return Err(Dropped);
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        received += data.len() as u64;
        if drop_after.is_some_and(|limit| received >= limit) {
            request.body = note(received);
            record(shared, request, 0);
            return Err(Dropped);
        }
        if scanner.feed(&data).is_err() {
            request.body = note(received);
            return Ok(no_file_part());
        }
        if let Some(rate) = shared.upload_rate {
            #[allow(clippy::cast_precision_loss)]
            let due = Duration::from_secs_f64(received as f64 / rate as f64);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    request.body = note(received);
    let Some(file) = scanner.finish() else {
        return Ok(no_file_part());
    };
    let mut state = shared.lock();
    let now = state.fleet.now();
    let ready_at = (!state.processing_held).then(|| now + state.processing_delay);
    let Some(package) = id
        .parse()
        .ok()
        .and_then(|id: u32| state.packages.get_mut(&id))
    else {
        return Ok(crate::routes::pro::package_not_found(&id));
    };
    let before = package.clone();
    let file_name = if file.file_name.is_empty() {
        package.text("fileName")
    } else {
        file.file_name
    };
    package.upload = Some(Upload {
        file_name,
        size: file.size,
        sha256: file.sha256,
        sha3_512: file.sha3_512,
        md5: file.md5,
        bytes: file.bytes,
        ready_at,
    });
    package.updated_from(&before, request.at);
    let package_id = package.id;
    state.evaluate();
    Ok(crate::routes::pro::created(request, "packages", package_id))
}

/// What the recorder keeps of a streamed body.
fn note(received: u64) -> Bytes {
    Bytes::from(format!(
        "({received} bytes of multipart/form-data, read as they arrived)"
    ))
}

fn no_file_part() -> Reply {
    Reply::pro_error(
        400,
        "INVALID_FIELD",
        "a multipart/form-data part named 'file' is required",
        Some("file"),
    )
}

/// The boundary of a `multipart/form-data` content type.
fn boundary(content_type: &str) -> Option<String> {
    let (media, params) = content_type.split_once(';')?;
    if !media.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    params
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"').to_owned())
        .filter(|b| !b.is_empty())
}

/// The `file` part of a multipart body, as received.
#[derive(Debug)]
pub(crate) struct ReceivedFile {
    pub(crate) file_name: String,
    pub(crate) size: u64,
    pub(crate) sha256: String,
    pub(crate) sha3_512: String,
    pub(crate) md5: String,
    pub(crate) bytes: Option<Bytes>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Before the first delimiter.
    Preamble,
    /// Just after a delimiter: `--` ends the body, CRLF starts a part's headers.
    Delimited,
    Headers,
    Content,
    Done,
}

/// A streaming `multipart/form-data` reader that hashes the `file` part's content.
struct Scanner {
    /// `--boundary`.
    delimiter: Vec<u8>,
    stage: Stage,
    /// Bytes not yet consumed: at most a frame and a delimiter's length.
    pending: Vec<u8>,
    in_file: bool,
    file: Option<FileHash>,
    done_file: Option<ReceivedFile>,
    keep_under: u64,
}

struct FileHash {
    file_name: String,
    size: u64,
    sha256: sha2::Sha256,
    sha3_512: sha3::Sha3_512,
    md5: md5::Md5,
    bytes: Option<Vec<u8>>,
}

/// The longest part header block read.
const MAX_HEADERS: usize = 16 * 1024;

impl Scanner {
    fn new(boundary: &str, keep_under: u64) -> Self {
        Self {
            delimiter: format!("--{boundary}").into_bytes(),
            stage: Stage::Preamble,
            pending: Vec::new(),
            in_file: false,
            file: None,
            done_file: None,
            keep_under,
        }
    }

    /// Takes the next piece of the body.
    fn feed(&mut self, data: &[u8]) -> Result<(), ()> {
        if self.stage == Stage::Done {
            return Ok(());
        }
        self.pending.extend_from_slice(data);
        loop {
            match self.stage {
                Stage::Preamble => {
                    let Some(at) = find(&self.pending, &self.delimiter) else {
                        // Keep only what could still start a delimiter.
                        let keep = self.delimiter.len().saturating_sub(1);
                        let cut = self.pending.len().saturating_sub(keep);
                        self.pending.drain(..cut);
                        return Ok(());
                    };
                    self.pending.drain(..at + self.delimiter.len());
                    self.stage = Stage::Delimited;
                }
                Stage::Delimited => {
                    if self.pending.len() < 2 {
                        return Ok(());
                    }
                    if self.pending.starts_with(b"--") {
                        self.stage = Stage::Done;
                        self.pending.clear();
                        return Ok(());
                    }
                    if !self.pending.starts_with(b"\r\n") {
                        return Err(());
                    }
                    self.pending.drain(..2);
                    self.stage = Stage::Headers;
                }
                Stage::Headers => {
                    let Some(end) = find(&self.pending, b"\r\n\r\n") else {
                        return if self.pending.len() > MAX_HEADERS {
                            Err(())
                        } else {
                            Ok(())
                        };
                    };
                    let headers = String::from_utf8_lossy(&self.pending[..end]).into_owned();
                    self.pending.drain(..end + 4);
                    self.start_part(&headers);
                    self.stage = Stage::Content;
                }
                Stage::Content => {
                    let mut closing = b"\r\n".to_vec();
                    closing.extend_from_slice(&self.delimiter);
                    if let Some(at) = find(&self.pending, &closing) {
                        let content: Vec<u8> = self.pending.drain(..at).collect();
                        self.take(&content);
                        self.pending.drain(..closing.len());
                        self.end_part();
                        self.stage = Stage::Delimited;
                    } else {
                        let keep = closing.len() - 1;
                        let cut = self.pending.len().saturating_sub(keep);
                        let content: Vec<u8> = self.pending.drain(..cut).collect();
                        self.take(&content);
                        return Ok(());
                    }
                }
                Stage::Done => return Ok(()),
            }
        }
    }

    fn start_part(&mut self, headers: &str) {
        let disposition = headers
            .lines()
            .find(|line| {
                line.to_ascii_lowercase()
                    .starts_with("content-disposition:")
            })
            .unwrap_or_default();
        let param = |name: &str| {
            disposition.split(';').find_map(|p| {
                p.trim()
                    .strip_prefix(&format!("{name}="))
                    .map(|v| v.trim_matches('"').to_owned())
            })
        };
        self.in_file = param("name").as_deref() == Some("file") && self.done_file.is_none();
        if self.in_file {
            self.file = Some(FileHash {
                file_name: param("filename").unwrap_or_default(),
                size: 0,
                sha256: sha2::Sha256::new(),
                sha3_512: sha3::Sha3_512::new(),
                md5: md5::Md5::new(),
                bytes: Some(Vec::new()),
            });
        }
    }

    fn take(&mut self, content: &[u8]) {
        if !self.in_file {
            return;
        }
        let keep_under = self.keep_under;
        if let Some(file) = &mut self.file {
            file.size += content.len() as u64;
            file.sha256.update(content);
            sha3::Digest::update(&mut file.sha3_512, content);
            file.md5.update(content);
            if file.size > keep_under {
                file.bytes = None;
            } else if let Some(bytes) = &mut file.bytes {
                bytes.extend_from_slice(content);
            }
        }
    }

    fn end_part(&mut self) {
        if self.in_file
            && let Some(file) = self.file.take()
        {
            self.done_file = Some(ReceivedFile {
                file_name: file.file_name,
                size: file.size,
                sha256: hex::encode(file.sha256.finalize()),
                sha3_512: hex::encode(sha3::Digest::finalize(file.sha3_512)),
                md5: hex::encode(file.md5.finalize()),
                bytes: file.bytes.map(Bytes::from),
            });
        }
        self.in_file = false;
    }

    /// The file, when the body held a complete `file` part and ended properly.
    fn finish(self) -> Option<ReceivedFile> {
        if self.stage == Stage::Done {
            self.done_file
        } else {
            None
        }
    }
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while from + needle.len() <= haystack.len() {
        let at = from + haystack[from..].iter().position(|b| *b == first)?;
        if haystack[at..].starts_with(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use sha2::Digest as _;

    use super::{Scanner, boundary, is_upload};

    fn body(content: &[u8]) -> Vec<u8> {
        let mut body = b"--XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--XyZ\r\n\
            Content-Disposition: form-data; name=\"file\"; filename=\"App.pkg\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            .to_vec();
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n--XyZ--\r\n");
        body
    }

    #[test]
    fn finds_and_hashes_the_file_part_however_the_body_is_cut() {
        let content = b"PKG\r\n--XyQ\r\nBYTES\r\n--Xy".to_vec();
        let whole = body(&content);
        for piece in [1, 2, 3, 7, 13, whole.len()] {
            let mut scanner = Scanner::new("XyZ", 1 << 20);
            for chunk in whole.chunks(piece) {
                scanner.feed(chunk).unwrap();
            }
            let file = scanner.finish().expect("a file part");
            assert_eq!(file.file_name, "App.pkg");
            assert_eq!(file.size, content.len() as u64, "pieces of {piece}");
            assert_eq!(file.sha256, hex::encode(sha2::Sha256::digest(&content)));
            assert_eq!(file.bytes.as_deref(), Some(&content[..]));
        }
    }

    #[test]
    fn large_files_are_hashed_not_kept_and_truncated_bodies_have_no_file() {
        let content = vec![7u8; 5000];
        let whole = body(&content);
        let mut scanner = Scanner::new("XyZ", 1000);
        for chunk in whole.chunks(512) {
            scanner.feed(chunk).unwrap();
        }
        let file = scanner.finish().unwrap();
        assert_eq!(file.size, 5000);
        assert!(file.bytes.is_none());
        let mut cut = Scanner::new("XyZ", 1000);
        cut.feed(&whole[..whole.len() - 12]).unwrap();
        assert!(cut.finish().is_none(), "no closing delimiter, no file");
    }

    #[test]
    fn recognises_uploads_and_boundaries() {
        assert!(is_upload("POST", "/api/v1/packages/3/upload"));
        assert!(!is_upload("GET", "/api/v1/packages/3/upload"));
        assert!(!is_upload("POST", "/api/v1/packages"));
        assert_eq!(
            boundary("multipart/form-data; boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert_eq!(boundary("application/json"), None);
    }
}
