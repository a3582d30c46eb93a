//! The bridge between an R session and its `future-p2p` child: the frames they exchange
//! ([`protocol`]). The child's side that drives the scheduler lives with the command line.

pub mod protocol;
