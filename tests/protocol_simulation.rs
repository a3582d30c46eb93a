//! The scheduler and worker cores talking over a simulated board and data plane, with
//! simulated time.
//!
//! The board delivers every line to every other peer after a random delay, and may drop
//! or duplicate it. The data plane is simulated too: a file transfer happens when client
//! and worker hold the same code; a session opens the same way and then carries frames
//! both ways in order (tasks and cancels to the worker; starts, results and errors back),
//! until the client closes it, the network drops it, or its worker dies. Workers have one
//! to three slots, speak sessions or only future.p2p's files, report starts or not, and
//! some have a time limit; some tasks hang. Workers may die mid-task (the client learns it
//! after a detection delay, as it would from a broken session or a failed transfer); the
//! client cancels some tasks.
//!
//! Whatever happens: every task finishes at most once, and with a result only from a
//! worker that ran it to the end; a task that spent its tries had started on every worker
//! it blames (or, on a worker without Started frames, was lost on its way there when the
//! session broke: the client cannot tell that from a start); a timed-out task ran where it
//! timed out; no worker ever runs more tasks than its slots; and no task is lost (it is
//! finished or still pending in the scheduler). With a reliable board and one steady
//! worker, every task finishes, and hung tasks end as timed out.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use future_p2p::proto::frame::{Frame, Outcome};
use future_p2p::proto::id::{FutureId, PeerId, WormholeCode};
use future_p2p::proto::message::BoardLine;
use future_p2p::proto::seal::WorkerSecret;
use future_p2p::proto::time::Millis;
use future_p2p::scheduler::core::{Route, SchedulerAction, SchedulerConfig, SchedulerCore, TaskId};
use future_p2p::scheduler::{AttemptError, TaskError};
use future_p2p::transport::wormhole::SessionError;
use future_p2p::worker::core::{
    Delivery, Route as WorkerRoute, SessionId, TaskRef, WorkerAction, WorkerConfig, WorkerCore,
};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

const T0: Millis = 1_760_000_000_000;
/// How long after a worker's death (or a dropped session) the client notices.
const DETECTION: Millis = 5_000;
/// One way on an open session (constant, so frames arrive in order).
const SESSION_LATENCY: Millis = 3;
/// A hung task runs this long unless stopped.
const HUNG: Millis = 1 << 40;
/// How long a worker waits for a session or a payload that never comes.
const CONNECT_TIMEOUT: Millis = 120_000;
const MAX_RETRIES: u32 = 2;
/// The client's own limit on running time.
const CLIENT_TIME_LIMIT: Millis = 90_000;

#[derive(Debug, Clone, Copy)]
struct Faults {
    drop_per_mille: u32,
    dup_per_mille: u32,
    death_per_mille: u32,
    cancel_per_mille: u32,
    hung_per_mille: u32,
    session_drop_per_mille: u32,
}

/// A frame from the client to worker `w` on its session.
#[derive(Debug)]
enum ToWorker {
    Task(FutureId),
    Cancel(FutureId),
    Close,
}

#[derive(Debug)]
enum Event {
    /// A board line reaches a peer (0 = client, n = worker n-1).
    Deliver(usize, BoardLine),
    /// A frame reaches worker `w` on the session of this epoch.
    ToWorker(usize, u64, ToWorker),
    /// A frame from worker `w` reaches the client on the session of this epoch.
    ToClient(usize, u64, Frame),
    /// Files route: the payload of a task reaches worker `w`.
    PayloadIn(usize, TaskRef),
    /// Files route: the result of a task reaches the client.
    ResultIn(usize, TaskId),
    /// A run on worker `w` ends (if it is still that run).
    RunDone(usize, TaskRef, u64),
    /// The client learns that worker `w` died while running file-route task `task`.
    FilesLost(usize, TaskId),
    /// The client learns that its session with worker `w` (of this epoch) is gone.
    SessionLost(usize, u64),
    /// Worker `w` gives up waiting for a session or payload that never came.
    ConnectTimeout(usize, Option<SessionId>, Option<TaskRef>),
    /// The client cancels `task`.
    Cancel(TaskId),
}

