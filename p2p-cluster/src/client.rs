//! [`Client`]: a cluster's client. Tasks go out with [`Client::submit`]; each comes back
//! as a [`Task`], a future of its result that cancels the task when dropped (unless
//! [`Task::detach`]ed). [`Client::shutdown`] drains: no new tasks, the running ones get a
//! grace period to finish, the rest are cancelled, then the client leaves the board.
//!
//! ```text
//!   Client --submit--> Scheduler (p2p-scheduler's driver)
//!     |                   | TaskHandle
//!     |              forwarder task (one per Task): result -> Task, or Task dropped -> cancel
//!     +-- in flight: a count of forwarders, which shutdown waits on
//! ```

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use p2p_proto::id::{ClusterName, FutureId, PeerId};
use p2p_scheduler::core::TaskId;
use p2p_scheduler::{Scheduler, SchedulerOptions, StopReason, SubmitError, TaskUpdate, WorkerSeen};
use p2p_transport::wormhole::WormholeConfig;
use tokio::sync::{broadcast, oneshot, watch};

use crate::connect::{Membership, refused};
use crate::error::ClusterError;
use crate::millis;

/// A client's options; see [`Cluster::client`](crate::Cluster::client).
#[derive(Debug)]
#[must_use = "a builder does nothing until start() is called"]
pub struct ClientBuilder {
    membership: Membership,
    options: SchedulerOptions,
}

impl ClientBuilder {
    pub(crate) fn new(membership: Membership, wormhole: WormholeConfig) -> Self {
        let options = SchedulerOptions::new(membership.me.clone(), wormhole);
        ClientBuilder {
            membership,
            options,
        }
    }

    /// Longest a task may run once started (default: 24 h); `None` for no limit. A task
    /// over it fails as timed out and is not tried again.
    pub fn time_limit(mut self, limit: Option<Duration>) -> Self {
        self.options.core.time_limit = limit.map(millis);
        self
    }

    /// Tries a task may spend on workers that fail while running it (default: 2).
    pub fn retries(mut self, tries: u32) -> Self {
        self.options.core.max_retries = tries;
        self
    }

    /// Largest payload sent and result accepted, in bytes (default: 512 MiB, as workers).
    pub fn max_payload(mut self, bytes: u64) -> Self {
        self.options.max_payload = bytes;
        self.options.max_result_size = bytes;
        self
    }

    /// Bound on one transfer of a payload or result outside warm sessions (default: 1 h).
    pub fn transfer_timeout(mut self, timeout: Duration) -> Self {
        self.options.transfer_timeout = timeout;
        self
    }

    /// How long an idle warm session with a worker stays open for the next task
    /// (default: 30 s).
    pub fn idle_session(mut self, grace: Duration) -> Self {
        self.options.core.session_idle_grace = millis(grace);
        self
    }

    /// How often the client says hello, which is how workers and status checks see it
    /// (default: 10 s).
    pub fn hello_interval(mut self, interval: Duration) -> Self {
        self.options.core.hello_interval = millis(interval).max(1000);
        self
    }

    /// The low-level options, for settings without a method here.
    pub fn scheduler_options(mut self, tweak: impl FnOnce(&mut SchedulerOptions)) -> Self {
        tweak(&mut self.options);
        self
    }

    /// Starts the client on the current tokio runtime.
    pub fn start(self) -> Client {
        let Membership {
            board,
            user,
            me,
            cluster,
            lines,
            watch,
            refusals,
        } = self.membership;
        let scheduler = Arc::new(Scheduler::start(lines, self.options));
        let (in_flight, _) = watch::channel(0usize);
        Client {
            scheduler,
            me,
            cluster,
            host: watch,
            refusals,
            user,
            in_flight: Arc::new(in_flight),
            next_future: AtomicU64::new(1),
            _board: board,
        }
    }
}

/// A client of a cluster: submit payloads, await results. Dropping it stops it at once:
/// the tasks in flight fail as stopped; [`shutdown`](Client::shutdown) drains.
#[derive(Debug)]
pub struct Client {
    scheduler: Arc<Scheduler>,
    me: PeerId,
    cluster: ClusterName,
    user: String,
    host: p2p_transport::cluster_watch::ClusterWatch,
    refusals: watch::Receiver<Option<String>>,
    in_flight: Arc<watch::Sender<usize>>,
    next_future: AtomicU64,
    // Last: the topic reconnects through it as long as the scheduler runs.
    _board: p2p_transport::board::Board,
}

/// How a [`Client::shutdown`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Tasks still unfinished when the grace period ran out; they were cancelled.
    pub cancelled: usize,
}

impl Client {
    /// Our peer id on the cluster.
    pub fn me(&self) -> &PeerId {
        &self.me
    }

    /// The cluster, `OWNER/NAME`.
    pub fn cluster(&self) -> &ClusterName {
        &self.cluster
    }

    /// Whether the cluster's host has said hello since we joined.
    pub fn host_seen(&self) -> bool {
        self.host.host_seen()
    }

    /// Submits `payload`, named by a fresh future id; the [`Task`] resolves to the
    /// worker's result.
    pub async fn submit(&self, payload: impl Into<Bytes>) -> Result<Task, ClusterError> {
        let n = self.next_future.fetch_add(1, Ordering::Relaxed);
        let future: FutureId = format!("{}-{}-{n}", self.me.user(), std::process::id()).parse()?;
        self.submit_as(future, payload).await
    }

