//! The message board: a pico.sh pipe topic reached over SSH.
//!
//! - [`server`]: the pico-compatible pipe server of the self-hosted hub.
//! - [`client`]: the [`client::Board`] API used by schedulers and workers.

pub mod client;
pub mod server;
