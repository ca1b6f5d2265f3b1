//! Package bytes, read by range from where the evidence pack says they are, and never held
//! whole: a connector streams a package in chunks ([`ArtifactStream`]), hashing every byte on the
//! way, so its memory stays the same whatever the package's size, and the bytes it sent are
//! known to be the approved ones (the evidence pack's SHA-256) before it commits them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::{self, Stream, StreamExt};
use sha2::Digest;

use crate::error::CallError;

const OP: &str = "fetch_artifact";

/// Reads an artifact by range (S3 `Range` reads in production).
pub trait ArtifactSource: Send + Sync {
    /// The artifact's size in bytes.
    fn size(&self, location: &str) -> impl Future<Output = Result<u64, CallError>> + Send;

    /// `len` bytes from `start` (fewer only where the artifact ends).
    fn read_range(
        &self,
        location: &str,
        start: u64,
        len: u64,
    ) -> impl Future<Output = Result<Bytes, CallError>> + Send;
}

/// The digests of a whole artifact, as lowercase hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digests {
    pub sha256: String,
    /// Only when asked for (Jamf Pro compares packages by SHA-512).
    pub sha512: Option<String>,
}

/// How many chunks are read ahead of the one being used.
const READ_AHEAD: usize = 2;

type ChunkStream<'a> = Pin<Box<dyn Stream<Item = Result<Bytes, CallError>> + Send + 'a>>;

/// An artifact read from its first byte to its last in chunks, with [`READ_AHEAD`] chunks
/// fetched ahead, every byte hashed. Memory: at most `READ_AHEAD + 1` chunks.
pub struct ArtifactStream<'a> {
    location: String,
    size: u64,
    read: u64,
    sha256: sha2::Sha256,
    sha512: Option<sha2::Sha512>,
    chunks: ChunkStream<'a>,
}

impl std::fmt::Debug for ArtifactStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactStream")
            .field("location", &self.location)
            .field("size", &self.size)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

impl<'a> ArtifactStream<'a> {
    /// Opens `location` to be read in chunks of `chunk` bytes; `sha512` also computes the SHA-512.
    pub async fn open<A: ArtifactSource>(
        source: &'a A,
        location: &str,
        chunk: u64,
        sha512: bool,
    ) -> Result<ArtifactStream<'a>, CallError> {
        let size = source.size(location).await?;
        let chunk = chunk.max(1);
        let loc = Arc::<str>::from(location);
        let chunks = stream::iter((0..size.div_ceil(chunk)).map(move |i| {
            let start = i * chunk;
            (Arc::clone(&loc), start, chunk.min(size - start))
        }))
        .map(move |(loc, start, len)| async move {
            let bytes = source.read_range(&loc, start, len).await?;
            if bytes.len() as u64 != len {
                return Err(CallError::no_answer(
                    OP,
                    format!(
                        "{loc}: {} bytes read at {start}, {len} asked (changed while read?)",
                        bytes.len()
                    ),
                ));
            }
            Ok(bytes)
        })
        .buffered(READ_AHEAD);
        Ok(ArtifactStream {
            location: location.to_owned(),
            size,
            read: 0,
            sha256: sha2::Sha256::new(),
            sha512: sha512.then(sha2::Sha512::new),
            chunks: Box::pin(chunks),
        })
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes read so far: the offset of the next chunk.
    pub fn position(&self) -> u64 {
        self.read
    }

    /// The next chunk, or `None` at the end.
    pub async fn next(&mut self) -> Result<Option<Bytes>, CallError> {
        let Some(chunk) = self.chunks.next().await.transpose()? else {
            return Ok(None);
        };
        self.sha256.update(&chunk);
        if let Some(h) = &mut self.sha512 {
            h.update(&chunk);
        }
        self.read += chunk.len() as u64;
        Ok(Some(chunk))
    }

    /// Reads whatever is left (hashing it) and returns the digests.
    pub async fn drain(mut self) -> Result<Digests, CallError> {
        while self.next().await?.is_some() {}
        self.finish()
    }

    /// The digests of the whole artifact (an error if it was not read to the end).
    pub fn finish(self) -> Result<Digests, CallError> {
        if self.read != self.size {
            return Err(CallError::no_answer(
                OP,
                format!(
                    "{}: {} of {} bytes read",
                    self.location, self.read, self.size
                ),
            ));
        }
        Ok(Digests {
            sha256: hex_lower(&self.sha256.finalize()),
            sha512: self.sha512.map(|h| hex_lower(&h.finalize())),
        })
    }

