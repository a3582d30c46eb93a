//! The client's dispatch logic as a deterministic state machine (sans-IO).
//!
//! ```text
//!  submit ──> Queued ──(a warm session with room)──────────────> Sent ──Started──> Running
//!               │  request on the board (for the queue's tail,         │               │
//!               │  only while some worker is not in a session)         │ taken back    │
//!               │  offer from a worker that may take it                │ (an idle      │
//!               v                                                      │ worker waits) │
//!            Accepted ──(payload sent, or session opened)──> Sent / Running            │
//!               │                                                                      │
//!               └── failures: before the start, back to the queue untouched ───────────┤
//!                   after it, a try is spent (another worker preferred)          result│
//!                   past a time limit, over with TimedOut                              v
//!                                                                                 Finished
//! ```
//!
//! **Sessions carry the work, the board finds workers.** A warm session with a worker that
//! speaks them takes tasks without the board, up to the worker's slots plus a prefetch
//! sized to the work: enough to hide the round trip for tiny tasks (up to
//! [`SchedulerConfig::max_prefetch`]), a single task for long ones, so a worker never holds
//! much more than it can start. A task waiting on a busy worker is taken back when another
//! worker of ours sits idle, or put up on the board when some worker is not in a session
//! with us. Requests go up only while tasks wait that no session can take and some worker
//! is not in a session with us; each stands for a task at the back of the queue, so sessions
//! drain the queue's front without withdrawing them. An idle session stays open for
//! [`SchedulerConfig::session_idle_grace`] (a task submitted meanwhile pays neither the
//! board nor a rendezvous); it holds no slot on the worker, which serves other clients'
//! requests meanwhile.
//!
//! **Retries are honest.** Only a task that started on a worker that then failed spends a
//! try; tasks waiting behind it go back to the queue untouched. (A worker without Started
//! frames is taken to run the oldest tasks sent to it, up to its slots: one lost on its way
//! when the session broke spends a try too, as the client cannot tell it from one that
//! started.) A retry prefers a worker that has not failed the task, and a worker that
//! fails twice in a row is set aside for a while (1 s, doubling up to a minute). Hand-overs
//! that fail before the task starts are bounded separately
//! ([`SchedulerConfig::max_dispatch_failures`]).
//!
//! **Every task is bounded**: it may run [`SchedulerConfig::time_limit`] at most, then it
//! is stopped and finished as [`TaskError::TimedOut`] (a worker's own time limit ends it
//! the same way).
//!
//! Offers are trusted on first sight: the first sealing key seen under a worker id is
//! pinned, and offers under that id with another key are refused ([`pins`]).
//!
//! Every task is finished exactly once; a late result from a worker the task was taken
//! from is refused ([`SchedulerCore::task_succeeded`] returns `false`). Time is Unix
//! milliseconds from the caller; randomness (wormhole codes, sealing) comes from a seeded
//! CSPRNG the caller provides, so runs replay exactly in tests.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use p2p_proto::id::{FutureId, PeerId, WormholeCode};
use p2p_proto::message::{
    Accept, BoardLine, DeclineReason, Hello, Message, Offer, Request, Role, TransferUri, Withdraw,
};
use p2p_proto::peers::{Heard, PeerTable};
use p2p_proto::protocols::{self, PayloadFormat, Protocols};
use p2p_proto::seal;
use p2p_proto::time::{BoardTime, Expiry, Millis};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::RngCore;

use crate::error::{AttemptError, TaskError, TimeLimit};

pub mod pins;
use pins::{KeyPins, PinCheck};

/// A task's handle, unique within one scheduler.
pub type TaskId = u64;

/// Longest a worker that keeps failing is set aside.
const MAX_SET_ASIDE: Millis = 60_000;
/// Weight of the newest sample in a session's estimate of the time between results.
const GAP_WEIGHT: f64 = 0.25;
/// Standing requests are posted again for newly arrived workers at most this often.
const REPOST_EVERY: Millis = 1_000;
/// Workers known at most, in all and per user (see [`PeerTable`]): a member posting
/// hellos under made-up ids fills only its own share.
pub const MAX_WORKERS: usize = 4096;
/// Workers known at most per user.
pub const MAX_WORKERS_PER_USER: usize = 512;
/// Longest a worker is known after its last hello, whatever expiry the hello claims.
pub const MAX_HELLO_LIFE: Millis = 10 * 60_000;
/// Hellos that answer new clients are at least this far apart.
const ANSWER_GAP: Millis = 1_000;
/// Most other clients remembered (a flood of made-up ones is neither kept nor answered).
const MAX_CLIENTS_SEEN: usize = 4096;

/// How a client behaves on the board.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// This client's board identity.
    pub me: PeerId,
    /// How long a request stands before it is posted again (future.p2p: 10 s).
    pub request_ttl: Millis,
    /// How long an accepted worker has to start the transfer (future.p2p: the accept's
    /// life).
    pub accept_ttl: Millis,
    /// How long an accepted worker has to open a warm session (rendezvous and hellos take
    /// well under a second; a worker that died after its offer must not hold the task for
    /// the whole `accept_ttl`).
    pub session_open_ttl: Millis,
    /// Tries a task may spend: a try is spent when a task started on a worker that then
    /// failed (a worker error, a lost worker or session); beyond this many, it fails.
    pub max_retries: u32,
    /// Hand-overs that may fail before the task starts (the worker never fetched it, the
    /// session never opened); beyond this many, it fails.
    pub max_dispatch_failures: u32,
    /// Most requests standing on the board at once.
    pub max_open_requests: usize,
    /// Seal codes to workers that offer a key.
    pub sealed: bool,
    /// Keep warm sessions with workers that speak them.
    pub sessions: bool,
    /// How often the client says hello.
    pub hello_interval: Millis,
    /// Most tasks sent ahead to a session beyond the worker's slots.
    pub max_prefetch: usize,
    /// How much expected work a session gets ahead of its slots: tasks that take a tenth
    /// of it get ten ahead (up to `max_prefetch`), longer ones one.
    pub prefetch_horizon: Millis,
    /// How long an idle session stays open for the next task.
    pub session_idle_grace: Millis,
    /// Longest a task may run once started; `None` for no limit.
    pub time_limit: Option<Millis>,
    /// A task waiting on a session is taken back for an idle worker when it would wait
    /// at least this long where it is (judged by the pace of the session's results).
    pub steal_after: Millis,
    /// A task sent within the worker's slots that has not started after this long is
    /// taken as blocked (the worker is busy with other clients, or stuck) and may move.
    pub start_patience: Millis,
    /// How long a worker that failed twice in a row is first set aside (doubling after
    /// each further failure, up to a minute).
    pub set_aside: Millis,
    /// The protocol token naming the format of submitted payloads (`rpayload-v1` for the
    /// R futures the future.p2p package makes): it is announced, and workers that do not
    /// list it (future.p2p 0.4.0's) are accepted only if `original_payloads`.
    /// `None`: payloads are opaque bytes, for any worker.
    pub native_format: Option<String>,
    /// The driver can make a task's payload in future.p2p 0.4.0's format when a worker
    /// that reads only that one is accepted ([`Dispatch::format`]); set by the driver
    /// (`SchedulerOptions::original_payloads`).
    pub original_payloads: bool,
}

