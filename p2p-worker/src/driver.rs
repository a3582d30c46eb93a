//! The tokio driver of the worker: feeds [`WorkerCore`] with board lines and time, and
//! runs the tasks it accepts on an [`Executor`].
//!
//! ```text
//!   board (LineChannel) <--lines--> driver task --Run--> job task per accepted task
//!                                        ^                 |  files: receive CODE-f, run,
//!                                        +----reports------+         send CODE-r
//!                                                             session: frames until closed
//! ```
//!
//! The driver never blocks on a task: jobs run in their own tasks, so the board is read
//! all the time (a stalled reader would stall the whole topic for everyone).

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use p2p_proto::frame::{Frame, Hello, Outcome, Progress, RemoteError, RemoteErrorKind, TaskResult};
use p2p_proto::id::{FutureId, PeerId};
use p2p_proto::line;
use p2p_proto::message::DeclineReason;
use p2p_transport::clock::{sleep_until, unix_ms};
use p2p_transport::lines::{LineChannel, post_line};
use p2p_transport::wormhole::{
    Incoming, IncomingPayload, IncomingTask, Session, SessionConfig, SessionRole, TransferError,
    TransferOptions, WormholeConfig, receive_bytes, send_bytes,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::core::{Assignment, TransferMode, WorkerAction, WorkerConfig, WorkerCore};
use crate::executor::{Executor, StreamJob};

/// Everything the worker needs besides the board and the executor.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The board state machine.
    pub core: WorkerConfig,
    /// The mailbox and relays payloads go through.
    pub wormhole: WormholeConfig,
    /// Bound on receiving a payload or sending a result, rendezvous included.
    pub transfer_timeout: Duration,
    /// Longest a task may run; `None` for no limit.
    pub time_limit: Option<Duration>,
    /// Warm sessions: timeouts, heartbeats (their payload limit is `core.max_payload`).
    pub session: SessionConfig,
}

impl WorkerOptions {
    /// Defaults for the given worker configuration and wormhole servers.
    pub fn new(core: WorkerConfig, wormhole: WormholeConfig) -> Self {
        WorkerOptions {
            core,
            wormhole,
            transfer_timeout: Duration::from_secs(600),
            time_limit: None,
            session: SessionConfig::default(),
        }
    }
}

/// A new sealing key from the OS's randomness, for [`WorkerConfig::secret`].
pub fn fresh_secret() -> p2p_proto::seal::WorkerSecret {
    p2p_proto::seal::WorkerSecret::generate(&mut rand_core::OsRng)
}

enum Report {
    /// A task arrived on a session and now takes a slot.
    SessionTask(PeerId, FutureId),
    /// A task ended: delivered, or why not (told to its client with a `decline` line).
    TaskEnded(FutureId, Result<(), DeclineReason>),
}

/// Why a worker stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StopReason {
    /// The `until` time of its configuration passed.
    #[error("the worker's duration is over")]
    DurationOver,
    /// The board connection ended for good.
    #[error("the board connection closed")]
    BoardClosed,
    /// [`Worker::shutdown`] was called.
    #[error("shut down")]
    ShutDown,
    /// The worker's task ended without saying why (its runtime shut down).
    #[error("the worker's task ended abruptly")]
    Aborted,
}

/// A running worker.
#[derive(Debug)]
pub struct Worker {
    stopped: watch::Receiver<Option<StopReason>>,
    shutdown: CancellationToken,
}

impl Worker {
    /// Starts the worker on the current tokio runtime.
    pub fn start<E: Executor>(board: LineChannel, executor: E, options: WorkerOptions) -> Worker {
        let (stopped_tx, stopped) = watch::channel(None);
        let shutdown = CancellationToken::new();
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let driver = Driver {
            core: WorkerCore::new(options.core.clone(), unix_ms()),
            options,
            executor: std::sync::Arc::new(executor),
            board_out: board.outgoing,
            jobs: HashMap::new(),
            reports: reports_tx,
        };
        tokio::spawn(driver.run(board.incoming, reports, shutdown.clone(), stopped_tx));
        Worker { stopped, shutdown }
    }

    /// Waits until the worker stops and says why.
    pub async fn stopped(&mut self) -> StopReason {
        loop {
            if let Some(reason) = *self.stopped.borrow() {
                return reason;
            }
            if self.stopped.changed().await.is_err() {
                return StopReason::Aborted;
            }
        }
    }

    /// Stops offering, cancels running tasks and leaves the board.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }
}

struct Driver<E> {
    core: WorkerCore,
    options: WorkerOptions,
    executor: std::sync::Arc<E>,
    board_out: mpsc::Sender<String>,
    /// Cancels the job running a board-accepted task.
    jobs: HashMap<FutureId, CancellationToken>,
    reports: mpsc::UnboundedSender<Report>,
}

