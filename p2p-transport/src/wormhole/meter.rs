//! [`Meter`]: how far the payload moving each way has got, for progress bars and status.
//!
//! A session counts, at its boundary (a frame's payload handed to the records going out, a
//! payload's pieces handed on as they are opened), the bytes of the payload it is sending
//! and of the one it is receiving; a one-shot transfer reports into one through
//! [`Meter::progress`]. Readers poll it when they draw: two relaxed atomic adds per piece
//! of payload on the hot path, no channel, no lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::transfer::ProgressFn;

/// Which way a payload moves, seen from this peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// Going out.
    Sending,
    /// Coming in.
    Receiving,
}

/// Bytes of one payload moved so far, of its size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Moved {
    /// Bytes moved (at most `total`).
    pub done: u64,
    /// The payload's size.
    pub total: u64,
}

impl Moved {
    /// Whether the payload is on its way (started, not finished).
    pub fn in_flight(&self) -> bool {
        self.done < self.total
    }
}

#[derive(Debug, Default)]
struct Flow {
    done: AtomicU64,
    total: AtomicU64,
}

impl Flow {
    fn begin(&self, total: u64) {
        self.done.store(0, Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }

    fn read(&self) -> Moved {
        let total = self.total.load(Ordering::Relaxed);
        let done = self.done.load(Ordering::Relaxed).min(total);
        Moved { done, total }
    }
}

/// The payload going out and the one coming in, on one session or transfer. Clones share
/// the counts.
#[derive(Debug, Clone, Default)]
pub struct Meter(Arc<[Flow; 2]>);

impl PartialEq for Meter {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Meter {}

impl Meter {
    fn flow(&self, way: Way) -> &Flow {
        &self.0[way as usize]
    }

    /// The payload last started that way, as far as it has got.
    pub fn moved(&self, way: Way) -> Moved {
        self.flow(way).read()
    }

    /// A payload of `total` bytes starts moving `way`.
    pub fn begin(&self, way: Way, total: u64) {
        self.flow(way).begin(total);
    }

    /// `bytes` more of it moved.
    pub fn add(&self, way: Way, bytes: u64) {
        self.flow(way).done.fetch_add(bytes, Ordering::Relaxed);
    }

    /// A [`TransferOptions::progress`](super::TransferOptions) that reports into this
    /// meter, for a one-shot transfer moving `way`.
    pub fn progress(&self, way: Way) -> ProgressFn {
        let meter = self.clone();
        Arc::new(move |done, total| {
            let flow = meter.flow(way);
            flow.total.store(total, Ordering::Relaxed);
            flow.done.store(done, Ordering::Relaxed);
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_way_counts_its_payload_from_its_start() {
        let meter = Meter::default();
        assert_eq!(meter.moved(Way::Sending), Moved::default());
        meter.begin(Way::Sending, 10);
        meter.add(Way::Sending, 4);
        assert_eq!(meter.moved(Way::Sending), Moved { done: 4, total: 10 });
        assert!(meter.moved(Way::Sending).in_flight());
        assert!(!meter.moved(Way::Receiving).in_flight());
        // A reader never sees more done than the size.
        meter.clone().add(Way::Sending, 40);
        assert_eq!(
            meter.moved(Way::Sending),
            Moved {
                done: 10,
                total: 10
            }
        );
        meter.begin(Way::Sending, 3);
        assert_eq!(meter.moved(Way::Sending), Moved { done: 0, total: 3 });
        (meter.progress(Way::Receiving))(7, 9);
        assert_eq!(meter.moved(Way::Receiving), Moved { done: 7, total: 9 });
        assert_eq!(meter, meter.clone());
        assert_ne!(meter, Meter::default());
    }
}