/// An open session between the client and worker `w`.
#[derive(Debug, Clone, Copy)]
struct Link {
    session: SessionId,
    epoch: u64,
    /// The client closed (or lost) it: frames to the client are dropped.
    client_gone: bool,
}

struct Sim {
    rng: ChaCha20Rng,
    faults: Faults,
    now: Millis,
    seq: u64,
    queue: BinaryHeap<Reverse<(Millis, u64)>>,
    events: HashMap<u64, Event>,
    client: SchedulerCore,
    client_id: PeerId,
    workers: Vec<Option<WorkerCore>>,
    slots: Vec<usize>,
    reports_starts: Vec<bool>,
    ids: Vec<PeerId>,
    /// Hand-overs each side holds for (worker, future): they meet when the codes agree.
    client_codes: HashMap<(usize, FutureId), (TaskId, WormholeCode, bool)>,
    worker_codes: HashMap<(usize, FutureId), (WormholeCode, WorkerRoute)>,
    links: HashMap<usize, Link>,
    epochs: u64,
    /// Runs in progress: (worker, task) -> run number.
    runs: HashMap<(usize, TaskRef), u64>,
    next_run: u64,
    /// Files-route tasks running on each worker, as the client knows them.
    files_running: HashMap<usize, Vec<TaskId>>,
    /// Which worker started, and which ran to the end, which task.
    started: HashSet<(usize, FutureId)>,
    completed: HashSet<(usize, FutureId)>,
    /// Tasks sent on a session to a worker without Started frames, whether or not they
    /// reached it or ran. The client takes a task sent within such a worker's slots as
    /// started, and nothing it can see tells it otherwise.
    lost_unreported: HashSet<(usize, FutureId)>,
    hung: HashSet<FutureId>,
    futures: HashMap<TaskId, FutureId>,
    by_future: HashMap<FutureId, TaskId>,
    /// The worker whose result the scheduler took for each task.
    delivered_by: HashMap<TaskId, PeerId>,
    finished: BTreeMap<TaskId, Vec<Result<PeerId, TaskError>>>,
    /// Workers below this index never die.
    immortal: usize,
}

