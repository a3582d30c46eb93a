//! The tokio driver of the worker: feeds [`WorkerCore`] with board lines, time and what
//! its transfers, sessions and runs report, and carries out the core's actions.
//!
//! ```text
//!   board (LineChannel) <--lines--> driver loop --Open--> receive job (files) | session task
//!                                     ^   |                    (frames in: reports;
//!                                     |   +--Start--> run job   frames out: one writer
//!                                     |                          per session, in order)
//!                                     +------- reports: received, ran, delivered,
//!                                              session up / frame / ended
//! ```
//!
//! The driver never blocks on a task: transfers, sessions and runs live in their own tokio
//! tasks, so the board is read all the time (a stalled reader would stall the whole topic
//! for everyone). Which task runs when, time limits, cancels and slots are the core's
//! decisions; the driver keeps the bytes (payloads until they run, codes until results
//! go back) and one cancel token per transfer or run.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use p2p_proto::frame::{Frame, Hello, Outcome, Progress, RemoteError, RemoteErrorKind, TaskResult};
use p2p_proto::id::{FutureId, PeerId, WormholeCode};
use p2p_proto::line;
use p2p_proto::load::{Direction, TransferLoad};
use p2p_proto::message::DeclineReason;
use p2p_proto::protocols::{self, PayloadFormat};
use p2p_transport::clock::{sleep_until, unix_ms};
use p2p_transport::lines::{LineChannel, post_line};
use p2p_transport::wormhole::{
    Incoming, IncomingPayload, IncomingTask, Meter, Session, SessionConfig, SessionRole,
    TransferError, TransferOptions, Way, WormholeConfig, receive_bytes, send_bytes,
};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::core::{
    Assignment, Delivery, Route, SessionId, TaskRef, WorkerAction, WorkerConfig, WorkerCore,
};
use crate::executor::{Executor, StreamJob};

/// Everything the worker needs besides the board and the executor.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// The board state machine (slots, time limit, sessions, ...).
    pub core: WorkerConfig,
    /// The mailbox and relays payloads go through.
    pub wormhole: WormholeConfig,
    /// Bound on receiving a payload or sending a result, rendezvous included.
    pub transfer_timeout: Duration,
    /// Warm sessions: timeouts, heartbeats, frame size.
    pub session: SessionConfig,
}

impl WorkerOptions {
    /// Defaults for the given worker configuration and wormhole servers.
    pub fn new(core: WorkerConfig, wormhole: WormholeConfig) -> Self {
        WorkerOptions {
            core,
            wormhole,
            transfer_timeout: Duration::from_secs(600),
            session: SessionConfig::default(),
        }
    }
}

/// A new sealing key from the OS's randomness, for [`WorkerConfig::secret`].
pub fn fresh_secret() -> p2p_proto::seal::WorkerSecret {
    p2p_proto::seal::WorkerSecret::generate(&mut rand_core::OsRng)
}

/// The two ends of a session the driver writes to: frames go out in order through one
/// writer task; the token closes the session.
struct SessionLink {
    client: PeerId,
    outbound: mpsc::UnboundedSender<Frame>,
    close: CancellationToken,
    /// Its payloads in flight, for the hellos' transfers ...
    meter: Meter,
    /// ... and the futures of the last payload received and the last result sent on it.
    receiving: Option<FutureId>,
    sending: Option<FutureId>,
}

enum Report {
    /// Files route: the payload arrived, or why not.
    Received(TaskRef, Result<Bytes, DeclineReason>),
    /// A run ended.
    Ran(TaskRef, Result<Bytes, RemoteError>),
    /// Files route: the result went out (`true`) or could not be sent.
    Delivered(TaskRef, bool),
    /// The session's hellos were exchanged; it reports starts when both sides can.
    SessionUp(SessionId, SessionLink, bool),
    SessionFrame(SessionId, Frame),
    /// A task on a session, its payload still arriving.
    SessionTask(SessionId, IncomingTask),
    SessionEnded(SessionId),
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
    /// [`Worker::drain`] was called and the tasks the worker held are over.
    #[error("drained: it took no new tasks and finished the ones it had")]
    Drained,
    /// The worker's task ended without saying why (its runtime shut down).
    #[error("the worker's task ended abruptly")]
    Aborted,
}

