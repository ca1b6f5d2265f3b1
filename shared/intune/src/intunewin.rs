//! The `.intunewin` package: a zip holding the encrypted installer
//! (`IntuneWinPackage/Contents/IntunePackage.intunewin`) and `IntuneWinPackage/Metadata/Detection.xml`,
//! whose `EncryptionInfo` Intune needs when the upload is committed. The connector uploads the
//! encrypted file and commits with that information; it never decrypts anything.
//!
//! A package is never held whole: [`inspect`] reads the zip's central directory, the local
//! headers and `Detection.xml` by range (the `zip` crate reads a sparse buffer that is filled
//! with the ranges it asks for), and answers where the encrypted file's bytes are, so the
//! upload can stream them.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::rc::Rc;

use bytes::Bytes;
use eucora_connector::CallError;
use eucora_connector::artifact::{ArtifactSource, Composed, Segment};
use serde::Deserialize;
use serde_json::{Value, json};

/// Where `Detection.xml` is inside the package.
pub const DETECTION: &str = "IntuneWinPackage/Metadata/Detection.xml";
/// The folder of the encrypted file (named by `Detection.xml`'s `FileName`).
pub const CONTENTS_DIR: &str = "IntuneWinPackage/Contents/";

/// The largest package Intune takes: 30 GB per Win32 app (Microsoft Learn, "Add, assign, and
/// monitor a Win32 app": "Windows application size is capped at 30 GB per app"), in decimal
/// gigabytes so the check is never more generous than the service (the domain's figure, which
/// intake checks too).
pub fn intune_max_bytes() -> u64 {
    eucora_domain::evidence::Platform::Windows
        .package_size_limit()
        .0
}

/// The first read: the end of the package, where the zip's end records and (as the packaging
/// tool writes it) `Detection.xml` and the central directory are.
const TAIL: u64 = 128 * 1024;
/// Each further read the zip reader asks for.
const RANGE: u64 = 64 * 1024;
/// At most this much is read to find the layout (the metadata of a package is kilobytes).
const MAX_INSPECTED: u64 = 8 * 1024 * 1024;

const OP: &str = "read_intunewin";

/// How the encrypted file is stored in the package's zip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentEntry {
    /// Where its (possibly compressed) bytes start in the package.
    pub data_start: u64,
    /// How many bytes it takes in the package.
    pub compressed_size: u64,
    /// Its length once decompressed: what is uploaded (`sizeEncrypted`).
    pub size: u64,
    /// Deflated (else stored as is).
    pub deflated: bool,
}

impl ContentEntry {
    /// Where its bytes end in the package.
    pub fn data_end(&self) -> u64 {
        self.data_start + self.compressed_size
    }
}

/// What the connector needs from a `.intunewin`, read by range.
#[derive(Debug, Clone)]
pub struct Package {
    /// The package's size in bytes.
    pub size: u64,
    /// `Detection.xml` `SetupFile`: the installer's path inside the package (`setupFilePath`).
    pub setup_file: String,
    /// `Detection.xml` `FileName`: the encrypted file's name.
    pub file_name: String,
    /// `UnencryptedContentSize` (`size` in Graph).
    pub unencrypted_size: u64,
    /// The `fileEncryptionInfo` object for the commit.
    pub encryption_info: Value,
    /// The encrypted file: what is uploaded.
    pub content: ContentEntry,
}

fn invalid(why: impl Into<String>) -> CallError {
    CallError::invalid_payload(OP, "INTUNEWIN_INVALID", why)
}

/// The package is bigger than Intune takes: permanent, naming the limit.
pub fn too_large(what: &str, bytes: u64, limit: u64) -> CallError {
    let (intune, phrase) = eucora_domain::evidence::Platform::Windows.package_size_limit();
    let phrase = if limit == intune {
        phrase
    } else {
        "the configured limit"
    };
    CallError::invalid_payload(
        OP,
        "INTUNE_PACKAGE_TOO_LARGE",
        format!("{what} is {bytes} bytes, over {phrase} ({limit} bytes)"),
    )
}

/// `Detection.xml`'s `ApplicationInfo` (other elements, such as `MsiInfo`, are not needed).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ApplicationInfo {
    unencrypted_content_size: u64,
    file_name: String,
    setup_file: String,
    encryption_info: EncryptionInfo,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EncryptionInfo {
    encryption_key: String,
    mac_key: String,
    initialization_vector: String,
    mac: String,
    profile_identifier: String,
    file_digest: String,
    file_digest_algorithm: String,
}

