//! The tokio driver of the scheduler: feeds [`SchedulerCore`] with board lines, transfer
//! outcomes, session frames and time, and carries out its actions.
//!
//! ```text
//!   Scheduler (handle) --commands--> driver task --lines--> board (LineChannel)
//!                                      |   ^
//!              transfers, sessions  <--+   +-- lines from the board, internal reports
//! ```
//!
//! The driver owns the payloads (the core only knows sizes) and the results until the core
//! says whose result counts, so a late or duplicate result is dropped here, never delivered.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex as SyncMutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use p2p_proto::frame::{Cancel, Frame, Hello, Outcome, TaskResult};
use p2p_proto::id::WormholeCode;
use p2p_proto::id::{FutureId, PeerId};
use p2p_proto::limits::DEFAULT_MAX_PAYLOAD;
use p2p_proto::line;
use p2p_proto::protocols::PayloadFormat;
use p2p_proto::time::Millis;
use p2p_transport::clock::{sleep_until, unix_ms};
use p2p_transport::lines::{LineChannel, post_line};
use p2p_transport::payload::Payload;
use p2p_transport::wormhole::{
    Meter, Outgoing, Session, SessionConfig, SessionError, SessionRole, TransferOptions, Way,
    WormholeConfig, receive_bytes, send_bytes,
};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use rand_core::{OsRng, RngCore};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::core::{
    Dispatch, Route, SchedulerAction, SchedulerConfig, SchedulerCore, TaskEvent, TaskId,
};
use crate::error::{
    AttemptError, HandshakeError, StopReason, SubmitError, TaskError, TransferStage,
};

/// The published worker list is rebuilt at most this often: rebuilding it takes time in
/// proportion to the workers, and a flood of hellos must not make every line cost that.
const PUBLISH_WORKERS_EVERY: Millis = 250;

/// Everything the scheduler needs besides the board.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// The dispatch state machine.
    pub core: SchedulerConfig,
    /// The mailbox and relays payloads go through.
    pub wormhole: WormholeConfig,
    /// Bound on one file transfer (payload out, result back), rendezvous included.
    pub transfer_timeout: Duration,
    /// Largest payload [`Scheduler::submit`] takes; larger ones are refused at once.
    pub max_payload: u64,
    /// Largest result accepted from a worker.
    pub max_result_size: u64,
    /// Warm sessions: timeouts, heartbeats, frame size.
    pub session: SessionConfig,
    /// Makes payloads in future.p2p 0.4.0's format, for its workers; `None`: they get no
    /// tasks (see [`SchedulerConfig::original_payloads`], which follows this).
    pub original_payloads: Option<Arc<dyn OriginalPayloads>>,
}

/// Makes a task's payload in future.p2p 0.4.0's format (the RDS file of its Future) when
/// a worker that reads only that format was accepted for it: on demand, so that a cluster
/// of this project's workers never pays for it.
pub trait OriginalPayloads: fmt::Debug + Send + Sync + 'static {
    /// The payload of `future`, whose native payload is `native`; or why there is none.
    fn original_payload(
        &self,
        future: &FutureId,
        native: &Payload,
    ) -> Pin<Box<dyn Future<Output = Result<Bytes, String>> + Send>>;
}

impl SchedulerOptions {
    /// Defaults for a client `me` using the given mailbox and relays.
    pub fn new(me: PeerId, wormhole: WormholeConfig) -> Self {
        SchedulerOptions {
            core: SchedulerConfig::new(me),
            wormhole,
            transfer_timeout: Duration::from_secs(3600),
            max_payload: DEFAULT_MAX_PAYLOAD,
            max_result_size: DEFAULT_MAX_PAYLOAD,
            session: SessionConfig::default(),
            original_payloads: None,
        }
    }
}

/// A change in a task's life, for progress displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskUpdate {
    /// A protocol step (queued, offered, accepted, running, declined, retried).
    Event(TaskEvent),
    /// An intermediate update from the running task (e.g. a serialized R condition).
    Progress(Bytes),
}

