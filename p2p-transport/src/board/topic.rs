//! [`Topic`]: an open `pipe`, lines out and [`TopicEvent`]s in, with reconnects.
//!
//! Lines are split by `p2p_proto::framer::LineFramer` in one place, the topic's task.
//!
//! A pipe ends only when its caller closes it. Whatever else ends it (the connection drops,
//! the hub restarts, the server ends the pipe with an exit status, e.g. a slow-reader cut or
//! an access error), the topic reports [`TopicEvent::Disconnected`] with the reason (and the
//! server's stderr), logs it, retries with exponential backoff, reopens the same pipe and
//! reports [`TopicEvent::Reconnected`]; it never just hangs or silently stops. The backoff
//! starts over only after a pipe stayed open for [`STABLE_PIPE`], so a server that refuses
//! the pipe at once is asked less and less often, not in a tight loop.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use p2p_proto::framer::{FramerError, LineFramer, MAX_LINE_LEN};
use tokio::sync::{mpsc, oneshot, watch};

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
    /// The pipe ended for good: reconnecting gave up after [`Backoff::max_attempts`]
    /// (never, by default). No more events follow. ([`Topic::close`] ends it without this
    /// event.)
    ///
    /// [`Backoff::max_attempts`]: super::Backoff::max_attempts
    Closed {
        /// Exit status of the last pipe if one was sent.
        status: Option<u32>,
        /// Why the last attempt failed.
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
    /// Events come in batches (the lines of one read), which keeps the cost per line low
    /// when a busy topic delivers tens of thousands of lines a second.
    events: mpsc::Receiver<Vec<TopicEvent>>,
    batch: VecDeque<TopicEvent>,
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
        let (event_tx, event_rx) = mpsc::channel(EVENT_BATCHES);
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
            batch: VecDeque::new(),
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
        loop {
            if let Some(event) = self.batch.pop_front() {
                return Some(event);
            }
            self.batch = self.events.recv().await?.into();
        }
    }

    /// Hands the topic to the protocol drivers as a [`LineChannel`] (`capacity` lines each
    /// way). Malformed lines are logged and skipped (disconnects and reconnects are logged
    /// by the topic itself); `incoming` closes only if reconnecting gives up, and dropping
    /// `outgoing` leaves the topic.
    pub fn into_lines(self, capacity: usize) -> LineChannel {
        self.into_lines_watching_refusals(capacity).0
    }

    /// [`Topic::into_lines`], and a watch of the board's refusal: what the board said when
    /// it ended the pipe before it carried a line (on a future-p2p hub: nobody hosts that
    /// cluster, or we are not on its list); cleared once a pipe carries a line (a pipe
    /// ended after that was not refused: a slow-reader cut, a restart).
    pub fn into_lines_watching_refusals(
        mut self,
        capacity: usize,
    ) -> (LineChannel, watch::Receiver<Option<String>>) {
        let (channel, mut pump) = line_channel(capacity);
        let (refused_tx, refused_rx) = watch::channel(None);
        let sender = self.sender();
        tokio::spawn(async move {
            // Whether the pipe now open has carried a line.
            let mut carried = false;
            loop {
                tokio::select! {
                    event = self.recv() => match event {
                        Some(TopicEvent::Line(line)) => {
                            if !carried {
                                carried = true;
                                refused_tx.send_if_modified(|said| said.take().is_some());
                            }
                            if pump.to_driver.send(line).await.is_err() {
                                break;
                            }
                        }
                        Some(TopicEvent::Malformed(error)) => {
                            tracing::warn!(%error, "skipped a malformed board line");
                        }
                        Some(TopicEvent::Disconnected { reason, .. }) => {
                            if !carried && let Some(said) = board_refusal(&reason) {
                                refused_tx.send_replace(Some(said.to_owned()));
                            }
                        }
                        Some(TopicEvent::Reconnected) => {
                            carried = false;
                            // The driver posts again what must stand (its hello, requests).
                            pump.reopened.send_modify(|n| *n += 1);
                        }
                        Some(TopicEvent::Closed { status, message }) => {
                            tracing::error!(?status, %message, "board topic closed for good");
                            return;
                        }
                        None => return,
                    },
                    line = pump.from_driver.recv() => match line {
                        Some(line) => {
                            // Lost while the pipe reconnects; the driver re-posts what must
                            // stand once it is back.
                            if let Err(error) = sender.send_line(&line).await {
                                tracing::debug!(%error, "board line not sent");
                            }
                        }
                        None => break,
                    },
                }
            }
            self.close().await;
        });
        (channel, refused_rx)
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

/// What the board said when it ended a pipe (`the board ended the pipe (exit status 1):
/// WORDS`, as [`TopicEvent::Disconnected`] reports it); `None` for a pipe lost without
/// words.
fn board_refusal(reason: &str) -> Option<&str> {
    let rest = reason.strip_prefix("the board ended the pipe (")?;
    let (_, said) = rest.split_once("): ")?;
    let said = said.trim();
    (!said.is_empty()).then_some(said)
}

/// The task behind a [`Topic`]: the only place where bytes become lines.
struct TopicTask {
    inner: Arc<Inner>,
    command: String,
    commands: mpsc::Receiver<TopicCommand>,
    events: mpsc::Sender<Vec<TopicEvent>>,
    framer: LineFramer,
    /// Events read from the stream and not yet taken by the caller.
    pending: VecDeque<TopicEvent>,
    stderr: Vec<u8>,
}

/// Lines buffered before the task stops reading the stream.
const PENDING_LINES: usize = 4096;
/// Batches of events queued for the caller, and lines per batch: with `PENDING_LINES`,
/// at most about 8,000 lines wait for a caller that stopped reading.
const EVENT_BATCHES: usize = 16;
const BATCH_LINES: usize = 256;
/// A pipe that stayed open this long was a success: the next disconnect starts the backoff
/// from its first delay again.
pub const STABLE_PIPE: Duration = Duration::from_secs(10);
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
        // Failed attempts since the last pipe that lasted STABLE_PIPE.
        let mut failures = 0u32;
        loop {
            let opened = tokio::time::Instant::now();
            let ended = self.pump(&mut exec).await;
            let mut status = None;
            let reason = match ended {
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
                Pumped::Ended(Ending::Lost(reason)) => {
                    // A line cut off by the drop is not a line.
                    self.framer = LineFramer::new(MAX_LINE_LEN);
                    reason
                }
                Pumped::Ended(Ending::Exit(code)) => {
                    self.flush_partial().await;
                    status = Some(code);
                    self.server_ended(&format!("exit status {code}"))
                }
                Pumped::Ended(Ending::NoStatus) => {
                    self.flush_partial().await;
                    self.server_ended("no exit status")
                }
            };
            if opened.elapsed() >= STABLE_PIPE {
                failures = 0;
            }
            match self.reconnect(reason, status, &mut failures).await {
                Some(next) => exec = next,
                None => return,
            }
        }
    }

    /// Why the server ended the pipe, with what it said on stderr.
    fn server_ended(&mut self, how: &str) -> String {
        let said = String::from_utf8_lossy(&self.stderr).trim().to_owned();
        self.stderr.clear();
        if said.is_empty() {
            format!("the board ended the pipe ({how})")
        } else {
            format!("the board ended the pipe ({how}): {said}")
        }
    }

    async fn closed(&self, status: Option<u32>, message: String) {
        let _ = self
            .events
            .send(vec![TopicEvent::Closed { status, message }])
            .await;
    }

    async fn flush_partial(&mut self) {
        if let Some(last) = self.framer.finish() {
            let _ = self.events.send(vec![event(last)]).await;
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
                        let n = self.pending.len().min(BATCH_LINES);
                        permit.send(self.pending.drain(..n).collect());
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
    /// `failures` counts attempts since the last stable pipe, across calls.
    async fn reconnect(
        &mut self,
        mut reason: String,
        status: Option<u32>,
        failures: &mut u32,
    ) -> Option<Exec> {
        let backoff = self.inner.config.backoff;
        loop {
            if backoff.max_attempts.is_some_and(|max| *failures >= max) {
                self.closed(status, format!("gave up reconnecting: {reason}"))
                    .await;
                return None;
            }
            let delay = backoff.delay(*failures);
            *failures = failures.saturating_add(1);
            tracing::warn!(command = %self.command, %reason, ?delay, "board pipe lost; reconnecting");
            let disconnected = TopicEvent::Disconnected {
                reason: reason.clone(),
                retry_in: delay,
            };
            if self.events.send(vec![disconnected]).await.is_err() {
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
                    tracing::info!(command = %self.command, "board pipe reopened");
                    let _ = self.events.send(vec![TopicEvent::Reconnected]).await;
                    return Some(exec);
                }
                Err(e) => reason = e.to_string(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_is_the_boards_own_words() {
        assert_eq!(
            board_refusal(
                "the board ended the pipe (exit status 1): alice/nope is not hosted: it is alice's"
            ),
            Some("alice/nope is not hosted: it is alice's")
        );
        assert_eq!(
            board_refusal("the board ended the pipe (exit status 1)"),
            None
        );
        assert_eq!(board_refusal("connection reset by peer"), None);
    }
}