/// A running worker.
#[derive(Debug)]
pub struct Worker {
    stopped: watch::Receiver<Option<StopReason>>,
    shutdown: CancellationToken,
    drain: CancellationToken,
}

impl Worker {
    /// Starts the worker on the current tokio runtime.
    pub fn start<E: Executor>(board: LineChannel, executor: E, options: WorkerOptions) -> Worker {
        let (stopped_tx, stopped) = watch::channel(None);
        let shutdown = CancellationToken::new();
        let drain = CancellationToken::new();
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let mut config = options.core.clone();
        config.seed = rand_core::RngCore::next_u64(&mut rand_core::OsRng);
        let driver = Driver {
            core: WorkerCore::new(config, unix_ms()),
            options,
            executor: Arc::new(executor),
            board_out: board.outgoing,
            jobs: HashMap::new(),
            payloads: HashMap::new(),
            codes: HashMap::new(),
            formats: HashMap::new(),
            sessions: HashMap::new(),
            file_meters: HashMap::new(),
            reports: reports_tx,
            all_jobs: shutdown.child_token(),
        };
        let signals = Signals {
            shutdown: shutdown.clone(),
            drain: drain.clone(),
        };
        tokio::spawn(driver.run(board.incoming, board.reopened, reports, signals, stopped_tx));
        Worker {
            stopped,
            shutdown,
            drain,
        }
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

    /// Stops offering and lets the tasks the worker holds run to their end; then it stops
    /// ([`StopReason::Drained`]). Bound the wait with [`Worker::stopped`] and a timeout,
    /// and call [`Worker::shutdown`] after it to cancel what still runs.
    pub fn drain(&self) {
        self.drain.cancel();
    }
}

/// What the handle tells the driver.
struct Signals {
    shutdown: CancellationToken,
    drain: CancellationToken,
}

struct Driver<E> {
    core: WorkerCore,
    options: WorkerOptions,
    executor: Arc<E>,
    board_out: mpsc::Sender<String>,
    /// Cancels the receive or the run of a task.
    jobs: HashMap<TaskRef, CancellationToken>,
    /// Payloads waiting for the core to start them.
    payloads: HashMap<TaskRef, IncomingPayload>,
    /// Files route: the code each accepted task's result goes back under.
    codes: HashMap<TaskRef, WormholeCode>,
    /// The payload format of files-route tasks (session tasks are in the native one).
    formats: HashMap<TaskRef, PayloadFormat>,
    sessions: HashMap<SessionId, SessionLink>,
    /// Files route: the payload being received, or the result being sent, of each task.
    file_meters: HashMap<TaskRef, (Way, Meter)>,
    reports: mpsc::UnboundedSender<Report>,
    /// Parent of every job's token: cancelled when the worker stops.
    all_jobs: CancellationToken,
}

impl<E: Executor> Driver<E> {
    async fn run(
        mut self,
        mut board_in: mpsc::Receiver<String>,
        mut reopened: watch::Receiver<u64>,
        mut reports: mpsc::UnboundedReceiver<Report>,
        signals: Signals,
        stopped: watch::Sender<Option<StopReason>>,
    ) {
        self.core.handle_timeout(unix_ms());
        let mut draining = false;
        let reason = loop {
            if let Some(reason) = self.apply().await {
                break match reason {
                    StopReason::DurationOver if draining => StopReason::Drained,
                    other => other,
                };
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
                // A closed watch (the pump gone) disables this branch; the lines end too.
                Ok(()) = reopened.changed() => self.core.board_reopened(unix_ms()),
                Some(report) = reports.recv() => self.report(report),
                () = tokio::time::sleep(sleep) => {
                    let now = unix_ms();
                    // The meters are read only when a hello will say what they show.
                    if self.core.hello_due(now) {
                        self.core.set_transfers(self.transfers());
                    }
                    self.core.handle_timeout(now);
                }
                () = signals.shutdown.cancelled() => break StopReason::ShutDown,
                () = signals.drain.cancelled(), if !draining => {
                    draining = true;
                    tracing::info!(running = self.core.running(), queued = self.core.queued(), "draining: no new tasks");
                    self.core.drain(unix_ms());
                }
            }
        };
        tracing::info!(%reason, "worker stopped");
        self.all_jobs.cancel();
        for (_, link) in self.sessions.drain() {
            link.close.cancel();
        }
        let _ = stopped.send(Some(reason));
    }