/// The result of a submitted task, resolved exactly once.
///
/// Dropping it before it resolves cancels the task (withdrawn from the board, or
/// interrupted on its worker), as dropping `p2p_cluster::Task` does; [`TaskHandle::detach`]
/// lets the task run to its end instead, its result discarded.
#[derive(Debug)]
#[must_use = "a task is cancelled when its handle is dropped; await it or detach() it"]
pub struct TaskHandle {
    id: TaskId,
    result: oneshot::Receiver<Result<Bytes, SubmitError>>,
    /// Where a drop sends the cancel; `None` once resolved or detached.
    cancel_on_drop: Option<mpsc::UnboundedSender<Command>>,
}

impl TaskHandle {
    /// The task's id, for [`Scheduler::cancel`] and for matching [`TaskUpdate`]s.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Lets the task run to its end without anyone waiting for its result.
    pub fn detach(mut self) {
        self.cancel_on_drop = None;
    }
}

impl Drop for TaskHandle {
    fn drop(&mut self) {
        if let Some(commands) = self.cancel_on_drop.take() {
            // A stopped scheduler has failed the task already.
            let _ = commands.send(Command::Cancel(self.id));
        }
    }
}

impl Future for TaskHandle {
    type Output = Result<Bytes, SubmitError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let polled = Pin::new(&mut self.result)
            .poll(cx)
            .map(|result| result.unwrap_or(Err(SubmitError::Stopped(StopReason::Aborted))));
        if polled.is_ready() {
            // Over: nothing left to cancel.
            self.cancel_on_drop = None;
        }
        polled
    }
}

enum Command {
    Submit {
        future: FutureId,
        payload: Payload,
        /// The task's id and where its result comes.
        reply: oneshot::Sender<(TaskId, oneshot::Receiver<Result<Bytes, SubmitError>>)>,
    },
    Cancel(TaskId),
}

/// Reports from transfer and session tasks back to the driver.
enum Report {
    /// Files route: the payload reached the worker.
    Started(TaskId, PeerId),
    /// A file-route task ended, or a session could not be opened for it: the result
    /// bytes, or why not.
    Done(TaskId, PeerId, Result<Bytes, AttemptError>),
    /// A session is up with the task it opened for; the worker reports starts when both
    /// hellos list `slots-v1`.
    SessionUp(PeerId, TaskId, SessionLink, bool),
    SessionFrame(PeerId, Frame),
    SessionEnded(PeerId, SessionError),
}

/// How the driver writes to a session: frames go out in order through one writer task;
/// the token closes the session.
struct SessionLink {
    outbound: mpsc::UnboundedSender<Outgoing>,
    close: CancellationToken,
    meter: Meter,
}

/// A worker seen on the board, as [`Scheduler::workers`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSeen {
    /// Its board identity.
    pub id: PeerId,
    /// Tasks it runs at once.
    pub slots: u32,
}

/// What the driver holds for a task until it is over.
struct InFlight {
    future: FutureId,
    payload: Payload,
    waiter: oneshot::Sender<Result<Bytes, SubmitError>>,
    /// Cancels its file transfers, while they run.
    transfer: Option<CancellationToken>,
}

/// A running scheduler: submit payloads, get results.
#[derive(Debug)]
pub struct Scheduler {
    commands: mpsc::UnboundedSender<Command>,
    max_payload: u64,
    updates: broadcast::Sender<(TaskId, TaskUpdate)>,
    workers: watch::Receiver<Vec<WorkerSeen>>,
    stopped: watch::Receiver<Option<StopReason>>,
    meters: Meters,
}

/// The meter of each task whose payload or result is on its way (or whose session is
/// open), shared by the driver, its transfer tasks and [`Scheduler::meter`].
type Meters = Arc<SyncMutex<HashMap<TaskId, Meter>>>;

/// Records `meter` as `task`'s.
fn set_meter(meters: &Meters, task: TaskId, meter: Meter) {
    meters
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(task, meter);
}

