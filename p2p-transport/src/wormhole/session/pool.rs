//! Recycled memory for the payload pieces a session hands on ([`super::IncomingPayload`]).
//!
//! A piece is a copy of a decrypted record's payload bytes in a buffer of its own, which
//! its consumer frees when done with it (a worker writes it to R and drops it). Fresh
//! memory for every piece would cost the kernel a page fault per page; instead a freed
//! buffer goes back to the pool and carries the next piece. The pool keeps buffers only
//! while a payload streams, so an idle session holds none.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// Most free buffers kept (each at most a record's plaintext).
const KEEP: usize = 8;

#[derive(Debug, Default)]
pub(crate) struct PiecePool {
    free: Mutex<Vec<Vec<u8>>>,
    /// Whether freed buffers are kept: only while a payload streams.
    active: AtomicBool,
}

impl PiecePool {
    /// A piece holding a copy of `bytes`.
    pub(crate) fn piece(self: &Arc<Self>, bytes: &[u8]) -> Bytes {
        let mut buf = self
            .free
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
            .unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(bytes);
        Bytes::from_owner(Pooled {
            buf,
            pool: Arc::clone(self),
        })
    }

    /// Keeps freed buffers (a payload begins to stream), or lets them all go (it ended).
    pub(crate) fn set_active(&self, active: bool) {
        self.active.store(active, Ordering::Relaxed);
        if !active {
            self.free.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }

    #[cfg(test)]
    fn free_buffers(&self) -> usize {
        self.free.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// A piece's buffer, back to its pool when the last handle on the piece is dropped.
struct Pooled {
    buf: Vec<u8>,
    pool: Arc<PiecePool>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if !self.pool.active.load(Ordering::Relaxed) {
            return;
        }
        let mut free = self.pool.free.lock().unwrap_or_else(|p| p.into_inner());
        if free.len() < KEEP {
            free.push(std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_reused_while_active_only() {
        let pool = Arc::new(PiecePool::default());
        pool.set_active(true);
        let first = pool.piece(b"first piece");
        assert_eq!(first, "first piece");
        let at = first.as_ptr();
        drop(first);
        assert_eq!(pool.free_buffers(), 1);
        let second = pool.piece(b"second");
        assert_eq!(second, "second");
        assert_eq!(
            second.as_ptr(),
            at,
            "the freed buffer carries the next piece"
        );
        // A slice keeps the buffer until it too is gone.
        let part = second.slice(1..3);
        drop(second);
        assert_eq!(pool.free_buffers(), 0);
        drop(part);
        assert_eq!(pool.free_buffers(), 1);
        pool.set_active(false);
        assert_eq!(pool.free_buffers(), 0);
        drop(pool.piece(b"third"));
        assert_eq!(pool.free_buffers(), 0, "an idle pool keeps nothing");
    }
}