    /// The payloads moving between this worker and its clients now, for its next hello.
    fn transfers(&self) -> Vec<TransferLoad> {
        let mut transfers = Vec::new();
        let mut add = |way: Way, client: &PeerId, future: &FutureId, meter: &Meter| {
            let moved = meter.moved(way);
            if moved.in_flight() {
                transfers.push(TransferLoad {
                    direction: match way {
                        Way::Receiving => Direction::In,
                        Way::Sending => Direction::Out,
                    },
                    client: client.clone(),
                    future: future.clone(),
                    done: moved.done,
                    total: moved.total,
                });
            }
        };
        for link in self.sessions.values() {
            if let Some(future) = &link.receiving {
                add(Way::Receiving, &link.client, future, &link.meter);
            }
            if let Some(future) = &link.sending {
                add(Way::Sending, &link.client, future, &link.meter);
            }
        }
        for (task, (way, meter)) in &self.file_meters {
            add(*way, &task.client, &task.future, meter);
        }
        transfers
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
                WorkerAction::Open(assignment) => self.open(assignment),
                WorkerAction::Start { task, session } => self.start(task, session),
                WorkerAction::Send { session, frame } => self.send(session, frame),
                WorkerAction::Interrupt { task } => {
                    if let Some(cancel) = self.jobs.remove(&task) {
                        cancel.cancel();
                    }
                    self.file_meters.remove(&task);
                    self.payloads.remove(&task);
                    self.codes.remove(&task);
                    self.formats.remove(&task);
                }
                WorkerAction::Answer { task, code, error } => {
                    let future = task.future.clone();
                    match self
                        .executor
                        .failure_result(&future, PayloadFormat::FutureP2p, &error)
                    {
                        Some(result) => self.deliver(task, code, result),
                        None => tracing::warn!(
                            %future,
                            %error,
                            "the executor cannot tell this client of the failure in its format"
                        ),
                    }
                }
                WorkerAction::UnsealedAccept { task } => {
                    tracing::warn!(
                        client = %task.client,
                        future = %task.future,
                        "refused an accept with a plain code: {} seals codes to our key, so \
                         this accept is from someone else posing as it",
                        task.client
                    );
                }
                WorkerAction::Stop => return Some(StopReason::DurationOver),
            }
        }
        None
    }

    fn report(&mut self, report: Report) {
        let now = unix_ms();
        match report {
            Report::Received(task, Ok(payload)) => {
                self.jobs.remove(&task);
                self.file_meters.remove(&task);
                self.payloads.insert(task.clone(), payload.into());
                if !self.core.payload_received(now, &task) {
                    self.payloads.remove(&task);
                }
            }
            Report::Received(task, Err(reason)) => {
                self.jobs.remove(&task);
                self.file_meters.remove(&task);
                self.codes.remove(&task);
                self.formats.remove(&task);
                self.core.transfer_failed(now, &task, reason);
            }
            Report::Ran(task, outcome) => {
                self.jobs.remove(&task);
                let code = self.codes.remove(&task);
                match self
                    .core
                    .task_ended(now, &task, outcome.as_ref().map(|_| ()))
                {
                    Delivery::Session(session) => {
                        let outcome = match outcome {
                            Ok(value) => Outcome::Value(value),
                            Err(error) => Outcome::Error(error),
                        };
                        let frame = Frame::Result(TaskResult {
                            future: task.future,
                            outcome,
                        });
                        self.send(session, frame);
                    }
                    Delivery::Files => {
                        if let (Some(code), Ok(value)) = (code, outcome) {
                            self.deliver(task, code, value);
                        }
                    }
                    Delivery::Drop => {}
                }
            }
            Report::Delivered(task, delivered) => {
                self.file_meters.remove(&task);
                if !delivered {
                    self.core.delivery_failed(now, &task);
                }
            }
            Report::SessionUp(session, link, reports_starts) => {
                self.sessions.insert(session, link);
                self.core.session_opened(now, session, reports_starts);
            }
            Report::SessionTask(session, task) => {
                self.session_task(now, session, task.future, task.payload)
            }
            Report::SessionFrame(session, frame) => match frame {
                Frame::Task(task) => {
                    self.session_task(now, session, task.future, task.payload.into())
                }
                Frame::Cancel(cancel) => self.core.session_cancel(now, session, cancel.future),
                // Heartbeats are consumed by the session; anything else from a client is a
                // protocol slip the client's side notices on its own.
                Frame::Hello(_)
                | Frame::Result(_)
                | Frame::Heartbeat(_)
                | Frame::Progress(_)
                | Frame::Started(_) => {}
            },
            Report::SessionEnded(session) => {
                if let Some(link) = self.sessions.remove(&session) {
                    link.close.cancel();
                }
                self.core.session_closed(now, session);
            }
        }
    }

    /// A task that came on `session`: its payload is kept for the core's Start.
    fn session_task(
        &mut self,
        now: u64,
        session: SessionId,
        future: FutureId,
        payload: IncomingPayload,
    ) {
        let Some(link) = self.sessions.get_mut(&session) else {
            return;
        };
        link.receiving = Some(future.clone());
        let client = link.client.clone();
        let key = TaskRef {
            client,
            future: future.clone(),
        };
        // Kept before the core decides, so that a Start in the same step finds it.
        let earlier = self.payloads.insert(key.clone(), payload);
        if !self.core.session_task(now, session, future) {
            match earlier {
                Some(payload) => self.payloads.insert(key, payload),
                None => self.payloads.remove(&key),
            };
        }
    }

    fn send(&mut self, session: SessionId, frame: Frame) {
        // A session that is gone has been (or is being) reported ended to the core.
        if let Some(link) = self.sessions.get_mut(&session) {
            if let Frame::Result(result) = &frame {
                link.sending = Some(result.future.clone());
            }
            let _ = link.outbound.send(frame);
        }
    }

    fn transfer_options(&self, cancel: CancellationToken) -> TransferOptions {
        TransferOptions {
            timeout: self.options.transfer_timeout,
            max_size: self.options.core.max_payload,
            cancel,
            progress: None,
        }
    }

    fn open(&mut self, assignment: Assignment) {
        let Assignment {
            client,
            future,
            code,
            route,
            format,
        } = assignment;
        let reports = self.reports.clone();
        let wormhole = self.options.wormhole.clone();
        match route {
            Route::Files => {
                let task = TaskRef { client, future };
                let cancel = self.all_jobs.child_token();
                self.jobs.insert(task.clone(), cancel.clone());
                self.codes.insert(task.clone(), code.clone());
                self.formats.insert(task.clone(), format);
                let meter = Meter::default();
                let options = TransferOptions {
                    progress: Some(meter.progress(Way::Receiving)),
                    ..self.transfer_options(cancel)
                };
                self.file_meters
                    .insert(task.clone(), (Way::Receiving, meter));
                tokio::spawn(async move {
                    let received = receive_bytes(&wormhole, &code.future_code(), &options)
                        .await
                        .map(|received| received.data)
                        .map_err(|err| {
                            tracing::warn!(future = %task.future, %err, "receiving the task failed");
                            match err {
                                TransferError::TooLarge { .. } => DeclineReason::TooLarge,
                                _ => DeclineReason::Failed,
                            }
                        });
                    let _ = reports.send(Report::Received(task, received));
                });
            }
            Route::Session(session) => {
                let serve = ServeSession {
                    wormhole,
                    code,
                    // Payloads on the session are bounded by the worker's own limit.
                    config: SessionConfig {
                        max_payload: self.options.core.max_payload,
                        ..self.options.session.clone()
                    },
                    hello: Hello::new(self.options.core.me.clone(), self.options.core.protocols()),
                    session,
                    client,
                    close: self.all_jobs.child_token(),
                    reports,
                };
                tokio::spawn(serve.run());
            }
        }
    }

    /// Runs a task's payload on the executor; its progress goes out on its session.
    fn start(&mut self, task: TaskRef, session: Option<SessionId>) {
        let payload = self.payloads.remove(&task);
        let format = self.formats.remove(&task).unwrap_or(PayloadFormat::Native);
        let cancel = self.all_jobs.child_token();
        let progress_out = session
            .and_then(|id| self.sessions.get(&id))
            .map(|link| link.outbound.clone());
        let executor = Arc::clone(&self.executor);
        let max_payload = self.options.core.max_payload;
        let job = task.clone();
        let token = cancel.clone();
        let mut run = Box::pin(async move {
            match payload {
                Some(payload) => {
                    run_job(
                        executor,
                        &job,
                        (payload, format),
                        max_payload,
                        progress_out,
                        token,
                    )
                    .await
                }
                None => Err(RemoteError {
                    kind: RemoteErrorKind::Failed,
                    message: "the worker lost the task's payload".into(),
                }),
            }
        });
        // A run that is over at once (a trivial executor, a payload refused) is reported
        // here, without a trip through a task of its own. Otherwise it goes on in one,
        // which polls it again with its own waker.
        let mut context = Context::from_waker(Waker::noop());
        if let Poll::Ready(outcome) = run.as_mut().poll(&mut context) {
            self.report(Report::Ran(task, outcome));
            return;
        }
        self.jobs.insert(task.clone(), cancel);
        let reports = self.reports.clone();
        tokio::spawn(async move {
            let outcome = run.await;
            // An interrupted run's end is ignored by the core; it is still reported so
            // that nothing waits on it.
            let _ = reports.send(Report::Ran(task, outcome));
        });
    }

    /// Files route: sends the result under `CODE-r`.
    fn deliver(&mut self, task: TaskRef, code: WormholeCode, result: Bytes) {
        let wormhole = self.options.wormhole.clone();
        let meter = Meter::default();
        let options = TransferOptions {
            progress: Some(meter.progress(Way::Sending)),
            ..self.transfer_options(self.all_jobs.child_token())
        };
        self.file_meters.insert(task.clone(), (Way::Sending, meter));
        let reports = self.reports.clone();
        tokio::spawn(async move {
            let name = format!("{}-FutureResult.rds", task.future);
            let sent = send_bytes(&wormhole, &code.result_code(), &name, result, &options).await;
            if let Err(err) = &sent {
                tracing::warn!(future = %task.future, %err, "sending the result failed");
            }
            let _ = reports.send(Report::Delivered(task, sent.is_ok()));
        });
    }
}