impl Scheduler {
    /// Starts the driver on the current tokio runtime.
    pub fn start(board: LineChannel, options: SchedulerOptions) -> Scheduler {
        let (commands, command_rx) = mpsc::unbounded_channel();
        let (updates, _) = broadcast::channel(1024);
        let (workers_tx, workers) = watch::channel(Vec::new());
        let (stopped_tx, stopped) = watch::channel(None);
        let (reports_tx, reports) = mpsc::unbounded_channel();
        let max_payload = options.max_payload;
        let meters = Meters::default();
        let mut seed = [0u8; 32];
        OsRng.fill_bytes(&mut seed);
        let core = SchedulerConfig {
            original_payloads: options.original_payloads.is_some(),
            ..options.core.clone()
        };
        let driver = Driver {
            core: SchedulerCore::new(core, ChaCha20Rng::from_seed(seed), unix_ms()),
            options,
            board_out: board.outgoing,
            tasks: HashMap::new(),
            by_future: HashMap::new(),
            sessions: HashMap::new(),
            opening: HashMap::new(),
            updates: updates.clone(),
            workers: workers_tx,
            workers_version: None,
            published_at: 0,
            reports: reports_tx,
            meters: Arc::clone(&meters),
        };
        tokio::spawn(driver.run(
            board.incoming,
            board.reopened,
            command_rx,
            reports,
            stopped_tx,
        ));
        Scheduler {
            commands,
            max_payload,
            updates,
            workers,
            stopped,
            meters,
        }
    }

    /// How far `task`'s payload (sending) and result (receiving) have got, once it is on
    /// its way to a worker: poll it to draw progress. On a warm session the meter is the
    /// session's, so it shows whichever payload moves on it.
    pub fn meter(&self, task: TaskId) -> Option<Meter> {
        self.meters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&task)
            .cloned()
    }

    /// Submits a payload for future `future`; the handle resolves to the worker's result
    /// (dropped unresolved, it cancels the task).
    /// A payload over [`SchedulerOptions::max_payload`] is refused here, before anything
    /// is posted.
    pub async fn submit(
        &self,
        future: FutureId,
        payload: impl Into<Payload>,
    ) -> Result<TaskHandle, SubmitError> {
        let payload = payload.into();
        let size = payload.len();
        if size > self.max_payload {
            return Err(SubmitError::PayloadTooLarge {
                size,
                max: self.max_payload,
            });
        }
        let (reply, handle) = oneshot::channel();
        self.commands
            .send(Command::Submit {
                future,
                payload,
                reply,
            })
            .map_err(|_| self.stopped_error())?;
        let (id, result) = handle.await.map_err(|_| self.stopped_error())?;
        Ok(TaskHandle {
            id,
            result,
            cancel_on_drop: Some(self.commands.clone()),
        })
    }

    /// Cancels a task: withdrawn from the board, or interrupted on its worker.
    pub fn cancel(&self, task: TaskId) {
        // A stopped scheduler has already failed every task.
        let _ = self.commands.send(Command::Cancel(task));
    }

    /// Task updates as they happen (a slow reader misses the oldest, never blocks the driver).
    pub fn updates(&self) -> broadcast::Receiver<(TaskId, TaskUpdate)> {
        self.updates.subscribe()
    }

    /// The workers currently seen on the board (hello not expired), with their slots.
    pub fn workers(&self) -> watch::Receiver<Vec<WorkerSeen>> {
        self.workers.clone()
    }

    /// Why the scheduler stopped, once it has.
    pub fn stopped(&self) -> watch::Receiver<Option<StopReason>> {
        self.stopped.clone()
    }

    fn stopped_error(&self) -> SubmitError {
        SubmitError::Stopped(self.stopped.borrow().unwrap_or(StopReason::Aborted))
    }
}