impl Sim {
    fn new(seed: u64, workers: usize, immortal: usize, faults: Faults) -> Self {
        let client_id: PeerId = "alice@desktop:1".parse().unwrap();
        let mut config = SchedulerConfig::new(client_id.clone());
        config.max_open_requests = 4;
        config.max_retries = MAX_RETRIES;
        config.time_limit = Some(CLIENT_TIME_LIMIT);
        let client = SchedulerCore::new(config, ChaCha20Rng::seed_from_u64(seed), T0);
        let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x5eed);
        let ids: Vec<PeerId> = (0..workers)
            .map(|n| format!("w{n}@host{n}:{}", 100 + n).parse().unwrap())
            .collect();
        let mut slots = Vec::new();
        let mut reports_starts = Vec::new();
        let mut cores = Vec::new();
        for (n, id) in ids.iter().enumerate() {
            let mut config = WorkerConfig::new(id.clone());
            config.sessions = n % 3 != 2;
            config.secret = (n % 4 != 3).then(|| WorkerSecret::from_bytes([n as u8 + 1; 32]));
            config.slots = 1 + (rng.next_u32() % 3) as usize;
            config.time_limit = (rng.next_u32() % 2 == 0).then_some(20_000);
            config.offer_jitter = 20;
            config.seed = seed.wrapping_add(n as u64);
            slots.push(config.slots);
            // Some session workers behave as builds without Started frames.
            reports_starts.push(n % 4 != 1);
            cores.push(Some(WorkerCore::new(config, T0)));
        }
        Sim {
            rng,
            faults,
            now: T0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            client,
            client_id,
            workers: cores,
            slots,
            reports_starts,
            ids,
            client_codes: HashMap::new(),
            worker_codes: HashMap::new(),
            links: HashMap::new(),
            epochs: 0,
            runs: HashMap::new(),
            next_run: 0,
            files_running: HashMap::new(),
            started: HashSet::new(),
            completed: HashSet::new(),
            lost_unreported: HashSet::new(),
            hung: HashSet::new(),
            futures: HashMap::new(),
            by_future: HashMap::new(),
            delivered_by: HashMap::new(),
            finished: BTreeMap::new(),
            immortal,
        }
    }

    fn roll(&mut self, per_mille: u32) -> bool {
        self.rng.next_u32() % 1000 < per_mille
    }

    fn at(&mut self, delay: Millis, event: Event) {
        self.seq += 1;
        self.events.insert(self.seq, event);
        self.queue.push(Reverse((self.now + delay, self.seq)));
    }

    fn broadcast(&mut self, from: usize, line: BoardLine) {
        for to in 0..=self.workers.len() {
            if to == from || self.roll(self.faults.drop_per_mille) {
                continue;
            }
            let delay = Millis::from(self.rng.next_u32() % 200);
            self.at(delay, Event::Deliver(to, line.clone()));
            if self.roll(self.faults.dup_per_mille) {
                self.at(delay + 50, Event::Deliver(to, line.clone()));
            }
        }
    }

    fn worker_index(&self, id: &PeerId) -> usize {
        self.ids.iter().position(|w| w == id).unwrap()
    }

    fn task_ref(&self, future: &FutureId) -> TaskRef {
        TaskRef {
            client: self.client_id.clone(),
            future: future.clone(),
        }
    }

    /// The worker `w` dies: its sessions and runs are gone; the client finds out later.
    fn kill(&mut self, w: usize) {
        self.workers[w] = None;
        self.runs.retain(|(worker, _), _| *worker != w);
        if let Some(link) = self.links.remove(&w)
            && !link.client_gone
        {
            self.at(DETECTION, Event::SessionLost(w, link.epoch));
        }
        for task in self.files_running.remove(&w).unwrap_or_default() {
            self.at(DETECTION, Event::FilesLost(w, task));
        }
    }

    /// A hand-over both sides agree on happens.
    fn try_meet(&mut self, w: usize, future: &FutureId) {
        let key = (w, future.clone());
        let (Some((task, client_code, session)), Some((worker_code, route))) = (
            self.client_codes.get(&key).cloned(),
            self.worker_codes.get(&key).cloned(),
        ) else {
            return;
        };
        if client_code != worker_code || self.workers[w].is_none() {
            return;
        }
        self.client_codes.remove(&key);
        self.worker_codes.remove(&key);
        match (route, session) {
            (WorkerRoute::Session(sid), true) => {
                self.epochs += 1;
                let epoch = self.epochs;
                self.links.insert(
                    w,
                    Link {
                        session: sid,
                        epoch,
                        client_gone: false,
                    },
                );
                let starts = self.reports_starts[w];
                if let Some(core) = self.workers[w].as_mut() {
                    core.session_opened(self.now, sid, starts);
                }
                let worker = self.ids[w].clone();
                if self.client.session_opened(self.now, &worker, task, starts) {
                    // The first task travels with the session's hello.
                    self.at(
                        SESSION_LATENCY,
                        Event::ToWorker(w, epoch, ToWorker::Task(future.clone())),
                    );
                } else {
                    // The client gave up on this session meanwhile: it closes it.
                    self.at(SESSION_LATENCY, Event::ToWorker(w, epoch, ToWorker::Close));
                }
            }
            (WorkerRoute::Files, false) => {
                let delay = 10 + Millis::from(self.rng.next_u32() % 100);
                self.at(delay, Event::PayloadIn(w, self.task_ref(future)));
            }
            // One side speaks sessions and the other not: never happens between these cores.
            _ => panic!("route mismatch for {future} on worker {w}"),
        }
    }

    fn drain(&mut self) {
        loop {
            let mut progressed = false;
            while let Some(action) = self.client.poll_action() {
                progressed = true;
                self.on_client(action);
            }
            for w in 0..self.workers.len() {
                while let Some(action) = self.workers[w].as_mut().and_then(WorkerCore::poll_action)
                {
                    progressed = true;
                    self.on_worker(w, action);
                }
            }
            if !progressed {
                return;
            }
        }
    }

    fn on_client(&mut self, action: SchedulerAction) {
        match action {
            SchedulerAction::Post(line) => self.broadcast(0, line),
            SchedulerAction::Dispatch(dispatch) => {
                let w = self.worker_index(&dispatch.worker);
                match dispatch.route {
                    Route::Files { code } => {
                        self.client_codes
                            .insert((w, dispatch.future.clone()), (dispatch.task, code, false));
                        self.try_meet(w, &dispatch.future);
                    }
                    Route::NewSession { code } => {
                        self.client_codes
                            .insert((w, dispatch.future.clone()), (dispatch.task, code, true));
                        self.try_meet(w, &dispatch.future);
                    }
                    Route::Session => {
                        if !self.reports_starts[w] {
                            // Presumed started by the client, even if it never leaves.
                            self.lost_unreported.insert((w, dispatch.future.clone()));
                        }
                        if let Some(link) = self.links.get(&w).copied()
                            && !link.client_gone
                        {
                            let frame = ToWorker::Task(dispatch.future.clone());
                            self.at(SESSION_LATENCY, Event::ToWorker(w, link.epoch, frame));
                        }
                    }
                }
            }
            SchedulerAction::Interrupt { task, worker } => {
                let w = self.worker_index(&worker);
                if let (Some(link), Some(future)) = (
                    self.links.get(&w).copied(),
                    self.futures.get(&task).cloned(),
                ) && !link.client_gone
                {
                    self.at(
                        SESSION_LATENCY,
                        Event::ToWorker(w, link.epoch, ToWorker::Cancel(future)),
                    );
                }
                if let Some(running) = self.files_running.get_mut(&w) {
                    running.retain(|t| *t != task);
                }
            }
            SchedulerAction::CloseSession { worker } => {
                let w = self.worker_index(&worker);
                if let Some(link) = self.links.get_mut(&w)
                    && !link.client_gone
                {
                    link.client_gone = true;
                    let epoch = link.epoch;
                    self.at(SESSION_LATENCY, Event::ToWorker(w, epoch, ToWorker::Close));
                }
            }
            SchedulerAction::Event { .. } => {}
            SchedulerAction::Finished { task, outcome } => {
                self.finished.entry(task).or_default().push(outcome);
            }
            // Every peer here is honest: its key never changes.
            SchedulerAction::KeyChanged { worker } => {
                panic!("the client took honest worker {worker} for an impostor")
            }
        }
    }

    fn on_worker(&mut self, w: usize, action: WorkerAction) {
        match action {
            WorkerAction::Post(line) => self.broadcast(w + 1, line),
            WorkerAction::UnsealedAccept { task } => {
                panic!("worker {w} took the honest client's accept of {task:?} for a downgrade")
            }
            WorkerAction::Open(assignment) => {
                let pending = match assignment.route {
                    WorkerRoute::Session(sid) => (Some(sid), None),
                    WorkerRoute::Files => (None, Some(self.task_ref(&assignment.future))),
                };
                self.at(
                    CONNECT_TIMEOUT,
                    Event::ConnectTimeout(w, pending.0, pending.1),
                );
                self.worker_codes.insert(
                    (w, assignment.future.clone()),
                    (assignment.code, assignment.route),
                );
                self.try_meet(w, &assignment.future);
            }
            WorkerAction::Start { task, session } => {
                let active = self.runs.keys().filter(|(worker, _)| *worker == w).count();
                assert!(
                    active < self.slots[w],
                    "worker {w} runs more than its slots"
                );
                self.started.insert((w, task.future.clone()));
                if session.is_none()
                    && let Some(&id) = self.by_future.get(&task.future)
                {
                    self.files_running.entry(w).or_default().push(id);
                }
                self.next_run += 1;
                let run = self.next_run;
                self.runs.insert((w, task.clone()), run);
                let duration = if self.hung.contains(&task.future) {
                    HUNG
                } else {
                    100 + Millis::from(self.rng.next_u32() % 3_000)
                };
                if w >= self.immortal && self.roll(self.faults.death_per_mille) {
                    let dies_after = Millis::from(self.rng.next_u32() % 2_000);
                    self.at(dies_after, Event::RunDone(w, task, 0));
                } else {
                    self.at(duration, Event::RunDone(w, task, run));
                }
            }
            WorkerAction::Send { session, frame } => self.worker_frame(w, session, frame),
            WorkerAction::Interrupt { task } => {
                self.runs.remove(&(w, task));
            }
            WorkerAction::Stop => {}
        }
    }

    fn worker_frame(&mut self, w: usize, session: SessionId, frame: Frame) {
        if let Some(link) = self.links.get(&w).copied()
            && link.session == session
            && !link.client_gone
        {
            self.at(SESSION_LATENCY, Event::ToClient(w, link.epoch, frame));
        }
    }

    fn link_live(&self, w: usize, epoch: u64) -> Option<Link> {
        self.links.get(&w).copied().filter(|l| l.epoch == epoch)
    }

    fn step(&mut self) -> bool {
        let timers = std::iter::once(self.client.poll_timeout())
            .chain(
                self.workers
                    .iter()
                    .map(|w| w.as_ref().and_then(WorkerCore::poll_timeout)),
            )
            .flatten()
            .min();
        let next_event = self.queue.peek().map(|Reverse((t, _))| *t);
        let Some(next) = [timers, next_event].into_iter().flatten().min() else {
            return false;
        };
        assert!(
            next >= self.now || next_event == Some(next),
            "a timer in the past"
        );
        self.now = self.now.max(next);
        if next_event == Some(next) {
            let Some(Reverse((_, seq))) = self.queue.pop() else {
                return false;
            };
            let event = self.events.remove(&seq).unwrap();
            self.handle(event);
        } else {
            self.client.handle_timeout(self.now);
            for core in self.workers.iter_mut().flatten() {
                core.handle_timeout(self.now);
            }
        }
        self.drain();
        true
    }

    fn handle(&mut self, event: Event) {
        let now = self.now;
        match event {
            Event::Deliver(0, line) => self.client.handle_line(now, &line),
            Event::Deliver(to, line) => {
                if let Some(core) = self.workers[to - 1].as_mut() {
                    core.handle_line(now, &line);
                }
            }
            Event::ToWorker(w, epoch, frame) => {
                // Sent to a worker that does not report starts: the client may presume it
                // started, whatever becomes of it (lost on the way, refused, or overtaken
                // by the worker's death), and charge a try.
                if let ToWorker::Task(future) = &frame
                    && !self.reports_starts[w]
                {
                    self.lost_unreported.insert((w, future.clone()));
                }
                let (Some(link), Some(core)) = (self.link_live(w, epoch), self.workers[w].as_mut())
                else {
                    return;
                };
                match frame {
                    ToWorker::Task(future) => {
                        core.session_task(now, link.session, future);
                    }
                    ToWorker::Cancel(future) => core.session_cancel(now, link.session, future),
                    ToWorker::Close => {
                        core.session_closed(now, link.session);
                        self.links.remove(&w);
                    }
                }
                // A network drop of the session, noticed by both sides.
                if self.roll(self.faults.session_drop_per_mille)
                    && let Some(link) = self.links.remove(&w)
                {
                    if let Some(core) = self.workers[w].as_mut() {
                        core.session_closed(now, link.session);
                    }
                    if !link.client_gone {
                        self.at(DETECTION, Event::SessionLost(w, link.epoch));
                    }
                }
            }
            Event::ToClient(w, epoch, frame) => {
                if self.link_live(w, epoch).is_none_or(|l| l.client_gone) {
                    return;
                }
                let worker = self.ids[w].clone();
                match frame {
                    Frame::Started(started) => {
                        if let Some(&task) = self.by_future.get(&started.future) {
                            self.client.task_started(now, task, &worker);
                        }
                    }
                    Frame::Result(result) => {
                        let Some(&task) = self.by_future.get(&result.future) else {
                            return;
                        };
                        match result.outcome {
                            Outcome::Value(_) => self.deliver(task, w),
                            Outcome::Error(error) => {
                                self.client.task_failed(
                                    now,
                                    task,
                                    &worker,
                                    AttemptError::Remote(error),
                                );
                            }
                        }
                    }
                    other => panic!("unexpected frame to the client: {other:?}"),
                }
            }
            Event::PayloadIn(w, task) => {
                let Some(core) = self.workers[w].as_mut() else {
                    return;
                };
                if core.payload_received(now, &task)
                    && let Some(&id) = self.by_future.get(&task.future)
                {
                    let worker = self.ids[w].clone();
                    self.client.task_started(now, id, &worker);
                }
            }
            Event::ResultIn(w, task) => self.deliver(task, w),
            Event::RunDone(w, task, run) => {
                if run == 0 {
                    // The worker dies mid-task.
                    if self.workers[w].is_some() {
                        self.kill(w);
                    }
                    return;
                }
                if self.runs.get(&(w, task.clone())) != Some(&run) {
                    return;
                }
                self.runs.remove(&(w, task.clone()));
                let Some(core) = self.workers[w].as_mut() else {
                    return;
                };
                self.completed.insert((w, task.future.clone()));
                match core.task_ended(now, &task, Ok(())) {
                    Delivery::Session(session) => {
                        let frame = Frame::Result(future_p2p::proto::frame::TaskResult {
                            future: task.future.clone(),
                            outcome: Outcome::Value(bytes::Bytes::from_static(b"r")),
                        });
                        self.worker_frame(w, session, frame);
                    }
                    Delivery::Files => {
                        if let Some(&id) = self.by_future.get(&task.future) {
                            if let Some(running) = self.files_running.get_mut(&w) {
                                running.retain(|t| *t != id);
                            }
                            let delay = 10 + Millis::from(self.rng.next_u32() % 100);
                            self.at(delay, Event::ResultIn(w, id));
                        }
                    }
                    Delivery::Drop => {}
                }
            }
            Event::FilesLost(w, task) => {
                let worker = self.ids[w].clone();
                self.client
                    .task_failed(now, task, &worker, AttemptError::Vanished);
            }
            Event::SessionLost(w, epoch) => {
                // Only the session that was lost, not a newer one with the same worker.
                if self.links.get(&w).is_some_and(|l| l.epoch > epoch) {
                    return;
                }
                let worker = self.ids[w].clone();
                self.client.session_closed(
                    now,
                    &worker,
                    AttemptError::Session(SessionError::Closed),
                );
            }
            Event::ConnectTimeout(w, session, task) => {
                let Some(core) = self.workers[w].as_mut() else {
                    return;
                };
                if let Some(sid) = session
                    && self.links.get(&w).is_none_or(|l| l.session != sid)
                {
                    core.session_closed(now, sid);
                }
                if let Some(task) = task {
                    core.transfer_failed(
                        now,
                        &task,
                        future_p2p::proto::message::DeclineReason::Failed,
                    );
                }
            }
            Event::Cancel(task) => self.client.cancel(now, task),
        }
    }

    /// A result from worker `w` reaches the client.
    fn deliver(&mut self, task: TaskId, w: usize) {
        let worker = self.ids[w].clone();
        if self.client.task_succeeded(self.now, task, &worker) {
            assert!(
                self.delivered_by.insert(task, worker).is_none(),
                "task {task} took two results"
            );
        }
    }
}