fn detection(xml: &str) -> Result<ApplicationInfo, CallError> {
    let info: ApplicationInfo = quick_xml::de::from_str(xml.trim_start_matches('\u{feff}'))
        .map_err(|e| invalid(format!("{DETECTION} is not readable: {e}")))?;
    let e = &info.encryption_info;
    for (name, value) in [
        ("SetupFile", &info.setup_file),
        ("FileName", &info.file_name),
        ("EncryptionKey", &e.encryption_key),
        ("MacKey", &e.mac_key),
        ("InitializationVector", &e.initialization_vector),
        ("Mac", &e.mac),
        ("ProfileIdentifier", &e.profile_identifier),
        ("FileDigest", &e.file_digest),
        ("FileDigestAlgorithm", &e.file_digest_algorithm),
    ] {
        if value.trim().is_empty() {
            return Err(invalid(format!("{DETECTION} has an empty {name}")));
        }
    }
    Ok(info)
}

/// A `Read + Seek` over the ranges of the package fetched so far; a read outside them fails
/// and notes where, so the range can be fetched and the parse tried again.
struct Sparse<'a> {
    ranges: &'a BTreeMap<u64, Bytes>,
    size: u64,
    pos: u64,
    missing: &'a Cell<Option<u64>>,
}

impl Read for Sparse<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() || self.pos >= self.size {
            return Ok(0);
        }
        let held = self
            .ranges
            .range(..=self.pos)
            .next_back()
            .filter(|(start, bytes)| self.pos < **start + bytes.len() as u64);
        let Some((start, bytes)) = held else {
            if self.missing.get().is_none() {
                self.missing.set(Some(self.pos));
            }
            return Err(std::io::Error::other("range not fetched yet"));
        };
        #[allow(clippy::cast_possible_truncation)] // within one fetched range
        let from = (self.pos - start) as usize;
        let n = buf.len().min(bytes.len() - from);
        buf[..n].copy_from_slice(&bytes[from..from + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Sparse<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| std::io::Error::other("seek out of range"))?;
        Ok(self.pos)
    }
}

/// Reads the zip's directory and `Detection.xml` from what has been fetched.
fn parse(reader: Sparse<'_>, size: u64) -> Result<Package, CallError> {
    let config = zip::read::Config {
        archive_offset: zip::read::ArchiveOffset::Known(0),
    };
    let mut zip = zip::ZipArchive::with_config(config, reader)
        .map_err(|e| invalid(format!("not a .intunewin package (zip): {e}")))?;
    let mut xml = String::new();
    zip.by_name(DETECTION)
        .map_err(|e| invalid(format!("{DETECTION}: {e}")))?
        .read_to_string(&mut xml)
        .map_err(|e| invalid(format!("{DETECTION}: {e}")))?;
    let info = detection(&xml)?;
    let name = format!("{CONTENTS_DIR}{}", info.file_name);
    let index = zip
        .index_for_name(&name)
        .ok_or_else(|| invalid(format!("{name} (Detection.xml FileName) is missing")))?;
    let entry = zip
        .by_index_raw(index)
        .map_err(|e| invalid(format!("{name}: {e}")))?;
    if entry.encrypted() {
        return Err(invalid(format!("{name} is zip-encrypted")));
    }
    let deflated = match entry.compression() {
        zip::CompressionMethod::Stored => false,
        zip::CompressionMethod::Deflated => true,
        other => {
            return Err(invalid(format!(
                "{name} is compressed with {other:?}; a .intunewin stores or deflates it"
            )));
        }
    };
    let content = ContentEntry {
        data_start: entry
            .data_start()
            .ok_or_else(|| invalid(format!("{name}: no data offset")))?,
        compressed_size: entry.compressed_size(),
        size: entry.size(),
        deflated,
    };
    if content.data_end() > size || (!deflated && content.compressed_size != content.size) {
        return Err(invalid(format!("{name}: its sizes do not fit the package")));
    }
    let e = info.encryption_info;
    Ok(Package {
        size,
        setup_file: info.setup_file,
        file_name: info.file_name,
        unencrypted_size: info.unencrypted_content_size,
        encryption_info: json!({
            "encryptionKey": e.encryption_key,
            "initializationVector": e.initialization_vector,
            "mac": e.mac,
            "macKey": e.mac_key,
            "profileIdentifier": e.profile_identifier,
            "fileDigest": e.file_digest,
            "fileDigestAlgorithm": e.file_digest_algorithm,
        }),
        content,
    })
}

