//! The payload size limit: one figure that every layer applies, so a payload is either
//! refused at once where it is submitted, with the limit in the message, or goes through.
//!
//! ```text
//!   client   Scheduler::submit refuses a larger payload before posting; the R bridge
//!            tells R the limit in its hello, and R refuses before sending
//!   board    the request's `size=`: a worker with a smaller limit does not offer
//!   session  a task or result announces its size before its bytes; a larger one is
//!            refused unread
//!   worker   the same check on every task; a command's output and an R result are
//!            bounded by it too
//! ```
//!
//! A payload only ever moves in bounded pieces (records, chunks), so no layer needs a
//! buffer of the limit's size to enforce it; raising it costs memory only for payloads
//! that are that large.

/// The default limit, in bytes, for a task's payload and for its result: 512 MiB, just
/// above future's own default for the size of a future's globals
/// (`future.globals.maxSize`, 500 MiB), so what future lets through by default fits.
pub const DEFAULT_MAX_PAYLOAD: u64 = 512 << 20;
