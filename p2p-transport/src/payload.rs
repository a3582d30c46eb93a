//! A task's payload as a sender holds it: in memory, or in a file it is read from a record
//! at a time as it goes out (see [`crate::wormhole::Outgoing`]), so a large payload costs
//! its sender a record of memory, however often it is sent.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::Bytes;

/// A payload to send.
#[derive(Debug, Clone)]
pub enum Payload {
    /// In memory.
    Memory(Bytes),
    /// In a file (an unlinked temporary one, typically), shared by every send.
    File(Arc<FilePayload>),
}

impl Payload {
    /// Its size in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Payload::Memory(bytes) => bytes.len() as u64,
            Payload::File(file) => file.len,
        }
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The whole payload in memory: as it is, or read from its file. For the few paths
    /// that need it whole (file transfers to future.p2p 0.4.0 peers).
    pub fn to_bytes(&self) -> std::io::Result<Bytes> {
        match self {
            Payload::Memory(bytes) => Ok(bytes.clone()),
            Payload::File(file) => {
                let len = usize::try_from(file.len).map_err(std::io::Error::other)?;
                let mut whole = vec![0; len];
                file.read_at(&mut whole, 0)?;
                Ok(Bytes::from(whole))
            }
        }
    }
}

impl From<Bytes> for Payload {
    fn from(bytes: Bytes) -> Self {
        Payload::Memory(bytes)
    }
}

/// A payload's bytes in a file that nobody writes any more. Reads are positioned, so the
/// same file serves concurrent and repeated sends.
#[derive(Debug)]
pub struct FilePayload {
    file: File,
    len: u64,
}

impl FilePayload {
    /// The payload that is the whole of `file`.
    pub fn new(file: File) -> std::io::Result<Self> {
        let len = file.metadata()?.len();
        Ok(FilePayload { file, len })
    }

    /// Fills `buf` with the payload's bytes from `offset`; a file that ends before is an
    /// error (it was changed under us).
    pub fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.file.read_exact_at(buf, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_file_payload_reads_back_in_any_pieces_and_whole() {
        let mut file = tempfile::tempfile().unwrap();
        let bytes: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all(&bytes).unwrap();
        let payload = Payload::File(Arc::new(FilePayload::new(file).unwrap()));
        assert_eq!(payload.len(), 10_000);
        assert_eq!(payload.to_bytes().unwrap(), bytes);
        let Payload::File(file) = &payload else {
            unreachable!()
        };
        let mut piece = [0u8; 333];
        file.read_at(&mut piece, 9_000).unwrap();
        assert_eq!(piece[..], bytes[9_000..9_333]);
        let past_end = file.read_at(&mut piece, 9_800).unwrap_err();
        assert_eq!(past_end.kind(), std::io::ErrorKind::UnexpectedEof);
    }
}