fn run(
    seed: u64,
    workers: usize,
    immortal: usize,
    tasks: u32,
    faults: Faults,
    horizon: Millis,
) -> Sim {
    let mut sim = Sim::new(seed, workers, immortal, faults);
    sim.drain();
    for n in 0..tasks {
        let future: FutureId = format!("f-{n}").parse().unwrap();
        if sim.roll(faults.hung_per_mille) {
            sim.hung.insert(future.clone());
        }
        let task = sim.client.submit(sim.now, future.clone(), 10);
        sim.futures.insert(task, future.clone());
        sim.by_future.insert(future, task);
        if sim.roll(faults.cancel_per_mille) {
            let delay = Millis::from(sim.rng.next_u32() % 10_000);
            sim.at(delay, Event::Cancel(task));
        }
        // Tasks come in bursts and one by one.
        if n % 7 == 3 {
            sim.drain();
            let pause = Millis::from(sim.rng.next_u32() % 2_000);
            let until = sim.now + pause;
            while sim.now < until && sim.step() {}
        }
    }
    sim.drain();
    while sim.now < T0 + horizon && sim.step() {}
    sim
}

fn check_invariants(sim: &Sim) -> Result<(), TestCaseError> {
    for (task, outcomes) in &sim.finished {
        prop_assert_eq!(
            outcomes.len(),
            1,
            "task {} finished {} times: {:?}",
            task,
            outcomes.len(),
            outcomes
        );
        let future = &sim.futures[task];
        match &outcomes[0] {
            Ok(worker) => {
                let w = sim.worker_index(worker);
                prop_assert_eq!(sim.delivered_by.get(task), Some(worker));
                prop_assert!(
                    sim.completed.contains(&(w, future.clone())),
                    "task {task} credited to {worker} which never completed it"
                );
            }
            Err(TaskError::Exhausted { tried, .. }) => {
                prop_assert_eq!(tried.len(), MAX_RETRIES as usize + 1);
                for worker in tried {
                    let w = sim.worker_index(worker);
                    let key = (w, future.clone());
                    prop_assert!(
                        sim.started.contains(&key) || sim.lost_unreported.contains(&key),
                        "task {task} spent a try on {worker}, where it never started"
                    );
                }
            }
            Err(TaskError::TimedOut { worker, .. }) => {
                let w = sim.worker_index(worker);
                prop_assert!(sim.started.contains(&(w, future.clone())));
            }
            Err(TaskError::Cancelled | TaskError::Undeliverable { .. }) => {}
        }
    }
    let lost = sim.futures.len() - sim.finished.len() - sim.client.pending();
    prop_assert_eq!(lost, 0, "tasks lost");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn no_task_is_lost_or_finished_twice(
        seed: u64,
        workers in 1usize..6,
        tasks in 1u32..40,
        drop in 0u32..150,
        dup in 0u32..300,
        death in 0u32..300,
        cancel in 0u32..200,
        hung in 0u32..100,
        session_drop in 0u32..30,
    ) {
        let faults = Faults {
            drop_per_mille: drop,
            dup_per_mille: dup,
            death_per_mille: death,
            cancel_per_mille: cancel,
            hung_per_mille: hung,
            session_drop_per_mille: session_drop,
        };
        let sim = run(seed, workers, 0, tasks, faults, 30 * 60_000);
        check_invariants(&sim)?;
    }

    #[test]
    fn with_a_reliable_board_and_one_steady_worker_every_task_finishes(
        seed: u64,
        workers in 1usize..6,
        tasks in 1u32..40,
        dup in 0u32..300,
        death in 0u32..300,
        hung in 0u32..100,
        session_drop in 0u32..30,
    ) {
        let faults = Faults {
            drop_per_mille: 0,
            dup_per_mille: dup,
            death_per_mille: death,
            cancel_per_mille: 0,
            hung_per_mille: hung,
            session_drop_per_mille: session_drop,
        };
        let sim = run(seed, workers, 1, tasks, faults, 3 * 3_600_000);
        if std::env::var_os("SIM_STATS").is_some() {
            let ok = sim.finished.values().filter(|o| o[0].is_ok()).count();
            eprintln!("workers {workers} tasks {tasks}: sessions {} started {} completed {} ok {ok} finished {} hung {}", sim.epochs, sim.started.len(), sim.completed.len(), sim.finished.len(), sim.hung.len());
        }
        check_invariants(&sim)?;
        prop_assert_eq!(sim.client.pending(), 0, "unfinished tasks");
        for (task, outcomes) in &sim.finished {
            match &outcomes[0] {
                Ok(_) => prop_assert!(!sim.hung.contains(&sim.futures[task])),
                // Hung tasks end at a time limit; others fail only by meeting dying
                // workers more often than the retry budget allows.
                Err(TaskError::TimedOut { .. }) => prop_assert!(sim.hung.contains(&sim.futures[task])),
                Err(TaskError::Exhausted { .. }) => prop_assert!(death > 0 || session_drop > 0),
                Err(err) => prop_assert!(false, "{}", err),
            }
        }
    }
}