/// Reads a package's layout by range, refusing one bigger than `max_bytes` before anything else.
pub async fn inspect<A: ArtifactSource>(
    source: &A,
    location: &str,
    max_bytes: u64,
) -> Result<Package, CallError> {
    let size = source.size(location).await?;
    if size > max_bytes {
        return Err(too_large(location, size, max_bytes));
    }
    let mut ranges = BTreeMap::new();
    let tail = size.min(TAIL);
    ranges.insert(
        size - tail,
        source.read_range(location, size - tail, tail).await?,
    );
    let mut fetched = tail;
    loop {
        let missing = Cell::new(None);
        let reader = Sparse {
            ranges: &ranges,
            size,
            pos: 0,
            missing: &missing,
        };
        let result = parse(reader, size);
        let at = match (result, missing.get()) {
            (Ok(package), _) => {
                if package.content.size > max_bytes {
                    return Err(too_large(
                        "the encrypted content",
                        package.content.size,
                        max_bytes,
                    ));
                }
                return Ok(package);
            }
            (Err(_), Some(at)) if fetched < MAX_INSPECTED => at,
            (Err(e), _) => return Err(e),
        };
        let len = RANGE.min(size - at);
        ranges.insert(at, source.read_range(location, at, len).await?);
        fetched += len;
    }
}

/// A `.intunewin`'s `Detection.xml`, with made-up but well-formed encryption information.
fn detection_xml(setup_file: &str, unencrypted: u64, digest: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<ApplicationInfo xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" ToolVersion=\"1.8.6.0\">\r\n  <Name>{setup_file}</Name>\r\n  \
         <UnencryptedContentSize>{unencrypted}</UnencryptedContentSize>\r\n  <FileName>IntunePackage.intunewin</FileName>\r\n  <SetupFile>{setup_file}</SetupFile>\r\n  \
         <EncryptionInfo>\r\n    <EncryptionKey>{}</EncryptionKey>\r\n    <MacKey>{}</MacKey>\r\n    <InitializationVector>{}</InitializationVector>\r\n    \
         <Mac>{}</Mac>\r\n    <ProfileIdentifier>ProfileVersion1</ProfileIdentifier>\r\n    <FileDigest>{}</FileDigest>\r\n    \
         <FileDigestAlgorithm>SHA256</FileDigestAlgorithm>\r\n  </EncryptionInfo>\r\n</ApplicationInfo>",
        b64(&[1; 32]),
        b64(&[2; 32]),
        b64(&[3; 16]),
        b64(&[4; 32]),
        b64(digest),
    )
}

fn zip_options(deflated: bool, large: bool) -> zip::write::SimpleFileOptions {
    zip::write::SimpleFileOptions::default()
        .compression_method(if deflated {
            zip::CompressionMethod::Deflated
        } else {
            zip::CompressionMethod::Stored
        })
        .large_file(large)
}

/// Builds a `.intunewin` (for tests and the local run's sample packages): the payload is stored
/// as the "encrypted" content, with made-up but well-formed encryption information; the
/// content first and `Detection.xml` after it, as the packaging tool writes them.
pub fn build(setup_file: &str, payload: &[u8]) -> Vec<u8> {
    build_with(setup_file, payload, false)
}

/// [`build`], with the content deflated when `deflated`.
pub fn build_with(setup_file: &str, payload: &[u8], deflated: bool) -> Vec<u8> {
    use sha2::Digest;
    let xml = detection_xml(
        setup_file,
        payload.len() as u64,
        &sha2::Sha256::digest(payload),
    );
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut out);
        let content = format!("{CONTENTS_DIR}IntunePackage.intunewin");
        // Writing to memory cannot fail.
        let _ = w.start_file(content, zip_options(deflated, false));
        let _ = w.write_all(payload);
        let _ = w.start_file(DETECTION, zip_options(false, false));
        let _ = w.write_all(xml.as_bytes());
        let _ = w.finish();
    }
    out.into_inner()
}

