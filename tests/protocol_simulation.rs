//! The scheduler and worker cores talking over a simulated board, with simulated time.
//!
//! The board delivers every line to every other peer after a random delay, and may drop
//! or duplicate it; transfers succeed only when client and worker hold the same code;
//! workers may die mid-task (the client learns it after a detection delay, as it would
//! from a failed transfer or stopped heartbeats); the client cancels some tasks. Whatever
//! happens, no task is finished twice, no result comes from a worker that did not run the
//! task, and no task is lost: it is finished or still pending in the scheduler.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use future_p2p::proto::id::{FutureId, PeerId, WormholeCode};
use future_p2p::proto::message::BoardLine;
use future_p2p::proto::seal::WorkerSecret;
use future_p2p::proto::time::Millis;
use future_p2p::scheduler::core::{Route, SchedulerAction, SchedulerConfig, SchedulerCore, TaskId};
use future_p2p::scheduler::{AttemptError, TaskError};
use future_p2p::worker::core::{WorkerAction, WorkerConfig, WorkerCore};
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

const T0: Millis = 1_760_000_000_000;
/// How long after a worker's death the client notices (heartbeats, transfer timeout).
const DETECTION: Millis = 5_000;

#[derive(Debug, Clone, Copy)]
struct Faults {
    drop_per_mille: u32,
    dup_per_mille: u32,
    death_per_mille: u32,
    cancel_per_mille: u32,
}

#[derive(Debug)]
enum Event {
    /// A board line reaches a peer (0 = client, n = worker n-1).
    Deliver(usize, BoardLine),
    /// Worker `w` finishes running `future`.
    TaskDone(usize, FutureId),
    /// The client learns that worker `w` died while running `task`.
    Lost(TaskId, usize),
    /// The client cancels `task`.
    Cancel(TaskId),
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
    ids: Vec<PeerId>,
    /// Codes each side holds for (worker, future): the transfer meets when both agree.
    client_codes: HashMap<(usize, FutureId), (TaskId, Option<WormholeCode>)>,
    worker_codes: HashMap<(usize, FutureId), Option<WormholeCode>>,
    /// Which worker ran which task to completion.
    completed: HashSet<(usize, FutureId)>,
    futures: HashMap<TaskId, FutureId>,
    finished: BTreeMap<TaskId, Vec<Result<PeerId, TaskError>>>,
    /// Workers below this index never die.
    immortal: usize,
}

