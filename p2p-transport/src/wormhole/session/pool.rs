//! Recycled memory for the payload pieces a session hands on ([`super::IncomingPayload`]).
//!
//! A piece is a copy of a decrypted record's payload bytes in a buffer of its own, which
//! its consumer frees when done with it (a worker writes it to R and drops it). Fresh
//! memory for every piece would cost the kernel a page fault per page; instead a freed
//! buffer goes back to the pool and carries the next piece. The pool keeps buffers only
//! while a payload streams, so an idle session holds none.
//!
//! It also counts the bytes of pieces still alive (handed on, not yet dropped by their
//! consumer), so the session can stop reading while a slow consumer has a lot to catch
//! up on, and be woken when it freed some.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::Notify;

/// Most free buffers kept (each at most a record's plaintext).
const KEEP: usize = 8;

#[derive(Debug, Default)]
pub(crate) struct PiecePool {
    free: Mutex<Vec<Vec<u8>>>,
    /// Whether freed buffers are kept: only while a payload streams.
    active: AtomicBool,
    /// Bytes in pieces handed on and not dropped yet.
    outstanding: AtomicUsize,
    /// Woken whenever a piece is dropped.
    released: Notify,
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
        self.outstanding.fetch_add(buf.len(), Ordering::Relaxed);
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

    /// Bytes in pieces their consumer has not dropped yet.
    pub(crate) fn outstanding(&self) -> usize {
        self.outstanding.load(Ordering::Relaxed)
    }

    /// Waits until [`PiecePool::outstanding`] is at most `bound`.
    pub(crate) async fn drained_to(&self, bound: usize) {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before the check, so a piece dropped in between still wakes us.
            released.as_mut().enable();
            if self.outstanding() <= bound {
                return;
            }
            released.await;
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
        self.pool
            .outstanding
            .fetch_sub(self.buf.len(), Ordering::Relaxed);
        self.pool.released.notify_waiters();
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

    #[tokio::test]
    async fn live_pieces_are_counted_and_their_release_wakes_a_waiter() {
        let pool = Arc::new(PiecePool::default());
        let first = pool.piece(&[1u8; 100]);
        let second = pool.piece(&[2u8; 50]);
        assert_eq!(pool.outstanding(), 150);
        let waiter = {
            let pool = Arc::clone(&pool);
            tokio::spawn(async move { pool.drained_to(60).await })
        };
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "150 bytes are still held");
        drop(first);
        tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
            .await
            .expect("woken once 50 bytes are left")
            .unwrap();
        drop(second);
        assert_eq!(pool.outstanding(), 0);
    }
}
