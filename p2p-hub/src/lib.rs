//! The self-hosted hub of future-p2p: the servers a cluster needs when it uses no public
//! service, in one process. Peers never link this crate; they reach it over the network
//! with `p2p-transport`.
//!
//! ```text
//!   future-p2p hub (p2p-cli), tests
//!          |
//!       p2p-hub                         <- this crate
//!         hub        Hub: the three servers below on their own addresses
//!         board/     pico-compatible SSH pipe server (russh): users, commands, topics and
//!                    persisted access lists, a gate that checks each line's sender, a
//!                    broker that fans lines out and sheds load before it cuts off readers
//!         mailbox/   magic-wormhole mailbox (rendezvous) server: sans-IO state machine
//!                    (state, protocol) and a WebSocket driver (server)
//!         relay      magic-wormhole transit relay: handshake parser and splice
//!         statedir   the state directory: mode 0700, files 0600, atomic rewrites
//!          |
//!       p2p-transport (clock)
//! ```
//!
//! Where the pipe server knowingly differs from pipe.pico.sh is listed in
//! `docs/pico-compat.md` §12 and at the code that does it.

pub mod board;
pub mod hub;
pub mod mailbox;
pub mod relay;
pub mod statedir;

pub use hub::{Hub, HubConfig, HubError};