/// What [`generated`] records of the zip: every byte but the payload's.
#[derive(Debug, Default)]
struct Recorded {
    head: Vec<u8>,
    tail: Vec<u8>,
    /// The payload's place, once its local header is written.
    payload: Option<(u64, u64)>,
    len: u64,
}

/// Writes `bytes` at `at` in `v`, growing it as needed.
fn put(v: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    if v.len() < at + bytes.len() {
        v.resize(at + bytes.len(), 0);
    }
    v[at..at + bytes.len()].copy_from_slice(bytes);
}

/// A `Write + Seek` that keeps the zip's own bytes and lets the payload's pass (they are
/// generated again when read).
struct Recorder {
    state: Rc<std::cell::RefCell<Recorded>>,
    pos: u64,
}

impl Write for Recorder {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut s = self.state.borrow_mut();
        let (p0, p1) = s.payload.map_or((u64::MAX, u64::MAX), |(a, n)| (a, a + n));
        let mut i = 0;
        while i < buf.len() {
            let at = self.pos + i as u64;
            let left = buf.len() - i;
            let upto = |end: u64| left.min(usize::try_from(end - at).unwrap_or(usize::MAX));
            if at < p0 {
                let n = upto(p0);
                put(
                    &mut s.head,
                    usize::try_from(at).unwrap_or(usize::MAX),
                    &buf[i..i + n],
                );
                i += n;
            } else if at < p1 {
                // Payload bytes: generated again when read.
                i += upto(p1);
            } else {
                let from = usize::try_from(at - p1).unwrap_or(usize::MAX);
                put(&mut s.tail, from, &buf[i..]);
                i = buf.len();
            }
        }
        self.pos += buf.len() as u64;
        s.len = s.len.max(self.pos);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Seek for Recorder {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let len = self.state.borrow().len;
        let target = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::End(d) => len.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = target.ok_or_else(|| std::io::Error::other("seek out of range"))?;
        Ok(self.pos)
    }
}

