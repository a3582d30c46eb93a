//! Why tasks and schedulers end without a result, as types all the way to the caller (the
//! R bridge turns each into its own kind of R error).
//!
//! ```text
//!   AttemptError   one try of a task on one worker failed (the core may try elsewhere)
//!   TaskError      the task is over without a result: cancelled, every try failed,
//!                  never handed over, or past a time limit (TimeLimit: whose)
//!   StopReason     why a scheduler stopped
//!   SubmitError    what a TaskHandle resolves to instead of a result
//! ```

use std::fmt;
use std::sync::Arc;

use p2p_proto::frame::{FrameError, RemoteError};
use p2p_proto::id::PeerId;
use p2p_proto::message::DeclineReason;
use p2p_transport::wormhole::{SessionError, TransferError};
use thiserror::Error;

/// Why one try of a task on one worker failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AttemptError {
    /// The accepted worker did not start the transfer before the accept expired.
    #[error("the worker did not start the transfer in time")]
    NotStarted,
    /// The worker's hello expired while it held a file-route task (its hellos are its
    /// heartbeat there).
    #[error("the worker vanished from the board (its hello expired)")]
    Vanished,
    /// The worker took the task, then gave it up with a `decline` line.
    #[error("the worker declined the task: {0}")]
    Declined(DeclineReason),
    /// The worker reported a failure of its own (time limit, crash, refusal, ...).
    #[error("the worker failed the task: {0}")]
    Remote(RemoteError),
    /// A file transfer with the worker failed.
    #[error("{stage}: {source}")]
    Transfer {
        /// Which transfer.
        stage: TransferStage,
        #[source]
        /// How it failed.
        source: TransferFailure,
    },
    /// The warm session with the worker failed or ended while the task was on it.
    #[error("the session with the worker: {0}")]
    Session(#[source] SessionError),
    /// The worker's session hello was missing or spoke no common frame version.
    #[error("the session hello: {0}")]
    Handshake(#[source] HandshakeError),
    /// The payload could not be had in future.p2p 0.4.0's format, which the worker reads.
    #[error("{0}")]
    NoOriginalPayload(String),
}

/// Which transfer of the file route failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferStage {
    /// Sending the payload under `CODE-f`.
    SendingTask,
    /// Receiving the result under `CODE-r`.
    ReceivingResult,
}

impl fmt::Display for TransferStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransferStage::SendingTask => "sending the task",
            TransferStage::ReceivingResult => "receiving the result",
        })
    }
}

/// A failed wormhole transfer, shared by every report of the attempt it ended. Two are
/// equal when they say the same (the transfer error holds I/O errors, which do not compare).
#[derive(Debug, Clone, Error)]
#[error(transparent)]
pub struct TransferFailure(#[from] pub Arc<TransferError>);

impl From<TransferError> for TransferFailure {
    fn from(error: TransferError) -> Self {
        TransferFailure(Arc::new(error))
    }
}

impl PartialEq for TransferFailure {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0.to_string() == other.0.to_string()
    }
}

impl Eq for TransferFailure {}

/// A worker's answer to the session hello that opens no session.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HandshakeError {
    /// The first frame from the worker was not a hello.
    #[error("expected the worker's hello, got a {0} frame")]
    NotHello(&'static str),
    /// The hellos share no frame version.
    #[error(transparent)]
    Incompatible(#[from] FrameError),
}

/// Why a task is over without a result.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TaskError {
    /// The task was cancelled by its owner.
    #[error("cancelled")]
    Cancelled,
    /// The task started on a worker, which then failed, more often than the retry budget
    /// allows; `last` is the last failure. (Tasks that were only waiting on a failing
    /// worker go back to the queue without spending a try.)
    #[error("failed on {} worker(s) ({}); last error: {last}", tried.len(), tried.iter().map(PeerId::as_str).collect::<Vec<_>>().join(", "))]
    Exhausted {
        /// The workers it started on and that failed it, in order.
        tried: Vec<PeerId>,
        /// The last failure.
        last: AttemptError,
    },
    /// Handing the task to a worker failed this many times before it ever started (the
    /// accepted worker never fetched it, its session never opened, ...).
    #[error("could not be handed to a worker ({attempts} attempts); last error: {last}")]
    Undeliverable {
        /// Failed hand-overs.
        attempts: u32,
        /// The last failure.
        last: AttemptError,
    },
    /// The task ran past a time limit and was stopped: not tried again, since it would
    /// most likely run as long anywhere.
    #[error("timed out on worker {worker}: {limit}")]
    TimedOut {
        /// The worker it ran on.
        worker: PeerId,
        /// Whose limit it hit.
        limit: TimeLimit,
    },
}

/// The time limit a task ran past.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TimeLimit {
    /// This client's limit on a task's running time ([`crate::core::SchedulerConfig::time_limit`]).
    #[error("it ran past this client's time limit of {:.3} s", *millis as f64 / 1000.0)]
    Client {
        /// The limit, in milliseconds.
        millis: u64,
    },
    /// The worker's own limit (`future-p2p worker --time-limit`), as the worker said it.
    #[error("{0}")]
    Worker(String),
}

/// Why a scheduler stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum StopReason {
    /// The board connection ended for good.
    #[error("the board connection closed")]
    BoardClosed,
    /// The [`Scheduler`](crate::Scheduler) handle was dropped.
    #[error("the scheduler was dropped")]
    Dropped,
    /// The scheduler's task ended without saying why (its runtime shut down).
    #[error("the scheduler's task ended abruptly")]
    Aborted,
}

/// Why a submitted task has no result.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SubmitError {
    /// The payload is larger than the scheduler's limit; it was refused before anything
    /// was posted.
    #[error(
        "payload of {size} bytes exceeds the limit of {max} bytes (raise the client's and \
         the workers' limit, --max-payload / FUTURE_P2P_MAX_PAYLOAD, to send it)"
    )]
    PayloadTooLarge {
        /// The payload's size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The task failed or was cancelled.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// The scheduler stopped before the task finished.
    #[error("scheduler stopped before the task finished: {0}")]
    Stopped(StopReason),
}
