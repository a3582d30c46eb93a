//! What a session sends: frames whose payload is in memory, and tasks whose payload may be
//! kept in a file and read a record at a time as it goes out.

use bytes::{Bytes, BytesMut};
use p2p_proto::frame::{Frame, FrameError, Task};
use p2p_proto::id::FutureId;

use crate::payload::Payload;

/// A frame to send, or a task whose payload is held apart from its frame.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// A frame, its payload (if any) in it.
    Frame(Frame),
    /// A task, its payload wherever the [`Payload`] keeps it.
    Task {
        /// The future.
        future: FutureId,
        /// Its payload.
        payload: Payload,
    },
}

impl From<Frame> for Outgoing {
    fn from(frame: Frame) -> Self {
        Outgoing::Frame(frame)
    }
}

/// Something a session writes: a frame head, then the payload the head announces.
pub trait Outbound {
    /// Appends the head to `heads` and returns the payload that follows it.
    fn encode_head(&self, heads: &mut BytesMut) -> Result<Payload, FrameError>;
}

impl Outbound for Frame {
    fn encode_head(&self, heads: &mut BytesMut) -> Result<Payload, FrameError> {
        Frame::encode_head(self, heads).map(Payload::Memory)
    }
}

impl Outbound for Outgoing {
    fn encode_head(&self, heads: &mut BytesMut) -> Result<Payload, FrameError> {
        match self {
            Outgoing::Frame(frame) => Outbound::encode_head(frame, heads),
            Outgoing::Task { future, payload } => {
                let head = Frame::Task(Task {
                    future: future.clone(),
                    payload: Bytes::new(),
                });
                head.encode_head_announcing(heads, payload.len())?;
                Ok(payload.clone())
            }
        }
    }
}
