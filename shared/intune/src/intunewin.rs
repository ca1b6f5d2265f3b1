//! The `.intunewin` package: a zip holding the encrypted installer
//! (`IntuneWinPackage/Contents/IntunePackage.intunewin`) and `IntuneWinPackage/Metadata/Detection.xml`,
//! whose `EncryptionInfo` Intune needs when the upload is committed. The connector uploads the
//! encrypted file and commits with that information; it never decrypts anything.

use std::io::{Cursor, Read};

use eucora_connector::CallError;
use serde_json::{Value, json};

/// What the connector needs from a `.intunewin`.
#[derive(Debug, Clone)]
pub struct IntuneWin {
    /// The encrypted payload: what is uploaded (`sizeEncrypted` is its length).
    pub encrypted: Vec<u8>,
    /// `UnencryptedContentSize` (`size` in Graph).
    pub unencrypted_size: u64,
    /// The `fileEncryptionInfo` object for the commit.
    pub encryption_info: Value,
}

const DETECTION: &str = "IntuneWinPackage/Metadata/Detection.xml";
const CONTENTS: &str = "IntuneWinPackage/Contents/IntunePackage.intunewin";

fn invalid(why: impl Into<String>) -> CallError {
    CallError::invalid_payload("read_intunewin", "INTUNEWIN_INVALID", why)
}

fn element(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&format!("</{tag}>"))? + start;
    Some(xml[start..end].trim().to_owned())
}

/// Reads a `.intunewin`.
pub fn read(bytes: &[u8]) -> Result<IntuneWin, CallError> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| invalid(format!("not a .intunewin package (zip): {e}")))?;
    let mut xml = String::new();
    zip.by_name(DETECTION)
        .map_err(|_| invalid(format!("{DETECTION} is missing")))?
        .read_to_string(&mut xml)
        .map_err(|e| invalid(format!("{DETECTION}: {e}")))?;
    let mut encrypted = Vec::new();
    zip.by_name(CONTENTS)
        .map_err(|_| invalid(format!("{CONTENTS} is missing")))?
        .read_to_end(&mut encrypted)
        .map_err(|e| invalid(format!("{CONTENTS}: {e}")))?;
    let field = |tag: &str| {
        element(&xml, tag).ok_or_else(|| invalid(format!("Detection.xml has no {tag}")))
    };
    let unencrypted_size = field("UnencryptedContentSize")?
        .parse()
        .map_err(|_| invalid("UnencryptedContentSize is not a number"))?;
    Ok(IntuneWin {
        encrypted,
        unencrypted_size,
        encryption_info: json!({
            "encryptionKey": field("EncryptionKey")?,
            "initializationVector": field("InitializationVector")?,
            "mac": field("Mac")?,
            "macKey": field("MacKey")?,
            "profileIdentifier": field("ProfileIdentifier")?,
            "fileDigest": field("FileDigest")?,
            "fileDigestAlgorithm": field("FileDigestAlgorithm")?,
        }),
    })
}

/// Builds a `.intunewin` (for tests and the local run's sample packages): the payload is stored
/// as the "encrypted" content, with made-up but well-formed encryption information.
pub fn build(setup_file: &str, payload: &[u8]) -> Vec<u8> {
    use base64::Engine as _;
    use sha2::Digest;
    use std::io::Write;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let digest = b64(&sha2::Sha256::digest(payload));
    let xml = format!(
        "<ApplicationInfo xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" ToolVersion=\"1.8.6\"><Name>{setup_file}</Name>\
         <UnencryptedContentSize>{}</UnencryptedContentSize><FileName>IntunePackage.intunewin</FileName><SetupFile>{setup_file}</SetupFile>\
         <EncryptionInfo><EncryptionKey>{}</EncryptionKey><MacKey>{}</MacKey><InitializationVector>{}</InitializationVector>\
         <Mac>{}</Mac><ProfileIdentifier>ProfileVersion1</ProfileIdentifier><FileDigest>{digest}</FileDigest>\
         <FileDigestAlgorithm>SHA256</FileDigestAlgorithm></EncryptionInfo></ApplicationInfo>",
        payload.len(),
        b64(&[1; 32]),
        b64(&[2; 32]),
        b64(&[3; 16]),
        b64(&[4; 32]),
    );
    let mut out = Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut out);
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        // Writing to memory cannot fail.
        let _ = w.start_file(DETECTION, stored);
        let _ = w.write_all(xml.as_bytes());
        let _ = w.start_file(CONTENTS, stored);
        let _ = w.write_all(payload);
        let _ = w.finish();
    }
    out.into_inner()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_built_package_reads_back() {
        let p = read(&build("setup.exe", b"encrypted bytes")).unwrap();
        assert_eq!(p.encrypted, b"encrypted bytes");
        assert_eq!(p.unencrypted_size, 15);
        assert_eq!(p.encryption_info["profileIdentifier"], "ProfileVersion1");
        assert!(read(b"not a zip").is_err());
    }
}