#[test]
fn work_spreads_over_every_slot() {
    // 4 workers of one slot each, all steady; 16 tasks of about the same length queued at
    // once: each worker runs about four of them.
    let faults = Faults {
        drop_per_mille: 0,
        dup_per_mille: 0,
        death_per_mille: 0,
        cancel_per_mille: 0,
        hung_per_mille: 0,
        session_drop_per_mille: 0,
    };
    let mut sim = Sim::new(7, 4, 4, faults);
    for (n, core) in sim.workers.iter_mut().enumerate() {
        let mut config = core.as_ref().unwrap().config().clone();
        config.slots = 1;
        config.sessions = true;
        config.time_limit = None;
        sim.slots[n] = 1;
        sim.reports_starts[n] = true;
        *core = Some(WorkerCore::new(config, T0));
    }
    sim.drain();
    // Everyone is on the board before the work comes.
    while sim.now < T0 + 1_000 && sim.step() {}
    for n in 0..16 {
        let future: FutureId = format!("f-{n}").parse().unwrap();
        let task = sim.client.submit(sim.now, future.clone(), 10);
        sim.futures.insert(task, future.clone());
        sim.by_future.insert(future, task);
    }
    sim.drain();
    while sim.client.pending() > 0 && sim.step() {}
    let mut per_worker = vec![0; 4];
    for (w, _) in &sim.completed {
        per_worker[*w] += 1;
    }
    assert!(
        per_worker.iter().all(|n| (2..=6).contains(n)),
        "tasks per worker: {per_worker:?}"
    );
    check_invariants(&sim).unwrap();
}