struct Driver {
    core: SchedulerCore,
    options: SchedulerOptions,
    board_out: mpsc::Sender<String>,
    /// One record per task not finished yet.
    tasks: HashMap<TaskId, InFlight>,
    /// Which task a future named in a session frame is.
    by_future: HashMap<FutureId, TaskId>,
    sessions: HashMap<PeerId, SessionLink>,
    /// Closes a session still being opened.
    opening: HashMap<PeerId, CancellationToken>,
    updates: broadcast::Sender<(TaskId, TaskUpdate)>,
    workers: watch::Sender<Vec<WorkerSeen>>,
    /// The core's worker list version last published.
    workers_version: Option<u64>,
    /// When the worker list was last published.
    published_at: Millis,
    reports: mpsc::UnboundedSender<Report>,
    meters: Meters,
}

impl Driver {
    async fn run(
        mut self,
        mut board_in: mpsc::Receiver<String>,
        mut reopened: watch::Receiver<u64>,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut reports: mpsc::UnboundedReceiver<Report>,
        stopped: watch::Sender<Option<StopReason>>,
    ) {
        self.core.handle_timeout(unix_ms());
        let reason = loop {
            if let Err(reason) = self.apply().await {
                break reason;
            }
            let publish = (self.workers_version != Some(self.core.workers_version()))
                .then_some(self.published_at + PUBLISH_WORKERS_EVERY);
            let sleep = sleep_until(self.core.poll_timeout().into_iter().chain(publish).min());
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
                command = commands.recv() => match command {
                    Some(command) => self.command(command),
                    None => break StopReason::Dropped,
                },
                Some(report) = reports.recv() => self.report(report),
                () = tokio::time::sleep(sleep) => self.core.handle_timeout(unix_ms()),
            }
        };
        tracing::info!(%reason, "scheduler stopped");
        for (_, task) in self.tasks.drain() {
            if let Some(cancel) = task.transfer {
                cancel.cancel();
            }
            let _ = task.waiter.send(Err(SubmitError::Stopped(reason)));
        }
        for (_, link) in self.sessions.drain() {
            link.close.cancel();
        }
        for (_, close) in self.opening.drain() {
            close.cancel();
        }
        let _ = stopped.send(Some(reason));
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Submit {
                future,
                payload,
                reply,
            } => {
                let (waiter, result) = oneshot::channel();
                // The core's actions are carried out after this step: the record is there
                // before its dispatch.
                let id = self.core.submit(unix_ms(), future.clone(), payload.len());
                self.by_future.insert(future.clone(), id);
                self.tasks.insert(
                    id,
                    InFlight {
                        future,
                        payload,
                        waiter,
                        transfer: None,
                    },
                );
                // A caller that gave up waiting has no handle to cancel with: the task runs
                // regardless.
                let _ = reply.send((id, result));
            }
            Command::Cancel(task) => self.core.cancel(unix_ms(), task),
        }
    }

    fn report(&mut self, report: Report) {
        let now = unix_ms();
        match report {
            Report::Started(task, worker) => self.core.task_started(now, task, &worker),
            Report::Done(task, worker, outcome) => {
                if let Some(record) = self.tasks.get_mut(&task) {
                    record.transfer = None;
                }
                self.opening.remove(&worker);
                match outcome {
                    Ok(result) => self.succeeded(now, task, &worker, result),
                    Err(error) => self.core.task_failed(now, task, &worker, error),
                }
            }
            Report::SessionUp(worker, task, link, reports_starts) => {
                self.opening.remove(&worker);
                if self.core.session_opened(now, &worker, task, reports_starts) {
                    self.sessions.insert(worker, link);
                } else {
                    link.close.cancel();
                }
            }
            Report::SessionFrame(worker, frame) => self.session_frame(now, worker, frame),
            Report::SessionEnded(worker, reason) => {
                tracing::debug!(%worker, %reason, "session ended");
                self.opening.remove(&worker);
                if let Some(link) = self.sessions.remove(&worker) {
                    link.close.cancel();
                }
                self.core
                    .session_closed(now, &worker, AttemptError::Session(reason));
            }
        }
    }

    /// `worker` returned `result`: it goes to the task's owner if the core says the task
    /// is still this worker's (a late or duplicate result is dropped).
    fn succeeded(&mut self, now: Millis, task: TaskId, worker: &PeerId, result: Bytes) {
        if self.core.task_succeeded(now, task, worker)
            && let Some(record) = self.tasks.remove(&task)
        {
            self.forget_meter(task);
            self.by_future.remove(&record.future);
            // The caller may have dropped its handle.
            let _ = record.waiter.send(Ok(result));
        }
    }

    fn session_frame(&mut self, now: Millis, worker: PeerId, frame: Frame) {
        match frame {
            Frame::Started(started) => {
                if let Some(&task) = self.by_future.get(&started.future) {
                    self.core.task_started(now, task, &worker);
                }
            }
            Frame::Result(TaskResult { future, outcome }) => {
                let Some(&task) = self.by_future.get(&future) else {
                    return;
                };
                match outcome {
                    Outcome::Value(value) => self.succeeded(now, task, &worker, value),
                    Outcome::Error(error) => {
                        self.core
                            .task_failed(now, task, &worker, AttemptError::Remote(error));
                    }
                }
            }
            Frame::Progress(progress) => {
                if let Some(&task) = self.by_future.get(&progress.future) {
                    let _ = self
                        .updates
                        .send((task, TaskUpdate::Progress(progress.payload)));
                }
            }
            // Heartbeats are consumed by the session; a second hello or a task from a
            // worker is a protocol error the worker's side will notice on its own.
            Frame::Hello(_) | Frame::Task(_) | Frame::Cancel(_) | Frame::Heartbeat(_) => {}
        }
    }

    /// Carries out what the core asked for.
    async fn apply(&mut self) -> Result<(), StopReason> {
        while let Some(action) = self.core.poll_action() {
            match action {
                SchedulerAction::Post(line) => post_line(&self.board_out, &line)
                    .await
                    .map_err(|_| StopReason::BoardClosed)?,
                SchedulerAction::Dispatch(dispatch) => self.dispatch(dispatch),
                SchedulerAction::Interrupt { task, worker } => {
                    let Some(record) = self.tasks.get_mut(&task) else {
                        continue;
                    };
                    if let Some(cancel) = record.transfer.take() {
                        cancel.cancel();
                    }
                    if let Some(link) = self.sessions.get(&worker) {
                        let cancel = Cancel {
                            future: record.future.clone(),
                        };
                        let _ = link.outbound.send(Frame::Cancel(cancel).into());
                    }
                }
                SchedulerAction::CloseSession { worker } => {
                    if let Some(link) = self.sessions.remove(&worker) {
                        link.close.cancel();
                    }
                    if let Some(close) = self.opening.remove(&worker) {
                        close.cancel();
                    }
                }
                SchedulerAction::KeyChanged { worker } => {
                    tracing::warn!(
                        %worker,
                        "refused offers from {worker}: its key is not the one it first offered \
                         with; either another member of the cluster poses as it, or it \
                         restarted with the same host and process id (trusted again 10 \
                         minutes after its last offer with the first key)"
                    );
                }
                SchedulerAction::Event { task, event } => {
                    let _ = self.updates.send((task, TaskUpdate::Event(event)));
                }
                SchedulerAction::Finished { task, outcome } => self.finished(task, outcome),
            }
        }
        let version = self.core.workers_version();
        let now = unix_ms();
        if self.workers_version != Some(version) && now >= self.published_at + PUBLISH_WORKERS_EVERY
        {
            self.workers_version = Some(version);
            self.published_at = now;
            let seen: Vec<WorkerSeen> = self
                .core
                .workers(now)
                .map(|(id, info)| WorkerSeen {
                    id: id.clone(),
                    slots: info.slots,
                })
                .collect();
            self.workers.send_if_modified(|published| {
                let changed = *published != seen;
                *published = seen;
                changed
            });
        }
        Ok(())
    }

    /// The task left the core: a success was delivered by [`Driver::succeeded`] already,
    /// a failure goes to the task's owner now.
    fn finished(&mut self, task: TaskId, outcome: Result<PeerId, TaskError>) {
        let Some(record) = self.tasks.remove(&task) else {
            return;
        };
        self.forget_meter(task);
        self.by_future.remove(&record.future);
        if let Some(cancel) = record.transfer {
            cancel.cancel();
        }
        match outcome {
            // Not delivered yet only if the core finished it without a result in hand,
            // which it never does; the owner hears that the scheduler dropped it.
            Ok(_) => {
                let _ = record
                    .waiter
                    .send(Err(SubmitError::Stopped(StopReason::Aborted)));
            }
            Err(err) => {
                // The caller may have dropped its handle.
                let _ = record.waiter.send(Err(SubmitError::Task(err)));
            }
        }
    }

    fn forget_meter(&self, task: TaskId) {
        self.meters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&task);
    }

    fn dispatch(&mut self, dispatch: Dispatch) {
        let Dispatch {
            task,
            future,
            worker,
            route,
            format,
        } = dispatch;
        let Some(record) = self.tasks.get_mut(&task) else {
            return;
        };
        let payload = record.payload.clone();
        let reports = self.reports.clone();
        let wormhole = self.options.wormhole.clone();
        match route {
            Route::Files { code } => {
                let cancel = CancellationToken::new();
                record.transfer = Some(cancel.clone());
                let options = TransferOptions {
                    timeout: self.options.transfer_timeout,
                    max_size: self.options.max_result_size,
                    cancel,
                    progress: None,
                };
                let original = match format {
                    PayloadFormat::Native => None,
                    PayloadFormat::FutureP2p => self.options.original_payloads.clone(),
                };
                let meter = Meter::default();
                set_meter(&self.meters, task, meter.clone());
                tokio::spawn(async move {
                    let payload = match original {
                        None => Ok(payload),
                        Some(make) => make
                            .original_payload(&future, &payload)
                            .await
                            .map(Payload::Memory)
                            .map_err(AttemptError::NoOriginalPayload),
                    };
                    let outcome = match payload {
                        Ok(payload) => {
                            files_round_trip(
                                &wormhole,
                                &code,
                                &future,
                                payload,
                                (&options, &meter),
                                || {
                                    let _ = reports.send(Report::Started(task, worker.clone()));
                                },
                            )
                            .await
                        }
                        Err(err) => Err(err),
                    };
                    let _ = reports.send(Report::Done(task, worker, outcome));
                });
            }
            Route::NewSession { code } => {
                let me = self.options.core.me.clone();
                // Results on the session are bounded like those of file transfers.
                let session_config = SessionConfig {
                    max_payload: self.options.max_result_size,
                    ..self.options.session.clone()
                };
                let close = CancellationToken::new();
                self.opening.insert(worker.clone(), close.clone());
                let meters = Arc::clone(&self.meters);
                tokio::spawn(async move {
                    let opened = open_session(
                        &wormhole,
                        &code,
                        &session_config,
                        close.clone(),
                        me,
                        (&future, payload),
                        |meter| set_meter(&meters, task, meter),
                    )
                    .await;
                    match opened {
                        Ok((session, reports_starts)) => {
                            let (outbound, frames) = mpsc::unbounded_channel();
                            tokio::spawn(session.sender().send_queued(frames));
                            let link = SessionLink {
                                outbound,
                                close: close.clone(),
                                meter: session.meter(),
                            };
                            let up = Report::SessionUp(worker.clone(), task, link, reports_starts);
                            if reports.send(up).is_ok() {
                                read_session(session, worker, close, reports).await;
                            }
                        }
                        Err(err) => {
                            let _ = reports.send(Report::Done(task, worker, Err(err)));
                        }
                    }
                });
            }
            Route::Session => {
                // A session that is gone has been (or is being) reported ended: the core
                // then takes this task back.
                if let Some(link) = self.sessions.get(&worker) {
                    set_meter(&self.meters, task, link.meter.clone());
                    let _ = link.outbound.send(Outgoing::Task { future, payload });
                }
            }
        }
    }
}