impl<E: Executor> Driver<E> {
    async fn run(
        mut self,
        mut board_in: mpsc::Receiver<String>,
        mut reports: mpsc::UnboundedReceiver<Report>,
        shutdown: CancellationToken,
        stopped: watch::Sender<Option<StopReason>>,
    ) {
        self.core.handle_timeout(unix_ms());
        let reason = loop {
            if let Some(reason) = self.apply().await {
                break reason;
            }
            let sleep = sleep_until(self.core.poll_timeout());
            tokio::select! {
                line = board_in.recv() => match line {
                    Some(text) => match line::decode(&text) {
                        Ok(line) => self.core.handle_line(unix_ms(), &line),
                        Err(err) => tracing::trace!(%err, "skipping board line"),
                    },
                    None => break StopReason::BoardClosed,
                },
                Some(report) = reports.recv() => match report {
                    Report::SessionTask(client, future) => self.core.session_task_started(&client, &future),
                    Report::TaskEnded(future, Ok(())) => {
                        self.jobs.remove(&future);
                        self.core.task_finished(unix_ms(), &future);
                    }
                    Report::TaskEnded(future, Err(reason)) => {
                        self.jobs.remove(&future);
                        self.core.task_failed(unix_ms(), &future, reason);
                    }
                },
                () = tokio::time::sleep(sleep) => self.core.handle_timeout(unix_ms()),
                () = shutdown.cancelled() => break StopReason::ShutDown,
            }
        };
        tracing::info!(%reason, "worker stopped");
        for (_, cancel) in self.jobs.drain() {
            cancel.cancel();
        }
        let _ = stopped.send(Some(reason));
    }

    /// Carries out the core's actions; a reason when the worker must stop.
    async fn apply(&mut self) -> Option<StopReason> {
        while let Some(action) = self.core.poll_action() {
            match action {
                WorkerAction::Post(line) => {
                    if post_line(&self.board_out, &line).await.is_err() {
                        return Some(StopReason::BoardClosed);
                    }
                }
                WorkerAction::Run(assignment) => self.run_job(assignment),
                WorkerAction::Interrupt { future, .. } => {
                    if let Some(cancel) = self.jobs.get(&future) {
                        cancel.cancel();
                    }
                }
                WorkerAction::Stop => return Some(StopReason::DurationOver),
            }
        }
        None
    }

    fn run_job(&mut self, assignment: Assignment) {
        let cancel = CancellationToken::new();
        self.jobs.insert(assignment.future.clone(), cancel.clone());
        let job = JobContext {
            executor: std::sync::Arc::clone(&self.executor),
            options: self.options.clone(),
            reports: self.reports.clone(),
            cancel,
        };
        tokio::spawn(async move {
            use futures::FutureExt;
            let future = assignment.future.clone();
            let run = async {
                match assignment.mode {
                    TransferMode::Files => job.files(assignment).await,
                    // A session reports its outcomes in frames; the board hears only
                    // that it broke.
                    TransferMode::Session => match job.session(assignment).await {
                        true => Ok(()),
                        false => Err(DeclineReason::Failed),
                    },
                }
            };
            // A panicking executor must not leak the slot: the task just failed.
            let outcome = std::panic::AssertUnwindSafe(run)
                .catch_unwind()
                .await
                .unwrap_or(Err(DeclineReason::Failed));
            let _ = job.reports.send(Report::TaskEnded(future, outcome));
        });
    }
}

struct JobContext<E> {
    executor: std::sync::Arc<E>,
    options: WorkerOptions,
    reports: mpsc::UnboundedSender<Report>,
    cancel: CancellationToken,
}

impl<E: Executor> JobContext<E> {
    fn transfer_options(&self) -> TransferOptions {
        TransferOptions {
            timeout: self.options.transfer_timeout,
            max_size: self.options.core.max_payload,
            cancel: self.cancel.clone(),
            progress: None,
        }
    }

    /// Runs one payload (possibly still arriving) with the time limit; progress goes to
    /// `progress`.
    async fn execute(
        &self,
        client: &PeerId,
        future: &FutureId,
        payload: IncomingPayload,
        progress: mpsc::UnboundedSender<Bytes>,
    ) -> Result<Bytes, RemoteError> {
        if payload.len() > self.options.core.max_payload {
            return Err(RemoteError {
                kind: RemoteErrorKind::PayloadTooLarge,
                message: format!(
                    "payload of {} bytes exceeds this worker's limit of {} bytes",
                    payload.len(),
                    self.options.core.max_payload
                ),
            });
        }
        let job = StreamJob {
            future: future.clone(),
            client: client.clone(),
            payload,
        };
        let run = std::sync::Arc::clone(&self.executor).execute_stream(job, progress);
        match self.options.time_limit {
            Some(limit) => tokio::time::timeout(limit, run).await.unwrap_or_else(|_| {
                Err(RemoteError {
                    kind: RemoteErrorKind::TimeLimit,
                    message: format!("the task ran past this worker's time limit of {limit:?}"),
                })
            }),
            None => run.await,
        }
    }