impl Sim {
    fn new(seed: u64, workers: usize, immortal: usize, faults: Faults) -> Self {
        let client_id: PeerId = "alice@desktop:1".parse().unwrap();
        let mut config = SchedulerConfig::new(client_id.clone());
        config.max_open_requests = 4;
        let client = SchedulerCore::new(config, ChaCha20Rng::seed_from_u64(seed), T0);
        let ids: Vec<PeerId> = (0..workers)
            .map(|n| format!("w{n}@host{n}:{}", 100 + n).parse().unwrap())
            .collect();
        let cores = ids
            .iter()
            .enumerate()
            .map(|(n, id)| {
                let mut config = WorkerConfig::new(id.clone());
                config.sessions = n % 2 == 0;
                config.secret = (n % 3 != 2).then(|| WorkerSecret::from_bytes([n as u8 + 1; 32]));
                Some(WorkerCore::new(config, T0))
            })
            .collect();
        Sim {
            rng: ChaCha20Rng::seed_from_u64(seed ^ 0x5eed),
            faults,
            now: T0,
            seq: 0,
            queue: BinaryHeap::new(),
            events: HashMap::new(),
            client,
            client_id,
            workers: cores,
            ids,
            client_codes: HashMap::new(),
            worker_codes: HashMap::new(),
            completed: HashSet::new(),
            futures: HashMap::new(),
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

    /// A transfer both sides agree on starts: the task runs on the worker.
    fn try_meet(&mut self, w: usize, future: &FutureId) {
        let key = (w, future.clone());
        let (Some((task, client_code)), Some(worker_code)) = (
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
        self.client.task_started(task, &self.ids[w]);
        let duration = 100 + Millis::from(self.rng.next_u32() % 3_000);
        if w >= self.immortal && self.roll(self.faults.death_per_mille) {
            // The worker dies mid-task; the client finds out later.
            self.workers[w] = None;
            self.at(duration + DETECTION, Event::Lost(task, w));
        } else {
            self.at(duration, Event::TaskDone(w, future.clone()));
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
                let code = match dispatch.route {
                    Route::Files { code } => Some(code),
                    Route::NewSession { code } => {
                        self.client
                            .session_opened(self.now, &dispatch.worker, dispatch.task);
                        Some(code)
                    }
                    Route::Session => {
                        // The worker takes the task straight off its session.
                        if let Some(core) = self.workers[w].as_mut() {
                            core.session_task_started(&self.client_id, &dispatch.future);
                        }
                        self.worker_codes.insert((w, dispatch.future.clone()), None);
                        None
                    }
                };
                self.client_codes
                    .insert((w, dispatch.future.clone()), (dispatch.task, code));
                self.try_meet(w, &dispatch.future);
            }
            SchedulerAction::Interrupt { .. } | SchedulerAction::CloseSession { .. } => {}
            SchedulerAction::Event { .. } => {}
            SchedulerAction::Finished { task, outcome } => {
                self.finished.entry(task).or_default().push(outcome);
            }
        }
    }

    fn on_worker(&mut self, w: usize, action: WorkerAction) {
        match action {
            WorkerAction::Post(line) => self.broadcast(w + 1, line),
            WorkerAction::Run(assignment) => {
                self.worker_codes
                    .insert((w, assignment.future.clone()), Some(assignment.code));
                self.try_meet(w, &assignment.future);
            }
            WorkerAction::Interrupt { future, .. } => {
                if let Some(core) = self.workers[w].as_mut() {
                    core.task_finished(self.now, &future);
                }
            }
            WorkerAction::Stop => {}
        }
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
        self.now = self.now.max(next);
        if next_event == Some(next) {
            let Some(Reverse((_, seq))) = self.queue.pop() else {
                return false;
            };
            let event = self.events.remove(&seq).unwrap();
            match event {
                Event::Deliver(0, line) => self.client.handle_line(self.now, &line),
                Event::Deliver(to, line) => {
                    if let Some(core) = self.workers[to - 1].as_mut() {
                        core.handle_line(self.now, &line);
                    }
                }
                Event::TaskDone(w, future) => {
                    // A worker that died meanwhile (running another task) finishes nothing;
                    // the client learns of its death from the session or its hellos.
                    if let Some(core) = self.workers[w].as_mut() {
                        core.task_finished(self.now, &future);
                        self.completed.insert((w, future.clone()));
                        if let Some(task) = self.task_of(&future) {
                            self.client
                                .task_succeeded(self.now, task, &self.ids[w].clone());
                        }
                    }
                }
                Event::Lost(task, w) => {
                    let worker = self.ids[w].clone();
                    self.client
                        .session_closed(self.now, &worker, AttemptError::Vanished);
                    self.client
                        .task_failed(self.now, task, &worker, AttemptError::Vanished);
                }
                Event::Cancel(task) => self.client.cancel(self.now, task),
            }
        } else {
            self.client.handle_timeout(self.now);
            for core in self.workers.iter_mut().flatten() {
                core.handle_timeout(self.now);
            }
        }
        self.drain();
        true
    }

    fn task_of(&self, future: &FutureId) -> Option<TaskId> {
        self.futures
            .iter()
            .find(|(_, f)| *f == future)
            .map(|(t, _)| *t)
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
        let task = sim.client.submit(sim.now, future.clone(), 10);
        sim.futures.insert(task, future);
        if sim.roll(faults.cancel_per_mille) {
            let delay = Millis::from(sim.rng.next_u32() % 10_000);
            sim.at(delay, Event::Cancel(task));
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
        if let Ok(worker) = &outcomes[0] {
            let w = sim.worker_index(worker);
            prop_assert!(
                sim.completed.contains(&(w, sim.futures[task].clone())),
                "task {task} credited to {worker} which never completed it"
            );
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
        workers in 1usize..5,
        tasks in 1u32..25,
        drop in 0u32..150,
        dup in 0u32..300,
        death in 0u32..400,
        cancel in 0u32..200,
    ) {
        let faults = Faults { drop_per_mille: drop, dup_per_mille: dup, death_per_mille: death, cancel_per_mille: cancel };
        let sim = run(seed, workers, 0, tasks, faults, 30 * 60_000);
        check_invariants(&sim)?;
    }

    #[test]
    fn with_a_reliable_board_and_one_steady_worker_every_task_finishes(
        seed: u64,
        workers in 1usize..5,
        tasks in 1u32..25,
        dup in 0u32..300,
        death in 0u32..400,
    ) {
        let faults = Faults { drop_per_mille: 0, dup_per_mille: dup, death_per_mille: death, cancel_per_mille: 0 };
        let sim = run(seed, workers, 1, tasks, faults, 60 * 60_000);
        check_invariants(&sim)?;
        prop_assert_eq!(sim.client.pending(), 0, "unfinished tasks");
        // Only tasks that met dying workers more often than the retry budget may fail.
        for outcomes in sim.finished.values() {
            if let Err(err) = &outcomes[0] {
                prop_assert!(matches!(err, TaskError::Exhausted { .. }), "{err}");
            }
        }
    }
}
