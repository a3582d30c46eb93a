//! The message board: a pico.sh pipe topic reached over SSH.
//!
//! - [`server`]: the pico-compatible pipe server of the self-hosted hub.

pub mod server;