impl SchedulerConfig {
    /// Defaults: 10 s requests, 60 s to start a transfer (10 s to open a session), 2 retries, 8 failed hand-overs, 8 open
    /// requests, sealed codes and sessions on, 16 tasks of prefetch at most over a 5 ms
    /// horizon, idle sessions kept 30 s, a 24 h time limit.
    pub fn new(me: PeerId) -> Self {
        SchedulerConfig {
            me,
            request_ttl: 10_000,
            accept_ttl: 60_000,
            session_open_ttl: 10_000,
            max_retries: 2,
            max_dispatch_failures: 8,
            max_open_requests: 8,
            sealed: true,
            sessions: true,
            hello_interval: 30_000,
            max_prefetch: 16,
            prefetch_horizon: 5,
            session_idle_grace: 30_000,
            time_limit: Some(24 * 3600 * 1000),
            steal_after: 20,
            start_patience: 1_000,
            set_aside: 1_000,
            native_format: None,
            original_payloads: false,
        }
    }

    fn protocols(&self) -> Protocols {
        let mut tokens = vec![protocols::WORMHOLE.to_owned()];
        if self.sealed {
            tokens.push(protocols::SEALED.to_owned());
        }
        if self.sessions {
            tokens.push(protocols::SESSION.to_owned());
            tokens.push(protocols::SLOTS.to_owned());
        }
        tokens.extend(self.native_format.clone());
        Protocols::try_from(tokens).unwrap_or_else(|_| Protocols::future_p2p())
    }
}

/// How the payload of a dispatched task travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// future.p2p file transfers: send the payload under `CODE-f`, receive the result under
    /// `CODE-r`; report [`SchedulerCore::task_started`] once the payload is sent.
    Files {
        /// The code the two transfers derive theirs from.
        code: WormholeCode,
    },
    /// Open a warm session under `CODE` and send the task on it; report
    /// [`SchedulerCore::session_opened`] once it is up.
    NewSession {
        /// The code of the session's rendezvous.
        code: WormholeCode,
    },
    /// Send the task on the worker's open session.
    Session,
}

/// A task handed to a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dispatch {
    /// The task.
    pub task: TaskId,
    /// Its future, as named on the board.
    pub future: FutureId,
    /// The worker it goes to.
    pub worker: PeerId,
    /// How its payload travels.
    pub route: Route,
    /// The format its payload travels in: [`PayloadFormat::FutureP2p`] to a worker that
    /// does not read the native one (always on [`Route::Files`]: such workers speak no
    /// sessions).
    pub format: PayloadFormat,
}

/// Progress of a task, for progress displays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TaskEvent {
    /// Waiting for a worker (a request stands on the board, or will).
    Queued,
    /// A worker offered to take it.
    Offered {
        /// The worker.
        worker: PeerId,
    },
    /// It was handed to a worker (an accept on the board, or sent on a session), which has
    /// not started it yet.
    Accepted {
        /// The worker.
        worker: PeerId,
    },
    /// The worker runs it.
    Running {
        /// The worker.
        worker: PeerId,
    },
    /// A worker refused it before taking it.
    Declined {
        /// The worker.
        worker: PeerId,
        /// Why.
        reason: DeclineReason,
    },
    /// It was waiting on a worker and was taken back, for an idle worker or because the
    /// worker failed; no try was spent.
    Requeued {
        /// The worker it waited on.
        worker: PeerId,
    },
    /// A try failed; the task is queued again.
    Retried {
        /// The worker that failed it.
        worker: PeerId,
        /// How.
        error: AttemptError,
    },
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchedulerAction {
    /// Write this line to the board.
    Post(BoardLine),
    /// Move the task's payload to the worker and its result back.
    Dispatch(Dispatch),
    /// Stop the task on the worker (session cancel frame, or abort the transfer); whatever
    /// the worker still says about it is refused.
    Interrupt {
        /// The task.
        task: TaskId,
        /// The worker holding it.
        worker: PeerId,
    },
    /// Close the idle session with this worker.
    CloseSession {
        /// The worker.
        worker: PeerId,
    },
    /// Offers came under `worker`'s id with a sealing key other than the one it first
    /// offered with (or without one): they are refused, as another member posing as that
    /// worker would send them (see [`pins`]). Said once per pinned key; the driver logs it.
    KeyChanged {
        /// The worker id whose key changed.
        worker: PeerId,
    },
    /// Something happened to a task.
    Event {
        /// The task.
        task: TaskId,
        /// What happened.
        event: TaskEvent,
    },
    /// The task is over: `Ok(worker)` means the driver delivers the result it received
    /// from that worker; there will be no other outcome for this task.
    Finished {
        /// The task.
        task: TaskId,
        /// The worker whose result counts, or why there is none.
        outcome: Result<PeerId, TaskError>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Waiting for a worker.
    Queued,
    /// Given to `worker` through the board; the transfer (or the session) must start by
    /// `start_by`.
    Accepted { worker: PeerId, start_by: Millis },
    /// On `worker`'s session since `at`, not started yet.
    Sent { worker: PeerId, at: Millis },
    /// Runs on `worker` since `since`.
    Running {
        worker: PeerId,
        since: Millis,
        session: bool,
        /// On the file route, the worker's hellos are its heartbeat: it had said hello to
        /// us when the task started. A future.p2p 0.4.0 worker says hello once, when it
        /// joins: one that joined before this client is never heard, and only the
        /// transfers' timeouts and the time limit bound its tasks.
        watched: bool,
    },
}

impl Phase {
    fn worker(&self) -> Option<&PeerId> {
        match self {
            Phase::Queued => None,
            Phase::Accepted { worker, .. }
            | Phase::Sent { worker, .. }
            | Phase::Running { worker, .. } => Some(worker),
        }
    }
}

#[derive(Debug, Clone)]
struct Task {
    future: FutureId,
    size: u64,
    phase: Phase,
    /// Expiry of the request standing for it on the board, if any.
    request: Option<Millis>,
    /// Workers it started on and that failed it, in order.
    tried: Vec<PeerId>,
    /// Workers not to give it to while others are around (tried, refused, failed hand-over).
    avoid: Vec<PeerId>,
    dispatch_failures: u32,
    /// Its entry in the timer set.
    timer: Option<Millis>,
}

/// A worker seen on the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerInfo {
    /// When its last hello lapses (at most [`MAX_HELLO_LIFE`] after it was heard).
    pub expires: Millis,
    /// What it speaks.
    pub protocols: Protocols,
    /// Tasks it runs at once (1 for workers that do not say).
    pub slots: u32,
}

/// How a worker fared with us lately; kept apart from [`WorkerInfo`] so that it outlives
/// the worker's hello (a failing worker that says hello again stays set aside).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Standing {
    /// Failures in a row (hand-overs, tries, sessions lost).
    failures: u32,
    /// Not given work before this time.
    set_aside_until: Millis,
}

#[derive(Debug, Clone)]
struct SessionState {
    /// The task it is opened with.
    opened_for: TaskId,
    /// Hellos exchanged (false while it is being opened).
    open: bool,
    /// The worker reports starts (Started frames).
    reports_starts: bool,
    /// Tasks on it (sent or running), oldest first.
    in_flight: Vec<TaskId>,
    /// Estimated time between two results while busy, in ms.
    gap: Option<f64>,
    last_result: Option<Millis>,
    /// Since when nothing is in flight.
    idle_since: Option<Millis>,
}

