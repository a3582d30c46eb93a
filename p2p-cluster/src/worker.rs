//! [`ClusterWorker`]: this process lent to a cluster, running tasks on an [`Executor`].
//! [`ClusterWorker::shutdown`] drains: the worker stops offering (its hellos stop, so
//! clients stop counting it), the tasks it holds get a grace period to finish and send
//! their results, whatever still runs then is cancelled (its clients try it elsewhere),
//! and the worker leaves the board. Each task's start and end are logged
//! ([`TaskLog`]).

use std::collections::BTreeSet;
use std::time::Duration;

use p2p_proto::id::{ClusterName, PeerId};
use p2p_transport::clock::unix_ms;
use p2p_transport::wormhole::WormholeConfig;
use p2p_worker::core::WorkerConfig;
use p2p_worker::{Executor, StopReason, Worker, WorkerOptions, fresh_secret};

use crate::connect::Membership;
use crate::millis;
use crate::tasklog::TaskLog;

/// A worker's options; see [`Cluster::worker`](crate::Cluster::worker).
#[derive(Debug)]
#[must_use = "a builder does nothing until start() is called"]
pub struct WorkerBuilder<E> {
    membership: Membership,
    executor: E,
    options: WorkerOptions,
}

impl<E: Executor> WorkerBuilder<E> {
    pub(crate) fn new(membership: Membership, wormhole: WormholeConfig, executor: E) -> Self {
        let mut core = WorkerConfig::new(membership.me.clone());
        core.sessions = true;
        core.secret = Some(fresh_secret());
        WorkerBuilder {
            membership,
            executor,
            options: WorkerOptions::new(core, wormhole),
        }
    }

    /// Tasks run at once (default: 1).
    pub fn slots(mut self, slots: usize) -> Self {
        self.options.core.slots = slots.max(1);
        self
    }

    /// Longest a task may run from its start (default: none); then it is cancelled and
    /// its client told it timed out.
    pub fn time_limit(mut self, limit: Option<Duration>) -> Self {
        self.options.core.time_limit = limit.map(millis);
        self
    }

    /// Largest payload taken and result returned, in bytes (default: 512 MiB).
    pub fn max_payload(mut self, bytes: u64) -> Self {
        self.options.core.max_payload = bytes;
        self
    }

    /// Only take tasks of these users (default: every member of the cluster).
    pub fn allow_users<I, S>(mut self, users: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let users: BTreeSet<String> = users.into_iter().map(Into::into).collect();
        self.options.core.allow_users = Some(users);
        self
    }

    /// How often the worker says hello (default: 30 s; clients count workers by their
    /// hellos, and a new client hears every idle worker at once anyway).
    pub fn hello_interval(mut self, interval: Duration) -> Self {
        self.options.core.hello_interval = millis(interval).max(1000);
        self
    }

    /// Stop offering after this long, finish what runs, then stop (default: never).
    pub fn stop_after(mut self, duration: Duration) -> Self {
        self.options.core.until = Some(unix_ms().saturating_add(millis(duration)));
        self
    }

    /// Bound on receiving a payload or sending a result outside warm sessions
    /// (default: 10 min).
    pub fn transfer_timeout(mut self, timeout: Duration) -> Self {
        self.options.transfer_timeout = timeout;
        self
    }

    /// The low-level options, for settings without a method here.
    pub fn worker_options(mut self, tweak: impl FnOnce(&mut WorkerOptions)) -> Self {
        tweak(&mut self.options);
        self
    }

    /// Starts serving on the current tokio runtime.
    pub fn start(self) -> ClusterWorker {
        let Membership {
            board,
            me,
            cluster,
            lines,
            ..
        } = self.membership;
        tracing::info!(%me, %cluster, slots = self.options.core.slots, "worker joined");
        ClusterWorker {
            worker: Worker::start(lines, TaskLog::new(self.executor), self.options),
            me,
            cluster,
            _board: board,
        }
    }
}

/// This process serving a cluster. Dropping it stops the worker at once, as
/// [`abort`](ClusterWorker::abort) does; [`shutdown`](ClusterWorker::shutdown) drains.
#[derive(Debug)]
pub struct ClusterWorker {
    worker: Worker,
    me: PeerId,
    cluster: ClusterName,
    // Last: the topic reconnects through it as long as the worker runs.
    _board: p2p_transport::board::Board,
}

impl ClusterWorker {
    /// Our peer id on the cluster.
    pub fn me(&self) -> &PeerId {
        &self.me
    }

    /// The cluster, `OWNER/NAME`.
    pub fn cluster(&self) -> &ClusterName {
        &self.cluster
    }

    /// Waits until the worker stops on its own (its [`stop_after`](WorkerBuilder::stop_after)
    /// is over, or the board connection ended for good) and says why.
    pub async fn stopped(&mut self) -> StopReason {
        self.worker.stopped().await
    }

    /// A graceful end: no new tasks, `grace` for the ones held to finish (results sent),
    /// then whatever still runs is cancelled and the worker leaves the board. Says how it
    /// ended: [`StopReason::Drained`] when everything finished in time.
    pub async fn shutdown(mut self, grace: Duration) -> StopReason {
        self.worker.drain();
        match tokio::time::timeout(grace, self.worker.stopped()).await {
            Ok(reason) => reason,
            Err(_) => {
                tracing::info!(
                    "shutdown: tasks still running after the grace period are cancelled"
                );
                self.worker.shutdown();
                self.worker.stopped().await
            }
        }
    }

    /// Stops at once: running tasks are cancelled (their clients try them elsewhere).
    pub async fn abort(mut self) -> StopReason {
        self.worker.shutdown();
        self.worker.stopped().await
    }
}

impl Drop for ClusterWorker {
    fn drop(&mut self) {
        // The topic would keep the board connection, and so the worker, alive.
        self.worker.shutdown();
    }
}
