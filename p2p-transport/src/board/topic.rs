//! [`Topic`]: an open `pipe`, lines out and [`TopicEvent`]s in, with reconnects.
//!
//! Lines are split by `p2p_proto::framer::LineFramer` in one place, the topic's task. When
//! the connection drops, a topic reports [`TopicEvent::Disconnected`], retries with
//! exponential backoff, reopens the same pipe and reports [`TopicEvent::Reconnected`]; it
//! never just hangs.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use p2p_proto::framer::{FramerError, LineFramer, MAX_LINE_LEN};
use tokio::sync::{mpsc, oneshot};

use crate::lines::{LineChannel, line_channel};

use super::Inner;
use super::error::BoardError;
use super::exec::{Ending, Exec, Input, Output};

/// What a topic reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicEvent {
    /// A complete line from the topic (without its newline).
    Line(String),
    /// A line the framer rejected (too long, not UTF-8); the stream continues.
    Malformed(FramerError),
    /// The connection dropped; the next attempt is in `retry_in`.
    Disconnected {
        /// Why.
        reason: String,
        /// Delay before the next attempt.
        retry_in: Duration,
    },
    /// The pipe is open again after a disconnection (lines sent meanwhile are lost).
    Reconnected,
    /// The pipe ended for good: the server closed it (exit status, stderr) or reconnecting
    /// gave up. No more events follow. ([`Topic::close`] ends it without this event.)
    Closed {
        /// Exit status if one was sent (a missing one or 255 means the stream just ended).
        status: Option<u32>,
        /// The server's stderr (e.g. a slow-reader notice), or why reconnecting gave up.
        message: String,
    },
}

enum TopicCommand {
    Send(Bytes, oneshot::Sender<Result<(), BoardError>>),
    Close(oneshot::Sender<()>),
}

/// An open topic: send lines, receive [`TopicEvent`]s.
///
/// Read events continuously (in their own task if sending happens elsewhere, through
/// [`Topic::sender`]): a topic whose events are not read stops reading its SSH channel, which
/// holds up its connection and, past the server's backlog bound, gets it disconnected as a
/// slow reader.
#[derive(Debug)]
pub struct Topic {
    sender: TopicSender,
    events: mpsc::Receiver<TopicEvent>,
}

/// A cloneable handle that sends lines to a [`Topic`].
#[derive(Debug, Clone)]
pub struct TopicSender {
    commands: mpsc::Sender<TopicCommand>,
}

impl TopicSender {
    /// Sends one line (a newline is added). Each line goes out as one SSH data message, so
    /// the server relays it whole and lines from several writers never interleave.
    pub async fn send_line(&self, line: &str) -> Result<(), BoardError> {
        if line.contains(['\n', '\r']) {
            return Err(BoardError::LineBreak);
        }
        if line.len() > MAX_LINE_LEN {
            return Err(BoardError::LineTooLong {
                len: line.len(),
                max: MAX_LINE_LEN,
            });
        }
        let mut data = Vec::with_capacity(line.len() + 1);
        data.extend_from_slice(line.as_bytes());
        data.push(b'\n');
        let (ack_tx, ack_rx) = oneshot::channel();
        self.commands
            .send(TopicCommand::Send(Bytes::from(data), ack_tx))
            .await
            .map_err(|_| BoardError::NotConnected("closed"))?;
        ack_rx
            .await
            .map_err(|_| BoardError::NotConnected("closed"))?
    }
}

impl Topic {
    /// Starts the task that pumps `exec`, the running `command` (reopened on reconnects).
    pub(super) fn start(inner: Arc<Inner>, command: String, exec: Exec) -> Topic {
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        let (event_tx, event_rx) = mpsc::channel(256);
        let task = TopicTask {
            inner,
            command,
            commands: cmd_rx,
            events: event_tx,
            framer: LineFramer::new(MAX_LINE_LEN),
            pending: VecDeque::new(),
            stderr: Vec::new(),
        };
        tokio::spawn(task.run(exec));
        Topic {
            sender: TopicSender { commands: cmd_tx },
            events: event_rx,
        }
    }