/// A stored `.intunewin` whose encrypted content is `len` generated bytes (`seed`), made without
/// holding it: the zip is written by the `zip` crate (zip64 past 4 GiB), the payload passing
/// through it (its CRC-32 computed) into a sink that keeps only the zip's own bytes. The result
/// reads as `zip bytes + Segment::Generated + zip bytes`, byte for byte the zip the crate writes.
///
/// # Panics
/// When the zip crate refuses to write (it does not, to this sink).
pub fn generated(setup_file: &str, len: u64, seed: u64) -> Composed {
    let state = Rc::new(std::cell::RefCell::new(Recorded::default()));
    let recorder = Recorder {
        state: Rc::clone(&state),
        pos: 0,
    };
    let xml = detection_xml(setup_file, len, &[0; 32]);
    let mut w = zip::ZipWriter::new(recorder);
    w.start_file(
        format!("{CONTENTS_DIR}IntunePackage.intunewin"),
        zip_options(false, len >= u64::from(u32::MAX)),
    )
    .expect("the content's local header");
    {
        let mut s = state.borrow_mut();
        let start = s.len;
        s.payload = Some((start, len));
    }
    let mut buf = Vec::with_capacity(1 << 20);
    let mut at = 0;
    while at < len {
        let n = (len - at).min(1 << 20);
        buf.clear();
        eucora_connector::artifact::generate(seed, at, n, &mut buf);
        w.write_all(&buf).expect("the payload");
        at += n;
    }
    w.start_file(DETECTION, zip_options(false, false))
        .expect("Detection.xml's local header");
    w.write_all(xml.as_bytes()).expect("Detection.xml");
    w.finish().expect("the central directory");
    let s = state.borrow();
    let (start, n) = s.payload.expect("the payload's place");
    assert_eq!(
        s.head.len() as u64,
        start,
        "the zip's bytes before the payload"
    );
    assert_eq!(s.len, start + n + s.tail.len() as u64, "the zip's length");
    Composed::new(vec![
        Segment::Bytes(Bytes::from(s.head.clone())),
        Segment::Generated { len: n, seed },
        Segment::Bytes(Bytes::from(s.tail.clone())),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use eucora_connector::artifact::MemoryArtifacts;

    #[tokio::test]
    async fn a_built_package_is_read_by_range() {
        for deflated in [false, true] {
            let payload = b"encrypted bytes ".repeat(1000);
            let bytes = build_with("setup.exe", &payload, deflated);
            let m = MemoryArtifacts::default();
            m.put("s3://b/p", bytes.clone());
            let p = inspect(&m, "s3://b/p", intune_max_bytes()).await.unwrap();
            assert_eq!(p.setup_file, "setup.exe");
            assert_eq!(p.file_name, "IntunePackage.intunewin");
            assert_eq!(p.unencrypted_size, payload.len() as u64);
            assert_eq!(p.encryption_info["profileIdentifier"], "ProfileVersion1");
            assert_eq!(p.content.size, payload.len() as u64);
            assert_eq!(p.content.deflated, deflated);
            let raw = &bytes[usize::try_from(p.content.data_start).unwrap()
                ..usize::try_from(p.content.data_end()).unwrap()];
            if deflated {
                let mut out = Vec::new();
                flate2::read::DeflateDecoder::new(raw)
                    .read_to_end(&mut out)
                    .unwrap();
                assert_eq!(out, payload);
            } else {
                assert_eq!(raw, &payload[..]);
            }
        }
        let m = MemoryArtifacts::default();
        m.put("s3://b/x", b"not a zip".to_vec());
        let e = inspect(&m, "s3://b/x", intune_max_bytes())
            .await
            .unwrap_err();
        assert_eq!(e.code, "INTUNEWIN_INVALID");
    }

    #[tokio::test]
    async fn a_generated_package_is_the_zip_the_crate_writes_and_is_read_by_few_ranges() {
        let len = 3 * 1024 * 1024 + 5;
        let composed = generated("big.exe", len, 42);
        let mut payload = Vec::new();
        eucora_connector::artifact::generate(42, 0, len, &mut payload);
        let whole = composed.read(0, composed.len());
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(&whole)).unwrap();
        let mut content = Vec::new();
        zip.by_name("IntuneWinPackage/Contents/IntunePackage.intunewin")
            .unwrap()
            .read_to_end(&mut content)
            .unwrap();
        assert!(content == payload, "the CRC-32 checked, the bytes the same");
        let m = MemoryArtifacts::default();
        m.put_composed("s3://b/big", composed);
        let p = inspect(&m, "s3://b/big", intune_max_bytes()).await.unwrap();
        assert_eq!((p.setup_file.as_str(), p.content.size), ("big.exe", len));
        assert!(
            m.bytes_read() <= TAIL + 2 * RANGE,
            "{} bytes read",
            m.bytes_read()
        );
        let e = inspect(&m, "s3://b/big", len).await.unwrap_err();
        assert_eq!(e.code, "INTUNE_PACKAGE_TOO_LARGE");
        assert!(
            e.message.contains(&format!("({len} bytes)")),
            "{}",
            e.message
        );
        let e = too_large("s3://b/huge", 31_000_000_000, intune_max_bytes());
        assert!(
            e.message
                .contains("over Intune's limit of 30 GB per Win32 app (30000000000 bytes)"),
            "{}",
            e.message
        );
    }

    #[test]
    fn detection_xml_is_read_with_a_parser() {
        let xml = "\u{feff}<?xml version=\"1.0\"?><ApplicationInfo ToolVersion=\"1.8\"><Name>a</Name>\
            <UnencryptedContentSize>12</UnencryptedContentSize><FileName>IntunePackage.intunewin</FileName>\
            <SetupFile>Setup Files\\install &amp; run.cmd</SetupFile><EncryptionInfo><EncryptionKey>k</EncryptionKey>\
            <MacKey>m</MacKey><InitializationVector>i</InitializationVector><Mac>c</Mac>\
            <ProfileIdentifier>ProfileVersion1</ProfileIdentifier><FileDigest>d</FileDigest>\
            <FileDigestAlgorithm>SHA256</FileDigestAlgorithm></EncryptionInfo>\
            <MsiInfo><MsiProductCode>{X}</MsiProductCode></MsiInfo></ApplicationInfo>";
        let info = detection(xml).unwrap();
        assert_eq!(info.setup_file, "Setup Files\\install & run.cmd");
        assert_eq!(info.unencrypted_content_size, 12);
        assert!(detection(&xml.replace("<Mac>c</Mac>", "<Mac></Mac>")).is_err());
        assert!(detection("<ApplicationInfo/>").is_err());
    }
}
