//! The message board: a pico.sh pipe topic reached over SSH.
//!
//! - [`server`]: the pico-compatible pipe server of the self-hosted hub.
//! - [`client`]: the [`client::Board`] API used by schedulers and workers
//!   ([`client::Topic::into_lines`] hands a topic to the drivers as a
//!   [`crate::lines::LineChannel`]).
//!
//! Where the server knowingly differs from `pipe.pico.sh` (each detailed where it is
//! implemented):
//! - access lists follow the intended rules: an unlisted user never reaches `owner/topic`
//!   (upstream lets anyone in on their first session), see [`server::topic`];
//! - a slow reader is disconnected once its backlog passes a bound instead of stalling the
//!   topic, see [`server::broker`];
//! - a remaining pipe is not disconnected when its peer leaves (a cluster host survives its
//!   last worker), and the first writer, not the channel's creator, picks `-d`;
//! - unknown commands, unbalanced quotes, `sub` without a topic and bad `-d` values are
//!   errors instead of silent no-ops, see [`server::command`];
//! - `user` is served here (pico.sh serves it on its main host);
//! - keepalives are `keepalive@openssh.com` global requests, not `ping@pico.sh` channel
//!   requests (russh cannot send custom channel requests), see [`server`];
//! - exit status 0, EOF and close always follow a normal end, after all output.
//!
//! Throughput and latency: `cargo run --release -p p2p-transport --example board_bench`.

pub mod client;
pub mod server;