/// future.p2p's transfers: the payload under `CODE-f`, then the result under `CODE-r`.
async fn files_round_trip(
    wormhole: &WormholeConfig,
    code: &WormholeCode,
    future: &FutureId,
    payload: Payload,
    (options, meter): (&TransferOptions, &Meter),
    on_sent: impl FnOnce(),
) -> Result<Bytes, AttemptError> {
    let failed = |stage| {
        move |err: p2p_transport::wormhole::TransferError| AttemptError::Transfer {
            stage,
            source: err.into(),
        }
    };
    // A file transfer sends from memory: a payload kept in a file is read whole for it.
    // Only workers without sessions take this route, future.p2p 0.4.0's above all, and
    // they get a payload R makes for them.
    let payload = payload
        .to_bytes()
        .map_err(|err| failed(TransferStage::SendingTask)(err.into()))?;
    let name = format!("{future}-Future.rds");
    let sending = TransferOptions {
        progress: Some(meter.progress(Way::Sending)),
        ..options.clone()
    };
    send_bytes(wormhole, &code.future_code(), &name, payload, &sending)
        .await
        .map_err(failed(TransferStage::SendingTask))?;
    on_sent();
    let receiving = TransferOptions {
        progress: Some(meter.progress(Way::Receiving)),
        ..options.clone()
    };
    let received = receive_bytes(wormhole, &code.result_code(), &receiving)
        .await
        .map_err(failed(TransferStage::ReceivingResult))?;
    Ok(received.data)
}