    /// Sends one line; see [`TopicSender::send_line`].
    pub async fn send_line(&self, line: &str) -> Result<(), BoardError> {
        self.sender.send_line(line).await
    }

    /// A handle for sending from another task while this one reads events.
    pub fn sender(&self) -> TopicSender {
        self.sender.clone()
    }

    /// The next event; `None` after [`TopicEvent::Closed`].
    pub async fn recv(&mut self) -> Option<TopicEvent> {
        self.events.recv().await
    }

    /// Hands the topic to the protocol drivers as a [`LineChannel`] (`capacity` lines each
    /// way). Malformed lines are logged and skipped, reconnects are logged; `incoming` closes
    /// when the topic ends for good, and dropping `outgoing` leaves the topic.
    pub fn into_lines(mut self, capacity: usize) -> LineChannel {
        let (channel, mut pump) = line_channel(capacity);
        let sender = self.sender();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    event = self.events.recv() => match event {
                        Some(TopicEvent::Line(line)) => {
                            if pump.to_driver.send(line).await.is_err() {
                                break;
                            }
                        }
                        Some(TopicEvent::Malformed(error)) => {
                            tracing::warn!(%error, "skipped a malformed board line");
                        }
                        Some(TopicEvent::Disconnected { reason, retry_in }) => {
                            tracing::warn!(%reason, ?retry_in, "board topic disconnected");
                        }
                        Some(TopicEvent::Reconnected) => tracing::info!("board topic reconnected"),
                        Some(TopicEvent::Closed { status, message }) => {
                            tracing::info!(?status, %message, "board topic closed");
                            return;
                        }
                        None => return,
                    },
                    line = pump.from_driver.recv() => match line {
                        Some(line) => {
                            if let Err(error) = sender.send_line(&line).await {
                                tracing::warn!(%error, "board line not sent");
                            }
                        }
                        None => break,
                    },
                }
            }
            self.close().await;
        });
        channel
    }

    /// Leaves the topic and waits until the channel is closed.
    pub async fn close(self) {
        let (tx, rx) = oneshot::channel();
        if self
            .sender
            .commands
            .send(TopicCommand::Close(tx))
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
    }
}

/// The task behind a [`Topic`]: the only place where bytes become lines.
struct TopicTask {
    inner: Arc<Inner>,
    command: String,
    commands: mpsc::Receiver<TopicCommand>,
    events: mpsc::Sender<TopicEvent>,
    framer: LineFramer,
    /// Events read from the stream and not yet taken by the caller.
    pending: VecDeque<TopicEvent>,
    stderr: Vec<u8>,
}

/// Lines buffered before the task stops reading the stream.
const PENDING_LINES: usize = 4096;
/// Tail of the server's stderr kept for [`TopicEvent::Closed`].
const STDERR_KEPT: usize = 64 * 1024;

/// Why a pump of one exec ended.
enum Pumped {
    Ended(Ending),
    ClosedByCaller(oneshot::Sender<()>),
    CallerGone,
}

impl TopicTask {
    async fn run(mut self, mut exec: Exec) {
        loop {
            let reason = match self.pump(&mut exec).await {
                // `Topic::close` consumed the receiver's owner: no Closed event is wanted,
                // and waiting for room in a full event queue would never end.
                Pumped::ClosedByCaller(done) => {
                    let _ = exec.input.send(Input::Close).await;
                    let _ = done.send(());
                    return;
                }
                Pumped::CallerGone => {
                    let _ = exec.input.send(Input::Close).await;
                    return;
                }
                Pumped::Ended(Ending::Lost(reason)) => reason,
                Pumped::Ended(Ending::Exit(status)) => {
                    self.flush_partial().await;
                    let message = String::from_utf8_lossy(&self.stderr).trim().to_owned();
                    self.closed(Some(status), message).await;
                    return;
                }
                Pumped::Ended(Ending::NoStatus) => {
                    self.flush_partial().await;
                    let message = String::from_utf8_lossy(&self.stderr).trim().to_owned();
                    self.closed(None, message).await;
                    return;
                }
            };
            // A line cut off by the drop is not a line.
            self.framer = LineFramer::new(MAX_LINE_LEN);
            match self.reconnect(reason).await {
                Some(next) => exec = next,
                None => return,
            }
        }
    }

