//! The client's dispatch logic as a deterministic state machine (sans-IO).
//!
//! ```text
//!  submit ──> Queued ──(request on the board, re-posted when it expires)
//!               │  offer (from a worker not tried before, while there are such)
//!               v
//!            Assigned ──(accept posted; the driver moves payload and result)
//!               │ task_succeeded            │ task_failed / no start in time / session lost
//!               v                           v
//!            Finished(Ok)          back to Queued, or Finished(Err) after max_retries
//! ```
//!
//! A task skips the board when a warm session has room (up to `session_window` tasks in
//! flight): it is dispatched over the session. When the queue is empty an idle session is
//! closed, so the worker returns to the board
//! and other clients are not starved. Every task is finished exactly once; a late result
//! from a worker the task was taken from is refused ([`SchedulerCore::task_succeeded`]
//! returns `false`).
//!
//! Time is Unix milliseconds from the caller; randomness (wormhole codes, sealing) comes
//! from a seeded CSPRNG the caller provides, so runs replay exactly in tests.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use p2p_proto::id::{FutureId, PeerId, WormholeCode};
use p2p_proto::message::{
    Accept, BoardLine, DeclineReason, Hello, Message, Request, Role, TransferUri, Withdraw,
};
use p2p_proto::protocols::{self, Protocols};
use p2p_proto::seal;
use p2p_proto::time::{BoardTime, Expiry, Millis};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::RngCore;

use crate::error::{AttemptError, TaskError};

/// A task's handle, unique within one scheduler.
pub type TaskId = u64;

/// How a client behaves on the board.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// This client's board identity.
    pub me: PeerId,
    /// How long a request stands before it is posted again (future.p2p: 10 s).
    pub request_ttl: Millis,
    /// How long an accepted worker has to start the transfer.
    pub accept_ttl: Millis,
    /// How often a task may go back to the queue after a worker failed it.
    pub max_retries: u32,
    /// Most requests standing on the board at once; the rest of the queue waits.
    pub max_open_requests: usize,
    /// Seal codes to workers that offer a key.
    pub sealed: bool,
    /// Keep warm sessions with workers that speak them.
    pub sessions: bool,
    /// How often the client says hello.
    pub hello_interval: Millis,
    /// Tasks in flight on one warm session: the worker runs them in order, and the next
    /// one is already there when the previous finishes, hiding the round trip.
    pub session_window: usize,
}

impl SchedulerConfig {
    /// Defaults: 10 s requests, 60 s to start, 2 retries, 8 open requests, sealed codes and
    /// sessions on.
    pub fn new(me: PeerId) -> Self {
        SchedulerConfig {
            me,
            request_ttl: 10_000,
            accept_ttl: 60_000,
            max_retries: 2,
            max_open_requests: 8,
            sealed: true,
            sessions: true,
            hello_interval: 30_000,
            session_window: 16,
        }
    }

    fn protocols(&self) -> Protocols {
        let mut tokens = vec![protocols::WORMHOLE.to_owned()];
        if self.sealed {
            tokens.push(protocols::SEALED.to_owned());
        }
        if self.sessions {
            tokens.push(protocols::SESSION.to_owned());
        }
        Protocols::try_from(tokens).unwrap_or_else(|_| Protocols::future_p2p())
    }
}