    /// Submits `payload` as future `future` (unique among this client's tasks).
    pub async fn submit_as(
        &self,
        future: FutureId,
        payload: impl Into<Bytes>,
    ) -> Result<Task, ClusterError> {
        let handle = self.scheduler.submit(future, payload.into()).await?;
        let id = handle.id();
        let (result_tx, result) = oneshot::channel();
        let detached = Arc::new(AtomicBool::new(false));
        let counted = InFlight::count(&self.in_flight);
        let scheduler: Weak<Scheduler> = Arc::downgrade(&self.scheduler);
        let keep = detached.clone();
        tokio::spawn(async move {
            let mut handle = handle;
            let mut result_tx = result_tx;
            tokio::select! {
                outcome = &mut handle => {
                    // Not in flight any more by the time its owner has the result.
                    drop(counted);
                    let _ = result_tx.send(outcome);
                }
                () = result_tx.closed() => {
                    if !keep.load(Ordering::Acquire)
                        && let Some(scheduler) = scheduler.upgrade()
                    {
                        scheduler.cancel(id);
                    }
                    // Counted until the scheduler lets go of it.
                    let _ = handle.await;
                    drop(counted);
                }
            }
        });
        Ok(Task {
            id,
            result,
            detached,
        })
    }

    /// Waits until at least one worker has said hello and returns those seen. Fails at
    /// once when the board refuses our pipe (a wrong cluster name, or not on its list),
    /// else after `timeout`.
    pub async fn wait_for_workers(
        &self,
        timeout: Duration,
    ) -> Result<Vec<WorkerSeen>, ClusterError> {
        let mut workers = self.scheduler.workers();
        let mut refusals = self.refusals.clone();
        let seen = tokio::time::timeout(timeout, async {
            tokio::select! {
                // The guard wait_for returns holds the watch's lock: clone and let go.
                seen = workers.wait_for(|w| !w.is_empty()) => Ok(seen.map(|w| w.clone()).unwrap_or_default()),
                said = refused(&mut refusals) => Err(said),
            }
        })
        .await;
        match seen {
            Ok(Ok(workers)) if !workers.is_empty() => Ok(workers),
            Ok(Err(said)) => Err(ClusterError::Refused {
                cluster: self.cluster.to_string(),
                user: self.user.clone(),
                said,
            }),
            Ok(Ok(_)) | Err(_) => Err(ClusterError::NoWorkers {
                cluster: self.cluster.to_string(),
                waited: timeout,
                host_seen: self.host_seen(),
            }),
        }
    }

    /// The workers seen now (their hello not expired), with their slots.
    pub fn workers(&self) -> watch::Receiver<Vec<WorkerSeen>> {
        self.scheduler.workers()
    }

    /// Task updates as they happen (queued, offered, running, progress, ...).
    pub fn updates(&self) -> broadcast::Receiver<(TaskId, TaskUpdate)> {
        self.scheduler.updates()
    }

    /// How far `task`'s payload (sending) and result (receiving) have got, once it is on
    /// its way to a worker (see [`Scheduler::meter`]).
    pub fn meter(&self, task: TaskId) -> Option<p2p_transport::wormhole::Meter> {
        self.scheduler.meter(task)
    }

    /// Tasks submitted and not over yet (detached ones included).
    pub fn in_flight(&self) -> usize {
        *self.in_flight.borrow()
    }

    /// Why the client stopped on its own (the board connection ended for good), once it
    /// has.
    pub fn stopped(&self) -> watch::Receiver<Option<StopReason>> {
        self.scheduler.stopped()
    }

    /// A graceful end: the client takes no new tasks (it is consumed), the tasks in
    /// flight get `grace` to finish (their [`Task`]s still resolve, detached ones run to
    /// their end), whatever is left then is cancelled, and the client leaves the board.
    pub async fn shutdown(self, grace: Duration) -> Drained {
        let mut in_flight = self.in_flight.subscribe();
        let _ = tokio::time::timeout(grace, in_flight.wait_for(|n| *n == 0)).await;
        let cancelled = *self.in_flight.borrow();
        if cancelled > 0 {
            tracing::info!(
                cancelled,
                "shutdown: tasks still running after the grace period are cancelled"
            );
        }
        // Dropping the last strong reference stops the scheduler's driver, which fails
        // what is left as stopped and closes its sessions; the board goes last.
        drop(self);
        Drained { cancelled }
    }
}

/// One task counted in flight while it lives.
struct InFlight(Arc<watch::Sender<usize>>);

impl InFlight {
    fn count(counter: &Arc<watch::Sender<usize>>) -> InFlight {
        counter.send_modify(|n| *n += 1);
        InFlight(counter.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// A submitted task: await it for the worker's result.
///
/// Dropping it cancels the task (withdrawn from the board, or interrupted on its worker);
/// [`Task::detach`] lets it run to its end instead, its result discarded.
#[derive(Debug)]
#[must_use = "a task is cancelled when its handle is dropped; await it or detach() it"]
pub struct Task {
    id: TaskId,
    result: oneshot::Receiver<Result<Bytes, SubmitError>>,
    detached: Arc<AtomicBool>,
}

impl Task {
    /// The task's id, as [`Client::updates`] names it.
    pub fn id(&self) -> TaskId {
        self.id
    }

    /// Lets the task run to its end without anyone waiting for its result
    /// ([`Client::shutdown`] still waits for it).
    pub fn detach(self) {
        self.detached.store(true, Ordering::Release);
    }

    /// Cancels the task (the same as dropping it, said out loud).
    pub fn cancel(self) {}
}

impl Future for Task {
    type Output = Result<Bytes, SubmitError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.result)
            .poll(cx)
            .map(|result| result.unwrap_or(Err(SubmitError::Stopped(StopReason::Aborted))))
    }
}