    async fn closed(&self, status: Option<u32>, message: String) {
        let _ = self
            .events
            .send(TopicEvent::Closed { status, message })
            .await;
    }

    async fn flush_partial(&mut self) {
        if let Some(last) = self.framer.finish() {
            let _ = self.events.send(event(last)).await;
        }
    }

    /// Moves bytes both ways until the command ends or the caller closes. Lines wait in
    /// `pending` for room in the event queue, so a caller that is busy sending is never
    /// blocked by events it has not read yet; output is only read while `pending` is short,
    /// which pushes back on the SSH window instead of buffering without bound.
    async fn pump(&mut self, exec: &mut Exec) -> Pumped {
        let mut ended: Option<Ending> = None;
        loop {
            if ended.is_some() && self.pending.is_empty() {
                return Pumped::Ended(ended.take().unwrap_or(Ending::NoStatus));
            }
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(TopicCommand::Send(data, ack)) => {
                        let sent = exec.input.send(Input::Data(data)).await;
                        let _ = ack.send(sent.map_err(|_| BoardError::NotConnected("disconnected")));
                    }
                    Some(TopicCommand::Close(done)) => return Pumped::ClosedByCaller(done),
                    None => return Pumped::CallerGone,
                },
                permit = self.events.reserve(), if !self.pending.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some(next) = self.pending.pop_front() {
                            permit.send(next);
                        }
                    }
                    Err(_) => return Pumped::CallerGone,
                },
                output = exec.output.recv(), if ended.is_none() && self.pending.len() < PENDING_LINES => match output {
                    Some(Output::Stdout(data)) => {
                        self.framer.push(&data);
                        while let Some(line) = self.framer.next_line() {
                            self.pending.push_back(event(line));
                        }
                    }
                    Some(Output::Stderr(data)) => {
                        self.stderr.extend_from_slice(&data);
                        if self.stderr.len() > STDERR_KEPT {
                            self.stderr.drain(..self.stderr.len() - STDERR_KEPT);
                        }
                    }
                    Some(Output::End(ending)) => ended = Some(ending),
                    None => ended = Some(Ending::Lost("connection task ended".to_owned())),
                },
            }
        }
    }

    /// Retries with backoff; `None` if the caller closed the topic or attempts ran out.
    async fn reconnect(&mut self, mut reason: String) -> Option<Exec> {
        let backoff = self.inner.config.backoff;
        let mut attempt = 0u32;
        loop {
            if backoff.max_attempts.is_some_and(|max| attempt >= max) {
                self.closed(None, format!("gave up reconnecting: {reason}"))
                    .await;
                return None;
            }
            let delay = backoff.delay(attempt);
            tracing::warn!(%reason, ?delay, "board connection lost; reconnecting");
            let disconnected = TopicEvent::Disconnected {
                reason: reason.clone(),
                retry_in: delay,
            };
            if self.events.send(disconnected).await.is_err() {
                return None;
            }
            let sleep = tokio::time::sleep(delay);
            tokio::pin!(sleep);
            loop {
                tokio::select! {
                    _ = &mut sleep => break,
                    command = self.commands.recv() => match command {
                        Some(TopicCommand::Send(_, ack)) => {
                            let _ = ack.send(Err(BoardError::NotConnected("disconnected")));
                        }
                        Some(TopicCommand::Close(done)) => {
                            let _ = done.send(());
                            return None;
                        }
                        None => return None,
                    },
                }
            }
            match self.inner.exec(&self.command).await {
                Ok(exec) => {
                    self.stderr.clear();
                    let _ = self.events.send(TopicEvent::Reconnected).await;
                    return Some(exec);
                }
                Err(e) => {
                    reason = e.to_string();
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }
}

fn event(line: Result<String, FramerError>) -> TopicEvent {
    match line {
        Ok(l) => TopicEvent::Line(l),
        Err(e) => TopicEvent::Malformed(e),
    }
}