    /// future.p2p's way: payload under `CODE-f`, result under `CODE-r`.
    async fn files(&self, assignment: Assignment) -> Result<(), DeclineReason> {
        let code = &assignment.code;
        let options = self.transfer_options();
        let payload =
            match receive_bytes(&self.options.wormhole, &code.future_code(), &options).await {
                Ok(received) => received.data,
                Err(err) => {
                    tracing::warn!(future = %assignment.future, %err, "receiving the task failed");
                    return Err(match err {
                        TransferError::TooLarge { .. } => DeclineReason::TooLarge,
                        _ => DeclineReason::Failed,
                    });
                }
            };
        // future.p2p has no channel for progress: updates are dropped.
        let (progress, _) = mpsc::unbounded_channel();
        let result = tokio::select! {
            result = self.execute(&assignment.client, &assignment.future, payload.into(), progress) => result,
            () = self.cancel.cancelled() => return Err(DeclineReason::Failed),
        };
        let result = match result {
            Ok(result) => result,
            Err(err) => {
                tracing::warn!(future = %assignment.future, %err, "task failed");
                // future.p2p has no error channel: the reason goes on the board.
                return Err(match err.kind {
                    RemoteErrorKind::TimeLimit => DeclineReason::TimeLimit,
                    RemoteErrorKind::PayloadTooLarge => DeclineReason::TooLarge,
                    _ => DeclineReason::Failed,
                });
            }
        };
        let name = format!("{}-FutureResult.rds", assignment.future);
        match send_bytes(
            &self.options.wormhole,
            &code.result_code(),
            &name,
            result,
            &options,
        )
        .await
        {
            Ok(()) => Ok(()),
            Err(err) => {
                tracing::warn!(future = %assignment.future, %err, "sending the result failed");
                Err(DeclineReason::Failed)
            }
        }
    }

    /// A warm session: tasks and results as frames until the client closes it.
    async fn session(&self, assignment: Assignment) -> bool {
        let config = SessionConfig {
            max_payload: self.options.core.max_payload,
            ..self.options.session.clone()
        };
        let session = Session::connect(
            &self.options.wormhole,
            &assignment.code,
            SessionRole::Follower,
            &config,
            self.cancel.clone(),
        )
        .await;
        let mut session = match session {
            Ok(session) => session,
            Err(err) => {
                tracing::warn!(future = %assignment.future, %err, "opening the session failed");
                return false;
            }
        };
        let ours = Hello::new(self.options.core.me.clone(), self.options.core.protocols());
        let hello_ok = match session.recv().await {
            Ok(Frame::Hello(theirs)) => ours.negotiate(&theirs).is_ok(),
            _ => false,
        };
        if !hello_ok || session.send(&Frame::Hello(ours)).await.is_err() {
            return false;
        }
        // Tasks the client pipelined while another ran; they run in arrival order. Their
        // payloads keep arriving meanwhile.
        let mut pending: VecDeque<IncomingTask> = VecDeque::new();
        let mut first = true;
        loop {
            let task = match pending.pop_front() {
                Some(task) => task,
                None => tokio::select! {
                    frame = session.recv_incoming() => match frame {
                        Ok(Incoming::Task(task)) => task,
                        Ok(_) => continue,
                        // The client closed the session (queue empty) or it died.
                        Err(_) => return true,
                    },
                    () = self.cancel.cancelled() => return false,
                },
            };
            if first {
                first = false;
            } else {
                let _ = self.reports.send(Report::SessionTask(
                    assignment.client.clone(),
                    task.future.clone(),
                ));
            }
            let future = task.future.clone();
            let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
            let run = self.execute(&assignment.client, &task.future, task.payload, progress_tx);
            tokio::pin!(run);
            let outcome = loop {
                tokio::select! {
                    result = &mut run => break match result {
                        Ok(value) => Outcome::Value(value),
                        Err(err) => Outcome::Error(err),
                    },
                    Some(payload) = progress_rx.recv() => {
                        let progress = Frame::Progress(Progress { future: future.clone(), payload });
                        if session.send(&progress).await.is_err() {
                            return false;
                        }
                    }
                    frame = session.recv_incoming() => match frame {
                        Ok(Incoming::Frame(Frame::Cancel(cancel))) if cancel.future == future => break Outcome::Error(RemoteError {
                            kind: RemoteErrorKind::Cancelled,
                            message: "cancelled by the client".into(),
                        }),
                        // A cancelled task that has not started is simply dropped: the
                        // client has already finished it.
                        Ok(Incoming::Frame(Frame::Cancel(cancel))) => pending.retain(|t| t.future != cancel.future),
                        Ok(Incoming::Task(next)) => pending.push_back(next),
                        Ok(_) => {}
                        Err(_) => return false,
                    },
                    () = self.cancel.cancelled() => return false,
                }
            };
            let result = Frame::Result(TaskResult {
                future: future.clone(),
                outcome,
            });
            let sent = session.send(&result).await.is_ok();
            if future != assignment.future {
                let outcome = if sent {
                    Ok(())
                } else {
                    Err(DeclineReason::Failed)
                };
                let _ = self.reports.send(Report::TaskEnded(future, outcome));
            }
            if !sent {
                return false;
            }
        }
    }
}