/// The client state machine.
#[derive(Debug)]
pub struct SchedulerCore {
    config: SchedulerConfig,
    protocols: Protocols,
    rng: ChaCha20Rng,
    next_task: TaskId,
    tasks: BTreeMap<TaskId, Task>,
    /// Queued tasks in submission order (retried tasks go first). Entries of tasks that
    /// left the queue are skipped when reached rather than searched for and removed, so
    /// no step costs time in proportion to the queue.
    queue: VecDeque<TaskId>,
    /// Tasks with a standing request.
    requested: BTreeSet<TaskId>,
    /// Task timers (request expiry, start deadline, time limit, lost file-route worker).
    timers: BTreeSet<(Millis, TaskId)>,
    by_future: HashMap<FutureId, TaskId>,
    /// Workers whose hellos have not lapsed, bounded (lapsed ones leave at each event).
    workers: PeerTable<WorkerInfo>,
    /// Workers that failed lately; only workers we handed work to get an entry.
    standing: HashMap<PeerId, Standing>,
    /// Workers set aside, by the end of their pause.
    aside: BTreeSet<(Millis, PeerId)>,
    /// Tasks given to each worker (accepted, sent or running): a worker holding our work
    /// keeps its place in the table whatever others post.
    assigned: HashMap<PeerId, usize>,
    /// The sealing key each worker id first offered with.
    pins: KeyPins,
    /// Bumped whenever the set of workers or their slots change.
    workers_version: u64,
    sessions: BTreeMap<PeerId, SessionState>,
    /// When waiting tasks next become worth taking back for an idle worker.
    next_steal: Option<Millis>,
    /// When standing requests were last posted again for a new worker.
    reposted: Millis,
    next_hello: Millis,
    /// When this client last said hello.
    said_hello: Millis,
    /// Other clients seen, until their hellos lapse: a new one hears our hello at once,
    /// so that a status check lists every client within a second.
    clients_seen: BTreeMap<PeerId, Millis>,
    /// The time of the latest event: timers at or before it have been handled.
    now: Millis,
    actions: VecDeque<SchedulerAction>,
}

