//! I/O layer of future-p2p: everything that touches a socket.
//!
//! ```text
//!   p2p-scheduler   p2p-worker          (drivers: tokio tasks around sans-IO cores)
//!          \          /
//!       p2p-transport                   <- this crate
//!         board      SSH pipe client (Board) and pico-compatible pipe server (russh), see board/
//!         wormhole   magic-wormhole transfers and sessions, mailbox server, transit relay
//!         lines      LineChannel: a topic as lines in / lines out, for the drivers
//!         hub        Hub: pipe server + mailbox server + transit relay in one process
//!         clock      the wall clock in Unix ms, as the drivers feed it to the cores
//!          |
//!       p2p-proto                       (sans-IO: messages, codecs, framer)
//! ```
//!
//! Protocol decisions live in `p2p-proto` and in the sans-IO cores above; this crate only
//! moves bytes, owns timers and turns I/O failures into typed errors.

pub mod board;
pub mod clock;
pub mod hub;
pub mod lines;
pub mod wormhole;