    /// The digests of the whole artifact, checked against the evidence pack's SHA-256 (a mismatch
    /// is permanent: the bytes are not the ones that were approved).
    pub fn finish_verified(self, expected_sha256: &str) -> Result<Digests, CallError> {
        let location = self.location.clone();
        let d = self.finish()?;
        check_sha256(&location, &d.sha256, expected_sha256)?;
        Ok(d)
    }
}

/// Reads the whole artifact once (in bounded memory) and returns its digests, checked against the
/// evidence pack's SHA-256.
pub async fn digest<A: ArtifactSource>(
    source: &A,
    location: &str,
    expected_sha256: &str,
    sha512: bool,
) -> Result<Digests, CallError> {
    let location = location.to_owned();
    let d = ArtifactStream::open(source, &location, DIGEST_CHUNK, sha512)
        .await?
        .drain()
        .await?;
    check_sha256(&location, &d.sha256, expected_sha256)?;
    Ok(d)
}

/// The chunk [`digest`] reads with.
pub const DIGEST_CHUNK: u64 = 8 * 1024 * 1024;

/// A computed SHA-256 against the evidence pack's.
pub fn check_sha256(location: &str, actual: &str, expected: &str) -> Result<(), CallError> {
    if actual.eq_ignore_ascii_case(expected) {
        Ok(())
    } else {
        Err(CallError::invalid_payload(
            OP,
            "ARTIFACT_HASH_MISMATCH",
            format!("{location} has SHA-256 {actual}, the evidence pack says {expected}"),
        ))
    }
}