impl SchedulerCore {
    /// A client that says hello at `now`; `rng` makes its codes (seed it from the OS).
    pub fn new(config: SchedulerConfig, rng: ChaCha20Rng, now: Millis) -> Self {
        SchedulerCore {
            protocols: config.protocols(),
            config,
            rng,
            next_task: 1,
            tasks: BTreeMap::new(),
            queue: VecDeque::new(),
            requested: BTreeSet::new(),
            timers: BTreeSet::new(),
            by_future: HashMap::new(),
            workers: PeerTable::new(MAX_WORKERS, MAX_WORKERS_PER_USER, MAX_HELLO_LIFE),
            standing: HashMap::new(),
            aside: BTreeSet::new(),
            assigned: HashMap::new(),
            pins: KeyPins::default(),
            workers_version: 0,
            sessions: BTreeMap::new(),
            next_steal: None,
            reposted: 0,
            next_hello: now,
            said_hello: 0,
            clients_seen: BTreeMap::new(),
            now,
            actions: VecDeque::new(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    /// Workers whose hello has not expired at `now`.
    pub fn workers(&self, now: Millis) -> impl Iterator<Item = (&PeerId, &WorkerInfo)> {
        self.workers.iter().filter(move |(_, w)| w.expires > now)
    }

    /// Workers known now (live ones, once the time has been handed in).
    pub fn known_workers(&self) -> usize {
        self.workers.len()
    }

    /// Moves the clock: lapsed workers leave the table, pauses that ended are lifted.
    /// Costs time in proportion to what changed, never to the number of workers.
    fn advance(&mut self, now: Millis) {
        self.now = self.now.max(now);
        let now = self.now;
        let gone = self.workers.expire(now);
        if !gone.is_empty() {
            self.workers_version += 1;
        }
        for (worker, _) in gone {
            // Standing of a worker that left and is no longer set aside is of no use.
            if self
                .standing
                .get(&worker)
                .is_some_and(|s| s.set_aside_until <= now)
            {
                self.standing.remove(&worker);
            }
        }
        while let Some((until, worker)) = self.aside.first().cloned() {
            if until > now {
                break;
            }
            self.aside.remove(&(until, worker.clone()));
            if !self.workers.contains(&worker) {
                self.standing.remove(&worker);
            }
        }
    }

    fn is_live(&self, worker: &PeerId, now: Millis) -> bool {
        self.workers.expires(worker).is_some_and(|at| at > now)
    }

    /// Live workers set aside now (few: only workers we handed work to fail).
    fn aside_live(&self, now: Millis) -> usize {
        self.aside
            .iter()
            .filter(|(until, w)| *until > now && self.is_live(w, now))
            .count()
    }

    /// Live workers, not set aside, without a session with us (open ones only if
    /// `open_only`): counted from the sessions and the set-aside workers, never by
    /// walking every worker.
    fn without_session(&self, now: Millis, open_only: bool) -> usize {
        let in_session = self
            .sessions
            .iter()
            .filter(|(w, s)| {
                (s.open || !open_only) && self.is_live(w, now) && !self.is_set_aside(w, now)
            })
            .count();
        self.workers
            .len()
            .saturating_sub(self.aside_live(now) + in_session)
    }

    /// Changes whenever [`SchedulerCore::workers`] may have changed (a worker came, went,
    /// or changed its slots): drivers publish the list only then.
    pub fn workers_version(&self) -> u64 {
        self.workers_version
    }

    /// Tasks not finished yet.
    pub fn pending(&self) -> usize {
        self.tasks.len()
    }

    /// Open sessions (or being opened).
    pub fn sessions(&self) -> usize {
        self.sessions.len()
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<SchedulerAction> {
        self.actions.pop_front()
    }

    /// When [`SchedulerCore::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let task = self.timers.first().map(|(at, _)| *at);
        let idle = self
            .sessions
            .values()
            .filter_map(|s| s.idle_since)
            .min()
            .map(|since| since + self.config.session_idle_grace);
        let aside = self.aside.first().map(|(until, _)| *until);
        let lapse = self.workers.next_expiry();
        [
            task,
            idle,
            self.next_steal,
            aside,
            lapse,
            Some(self.next_hello),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// When `task` next needs attention, if ever.
    fn timer_of(&self, task: &Task) -> Option<Millis> {
        let phase = match &task.phase {
            Phase::Queued | Phase::Sent { .. } => None,
            Phase::Accepted { start_by, .. } => Some(*start_by),
            Phase::Running {
                worker,
                since,
                watched,
                ..
            } => {
                let limit = self.config.time_limit.map(|limit| since + limit);
                // A worker says nothing on the board while it runs a file-route task; its
                // hellos, repeated well within their expiry, are its heartbeat.
                let lost =
                    watched.then(|| self.workers.get(worker).map(|w| w.expires).unwrap_or(0));
                [limit, lost].into_iter().flatten().min()
            }
        };
        [phase, task.request].into_iter().flatten().min()
    }

    /// Re-files `task`'s timer after its state changed.
    fn rearm(&mut self, id: TaskId) {
        let Some(task) = self.tasks.get(&id) else {
            return;
        };
        let at = self.timer_of(task).map(|at| at.max(self.now + 1));
        let old = task.timer;
        if old == at {
            return;
        }
        if let Some(old) = old {
            self.timers.remove(&(old, id));
        }
        if let Some(at) = at {
            self.timers.insert((at, id));
        }
        if let Some(task) = self.tasks.get_mut(&id) {
            task.timer = at;
        }
    }

    fn set_phase(&mut self, id: TaskId, phase: Phase) {
        if let Some(task) = self.tasks.get_mut(&id) {
            let old = std::mem::replace(&mut task.phase, phase);
            let new = task.phase.worker().cloned();
            if let Some(worker) = old.worker() {
                self.unassign(worker);
            }
            if let Some(worker) = new {
                *self.assigned.entry(worker).or_default() += 1;
            }
            self.rearm(id);
        }
    }

    fn unassign(&mut self, worker: &PeerId) {
        if let Some(count) = self.assigned.get_mut(worker) {
            *count -= 1;
            if *count == 0 {
                self.assigned.remove(worker);
            }
        }
    }

    fn is_queued(&self, id: TaskId) -> bool {
        matches!(
            self.tasks.get(&id),
            Some(Task {
                phase: Phase::Queued,
                ..
            })
        )
    }

    /// The next task really waiting in the queue (skipping entries of tasks that left it).
    fn pop_queued(&mut self) -> Option<TaskId> {
        while let Some(id) = self.queue.pop_front() {
            if self.is_queued(id) {
                return Some(id);
            }
        }
        None
    }

    /// Whether a task is waiting in the queue (dropping stale entries at its front).
    fn has_queued(&mut self) -> bool {
        match self.pop_queued() {
            Some(id) => {
                self.queue.push_front(id);
                true
            }
            None => false,
        }
    }

    /// Adds a task whose payload has `size` bytes; the driver keeps the payload.
    pub fn submit(&mut self, now: Millis, future: FutureId, size: u64) -> TaskId {
        self.advance(now);
        let id = self.next_task;
        self.next_task += 1;
        self.by_future.insert(future.clone(), id);
        self.tasks.insert(
            id,
            Task {
                future,
                size,
                phase: Phase::Queued,
                request: None,
                tried: Vec::new(),
                avoid: Vec::new(),
                dispatch_failures: 0,
                timer: None,
            },
        );
        self.queue.push_back(id);
        self.event(id, TaskEvent::Queued);
        self.pump(now);
        id
    }

    /// Cancels a task: withdrawn from the board, interrupted on its worker.
    pub fn cancel(&mut self, now: Millis, id: TaskId) {
        self.advance(now);
        let Some(task) = self.tasks.get(&id) else {
            return;
        };
        let phase = task.phase.clone();
        let future = task.future.clone();
        self.withdraw_request(now, id);
        match phase {
            Phase::Queued => {}
            Phase::Accepted { worker, .. }
            | Phase::Running {
                worker,
                session: false,
                ..
            } => {
                // A file-route worker (or one opening a session) hears it on the board.
                self.post(
                    now,
                    Message::Withdraw(Withdraw {
                        from: self.config.me.clone(),
                        to: Some(worker.clone()),
                        future,
                    }),
                );
                self.take_back(id, &worker);
            }
            Phase::Sent { worker, .. } | Phase::Running { worker, .. } => {
                self.take_back(id, &worker);
            }
        }
        self.finish(id, Err(TaskError::Cancelled));
        self.pump(now);
    }

    /// A line from the board.
    pub fn handle_line(&mut self, now: Millis, line: &BoardLine) {
        self.advance(now);
        match &line.message {
            Message::Hello(hello) if hello.role == Role::Client && hello.from != self.config.me => {
                self.client_seen(now, &hello.from, hello.expires.unix_ms());
            }
            Message::Hello(hello) if hello.role == Role::Worker => {
                let slots = hello.slots.unwrap_or(1).max(1);
                let protocols = hello.protocols.clone().unwrap_or_default();
                let sessions = &self.sessions;
                let assigned = &self.assigned;
                let (heard, info) = self.workers.heard(
                    now,
                    &hello.from,
                    hello.expires.unix_ms(),
                    || WorkerInfo {
                        expires: 0,
                        protocols: Protocols::default(),
                        slots: 0,
                    },
                    // A worker holding our work or a session keeps its place.
                    |worker, _| sessions.contains_key(worker) || assigned.contains_key(worker),
                );
                let Some(info) = info else {
                    tracing::debug!(worker = %hello.from, "worker table full: hello ignored");
                    return;
                };
                let arrived = heard == Heard::New;
                let changed = arrived || info.slots != slots;
                info.slots = slots;
                info.protocols = protocols;
                if let Some(expires) = self.workers.expires(&hello.from)
                    && let Some(info) = self.workers.get_mut(&hello.from)
                {
                    info.expires = expires;
                }
                if changed {
                    // Pushed-out workers (if any) changed the list too.
                    self.workers_version += 1;
                }
                if arrived && now >= self.reposted + REPOST_EVERY {
                    // A worker that just came never saw the requests standing: post them
                    // again (at most once a second, however many workers come).
                    self.forget_requests(now);
                }
                if changed {
                    // A worker that was unknown may take queued work.
                    self.pump(now);
                }
            }
            Message::Offer(offer) if offer.to == self.config.me => self.on_offer(now, offer),
            Message::Decline(decline) if decline.to == self.config.me => {
                let Some(&id) = self.by_future.get(&decline.future) else {
                    return;
                };
                if self.is_assigned_to(id, &decline.from) {
                    self.on_decline(now, id, &decline.from, &decline.reason);
                } else {
                    self.event(
                        id,
                        TaskEvent::Declined {
                            worker: decline.from.clone(),
                            reason: decline.reason.clone(),
                        },
                    );
                }
            }
            _ => {}
        }
    }

    fn on_offer(&mut self, now: Millis, offer: &Offer) {
        let Some(&id) = self.by_future.get(&offer.future) else {
            return;
        };
        match self.pins.check(now, &offer.from, offer.pk.as_ref()) {
            PinCheck::Trusted => {}
            PinCheck::Refused { first } => {
                if first {
                    self.actions.push_back(SchedulerAction::KeyChanged {
                        worker: offer.from.clone(),
                    });
                }
                return;
            }
        }
        let Some(task) = self.tasks.get(&id) else {
            return;
        };
        // A queued task, or one waiting on a busy worker that we put up on the board.
        let takeable = match &task.phase {
            Phase::Queued => true,
            Phase::Sent { worker, .. } => task.request.is_some() && *worker != offer.from,
            _ => false,
        };
        let theirs = offer.protocols.clone().unwrap_or_default();
        let format = PayloadFormat::negotiate(self.config.native_format.as_deref(), &theirs);
        // future.p2p 0.4.0 workers read its format; a worker of this project that does
        // not read ours (it speaks sessions) reads neither.
        let readable = format == PayloadFormat::Native
            || (self.config.original_payloads && !theirs.supports(protocols::SESSION));
        if !takeable
            || !readable
            || offer.expires.unix_ms() < now
            || self.sessions.contains_key(&offer.from)
            || self.is_set_aside(&offer.from, now)
            || (task.avoid.contains(&offer.from) && self.others_around(task, &offer.from, now))
        {
            return;
        }
        if let Phase::Sent { worker, .. } = task.phase.clone() {
            self.take_back(id, &worker);
        }
        self.event(
            id,
            TaskEvent::Offered {
                worker: offer.from.clone(),
            },
        );
        self.accept(now, id, offer, format);
    }

    /// Whether a live worker other than `except`, not avoided by `task` and not set aside,
    /// could take it (a transient failure on a one-worker cluster must not strand a task).
    fn others_around(&self, task: &Task, except: &PeerId, now: Millis) -> bool {
        let live = self.workers.len();
        let unavailable = task
            .avoid
            .iter()
            .chain([except])
            .filter(|w| self.is_live(w, now))
            .count();
        live > unavailable + self.aside_live(now)
    }

    fn is_set_aside(&self, worker: &PeerId, now: Millis) -> bool {
        self.standing
            .get(worker)
            .is_some_and(|s| s.set_aside_until > now)
    }

    fn accept(&mut self, now: Millis, id: TaskId, offer: &Offer, format: PayloadFormat) {
        let theirs = offer.protocols.clone().unwrap_or_default();
        let common = self.protocols.common(&theirs);
        let code = self.new_code();
        let via = match offer
            .pk
            .as_ref()
            .filter(|_| common.supports(protocols::SEALED))
        {
            Some(pk) => match seal::seal(&code, pk, &mut self.rng) {
                Ok(sealed) => TransferUri::Sealed(sealed),
                // Our own codes always fit a sealed box; never fall back to a plain code
                // that another member could read.
                Err(_) => return,
            },
            // A seed-version worker (no protocols at all) appends `-f` to `via` verbatim.
            None if offer.protocols.is_none() => TransferUri::BareWormhole(code.clone()),
            None => TransferUri::Wormhole(code.clone()),
        };
        let worker = offer.from.clone();
        let session = common.supports(protocols::SESSION);
        let start_by = now
            + if session {
                self.config.session_open_ttl
            } else {
                self.config.accept_ttl
            };
        let route = if session {
            // The session being opened: offers from this worker are not taken meanwhile.
            self.sessions.insert(
                worker.clone(),
                SessionState {
                    opened_for: id,
                    open: false,
                    reports_starts: false,
                    in_flight: vec![id],
                    gap: None,
                    last_result: None,
                    idle_since: None,
                },
            );
            Route::NewSession { code }
        } else {
            Route::Files { code }
        };
        let Some(future) = self.tasks.get(&id).map(|t| t.future.clone()) else {
            return;
        };
        // The request is answered: it is no longer on the board for anyone.
        self.forget_request(id);
        self.set_phase(
            id,
            Phase::Accepted {
                worker: worker.clone(),
                start_by,
            },
        );
        self.post(
            now,
            Message::Accept(Accept {
                from: self.config.me.clone(),
                expires: Expiry::from_unix_ms(now + self.config.accept_ttl),
                to: worker.clone(),
                future: future.clone(),
                via,
            }),
        );
        self.event(
            id,
            TaskEvent::Accepted {
                worker: worker.clone(),
            },
        );
        self.actions.push_back(SchedulerAction::Dispatch(Dispatch {
            task: id,
            future,
            worker,
            route,
            format,
        }));
        self.pump(now);
    }

    fn on_decline(&mut self, now: Millis, id: TaskId, worker: &PeerId, reason: &DeclineReason) {
        match reason {
            // The worker's slots filled before our accept came: nothing was tried, and
            // nothing is wrong with the worker.
            DeclineReason::Busy => {
                self.take_back(id, worker);
                self.requeue(id, worker);
                self.pump(now);
            }
            DeclineReason::TimeLimit => {
                let limit = TimeLimit::Worker("it ran past the worker's time limit".into());
                self.time_out(id, worker, limit);
                self.pump(now);
            }
            // The worker took the task, then gave it up (its executor failed, or it
            // refused the payload after all): try elsewhere.
            _ => self.task_failed(now, id, worker, AttemptError::Declined(reason.clone())),
        }
    }

    /// A fresh code: 5-digit nameplate, 64 random bits of password.
    fn new_code(&mut self) -> WormholeCode {
        let nameplate = 1000 + self.rng.next_u32() % 99_000;
        let password = format!("{:016x}", self.rng.next_u64());
        // Digits and hex always form a valid code.
        WormholeCode::new(nameplate, &password).expect("generated codes are valid")
    }

    /// The board topic reopened after a disconnect (a hub restart, a slow-reader drop):
    /// what was posted meanwhile is lost, and peers that joined since never saw our
    /// hello or our requests. Both are posted again now, rather than when they lapse.
    pub fn board_reopened(&mut self, now: Millis) {
        self.next_hello = now;
        self.forget_requests(now);
        // The hello is due, and the pump that follows timers posts the requests.
        self.handle_timeout(now);
    }

    /// Another client said hello: one not seen before (or whose hello lapsed) hears ours
    /// at once, at most one answer a second however many come.
    fn client_seen(&mut self, now: Millis, client: &PeerId, expires: Millis) {
        let known = self.clients_seen.get(client).is_some_and(|e| *e > now);
        if !self.clients_seen.contains_key(client) && self.clients_seen.len() >= MAX_CLIENTS_SEEN {
            self.clients_seen.retain(|_, e| *e > now);
            if self.clients_seen.len() >= MAX_CLIENTS_SEEN {
                return;
            }
        }
        self.clients_seen.insert(client.clone(), expires);
        if !known {
            let answer = (self.said_hello + ANSWER_GAP).max(now);
            self.next_hello = self.next_hello.min(answer);
        }
    }

    /// Time passed: hello, expired requests, start deadlines, time limits, lost workers,
    /// idle sessions, tasks worth taking back.
    pub fn handle_timeout(&mut self, now: Millis) {
        self.advance(now);
        if now >= self.next_hello {
            self.next_hello = now + self.config.hello_interval;
            self.said_hello = now;
            self.clients_seen.retain(|_, expires| *expires > now);
            self.post(
                now,
                Message::Hello(Hello {
                    role: Role::Client,
                    from: self.config.me.clone(),
                    expires: Expiry::from_unix_ms(now + 2 * self.config.hello_interval),
                    protocols: Some(self.protocols.clone()),
                    slots: None,
                    busy: None,
                }),
            );
        }
        self.next_steal = None;
        while let Some(&(at, id)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, id));
            if let Some(task) = self.tasks.get_mut(&id) {
                task.timer = None;
            }
            self.task_timer(now, id);
        }
        let idle: Vec<PeerId> = self
            .sessions
            .iter()
            .filter(|(_, s)| {
                s.idle_since
                    .is_some_and(|since| since + self.config.session_idle_grace <= now)
            })
            .map(|(w, _)| w.clone())
            .collect();
        for worker in idle {
            self.sessions.remove(&worker);
            self.actions
                .push_back(SchedulerAction::CloseSession { worker });
        }
        self.pump(now);
    }

    /// A task's timer fired: whatever of its deadlines passed.
    fn task_timer(&mut self, now: Millis, id: TaskId) {
        let Some(task) = self.tasks.get(&id) else {
            return;
        };
        if task.request.is_some_and(|expires| expires <= now) {
            // The request lapsed unanswered; pump posts it again if it is still wanted.
            self.forget_request(id);
        }
        let Some(task) = self.tasks.get(&id) else {
            return;
        };
        match task.phase.clone() {
            Phase::Accepted { worker, start_by } if start_by <= now => {
                self.task_failed(now, id, &worker, AttemptError::NotStarted);
            }
            Phase::Running {
                worker,
                since,
                watched,
                ..
            } => {
                if let Some(limit) = self.config.time_limit
                    && since + limit <= now
                {
                    self.time_out(id, &worker, TimeLimit::Client { millis: limit });
                } else if watched && !self.is_live(&worker, now) {
                    self.task_failed(now, id, &worker, AttemptError::Vanished);
                } else {
                    self.rearm(id);
                }
            }
            _ => self.rearm(id),
        }
    }

    /// The task reached its worker and runs: the payload was sent (files route), or the
    /// worker said it started it (sessions).
    pub fn task_started(&mut self, now: Millis, id: TaskId, worker: &PeerId) {
        self.advance(now);
        let session = match self.tasks.get(&id).map(|t| &t.phase) {
            Some(Phase::Accepted { worker: w, .. }) if w == worker => {
                self.sessions.get(worker).is_some_and(|s| s.open)
            }
            Some(Phase::Sent { worker: w, .. }) if w == worker => true,
            _ => return,
        };
        self.start(now, id, worker, session);
        // A task running elsewhere needs no request standing for it.
        self.withdraw_request(now, id);
    }

    fn start(&mut self, now: Millis, id: TaskId, worker: &PeerId, session: bool) {
        self.set_phase(
            id,
            Phase::Running {
                worker: worker.clone(),
                since: now,
                session,
                watched: !session && self.is_live(worker, now),
            },
        );
        self.event(
            id,
            TaskEvent::Running {
                worker: worker.clone(),
            },
        );
    }

    /// A warm session with `worker` is up, carrying task `id` (sent with the hello).
    /// `reports_starts`: both hellos list [`protocols::SLOTS`], so the worker will say when
    /// each task starts; otherwise a task is taken as started when it is sent within the
    /// worker's slots.
    /// `false`: the core gave up on this session meanwhile (its opening took too long, or
    /// it is not the one opened for `id`); close it.
    pub fn session_opened(
        &mut self,
        now: Millis,
        worker: &PeerId,
        id: TaskId,
        reports_starts: bool,
    ) -> bool {
        self.advance(now);
        let Some(session) = self
            .sessions
            .get_mut(worker)
            .filter(|s| !s.open && s.opened_for == id)
        else {
            return false;
        };
        session.open = true;
        session.reports_starts = reports_starts;
        if self.is_assigned_to(id, worker) {
            self.set_phase(
                id,
                Phase::Sent {
                    worker: worker.clone(),
                    at: now,
                },
            );
            self.presume_starts(now, worker);
        } else if let Some(session) = self.sessions.get_mut(worker) {
            // The task was cancelled or taken back meanwhile: the session starts idle.
            session.in_flight.retain(|t| *t != id);
        }
        self.touch_session(now, worker);
        self.pump(now);
        true
    }

    /// Sessions without Started frames: the oldest tasks, up to the worker's slots, are
    /// taken as started (the worker runs them in order).
    fn presume_starts(&mut self, now: Millis, worker: &PeerId) {
        let Some(session) = self.sessions.get(worker) else {
            return;
        };
        if session.reports_starts {
            return;
        }
        let slots = self.slots_of(worker);
        let starting: Vec<TaskId> = session
            .in_flight
            .iter()
            .take(slots)
            .copied()
            .filter(|id| {
                matches!(
                    self.tasks.get(id).map(|t| &t.phase),
                    Some(Phase::Sent { .. })
                )
            })
            .collect();
        for id in starting {
            self.start(now, id, worker, true);
        }
    }

    fn slots_of(&self, worker: &PeerId) -> usize {
        self.workers
            .get(worker)
            .map_or(1, |w| w.slots.max(1) as usize)
    }

    /// The session with `worker` ended (`why`): tasks that had started on it spend a try;
    /// those waiting go back to the queue untouched.
    pub fn session_closed(&mut self, now: Millis, worker: &PeerId, why: AttemptError) {
        self.advance(now);
        let Some(session) = self.sessions.remove(worker) else {
            return;
        };
        for id in session.in_flight {
            match self.tasks.get(&id).map(|t| t.phase.clone()) {
                // Started there, or the session never opened (a failed hand-over).
                Some(Phase::Running { worker: w, .. } | Phase::Accepted { worker: w, .. })
                    if w == *worker =>
                {
                    self.fail_attempt(now, id, worker, why.clone());
                }
                Some(Phase::Sent { worker: w, .. }) if w == *worker => {
                    self.requeue(id, worker);
                }
                _ => {}
            }
        }
        self.worker_failed(now, worker);
        self.pump(now);
    }

    /// `worker` returned the task's result. `false` means the task is no longer the
    /// worker's (finished, cancelled or re-queued): drop the result.
    pub fn task_succeeded(&mut self, now: Millis, id: TaskId, worker: &PeerId) -> bool {
        self.advance(now);
        if !self.is_assigned_to(id, worker) {
            return false;
        }
        let sent_at = match self.tasks.get(&id).map(|t| &t.phase) {
            Some(Phase::Sent { at, .. }) => Some(*at),
            Some(Phase::Running { since, .. }) => Some(*since),
            _ => None,
        };
        self.release(id, worker);
        self.note_result(now, worker, sent_at);
        if let Some(standing) = self.standing.remove(worker) {
            self.aside
                .remove(&(standing.set_aside_until, worker.clone()));
        }
        self.finish(id, Ok(worker.clone()));
        self.pump(now);
        true
    }

    /// `worker` failed the task (transfer error, lost worker, worker-side error). A task
    /// that had started spends a try; one that had not goes back untouched (a failed
    /// hand-over is counted apart).
    pub fn task_failed(&mut self, now: Millis, id: TaskId, worker: &PeerId, error: AttemptError) {
        self.advance(now);
        if !self.is_assigned_to(id, worker) {
            return;
        }
        self.fail_attempt(now, id, worker, error);
        self.worker_failed(now, worker);
        self.pump(now);
    }

    /// One attempt of `id` on `worker` failed: counted as its phase says, then queued
    /// again or finished.
    fn fail_attempt(&mut self, now: Millis, id: TaskId, worker: &PeerId, error: AttemptError) {
        if let AttemptError::Remote(remote) = &error
            && remote.kind == p2p_proto::frame::RemoteErrorKind::TimeLimit
        {
            let limit = TimeLimit::Worker(remote.message.clone());
            self.time_out(id, worker, limit);
            return;
        }
        let Some(phase) = self.tasks.get(&id).map(|t| t.phase.clone()) else {
            return;
        };
        let sent_at = match &phase {
            Phase::Sent { at, .. } => Some(*at),
            Phase::Running { since, .. } => Some(*since),
            _ => None,
        };
        self.release(id, worker);
        if sent_at.is_some() {
            // The worker answered: the session's pace counts it, whatever the task did.
            self.note_result(now, worker, sent_at);
        }
        if matches!(phase, Phase::Accepted { .. })
            && self.sessions.get(worker).is_some_and(|s| !s.open)
        {
            // The session for this hand-over never opened: stop trying.
            self.sessions.remove(worker);
            self.actions.push_back(SchedulerAction::CloseSession {
                worker: worker.clone(),
            });
        }
        let Some(task) = self.tasks.get_mut(&id) else {
            return;
        };
        if !task.avoid.contains(worker) {
            task.avoid.push(worker.clone());
        }
        match phase {
            Phase::Running { .. } => {
                task.tried.push(worker.clone());
                if task.tried.len() > self.config.max_retries as usize {
                    let tried = task.tried.clone();
                    self.finish(id, Err(TaskError::Exhausted { tried, last: error }));
                    return;
                }
            }
            Phase::Accepted { .. } => {
                task.dispatch_failures += 1;
                if task.dispatch_failures > self.config.max_dispatch_failures {
                    let attempts = task.dispatch_failures;
                    self.finish(
                        id,
                        Err(TaskError::Undeliverable {
                            attempts,
                            last: error,
                        }),
                    );
                    return;
                }
            }
            // A task that waited on the session got an error before it started (e.g. the
            // worker could not read it): no try spent.
            Phase::Sent { .. } | Phase::Queued => {}
        }
        self.set_phase(id, Phase::Queued);
        self.queue.push_front(id);
        self.event(
            id,
            TaskEvent::Retried {
                worker: worker.clone(),
                error,
            },
        );
    }

    /// The task ran past a time limit: stopped on its worker, finished as timed out.
    fn time_out(&mut self, id: TaskId, worker: &PeerId, limit: TimeLimit) {
        self.take_back(id, worker);
        self.finish(
            id,
            Err(TaskError::TimedOut {
                worker: worker.clone(),
                limit,
            }),
        );
    }

    /// Counts a failure against `worker`; twice in a row sets it aside for a while.
    fn worker_failed(&mut self, now: Millis, worker: &PeerId) {
        let base = self.config.set_aside;
        let standing = self.standing.entry(worker.clone()).or_default();
        standing.failures += 1;
        if standing.failures >= 2 {
            let doublings = (standing.failures - 2).min(16);
            let pause = base.saturating_mul(1 << doublings).min(MAX_SET_ASIDE);
            self.aside
                .remove(&(standing.set_aside_until, worker.clone()));
            standing.set_aside_until = now + pause;
            self.aside.insert((now + pause, worker.clone()));
        }
    }

    /// A result (or an error from the worker) came back on the session: update the
    /// session's pace.
    fn note_result(&mut self, now: Millis, worker: &PeerId, sent_at: Option<Millis>) {
        let Some(session) = self.sessions.get_mut(worker) else {
            return;
        };
        let from = match (session.last_result, sent_at) {
            (Some(last), Some(sent)) => last.max(sent),
            (Some(last), None) => last,
            (None, Some(sent)) => sent,
            (None, None) => now,
        };
        let sample = now.saturating_sub(from) as f64;
        session.gap = Some(match session.gap {
            Some(gap) => gap + GAP_WEIGHT * (sample - gap),
            None => sample,
        });
        session.last_result = Some(now);
    }

    fn is_assigned_to(&self, id: TaskId, worker: &PeerId) -> bool {
        self.tasks
            .get(&id)
            .and_then(|t| t.phase.worker())
            .is_some_and(|w| w == worker)
    }

    /// The task leaves `worker`'s session, if it was on one.
    fn release(&mut self, id: TaskId, worker: &PeerId) {
        if let Some(session) = self.sessions.get_mut(worker) {
            session.in_flight.retain(|t| *t != id);
        }
        self.presume_starts(self.now, worker);
        self.touch_session(self.now, worker);
    }

    /// Keeps the session's idle clock in step with what is in flight.
    fn touch_session(&mut self, now: Millis, worker: &PeerId) {
        if let Some(session) = self.sessions.get_mut(worker) {
            session.idle_since = match (session.in_flight.is_empty(), session.idle_since) {
                (true, None) => Some(now),
                (true, since) => since,
                (false, _) => None,
            };
        }
    }

    /// Takes the task away from `worker` (it is told to stop; its late words are refused).
    fn take_back(&mut self, id: TaskId, worker: &PeerId) {
        self.release(id, worker);
        self.actions.push_back(SchedulerAction::Interrupt {
            task: id,
            worker: worker.clone(),
        });
    }

    /// Back to the front of the queue without spending anything.
    fn requeue(&mut self, id: TaskId, worker: &PeerId) {
        self.set_phase(id, Phase::Queued);
        self.queue.push_front(id);
        self.event(
            id,
            TaskEvent::Requeued {
                worker: worker.clone(),
            },
        );
    }

    /// Forgets every standing request, so the next pump posts them again.
    fn forget_requests(&mut self, now: Millis) {
        self.reposted = now;
        let standing: Vec<TaskId> = self.requested.iter().copied().collect();
        for id in standing {
            self.forget_request(id);
        }
    }

    fn forget_request(&mut self, id: TaskId) {
        if self.requested.remove(&id)
            && let Some(task) = self.tasks.get_mut(&id)
        {
            task.request = None;
            self.rearm(id);
        }
    }

    /// Takes the task's standing request off the board.
    fn withdraw_request(&mut self, now: Millis, id: TaskId) {
        if !self.requested.contains(&id) {
            return;
        }
        self.forget_request(id);
        if let Some(future) = self.tasks.get(&id).map(|t| t.future.clone()) {
            self.post(
                now,
                // No worker was chosen: `to=<none>`, as future.p2p 0.4.0 writes it.
                Message::Withdraw(Withdraw {
                    from: self.config.me.clone(),
                    to: None,
                    future,
                }),
            );
        }
    }

    fn finish(&mut self, id: TaskId, outcome: Result<PeerId, TaskError>) {
        // A request still standing for it would draw offers in vain.
        self.withdraw_request(self.now, id);
        if let Some(task) = self.tasks.remove(&id) {
            if let Some(at) = task.timer {
                self.timers.remove(&(at, id));
            }
            self.by_future.remove(&task.future);
            if let Some(worker) = task.phase.worker() {
                let worker = worker.clone();
                self.unassign(&worker);
                self.release(id, &worker);
            }
            self.actions
                .push_back(SchedulerAction::Finished { task: id, outcome });
        }
    }

    /// How many tasks a session may hold: the worker's slots plus a prefetch sized to the
    /// pace of its results. No prefetch while another live worker has no session with us:
    /// a task queued behind this worker's running ones could wait there for long while
    /// that worker may be idle; kept in the queue, its request brings that worker in.
    /// `others_unconnected`: a live worker other than this one, not set aside, has no
    /// open session with us.
    fn window(&self, worker: &PeerId, session: &SessionState, others_unconnected: bool) -> usize {
        if others_unconnected {
            return self.slots_of(worker);
        }
        let prefetch = match session.gap {
            Some(gap) if gap > 0.0 => (self.config.prefetch_horizon as f64 / gap) as usize,
            Some(_) => self.config.max_prefetch,
            None => 1,
        };
        self.slots_of(worker) + prefetch.clamp(1, self.config.max_prefetch.max(1))
    }

    /// The least loaded session that can take a task now (other than `except`).
    fn session_with_room(&self, now: Millis, except: Option<&PeerId>) -> Option<PeerId> {
        // The workers of the sessions considered have one open: none of them is counted.
        let others_unconnected = self.without_session(now, true) > 0;
        self.sessions
            .iter()
            .filter(|(w, s)| {
                s.open
                    && Some(*w) != except
                    && !self.is_set_aside(w, now)
                    && s.in_flight.len() < self.window(w, s, others_unconnected)
            })
            .min_by(|(a, s), (b, t)| {
                let load = |w: &PeerId, s: &SessionState| {
                    s.in_flight.len() as f64 / self.slots_of(w) as f64
                };
                load(a, s).total_cmp(&load(b, t))
            })
            .map(|(w, _)| w.clone())
    }

    /// Fills sessions from the queue, takes waiting tasks back for idle workers, puts up
    /// requests when other workers could help, and closes nothing (idle sessions close on
    /// their timer).
    fn pump(&mut self, now: Millis) {
        self.fill_sessions(now);
        self.steal(now);
        self.post_requests(now);
    }

    fn fill_sessions(&mut self, now: Millis) {
        // Tasks the chosen worker must not get while others are around wait for another.
        let mut held_back: Vec<TaskId> = Vec::new();
        while let Some(worker) = self.session_with_room(now, None) {
            let Some(id) = self.pop_queued() else {
                break;
            };
            let avoided = self
                .tasks
                .get(&id)
                .is_some_and(|t| t.avoid.contains(&worker) && self.others_around(t, &worker, now));
            if avoided {
                held_back.push(id);
            } else {
                self.send_on_session(now, id, worker);
            }
        }
        for id in held_back.into_iter().rev() {
            self.queue.push_front(id);
        }
    }

    fn send_on_session(&mut self, now: Millis, id: TaskId, worker: PeerId) {
        // A request standing for it is taken back so that no worker offers in vain.
        self.withdraw_request(now, id);
        let Some(future) = self.tasks.get(&id).map(|t| t.future.clone()) else {
            return;
        };
        if let Some(session) = self.sessions.get_mut(&worker) {
            session.in_flight.push(id);
        }
        self.touch_session(now, &worker);
        self.set_phase(
            id,
            Phase::Sent {
                worker: worker.clone(),
                at: now,
            },
        );
        self.event(
            id,
            TaskEvent::Accepted {
                worker: worker.clone(),
            },
        );
        self.actions.push_back(SchedulerAction::Dispatch(Dispatch {
            task: id,
            future,
            worker: worker.clone(),
            route: Route::Session,
            format: PayloadFormat::Native,
        }));
        self.presume_starts(now, &worker);
    }

    /// How long a task waiting on a session would still wait there (`None`: it runs, or
    /// will start at once).
    fn expected_wait(
        &self,
        now: Millis,
        worker: &PeerId,
        position: usize,
        at: Millis,
    ) -> Option<Millis> {
        let session = self.sessions.get(worker)?;
        let slots = self.slots_of(worker);
        if position < slots {
            // It should have started already; if it has not for a while, the worker is
            // busy with others (or stuck).
            let waited = now.saturating_sub(at);
            return (session.reports_starts && waited >= self.config.start_patience)
                .then_some(waited);
        }
        let ahead = (position + 1 - slots) as f64;
        Some(match session.gap {
            Some(gap) => (ahead * gap) as Millis,
            // No pace yet: assume it is worth moving.
            None => Millis::MAX,
        })
    }

    /// Waiting tasks that would wait long where they are, with where they wait.
    fn stealable(&self, now: Millis) -> Vec<(TaskId, PeerId)> {
        let mut found = Vec::new();
        for (worker, session) in &self.sessions {
            for (position, id) in session.in_flight.iter().enumerate() {
                let Some(Phase::Sent { at, .. }) = self.tasks.get(id).map(|t| &t.phase) else {
                    continue;
                };
                if self
                    .expected_wait(now, worker, position, *at)
                    .is_some_and(|wait| wait >= self.config.steal_after)
                {
                    found.push((*id, worker.clone()));
                }
            }
        }
        found
    }

    /// A session with a slot nothing is sent to (other than `except`).
    fn idle_session(&self, now: Millis, except: Option<&PeerId>) -> Option<PeerId> {
        self.sessions
            .iter()
            .find(|(w, s)| {
                s.open
                    && Some(*w) != except
                    && !self.is_set_aside(w, now)
                    && s.in_flight.len() < self.slots_of(w)
            })
            .map(|(w, _)| w.clone())
    }

    /// When the queue is empty and a session has an idle slot, takes over tasks waiting
    /// long on other workers.
    fn steal(&mut self, now: Millis) {
        self.next_steal = None;
        if self.has_queued() || self.idle_session(now, None).is_none() {
            return;
        }
        // The deepest waiting tasks first: they would wait longest.
        for (id, from) in self.stealable(now).into_iter().rev() {
            let Some(to) = self.idle_session(now, Some(&from)) else {
                continue;
            };
            self.take_back(id, &from);
            self.set_phase(id, Phase::Queued);
            self.event(id, TaskEvent::Requeued { worker: from });
            self.send_on_session(now, id, to);
        }
        // Tasks that should have started but have not may become worth moving soon.
        if self.idle_session(now, None).is_some() {
            let patience = self.config.start_patience;
            self.next_steal = self
                .sessions
                .values()
                .filter(|s| s.reports_starts)
                .flat_map(|s| s.in_flight.iter())
                .filter_map(|id| match self.tasks.get(id).map(|t| &t.phase) {
                    Some(Phase::Sent { at, .. }) => Some(at + patience),
                    _ => None,
                })
                .filter(|at| *at > now)
                .min();
        }
    }

    /// Whether a worker we could use is not in a session with us (or none is known yet):
    /// only then does a request on the board reach somebody new.
    fn others_to_find(&self, now: Millis) -> bool {
        self.workers.is_empty() || self.without_session(now, false) > 0
    }

    /// Requests for tasks no session takes: the queue's tail (the front goes to sessions
    /// first), then tasks waiting long on busy workers.
    fn post_requests(&mut self, now: Millis) {
        if !self.others_to_find(now) {
            return;
        }
        // One request brings one worker into a session, which then takes tasks without
        // the board: no more requests stand than workers to find (one while none is
        // known), so board traffic does not grow with the queue.
        let to_find = self.without_session(now, false).max(1);
        let room = self
            .config
            .max_open_requests
            .min(to_find)
            .saturating_sub(self.requested.len());
        if room == 0 {
            return;
        }
        let mut wanted: Vec<TaskId> = Vec::with_capacity(room);
        // Stale entries at the back go now; those in the middle when reached.
        while let Some(&id) = self.queue.back() {
            if self.is_queued(id) {
                break;
            }
            self.queue.pop_back();
        }
        for &id in self.queue.iter().rev() {
            if wanted.len() == room {
                break;
            }
            if self.is_queued(id) && !self.requested.contains(&id) && !wanted.contains(&id) {
                wanted.push(id);
            }
        }
        if wanted.len() < room && self.sessions.values().any(|s| s.open) {
            for (id, _) in self.stealable(now) {
                if wanted.len() == room {
                    break;
                }
                if !self.requested.contains(&id) {
                    wanted.push(id);
                }
            }
        }
        for id in wanted {
            let expires = now + self.config.request_ttl;
            let Some(task) = self.tasks.get_mut(&id) else {
                continue;
            };
            task.request = Some(expires);
            let (future, size) = (task.future.clone(), task.size);
            self.requested.insert(id);
            self.rearm(id);
            self.post(
                now,
                Message::Request(Request {
                    from: self.config.me.clone(),
                    expires: Expiry::from_unix_ms(expires),
                    future,
                    size,
                    protocols: Some(self.protocols.clone()),
                }),
            );
        }
    }

    fn post(&mut self, now: Millis, message: Message) {
        self.actions.push_back(SchedulerAction::Post(BoardLine::new(
            BoardTime::from_unix_ms(now),
            message,
        )));
    }

    fn event(&mut self, task: TaskId, event: TaskEvent) {
        self.actions
            .push_back(SchedulerAction::Event { task, event });
    }
}

#[cfg(test)]
mod tests;