/// Runs one payload until it ends or `cancel` fires, relaying progress to `progress_out`;
/// a panicking executor is a crash of this task, not of the worker.
async fn run_job<E: Executor>(
    executor: Arc<E>,
    task: &TaskRef,
    (payload, format): (IncomingPayload, PayloadFormat),
    max_payload: u64,
    progress_out: Option<mpsc::UnboundedSender<Frame>>,
    cancel: CancellationToken,
) -> Result<Bytes, RemoteError> {
    use futures::FutureExt;
    if payload.len() > max_payload {
        return Err(RemoteError {
            kind: RemoteErrorKind::PayloadTooLarge,
            message: format!(
                "payload of {} bytes exceeds this worker's limit of {max_payload} bytes",
                payload.len(),
            ),
        });
    }
    // The payload may still be arriving: the executor reads it as it comes.
    let job = StreamJob {
        future: task.future.clone(),
        client: task.client.clone(),
        payload,
        format,
    };
    let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
    let run =
        std::panic::AssertUnwindSafe(executor.execute_stream(job, progress_tx)).catch_unwind();
    tokio::pin!(run);
    let relay = |payload: Bytes| {
        if let Some(out) = &progress_out {
            let _ = out.send(Frame::Progress(Progress {
                future: task.future.clone(),
                payload,
            }));
        }
    };
    let outcome = loop {
        tokio::select! {
            outcome = &mut run => break outcome,
            Some(update) = progress_rx.recv() => relay(update),
            () = cancel.cancelled() => {
                return Err(RemoteError {
                    kind: RemoteErrorKind::Cancelled,
                    message: "stopped by the worker".into(),
                });
            }
        }
    };
    // Updates sent just before the end go out before the result.
    while let Ok(update) = progress_rx.try_recv() {
        relay(update);
    }
    outcome.unwrap_or_else(|_| {
        Err(RemoteError {
            kind: RemoteErrorKind::Crashed,
            message: "the executor panicked while running the task".into(),
        })
    })
}

