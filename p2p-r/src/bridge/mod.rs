//! The bridge between an R session and its `future-p2p` child: the frames they exchange
//! ([`protocol`]) and the child's bookkeeping of futures and tasks ([`session`]). The child's
//! I/O (stdin/stdout, board, scheduler) lives with the command line, in `cli::bridge`.

pub mod protocol;
pub mod session;