/// How the payload of a dispatched task travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// future.p2p file transfers: send the payload under `CODE-f`, receive the result under
    /// `CODE-r`.
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
    /// Its offer was accepted; the worker is to start the transfer.
    Accepted {
        /// The worker.
        worker: PeerId,
    },
    /// The payload reached the worker.
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
    /// Stop the task on the worker (session cancel frame, or abort the transfer).
    Interrupt {
        /// The task.
        task: TaskId,
        /// The worker running it.
        worker: PeerId,
    },
    /// Close the idle session with this worker: it returns to the board.
    CloseSession {
        /// The worker.
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

#[derive(Debug, Clone)]
enum Phase {
    /// Waiting for a worker; `request` is the expiry of its standing request, if posted.
    Queued { request: Option<Millis> },
    /// Given to `worker`; `start_by` is set until the driver reports the task running.
    Assigned {
        worker: PeerId,
        start_by: Option<Millis>,
    },
}

#[derive(Debug, Clone)]
struct Task {
    future: FutureId,
    size: u64,
    phase: Phase,
    tried: Vec<PeerId>,
}

/// A worker seen on the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerInfo {
    /// When its last hello lapses.
    pub expires: Millis,
    /// What it speaks.
    pub protocols: Protocols,
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
    /// Tasks with a timer: a standing request, a start deadline, or a file-route worker
    /// whose hellos are its heartbeat. Timers only look here, not at every task.
    watched: BTreeSet<TaskId>,
    by_future: HashMap<FutureId, TaskId>,
    workers: BTreeMap<PeerId, WorkerInfo>,
    /// Open sessions and the tasks in flight on each, oldest first.
    sessions: BTreeMap<PeerId, Vec<TaskId>>,
    next_hello: Millis,
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
            watched: BTreeSet::new(),
            by_future: HashMap::new(),
            workers: BTreeMap::new(),
            sessions: BTreeMap::new(),
            next_hello: now,
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

    /// Tasks not finished yet.
    pub fn pending(&self) -> usize {
        self.tasks.len()
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<SchedulerAction> {
        self.actions.pop_front()
    }

    /// When [`SchedulerCore::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let tasks = self.watched.iter().filter_map(|task| self.timer_of(*task));
        tasks.chain([self.next_hello]).min()
    }

    /// When `task` next needs attention, if it has a timer at all.
    fn timer_of(&self, task: TaskId) -> Option<Millis> {
        match &self.tasks.get(&task)?.phase {
            Phase::Queued { request } => *request,
            Phase::Assigned {
                start_by: Some(deadline),
                ..
            } => Some(*deadline),
            // A file-route task's worker is lost when its hello expires.
            Phase::Assigned { worker, .. } if !self.sessions.contains_key(worker) => {
                self.workers.get(worker).map(|w| w.expires)
            }
            Phase::Assigned { .. } => None,
        }
    }

    /// Moves `task` to `phase`, keeping the timer set in step.
    fn set_phase(&mut self, task: TaskId, phase: Phase) {
        if let Some(state) = self.tasks.get_mut(&task) {
            state.phase = phase;
            self.rewatch(task);
        }
    }

    /// Re-decides whether `task` has a timer (its phase or its worker's session changed).
    fn rewatch(&mut self, task: TaskId) {
        let timed = match self.tasks.get(&task).map(|t| &t.phase) {
            Some(Phase::Queued { request }) => request.is_some(),
            Some(Phase::Assigned { worker, start_by }) => {
                start_by.is_some() || !self.sessions.contains_key(worker)
            }
            None => false,
        };
        if timed {
            self.watched.insert(task);
        } else {
            self.watched.remove(&task);
        }
    }

    /// The next task really waiting in the queue (skipping entries of tasks that left it).
    fn pop_queued(&mut self) -> Option<TaskId> {
        while let Some(task) = self.queue.pop_front() {
            if matches!(
                self.tasks.get(&task).map(|t| &t.phase),
                Some(Phase::Queued { .. })
            ) {
                return Some(task);
            }
        }
        None
    }

    /// Whether a task is waiting in the queue (dropping stale entries at its front).
    fn has_queued(&mut self) -> bool {
        match self.pop_queued() {
            Some(task) => {
                self.queue.push_front(task);
                true
            }
            None => false,
        }
    }

    /// Adds a task whose payload has `size` bytes; the driver keeps the payload.
    pub fn submit(&mut self, now: Millis, future: FutureId, size: u64) -> TaskId {
        let task = self.next_task;
        self.next_task += 1;
        self.by_future.insert(future.clone(), task);
        self.tasks.insert(
            task,
            Task {
                future,
                size,
                phase: Phase::Queued { request: None },
                tried: Vec::new(),
            },
        );
        self.queue.push_back(task);
        self.event(task, TaskEvent::Queued);
        self.pump(now);
        task
    }

    /// Cancels a task: withdrawn from the board, interrupted on its worker.
    pub fn cancel(&mut self, now: Millis, task: TaskId) {
        let Some(state) = self.tasks.get(&task) else {
            return;
        };
        let (to, interrupt) = match &state.phase {
            Phase::Queued { request: Some(_) } => (self.config.me.clone(), None),
            Phase::Queued { request: None } => {
                self.finish(task, Err(TaskError::Cancelled));
                return;
            }
            Phase::Assigned { worker, .. } => (worker.clone(), Some(worker.clone())),
        };
        let future = state.future.clone();
        self.post(
            now,
            Message::Withdraw(Withdraw {
                from: self.config.me.clone(),
                to,
                future,
            }),
        );
        if let Some(worker) = interrupt {
            // The session stays up; the cancel frame frees the worker.
            self.free_session(&worker, task);
            self.actions
                .push_back(SchedulerAction::Interrupt { task, worker });
        }
        self.finish(task, Err(TaskError::Cancelled));
        self.pump(now);
    }

    /// A line from the board.
    pub fn handle_line(&mut self, now: Millis, line: &BoardLine) {
        match &line.message {
            Message::Hello(hello) if hello.role == Role::Worker => {
                self.workers.insert(
                    hello.from.clone(),
                    WorkerInfo {
                        expires: hello.expires.unix_ms(),
                        protocols: hello.protocols.clone().unwrap_or_default(),
                    },
                );
            }
            Message::Offer(offer) if offer.to == self.config.me => {
                let Some(&task) = self.by_future.get(&offer.future) else {
                    return;
                };
                let Some(state) = self.tasks.get(&task) else {
                    return;
                };
                let queued = matches!(state.phase, Phase::Queued { .. });
                // A worker that failed this task gets it again only when no live worker
                // is left that has not tried it: a transient failure on a one-worker
                // cluster must not strand the task (retries stay bounded).
                let untried_elsewhere = self.workers.iter().any(|(id, w)| {
                    w.expires > now && *id != offer.from && !state.tried.contains(id)
                });
                if !queued
                    || (state.tried.contains(&offer.from) && untried_elsewhere)
                    || offer.expires.unix_ms() < now
                    || self.sessions.contains_key(&offer.from)
                {
                    return;
                }
                self.event(
                    task,
                    TaskEvent::Offered {
                        worker: offer.from.clone(),
                    },
                );
                self.accept(now, task, offer);
            }
            Message::Decline(decline) if decline.to == self.config.me => {
                let Some(&task) = self.by_future.get(&decline.future) else {
                    return;
                };
                if self.is_assigned_to(task, &decline.from) {
                    // The worker gave up on a task it had taken (its executor failed, or
                    // it refused the payload after all): try elsewhere.
                    let error = AttemptError::Declined(decline.reason.clone());
                    self.task_failed(now, task, &decline.from, error);
                } else {
                    self.event(
                        task,
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

    fn accept(&mut self, now: Millis, task: TaskId, offer: &p2p_proto::message::Offer) {
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
        let route = if common.supports(protocols::SESSION) {
            Route::NewSession { code }
        } else {
            Route::Files { code }
        };
        let worker = offer.from.clone();
        let Some(future) = self.tasks.get(&task).map(|t| t.future.clone()) else {
            return;
        };
        self.set_phase(
            task,
            Phase::Assigned {
                worker: worker.clone(),
                start_by: Some(now + self.config.accept_ttl),
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
            task,
            TaskEvent::Accepted {
                worker: worker.clone(),
            },
        );
        self.actions.push_back(SchedulerAction::Dispatch(Dispatch {
            task,
            future,
            worker,
            route,
        }));
        self.pump(now);
    }

    /// A fresh code: 5-digit nameplate, 64 random bits of password.
    fn new_code(&mut self) -> WormholeCode {
        let nameplate = 1000 + self.rng.next_u32() % 99_000;
        let password = format!("{:016x}", self.rng.next_u64());
        // Digits and hex always form a valid code.
        WormholeCode::new(nameplate, &password).expect("generated codes are valid")
    }

    /// Time passed: hello, re-post expired requests, fail tasks whose worker did not start.
    pub fn handle_timeout(&mut self, now: Millis) {
        if now >= self.next_hello {
            self.next_hello = now + self.config.hello_interval;
            self.post(
                now,
                Message::Hello(Hello {
                    role: Role::Client,
                    from: self.config.me.clone(),
                    expires: Expiry::from_unix_ms(now + 2 * self.config.hello_interval),
                    protocols: Some(self.protocols.clone()),
                    slots: None,
                }),
            );
        }
        let due: Vec<TaskId> = self
            .watched
            .iter()
            .copied()
            .filter(|&task| self.timer_of(task).is_some_and(|at| at <= now))
            .collect();
        for task in due {
            match self.tasks.get(&task).map(|t| t.phase.clone()) {
                // The request expired unanswered: post it again (in pump).
                Some(Phase::Queued { .. }) => self.set_phase(task, Phase::Queued { request: None }),
                Some(Phase::Assigned {
                    worker,
                    start_by: Some(_),
                }) => self.task_failed(now, task, &worker, AttemptError::NotStarted),
                // A worker says nothing on the board while it runs a file-route task; its
                // hellos, repeated well within their expiry, are its heartbeat.
                Some(Phase::Assigned { worker, .. }) => {
                    self.task_failed(now, task, &worker, AttemptError::Vanished)
                }
                None => {
                    self.watched.remove(&task);
                }
            }
        }
        self.workers.retain(|_, w| w.expires > now);
        self.pump(now);
    }

    /// The payload reached the worker: the task runs.
    pub fn task_started(&mut self, task: TaskId, worker: &PeerId) {
        if let Some(Task {
            phase:
                Phase::Assigned {
                    worker: w,
                    start_by,
                },
            ..
        }) = self.tasks.get_mut(&task)
            && w == worker
        {
            *start_by = None;
            self.rewatch(task);
            let worker = worker.clone();
            self.event(task, TaskEvent::Running { worker });
        }
    }

    /// A warm session with `worker` is up, carrying `task`.
    pub fn session_opened(&mut self, now: Millis, worker: &PeerId, task: TaskId) {
        self.sessions.insert(worker.clone(), vec![task]);
        self.rewatch(task);
        self.pump(now);
    }

    /// The session with `worker` ended (`why`); the tasks on it go back to the queue.
    pub fn session_closed(&mut self, now: Millis, worker: &PeerId, why: AttemptError) {
        for task in self.sessions.remove(worker).unwrap_or_default() {
            self.task_failed(now, task, worker, why.clone());
        }
        self.pump(now);
    }

    /// `worker` returned the task's result. `false` means the task is no longer the
    /// worker's (finished, cancelled or re-queued): drop the result.
    pub fn task_succeeded(&mut self, now: Millis, task: TaskId, worker: &PeerId) -> bool {
        if !self.is_assigned_to(task, worker) {
            return false;
        }
        self.free_session(worker, task);
        self.finish(task, Ok(worker.clone()));
        self.pump(now);
        true
    }

    /// `worker` failed the task (transfer error, lost worker, worker-side error).
    pub fn task_failed(&mut self, now: Millis, task: TaskId, worker: &PeerId, error: AttemptError) {
        if !self.is_assigned_to(task, worker) {
            return;
        }
        self.free_session(worker, task);
        let Some(state) = self.tasks.get_mut(&task) else {
            return;
        };
        state.tried.push(worker.clone());
        if state.tried.len() > self.config.max_retries as usize {
            let tried = state.tried.clone();
            self.finish(task, Err(TaskError::Exhausted { tried, last: error }));
        } else {
            self.set_phase(task, Phase::Queued { request: None });
            self.queue.push_front(task);
            self.event(
                task,
                TaskEvent::Retried {
                    worker: worker.clone(),
                    error,
                },
            );
        }
        self.pump(now);
    }

    fn is_assigned_to(&self, task: TaskId, worker: &PeerId) -> bool {
        matches!(self.tasks.get(&task), Some(Task { phase: Phase::Assigned { worker: w, .. }, .. }) if w == worker)
    }

    fn free_session(&mut self, worker: &PeerId, task: TaskId) {
        if let Some(in_flight) = self.sessions.get_mut(worker) {
            in_flight.retain(|&t| t != task);
        }
    }

    fn finish(&mut self, task: TaskId, outcome: Result<PeerId, TaskError>) {
        if let Some(state) = self.tasks.remove(&task) {
            self.by_future.remove(&state.future);
            self.watched.remove(&task);
            self.actions
                .push_back(SchedulerAction::Finished { task, outcome });
        }
    }

    /// Fills open sessions up to their window from the queue, posts requests for the rest
    /// (up to the limit), and closes sessions nobody needs.
    fn pump(&mut self, now: Millis) {
        // Round-robin over sessions, one task at a time, so workers share the queue.
        loop {
            let open: Vec<PeerId> = self
                .sessions
                .iter()
                .filter(|(_, in_flight)| in_flight.len() < self.config.session_window)
                .map(|(w, _)| w.clone())
                .collect();
            if open.is_empty() || !self.has_queued() {
                break;
            }
            for worker in open {
                if let Some(task) = self.pop_queued() {
                    self.dispatch_on_session(now, task, worker);
                }
            }
        }
        if !self.has_queued() {
            let idle: Vec<PeerId> = self
                .sessions
                .iter()
                .filter(|(_, in_flight)| in_flight.is_empty())
                .map(|(w, _)| w.clone())
                .collect();
            for worker in idle {
                self.sessions.remove(&worker);
                self.actions
                    .push_back(SchedulerAction::CloseSession { worker });
            }
        }
        let open = self
            .watched
            .iter()
            .filter(|t| {
                matches!(
                    self.tasks.get(t).map(|t| &t.phase),
                    Some(Phase::Queued { request: Some(_) })
                )
            })
            .count();
        let to_post: Vec<TaskId> = self
            .queue
            .iter()
            .copied()
            .filter(|t| {
                matches!(
                    self.tasks.get(t).map(|t| &t.phase),
                    Some(Phase::Queued { request: None })
                )
            })
            .take(self.config.max_open_requests.saturating_sub(open))
            .collect();
        for task in to_post {
            let expires = now + self.config.request_ttl;
            // A task listed twice in the queue is posted once.
            let Some((future, size)) = self
                .tasks
                .get(&task)
                .filter(|t| matches!(t.phase, Phase::Queued { request: None }))
                .map(|t| (t.future.clone(), t.size))
            else {
                continue;
            };
            self.set_phase(
                task,
                Phase::Queued {
                    request: Some(expires),
                },
            );
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

    fn dispatch_on_session(&mut self, now: Millis, task: TaskId, worker: PeerId) {
        let Some(state) = self.tasks.get_mut(&task) else {
            return;
        };
        if let Phase::Queued { request: Some(_) } = state.phase {
            // Its request stands on the board: take it back so no worker offers in vain.
            let future = state.future.clone();
            self.post(
                now,
                Message::Withdraw(Withdraw {
                    from: self.config.me.clone(),
                    to: self.config.me.clone(),
                    future,
                }),
            );
        }
        let Some(future) = self.tasks.get(&task).map(|t| t.future.clone()) else {
            return;
        };
        self.sessions.entry(worker.clone()).or_default().push(task);
        self.set_phase(
            task,
            Phase::Assigned {
                worker: worker.clone(),
                start_by: None,
            },
        );
        self.event(
            task,
            TaskEvent::Running {
                worker: worker.clone(),
            },
        );
        self.actions.push_back(SchedulerAction::Dispatch(Dispatch {
            task,
            future,
            worker,
            route: Route::Session,
        }));
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
