//! [`LineChannel`]: a board topic as the protocol drivers see it, lines in and lines out.
//!
//! The scheduler and worker drivers never touch SSH: they read decoded-ready lines from a
//! channel and write lines to another. Whatever holds the topic open (the russh client,
//! the system `ssh` backend, or the hub in-process) pumps bytes through the line framer
//! into these channels, so reconnects and backends stay out of the protocol code.

use tokio::sync::{mpsc, watch};

/// Lines to and from one board topic (no newlines either way).
#[derive(Debug)]
pub struct LineChannel {
    /// Lines read from the topic. Closed when the board connection is gone for good.
    pub incoming: mpsc::Receiver<String>,
    /// Lines to write to the topic.
    pub outgoing: mpsc::Sender<String>,
    /// Bumped each time the topic reopens after a disconnect: lines written meanwhile were
    /// lost and peers that came meanwhile saw nothing of ours, so a driver posts again
    /// what must stand (its hello, its requests).
    pub reopened: watch::Receiver<u64>,
}

/// The other end of a [`LineChannel`], held by whatever moves the bytes.
#[derive(Debug)]
pub struct LinePump {
    /// Where lines read from the topic go.
    pub to_driver: mpsc::Sender<String>,
    /// Lines the driver wants written.
    pub from_driver: mpsc::Receiver<String>,
    /// Bump it when the topic reopens (see [`LineChannel::reopened`]).
    pub reopened: watch::Sender<u64>,
}

/// The board connection is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the board connection closed")]
pub struct BoardClosed;

/// Writes `line` to the board through a driver's outgoing channel.
///
/// A line that cannot be encoded is a bug in the core that made it (cores only build
/// valid messages): it is logged and skipped rather than taking the driver down.
pub async fn post_line(
    outgoing: &mpsc::Sender<String>,
    line: &p2p_proto::message::BoardLine,
) -> Result<(), BoardClosed> {
    match line.encode() {
        Ok(text) => outgoing.send(text).await.map_err(|_| BoardClosed),
        Err(err) => {
            tracing::error!(%err, "cannot encode a board line");
            Ok(())
        }
    }
}

/// A connected pair: the driver's end and the pump's end, each buffering `capacity` lines.
pub fn line_channel(capacity: usize) -> (LineChannel, LinePump) {
    let (to_driver, incoming) = mpsc::channel(capacity);
    let (outgoing, from_driver) = mpsc::channel(capacity);
    let (reopens, reopened) = watch::channel(0);
    (
        LineChannel {
            incoming,
            outgoing,
            reopened,
        },
        LinePump {
            to_driver,
            from_driver,
            reopened: reopens,
        },
    )
}

/// Lines buffered between a topic and its driver.
pub const TOPIC_LINES: usize = 4096;