/// Opens a session as its leader (handing its meter to `on_connected`), says hello, and
/// sends the first task; says whether the worker will report starts.
async fn open_session(
    wormhole: &WormholeConfig,
    code: &WormholeCode,
    config: &SessionConfig,
    cancel: CancellationToken,
    me: PeerId,
    (future, payload): (&FutureId, Payload),
    on_connected: impl FnOnce(Meter),
) -> Result<(Session, bool), AttemptError> {
    let mut session = Session::connect(wormhole, code, SessionRole::Leader, config, cancel)
        .await
        .map_err(AttemptError::Session)?;
    on_connected(session.meter());
    let hello = Hello::new(me, p2p_proto::protocols::Protocols::ours());
    session
        .send(&Frame::Hello(hello.clone()))
        .await
        .map_err(AttemptError::Session)?;
    let reports_starts = match session.recv().await.map_err(AttemptError::Session)? {
        Frame::Hello(theirs) => {
            hello
                .negotiate(&theirs)
                .map_err(|err| AttemptError::Handshake(HandshakeError::Incompatible(err)))?;
            theirs.protocols.supports(p2p_proto::protocols::SLOTS)
        }
        other => {
            return Err(AttemptError::Handshake(HandshakeError::NotHello(
                other.kind_name(),
            )));
        }
    };
    session
        .sender()
        .send_all(&[Outgoing::Task {
            future: future.clone(),
            payload,
        }])
        .await
        .map_err(AttemptError::Session)?;
    Ok((session, reports_starts))
}

/// Forwards a session's frames to the driver until it ends or the driver closes it.
async fn read_session(
    mut session: Session,
    worker: PeerId,
    close: CancellationToken,
    reports: mpsc::UnboundedSender<Report>,
) {
    loop {
        tokio::select! {
            frame = session.recv() => match frame {
                Ok(frame) => {
                    if reports.send(Report::SessionFrame(worker.clone(), frame)).is_err() {
                        return;
                    }
                }
                Err(err) => {
                    let _ = reports.send(Report::SessionEnded(worker, err));
                    return;
                }
            },
            () = close.cancelled() => {
                session.close().await;
                return;
            }
        }
    }
}