pub fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Part of an artifact held by [`MemoryArtifacts`]: bytes, or bytes made up on demand (a
/// package of gigabytes generated as it is read, never stored).
#[derive(Debug, Clone)]
pub enum Segment {
    Bytes(Bytes),
    /// `len` pseudo-random bytes, the same for the same `seed` whatever the range read.
    Generated {
        len: u64,
        seed: u64,
    },
}

impl Segment {
    pub fn len(&self) -> u64 {
        match self {
            Segment::Bytes(b) => b.len() as u64,
            Segment::Generated { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends bytes `start..start + len` of this segment to `out`.
    fn read_into(&self, start: u64, len: u64, out: &mut Vec<u8>) {
        match self {
            #[allow(clippy::cast_possible_truncation)]
            Segment::Bytes(b) => out.extend_from_slice(&b[start as usize..(start + len) as usize]),
            Segment::Generated { seed, .. } => generate(*seed, start, len, out),
        }
    }
}

/// `SplitMix64`: a fast, well-mixed function of the word's index.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Appends generated bytes `start..start + len` (byte `i` is byte `i % 8` of word `i / 8`).
pub fn generate(seed: u64, start: u64, len: u64, out: &mut Vec<u8>) {
    let end = start + len;
    let mut i = start;
    while i < end {
        let word = splitmix64(seed ^ (i / 8).wrapping_mul(0x2545_F491_4F6C_DD1D)).to_le_bytes();
        #[allow(clippy::cast_possible_truncation)]
        let from = (i % 8) as usize;
        #[allow(clippy::cast_possible_truncation)]
        let take = (8 - from).min((end - i) as usize);
        out.extend_from_slice(&word[from..from + take]);
        i += take as u64;
    }
}

/// An artifact made of segments.
#[derive(Debug, Clone, Default)]
pub struct Composed(Vec<Segment>);

impl Composed {
    pub fn new(segments: Vec<Segment>) -> Composed {
        Composed(segments)
    }

    pub fn len(&self) -> u64 {
        self.0.iter().map(Segment::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes `start..start + len` (fewer where it ends).
    pub fn read(&self, start: u64, len: u64) -> Vec<u8> {
        let end = (start + len).min(self.len());
        #[allow(clippy::cast_possible_truncation)]
        let mut out = Vec::with_capacity(end.saturating_sub(start) as usize);
        let mut at = 0;
        for s in &self.0 {
            let (s_start, s_end) = (at, at + s.len());
            at = s_end;
            let (from, to) = (start.max(s_start), end.min(s_end));
            if from < to {
                s.read_into(from - s_start, to - from, &mut out);
            }
        }
        out
    }

    /// The SHA-256 of the whole, as lowercase hex (read in 8 MiB chunks).
    pub fn sha256(&self) -> String {
        let mut h = sha2::Sha256::new();
        let mut at = 0;
        while at < self.len() {
            let chunk = self.read(at, DIGEST_CHUNK);
            h.update(&chunk);
            at += chunk.len() as u64;
        }
        hex_lower(&h.finalize())
    }
}

/// Artifacts held in memory, keyed by location (tests, the local run's simulators); large ones
/// are generated as they are read.
#[derive(Debug, Clone, Default)]
pub struct MemoryArtifacts {
    artifacts: Arc<std::sync::Mutex<std::collections::BTreeMap<String, Arc<Composed>>>>,
    reads: Arc<std::sync::atomic::AtomicU64>,
}

impl MemoryArtifacts {
    pub fn put(&self, location: &str, bytes: Vec<u8>) {
        self.put_composed(location, Composed::new(vec![Segment::Bytes(bytes.into())]));
    }

    pub fn put_composed(&self, location: &str, artifact: Composed) {
        self.artifacts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(location.to_owned(), Arc::new(artifact));
    }

    /// How many bytes have been read, from every artifact.
    pub fn bytes_read(&self) -> u64 {
        self.reads.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn get(&self, location: &str) -> Result<Arc<Composed>, CallError> {
        self.artifacts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(location)
            .cloned()
            .ok_or_else(|| {
                CallError::invalid_payload(
                    OP,
                    "ARTIFACT_NOT_FOUND",
                    format!("{location} does not exist"),
                )
            })
    }
}

impl ArtifactSource for MemoryArtifacts {
    async fn size(&self, location: &str) -> Result<u64, CallError> {
        Ok(self.get(location)?.len())
    }

    async fn read_range(&self, location: &str, start: u64, len: u64) -> Result<Bytes, CallError> {
        let a = self.get(location)?;
        let out = a.read(start, len);
        self.reads
            .fetch_add(out.len() as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(out.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_bytes_are_the_same_whatever_the_range() {
        let a = Composed::new(vec![
            Segment::Bytes(Bytes::from_static(b"head")),
            Segment::Generated { len: 1000, seed: 7 },
            Segment::Bytes(Bytes::from_static(b"tail")),
        ]);
        assert_eq!(a.len(), 1008);
        let whole = a.read(0, 2000);
        assert_eq!(whole.len(), 1008);
        assert_eq!(&whole[..4], b"head");
        assert_eq!(&whole[1004..], b"tail");
        for (s, l) in [(0_usize, 5_usize), (3, 17), (9, 100), (1001, 7), (500, 508)] {
            assert_eq!(a.read(s as u64, l as u64), whole[s..s + l], "{s}+{l}");
        }
        let other = Composed::new(vec![Segment::Generated { len: 1000, seed: 8 }]);
        assert_ne!(other.read(0, 1000), whole[4..1004]);
    }

    #[tokio::test]
    async fn a_stream_hashes_every_byte_and_refuses_other_bytes() {
        let m = MemoryArtifacts::default();
        let a = Composed::new(vec![Segment::Generated {
            len: 10_000,
            seed: 1,
        }]);
        let sha = a.sha256();
        m.put_composed("s3://b/k", a.clone());
        let mut s = ArtifactStream::open(&m, "s3://b/k", 3000, true)
            .await
            .unwrap();
        let mut got = Vec::new();
        while let Some(c) = s.next().await.unwrap() {
            assert!(c.len() <= 3000);
            got.extend_from_slice(&c);
        }
        assert_eq!(got, a.read(0, 10_000));
        let d = s.finish_verified(&sha).unwrap();
        assert_eq!(d.sha256, sha);
        assert_eq!(
            d.sha512.unwrap(),
            hex_lower(&sha2::Sha512::digest(a.read(0, 10_000)))
        );
        let wrong = digest(&m, "s3://b/k", &"0".repeat(64), false)
            .await
            .unwrap_err();
        assert_eq!(wrong.code, "ARTIFACT_HASH_MISMATCH");
        let part = ArtifactStream::open(&m, "s3://b/k", 3000, false)
            .await
            .unwrap();
        assert!(
            part.finish().is_err(),
            "a stream not read to the end has no digest"
        );
    }
}