#[test]
fn the_tasks_behind_a_hung_one_move_to_other_workers() {
    let faults = Faults {
        drop_per_mille: 0,
        dup_per_mille: 0,
        death_per_mille: 0,
        cancel_per_mille: 0,
        hung_per_mille: 0,
        session_drop_per_mille: 0,
    };
    let mut sim = Sim::new(11, 2, 2, faults);
    for (n, core) in sim.workers.iter_mut().enumerate() {
        let mut config = core.as_ref().unwrap().config().clone();
        config.slots = 1;
        config.sessions = true;
        config.time_limit = None;
        sim.slots[n] = 1;
        sim.reports_starts[n] = true;
        *core = Some(WorkerCore::new(config, T0));
    }
    sim.drain();
    while sim.now < T0 + 1_000 && sim.step() {}
    let hung: FutureId = "f-0".parse().unwrap();
    sim.hung.insert(hung.clone());
    for n in 0..6 {
        let future: FutureId = format!("f-{n}").parse().unwrap();
        let task = sim.client.submit(sim.now, future.clone(), 10);
        sim.futures.insert(task, future.clone());
        sim.by_future.insert(future, task);
    }
    sim.drain();
    // The five others finish long before the client's time limit ends the hung one.
    while sim.finished.len() < 5 && sim.now < T0 + CLIENT_TIME_LIMIT / 2 && sim.step() {}
    assert_eq!(sim.finished.len(), 5, "{:?}", sim.finished);
    assert!(sim.finished.values().all(|o| o[0].is_ok()));
    while sim.client.pending() > 0 && sim.step() {}
    let hung_task = sim.by_future[&hung];
    assert!(matches!(
        sim.finished[&hung_task][0],
        Err(TaskError::TimedOut { .. })
    ));
    check_invariants(&sim).unwrap();
}