/// One session, follower side: connect, exchange hellos, then report every frame until
/// the session ends or the worker closes it.
struct ServeSession {
    wormhole: WormholeConfig,
    code: WormholeCode,
    config: SessionConfig,
    hello: Hello,
    session: SessionId,
    client: PeerId,
    close: CancellationToken,
    reports: mpsc::UnboundedSender<Report>,
}

impl ServeSession {
    async fn run(self) {
        let id = self.session;
        let reports = self.reports.clone();
        if let Err(err) = self.serve().await {
            tracing::debug!(session = id.0, %err, "session ended");
        }
        let _ = reports.send(Report::SessionEnded(id));
    }

    async fn serve(self) -> Result<(), String> {
        let mut session = Session::connect(
            &self.wormhole,
            &self.code,
            SessionRole::Follower,
            &self.config,
            self.close.clone(),
        )
        .await
        .map_err(|err| format!("opening the session: {err}"))?;
        let theirs = match session.recv().await {
            Ok(Frame::Hello(theirs)) => theirs,
            Ok(other) => {
                return Err(format!(
                    "expected a hello, got a {} frame",
                    other.kind_name()
                ));
            }
            Err(err) => return Err(err.to_string()),
        };
        self.hello
            .negotiate(&theirs)
            .map_err(|err| err.to_string())?;
        session
            .send(&Frame::Hello(self.hello.clone()))
            .await
            .map_err(|err| err.to_string())?;
        let reports_starts = theirs.protocols.supports(protocols::SLOTS)
            && self.hello.protocols.supports(protocols::SLOTS);
        let (outbound, frames) = mpsc::unbounded_channel();
        tokio::spawn(session.sender().send_queued(frames));
        let link = SessionLink {
            client: self.client,
            outbound,
            close: self.close.clone(),
            meter: session.meter(),
            receiving: None,
            sending: None,
        };
        if self
            .reports
            .send(Report::SessionUp(self.session, link, reports_starts))
            .is_err()
        {
            return Ok(());
        }
        loop {
            tokio::select! {
                incoming = session.recv_incoming() => match incoming {
                    Ok(incoming) => {
                        let report = match incoming {
                            Incoming::Task(task) => Report::SessionTask(self.session, task),
                            Incoming::Frame(frame) => Report::SessionFrame(self.session, frame),
                        };
                        if self.reports.send(report).is_err() {
                            return Ok(());
                        }
                    }
                    // The client closed the session (idle too long, or done) or it died.
                    Err(err) => return Err(err.to_string()),
                },
                () = self.close.cancelled() => {
                    session.close().await;
                    return Ok(());
                }
            }
        }
    }
}
