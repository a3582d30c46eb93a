//! Payloads that are still arriving: a task handed on by [`super::Session::recv_incoming`]
//! as soon as its head is in, its payload following piece by piece.
//!
//! The session routes each decrypted piece to the [`IncomingPayload`] without waiting for
//! its consumer (a slow consumer never stalls the session, whose reader must keep seeing
//! cancels and heartbeats), so what is buffered is what the consumer has not taken yet: a
//! few records when it keeps up, the payload when it does not start reading.

use bytes::{Bytes, BytesMut};
use p2p_proto::id::FutureId;
use tokio::sync::mpsc;

/// A payload could not be had in full.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    /// It is larger than the receiver's limit; its bytes were dropped unread.
    #[error("payload of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Its announced size.
        len: u64,
        /// The receiver's limit.
        max: u64,
    },
    /// The session ended before all of it arrived.
    #[error("the session ended after {received} of {len} payload bytes")]
    Interrupted {
        /// Bytes that arrived.
        received: u64,
        /// Its announced size.
        len: u64,
    },
}

/// A task whose payload may still be arriving.
#[derive(Debug)]
pub struct IncomingTask {
    /// The future the payload belongs to.
    pub future: FutureId,
    /// Its payload.
    pub payload: IncomingPayload,
}

/// A payload of known size whose bytes come in pieces, in order.
#[derive(Debug)]
pub struct IncomingPayload {
    len: u64,
    received: u64,
    source: Source,
}

#[derive(Debug)]
enum Source {
    /// All of it, not yet taken.
    Whole(Option<Bytes>),
    /// Pieces from the session as they are decrypted.
    Stream(mpsc::UnboundedReceiver<Bytes>),
    /// Refused for its size.
    TooLarge { max: u64 },
}

impl From<Bytes> for IncomingPayload {
    fn from(bytes: Bytes) -> Self {
        IncomingPayload {
            len: bytes.len() as u64,
            received: 0,
            source: Source::Whole(Some(bytes)),
        }
    }
}

impl IncomingPayload {
    /// A payload of `len` bytes fed through the returned sender, a piece at a time (how
    /// a session hands on a task's payload; other sources may feed one the same way). It
    /// ends after `len` bytes; a sender dropped before that makes it
    /// [`PayloadError::Interrupted`].
    pub fn stream(len: u64) -> (IncomingPayload, mpsc::UnboundedSender<Bytes>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let payload = IncomingPayload {
            len,
            received: 0,
            source: Source::Stream(rx),
        };
        (payload, tx)
    }

    /// A payload of `len` bytes refused for being larger than `max`.
    pub(crate) fn too_large(len: u64, max: u64) -> IncomingPayload {
        IncomingPayload {
            len,
            received: 0,
            source: Source::TooLarge { max },
        }
    }

    /// Its size in bytes, as announced before its first byte.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether it has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The next piece, `None` once all `len` bytes were handed out.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, PayloadError> {
        let chunk = match &mut self.source {
            Source::TooLarge { max } => {
                return Err(PayloadError::TooLarge {
                    len: self.len,
                    max: *max,
                });
            }
            Source::Whole(bytes) => bytes.take().filter(|bytes| !bytes.is_empty()),
            Source::Stream(rx) if self.received < self.len => {
                Some(rx.recv().await.ok_or(PayloadError::Interrupted {
                    received: self.received,
                    len: self.len,
                })?)
            }
            Source::Stream(_) => None,
        };
        if let Some(chunk) = &chunk {
            self.received += chunk.len() as u64;
        }
        Ok(chunk)
    }

    /// All of it in one buffer, grown as the pieces arrive (a payload that came whole or
    /// in one piece is returned without copying).
    pub async fn collect(mut self) -> Result<Bytes, PayloadError> {
        let Some(first) = self.next_chunk().await? else {
            return Ok(Bytes::new());
        };
        if self.received == self.len {
            return Ok(first);
        }
        let mut all = BytesMut::from(&first[..]);
        drop(first);
        while let Some(chunk) = self.next_chunk().await? {
            all.extend_from_slice(&chunk);
        }
        Ok(all.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pieces_arrive_in_order_and_end_at_the_announced_size() {
        let (mut payload, tx) = IncomingPayload::stream(6);
        tx.send(Bytes::from_static(b"abc")).unwrap();
        tx.send(Bytes::from_static(b"def")).unwrap();
        assert_eq!(payload.len(), 6);
        assert_eq!(payload.next_chunk().await.unwrap().unwrap(), "abc");
        assert_eq!(payload.next_chunk().await.unwrap().unwrap(), "def");
        // The sender is still alive: the end is known from the size, not from a close.
        assert_eq!(payload.next_chunk().await.unwrap(), None);
        drop(tx);
    }

    #[tokio::test]
    async fn a_session_that_ends_early_is_an_error() {
        let (payload, tx) = IncomingPayload::stream(6);
        tx.send(Bytes::from_static(b"abc")).unwrap();
        drop(tx);
        assert_eq!(
            payload.collect().await,
            Err(PayloadError::Interrupted {
                received: 3,
                len: 6
            })
        );
    }

    #[tokio::test]
    async fn whole_and_refused_payloads() {
        let bytes = Bytes::from_static(b"whole");
        let collected = IncomingPayload::from(bytes.clone())
            .collect()
            .await
            .unwrap();
        assert_eq!(collected.as_ptr(), bytes.as_ptr());
        assert_eq!(
            IncomingPayload::from(Bytes::new()).collect().await,
            Ok(Bytes::new())
        );
        let (payload, tx) = IncomingPayload::stream(4);
        tx.send(Bytes::from_static(b"ab")).unwrap();
        tx.send(Bytes::from_static(b"cd")).unwrap();
        assert_eq!(payload.collect().await.unwrap(), "abcd");
        assert_eq!(
            IncomingPayload::too_large(10, 5).collect().await,
            Err(PayloadError::TooLarge { len: 10, max: 5 })
        );
    }
}
