//! The worker's protocol logic as a deterministic state machine (sans-IO).
//!
//! ```text
//!   board: request ──> open requests ──(a free slot, the client's turn, after a jittered
//!                         │             delay, nobody else offered yet)──> offer
//!                         │ accept
//!                         v
//!   files route:    Receiving ──payload_received──> Running ──task_ended──> result (CODE-r)
//!   session route:  Opening (a slot kept for the first task)
//!                     tasks on the session ──> Queued ──(a free slot, the client's turn)──>
//!                     Running (+ Started frame) ──task_ended──> Result frame
//! ```
//!
//! It follows future.p2p 0.4.0's worker loop (say hello, keep a table of open requests,
//! offer, run what is accepted) and goes beyond it:
//! - **Slots are the only capacity.** Running tasks, tasks being received, the first task
//!   of a session being opened and fresh offers each hold a slot; a task waiting on a
//!   session holds none until it starts. When a slot frees, the client served longest ago
//!   gets it, whether its work waits on a session or as a request on the board: a warm
//!   session never keeps another client out.
//! - **Offers are few.** A worker offers only with a free slot, only to a client it has no
//!   session with, and not while another worker's offer for the same request is fresh.
//!   Before each offer it waits a random delay drawn once per offer (not once per
//!   request), spread over [`JITTER_PER_WORKER`] per other worker it knows: the idle
//!   workers' offers then come one every [`JITTER_PER_WORKER`] or so, each seeing those
//!   before it and taking a request nobody covers yet, so a request draws about one offer
//!   however many workers listen. Among that client's open requests it picks one at random
//!   (workers whose offers lost see the same accept at once and would otherwise all pile
//!   onto the oldest request left). An offer holds its slot for [`OFFER_HOLD`]; a later
//!   accept that finds every slot taken is declined as [`DeclineReason::Busy`] (the client
//!   then tries elsewhere, counting nothing).
//! - **Members cannot hold slots cheaply.** A client that leaves an offer unanswered past
//!   its hold gets no offer for a while ([`OFFER_HOLD`], doubling with each further
//!   unanswered offer, up to [`MAX_UNANSWERED_PAUSE`]; an accept clears it): fake requests
//!   keep a slot a few holds in all, not for as long as they are posted. Peers seen in
//!   hellos live in bounded tables ([`PeerTable`]), open requests are bounded in all and
//!   per client, and no line costs time in proportion to the peers known.
//! - **Every task is bounded and every slot comes back.** A task runs at most
//!   [`WorkerConfig::time_limit`]; whatever ends it (result, error, panic, cancel, withdraw,
//!   time limit, the session's end) frees its slot in the same step.
//! - A client's hello makes the worker say hello again soon, so a new client counts the
//!   workers (and their slots) at once instead of waiting for the next periodic hello.
//! - A task that starts or ends brings the next hello forward too, to at most
//!   [`LOAD_HELLO_GAP`] after the last one: `future-p2p status` and `top` see whose
//!   futures run within a second, not at the next periodic hello.
//! - It reads sealed codes, declines requests it will not run (allowlist, payload size)
//!   with a `decline` line, and stops after its own duration once its running tasks are
//!   done.
//! - **Each client gets its own formats.** A request that does not list the executor's
//!   native format token ([`WorkerConfig::native_format`]) comes from future.p2p 0.4.0:
//!   its task carries [`PayloadFormat::FutureP2p`], its result is announced with a
//!   `result` line before it is sent (0.4.0 clients wait for that line), and a failure
//!   reaches it as a result in its own format ([`WorkerAction::Answer`]), since it ignores
//!   `decline` lines and would wait forever.
//!
//! Feed it board lines ([`WorkerCore::handle_line`]), the passing of time
//! ([`WorkerCore::handle_timeout`] at [`WorkerCore::poll_timeout`]), and what the driver
//! saw: payloads received, sessions opened and closed, frames from sessions, tasks ended.
//! Take [`WorkerAction`]s out with [`WorkerCore::poll_action`]. Time is Unix milliseconds,
//! supplied by the caller; randomness comes from [`WorkerConfig::seed`].

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use p2p_proto::frame::{Frame, RemoteError, RemoteErrorKind, Started, TaskResult};
use p2p_proto::id::{FutureId, PeerId, WormholeCode};
use p2p_proto::limits::DEFAULT_MAX_PAYLOAD;
use p2p_proto::load::{TaskLoad, TaskState, TransferLoad, WorkerLoad};
use p2p_proto::message::{
    BoardLine, Decline, DeclineReason, Hello, Message, Offer, Request, ResultReady, Role,
    TransferUri,
};
use p2p_proto::peers::{Heard, PeerTable};
use p2p_proto::protocols::{self, PayloadFormat, Protocols};
use p2p_proto::seal::WorkerSecret;
use p2p_proto::time::{BoardTime, Expiry, Millis};
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{RngCore, SeedableRng};

/// How long an offer stands, as in future.p2p 0.4.0.
pub const OFFER_TTL: Millis = 15_000;
/// How often a worker says hello; its hello expires after two intervals.
pub const HELLO_INTERVAL: Millis = 30_000;
/// Least time between a hello and one said because a task started or ended: a status
/// check sees a new future within about this long, and a worker busy with many short
/// tasks adds at most one hello a gap to the board (changes meanwhile ride on it).
pub const LOAD_HELLO_GAP: Millis = 1_000;
/// How long a `result` line stands, as in future.p2p 0.4.0.
pub const RESULT_TTL: Millis = 60_000;
/// How long an unanswered offer keeps its slot. Our clients accept within a round trip;
/// a client that never answers must not hold the slot for the offer's whole life.
pub const OFFER_HOLD: Millis = 3_000;
/// How long another worker's offer for a request keeps this worker from offering too: if
/// the client has not taken that offer by then, it may not want it.
pub const COVER_PATIENCE: Millis = 1_000;
/// Random delay before an offer, per other worker seen (up to [`WorkerConfig::offer_jitter`]):
/// alone, a worker offers at once; among many idle ones, offers come about this far apart,
/// so each reaches the others (a board round trip) before the next would be made.
pub const JITTER_PER_WORKER: Millis = 10;
/// Open requests remembered at most; the oldest go first.
pub const MAX_REQUESTS: usize = 256;
/// Open requests remembered per client; its oldest go first (a client posts a few at a
/// time; one posting many cannot push out the others').
pub const MAX_REQUESTS_PER_CLIENT: usize = 32;
/// Longest a client that leaves offers unanswered waits for the next one.
pub const MAX_UNANSWERED_PAUSE: Millis = 60_000;
/// Peers (clients, other workers) known at most, in all and per user.
pub const MAX_PEERS: usize = 4096;
/// Peers known at most per user.
pub const MAX_PEERS_PER_USER: usize = 512;
/// Longest a peer is known after its last hello, whatever expiry the hello claims.
pub const MAX_HELLO_LIFE: Millis = 10 * 60_000;
/// Requests declined remembered at most (past it a re-posted one may be declined again).
pub const MAX_DECLINED: usize = 4096;

/// What the worker is and what it accepts.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// This worker's board identity.
    pub me: PeerId,
    /// Tasks run at once.
    pub slots: usize,
    /// When the worker stops offering (its duration), if ever.
    pub until: Option<Millis>,
    /// How long an offer stands.
    pub offer_ttl: Millis,
    /// How often to say hello.
    pub hello_interval: Millis,
    /// Users whose requests are taken; `None` takes every member of the cluster.
    pub allow_users: Option<BTreeSet<String>>,
    /// Largest payload accepted (and result returned), in bytes.
    pub max_payload: u64,
    /// Key to receive sealed codes; `None` speaks only plain codes.
    pub secret: Option<WorkerSecret>,
    /// Whether to offer warm sessions to clients that speak them.
    pub sessions: bool,
    /// Longest a task may run, from its start; `None` for no limit.
    pub time_limit: Option<Millis>,
    /// Longest random delay before an offer or a hello answering a new client; 0 for none.
    /// It grows with the workers seen ([`JITTER_PER_WORKER`] each) up to this.
    pub offer_jitter: Millis,
    /// Seeds the delays ([`crate::Worker::start`] draws it from the OS; tests fix it).
    pub seed: u64,
    /// The protocol token naming the payload format the executor reads natively
    /// (`rpayload-v1` for the R evaluator); a client that does not list it gets
    /// [`PayloadFormat::FutureP2p`]. `None`: payloads are opaque bytes, taken as they come.
    pub native_format: Option<String>,
}

impl WorkerConfig {
    /// One slot, no duration, no time limit, everyone allowed, payloads up to the common
    /// limit ([`DEFAULT_MAX_PAYLOAD`]), plain codes, no sessions, offers delayed by up to
    /// 500 ms among many workers.
    pub fn new(me: PeerId) -> Self {
        WorkerConfig {
            me,
            slots: 1,
            until: None,
            offer_ttl: OFFER_TTL,
            hello_interval: HELLO_INTERVAL,
            allow_users: None,
            max_payload: DEFAULT_MAX_PAYLOAD,
            secret: None,
            sessions: false,
            time_limit: None,
            offer_jitter: 500,
            seed: 0,
            native_format: None,
        }
    }

    /// The protocols this configuration speaks.
    pub fn protocols(&self) -> Protocols {
        let mut tokens = vec![protocols::WORMHOLE.to_owned()];
        if self.secret.is_some() {
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

/// A task on this worker: whose, and which future.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskRef {
    /// The client that gave it.
    pub client: PeerId,
    /// Its future, as the client named it.
    pub future: FutureId,
}

/// A warm session with one client, numbered by the core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(pub u64);

/// How an accepted task's payload and result travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// future.p2p: the payload as a wormhole file under `CODE-f`, the result under `CODE-r`.
    Files,
    /// A warm session under `CODE`: tasks and results as frames, as many as the client sends.
    Session(SessionId),
}

/// A task the worker was accepted for: fetch the payload (or open the session).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The client that gave the task.
    pub client: PeerId,
    /// The task the accept named.
    pub future: FutureId,
    /// The code, already unsealed.
    pub code: WormholeCode,
    /// How the payload and result travel.
    pub route: Route,
    /// The format the client's payload is in, and its result must be in.
    pub format: PayloadFormat,
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerAction {
    /// Write this line to the board.
    Post(BoardLine),
    /// Files route: receive the payload, then report [`WorkerCore::payload_received`] (or
    /// [`WorkerCore::transfer_failed`]). Session route: open the session, report
    /// [`WorkerCore::session_opened`], then every frame, then [`WorkerCore::session_closed`].
    Open(Assignment),
    /// Run the task's payload now; report its end with [`WorkerCore::task_ended`].
    Start {
        /// The task.
        task: TaskRef,
        /// The session it came on, `None` on the files route.
        session: Option<SessionId>,
    },
    /// Send this frame on the session (a task started, or ended without a value).
    Send {
        /// The session.
        session: SessionId,
        /// The frame.
        frame: Frame,
    },
    /// Forget the task: stop its run or transfer, drop its payload. It is over for the core
    /// (cancelled, withdrawn, past its time limit, or its session ended); a late end of its
    /// run is ignored.
    Interrupt {
        /// The task.
        task: TaskRef,
    },
    /// An accept of our offer came with a plain wormhole code although we offered a
    /// sealing key to a client that seals: refused (the offer stands). The driver logs it.
    UnsealedAccept {
        /// The task it claimed.
        task: TaskRef,
    },
    /// Files route, a client in future.p2p 0.4.0's format: the task failed (its run, its
    /// time limit), and such a client learns that only from a result. Send it the
    /// executor's result carrying `error` under `code`'s `CODE-r` (the `result` line is
    /// posted already).
    Answer {
        /// The task.
        task: TaskRef,
        /// The task's code.
        code: WormholeCode,
        /// Why it failed.
        error: RemoteError,
    },
    /// The worker's duration is over and nothing runs any more.
    Stop,
}

/// Where a finished task's outcome goes, as [`WorkerCore::task_ended`] decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// As a `Result` frame on this session.
    Session(SessionId),
    /// As a file under `CODE-r` (files route, with a value); report a failed send with
    /// [`WorkerCore::delivery_failed`].
    Files,
    /// Nowhere: the task was already over, or the core told the client on the board.
    Drop,
}

#[derive(Debug, Clone)]
struct OpenRequest {
    client: PeerId,
    future: FutureId,
    expires: Millis,
    protocols: Protocols,
    /// Until when another worker's offer stands in for ours.
    covered_until: Millis,
}

impl OpenRequest {
    fn task(&self) -> TaskRef {
        TaskRef {
            client: self.client.clone(),
            future: self.future.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct Offered {
    request: OpenRequest,
    expires: Millis,
    /// The offer keeps a slot until then...
    hold_until: Millis,
    /// ...and does while this is set (cleared by the timer at `hold_until`).
    holding: bool,
}

/// A task this worker holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Accepted on the files route; the payload is on its way (holds a slot).
    Receiving,
    /// Came on a session; waits for a slot.
    Queued(SessionId),
    /// Runs in a slot; over at `deadline` if there is a time limit.
    Running {
        session: Option<SessionId>,
        deadline: Option<Millis>,
    },
}

/// A task accepted on the files route: how its result goes back.
#[derive(Debug, Clone)]
struct FilesTask {
    /// The accept's `via`, repeated on the `result` line (a sealed code stays sealed).
    via: TransferUri,
    code: WormholeCode,
    format: PayloadFormat,
}

#[derive(Debug, Clone)]
struct SessionState {
    client: PeerId,
    /// A slot kept for the session's first task, from the accept until that task arrives.
    reserved: bool,
    /// The hellos were exchanged.
    open: bool,
    /// The client reads Started frames.
    reports_starts: bool,
    /// Tasks waiting for a slot, in arrival order.
    queue: VecDeque<FutureId>,
}

/// The worker state machine.
#[derive(Debug)]
pub struct WorkerCore {
    config: WorkerConfig,
    protocols: Protocols,
    rng: ChaCha8Rng,
    /// Requests that may still be offered for, oldest first.
    requests: VecDeque<OpenRequest>,
    offers: HashMap<TaskRef, Offered>,
    tasks: HashMap<TaskRef, Held>,
    /// Files-route tasks, until they end.
    files: HashMap<TaskRef, FilesTask>,
    /// Tasks in slots (receiving or running).
    busy: usize,
    /// Time limits of running tasks, soonest first.
    deadlines: BTreeSet<(Millis, TaskRef)>,
    sessions: BTreeMap<SessionId, SessionState>,
    next_session: u64,
    /// When each client was last given a slot (a counter): the least recent goes next.
    served: HashMap<PeerId, u64>,
    serve_count: u64,
    /// Clients and other workers seen, until their hellos lapse.
    clients: PeerTable<()>,
    workers: PeerTable<()>,
    /// Requests declined, until they lapse: a re-posted request is declined once.
    declined: HashMap<TaskRef, Millis>,
    /// When the next offer may go out: drawn when an offer becomes possible, cleared
    /// when it is made or when nothing is left to offer on.
    offer_due: Option<Millis>,
    /// Clients that left offers unanswered: how many in a row, and until when they get
    /// no offer.
    unanswered: HashMap<PeerId, (u32, Millis)>,
    next_hello: Millis,
    /// When the last hello went out, if one did: a task's start or end brings the next
    /// one forward to no sooner than [`LOAD_HELLO_GAP`] after it.
    last_hello: Option<Millis>,
    /// The payload transfers in flight as the driver last saw them, for the next hello.
    transfers: Vec<TransferLoad>,
    /// The time of the latest event: timers at or before it have been handled.
    now: Millis,
    stopped: bool,
    actions: VecDeque<WorkerAction>,
}

impl WorkerCore {
    /// A worker that will say hello at `now`.
    pub fn new(config: WorkerConfig, now: Millis) -> Self {
        let protocols = config.protocols();
        WorkerCore {
            rng: ChaCha8Rng::seed_from_u64(config.seed),
            config,
            protocols,
            requests: VecDeque::new(),
            offers: HashMap::new(),
            tasks: HashMap::new(),
            files: HashMap::new(),
            busy: 0,
            deadlines: BTreeSet::new(),
            sessions: BTreeMap::new(),
            next_session: 1,
            served: HashMap::new(),
            serve_count: 0,
            clients: PeerTable::new(MAX_PEERS, MAX_PEERS_PER_USER, MAX_HELLO_LIFE),
            workers: PeerTable::new(MAX_PEERS, MAX_PEERS_PER_USER, MAX_HELLO_LIFE),
            declined: HashMap::new(),
            offer_due: None,
            unanswered: HashMap::new(),
            next_hello: now,
            last_hello: None,
            transfers: Vec::new(),
            now,
            stopped: false,
            actions: VecDeque::new(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Tasks in slots now (running, or being received).
    pub fn running(&self) -> usize {
        self.busy
    }

    /// Tasks waiting on sessions for a slot.
    pub fn queued(&self) -> usize {
        self.sessions.values().map(|s| s.queue.len()).sum()
    }

    /// Slots neither running a task nor kept for an offer or a session being opened.
    pub fn free_slots(&self) -> usize {
        let held_by_offers = self.offers.values().filter(|o| o.holding).count();
        let reserved = self.sessions.values().filter(|s| s.reserved).count();
        self.config
            .slots
            .saturating_sub(self.busy + held_by_offers + reserved)
    }

    /// Whether a hello goes out at the next [`WorkerCore::handle_timeout`] at `now`: the
    /// driver then reports its transfers ([`WorkerCore::set_transfers`]) first.
    pub fn hello_due(&self, now: Millis) -> bool {
        !self.stopped && now >= self.next_hello
    }

    /// The payload transfers in flight (bytes moved of each), said on the next hello.
    pub fn set_transfers(&mut self, transfers: Vec<TransferLoad>) {
        self.transfers = transfers;
    }

    /// What this worker holds and moves, as its hellos say it: the tasks in slots or
    /// waiting on sessions, whose they are, and the transfers last reported.
    pub fn load(&self) -> WorkerLoad {
        let mut tasks: Vec<TaskLoad> = self
            .tasks
            .iter()
            .map(|(task, held)| TaskLoad {
                state: match held {
                    Held::Running { .. } => TaskState::Running,
                    Held::Receiving => TaskState::Receiving,
                    Held::Queued(_) => TaskState::Waiting,
                },
                client: task.client.clone(),
                future: task.future.clone(),
            })
            .collect();
        // Running first; a stable order, so that a hello says the same for the same state.
        tasks.sort();
        let mut transfers = self.transfers.clone();
        transfers.sort();
        WorkerLoad::listing(tasks, transfers)
    }

    /// The next action for the driver.
    pub fn poll_action(&mut self) -> Option<WorkerAction> {
        self.actions.pop_front()
    }

    /// When [`WorkerCore::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Millis> {
        if self.stopped {
            return None;
        }
        let deadline = self.deadlines.first().map(|(at, _)| *at);
        // No hellos once the duration is over (nor one due after it).
        let hello = (!self.is_over(self.now.max(self.next_hello))).then_some(self.next_hello);
        let offers = self
            .offers
            .values()
            .map(|o| if o.holding { o.hold_until } else { o.expires })
            .min();
        // The next offer's delay; or a request waiting for a rival offer to lapse or for
        // its client's pause to end. One that could be offered on already waits for a
        // slot, and a freed slot comes with an event of its own.
        let offer = self.offer_due.filter(|at| *at > self.now);
        let requests = self
            .requests
            .iter()
            .map(|r| r.covered_until.max(self.paused_until(&r.client)))
            .filter(|at| *at > self.now)
            .min();
        let until = self.config.until.filter(|at| *at > self.now);
        [deadline, hello, offers, offer, requests, until]
            .into_iter()
            .flatten()
            .min()
    }

    fn is_over(&self, now: Millis) -> bool {
        self.config.until.is_some_and(|until| now >= until)
    }

    /// A random delay before offering or answering a hello: none when alone, growing with
    /// the workers seen, at most [`WorkerConfig::offer_jitter`].
    fn jitter(&mut self) -> Millis {
        // The table holds live workers only: lapsed ones left when the time came in.
        let others = self.workers.len() as Millis;
        let window = (others * JITTER_PER_WORKER).min(self.config.offer_jitter);
        if window == 0 {
            0
        } else {
            self.rng.next_u64() % (window + 1)
        }
    }

    /// The board topic reopened after a disconnect: clients that came meanwhile, or that
    /// count workers by their hellos, hear from this one now rather than at its next hello.
    /// Accepts for our offers may have been lost with the connection: the offers give
    /// their slots back, no client stays paused for an offer it may never have seen
    /// answered, and the next offer draws a fresh delay.
    pub fn board_reopened(&mut self, now: Millis) {
        self.advance(now);
        for offer in self.offers.values_mut() {
            offer.holding = false;
        }
        self.unanswered.clear();
        self.offer_due = None;
        self.next_hello = now;
        self.handle_timeout(now);
    }

    /// Stops offering from `now` on, as when the worker's duration ends: the tasks it holds
    /// run to their end, then it stops ([`WorkerAction::Stop`]). A graceful shutdown.
    pub fn drain(&mut self, now: Millis) {
        self.config.until = Some(self.config.until.map_or(now, |until| until.min(now)));
        self.handle_timeout(now);
    }

    /// Time passed: time limits, hello, expiries, offers; stop when the duration is over.
    pub fn handle_timeout(&mut self, now: Millis) {
        self.advance(now);
        if self.stopped {
            return;
        }
        while let Some((at, task)) = self.deadlines.first().cloned() {
            if at > now {
                break;
            }
            self.time_out(now, &task);
        }
        self.requests.retain(|r| r.expires > now);
        self.offers.retain(|_, o| o.expires > now);
        let mut unanswered = Vec::new();
        for offer in self.offers.values_mut() {
            if offer.holding && offer.hold_until <= now {
                offer.holding = false;
                unanswered.push(offer.request.client.clone());
            }
        }
        for client in unanswered {
            self.pause_client(now, client);
        }
        if self.is_over(now) {
            self.requests.clear();
            self.offers.clear();
            self.stop_if_idle();
            return;
        }
        if now >= self.next_hello {
            self.say_hello(now);
        }
        self.fill(now);
    }

    /// Moves the clock: peers whose hellos lapsed leave their tables (in order of expiry,
    /// never by walking a whole table).
    fn advance(&mut self, now: Millis) {
        self.now = self.now.max(now);
        self.clients.expire(self.now);
        self.workers.expire(self.now);
    }

    /// A client left an offer unanswered past its hold: no offer to it for a while.
    fn pause_client(&mut self, now: Millis, client: PeerId) {
        let (count, until) = self.unanswered.entry(client).or_insert((0, 0));
        *count += 1;
        let doublings = (*count - 1).min(16);
        *until = now
            + OFFER_HOLD
                .saturating_mul(1 << doublings)
                .min(MAX_UNANSWERED_PAUSE);
    }

    /// Until when `client` gets no offer (0: it may get one).
    fn paused_until(&self, client: &PeerId) -> Millis {
        self.unanswered.get(client).map_or(0, |(_, until)| *until)
    }

    /// The tasks held changed (one started, arrived or ended): the next hello says so
    /// soon, rate-limited by [`LOAD_HELLO_GAP`] so that bursts of short tasks coalesce.
    fn load_changed(&mut self) {
        // A timer, not a hello posted here: the driver reads its transfer meters when a
        // hello is due. Never at `now` itself, which counts as handled already.
        let soon = self
            .last_hello
            .map_or(self.now, |last| last.saturating_add(LOAD_HELLO_GAP))
            .max(self.now + 1);
        self.next_hello = self.next_hello.min(soon);
    }

    fn say_hello(&mut self, now: Millis) {
        self.next_hello = now + self.config.hello_interval;
        self.last_hello = Some(now);
        // Refusals and bookkeeping of clients shrink here, once an interval, not on every
        // line (each is bounded meanwhile).
        self.declined.retain(|_, expires| *expires > now);
        let clients = &self.clients;
        let sessions = &self.sessions;
        self.served.retain(|client, _| {
            clients.contains(client) || sessions.values().any(|s| s.client == *client)
        });
        // A pause that ended long ago says nothing any more; one still running stays.
        self.unanswered
            .retain(|_, (_, until)| *until + MAX_UNANSWERED_PAUSE > now);
        let mut expires = now + 2 * self.config.hello_interval;
        if let Some(until) = self.config.until {
            expires = expires.min(until);
        }
        let mut hello = BoardLine::new(
            BoardTime::from_unix_ms(now),
            Message::Hello(Hello {
                role: Role::Worker,
                from: self.config.me.clone(),
                expires: Expiry::from_unix_ms(expires),
                protocols: Some(self.protocols.clone()),
                slots: Some(u32::try_from(self.config.slots).unwrap_or(u32::MAX)),
                busy: Some(u32::try_from(self.busy).unwrap_or(u32::MAX)),
            }),
        );
        // Whose futures run here, for status checks (keys future.p2p 0.4.0 ignores).
        hello.extra = self.load().to_pairs();
        self.actions.push_back(WorkerAction::Post(hello));
    }

    fn post(&mut self, now: Millis, message: Message) {
        self.actions.push_back(WorkerAction::Post(BoardLine::new(
            BoardTime::from_unix_ms(now),
            message,
        )));
    }

    fn decline(&mut self, now: Millis, task: &TaskRef, reason: DeclineReason) {
        self.post(
            now,
            Message::Decline(Decline {
                from: self.config.me.clone(),
                to: task.client.clone(),
                future: task.future.clone(),
                reason,
            }),
        );
    }

    /// A line from the board.
    pub fn handle_line(&mut self, now: Millis, line: &BoardLine) {
        self.advance(now);
        if self.stopped || line.message.from() == Some(&self.config.me) {
            return;
        }
        match &line.message {
            Message::Hello(hello) => self.on_hello(now, hello),
            Message::Request(request) => self.on_request(now, request),
            Message::Offer(offer) => {
                // Another worker offered first: let the client take that one.
                let patience = now + COVER_PATIENCE;
                if let Some(request) = self
                    .requests
                    .iter_mut()
                    .find(|r| r.client == offer.to && r.future == offer.future)
                {
                    request.covered_until = patience.min(offer.expires.unix_ms());
                }
            }
            Message::Accept(accept) => {
                if accept.to == self.config.me {
                    self.on_accept(now, &accept.from, &accept.future, &accept.via);
                } else {
                    // The client took another worker: the request is gone, the slot free.
                    let task = TaskRef {
                        client: accept.from.clone(),
                        future: accept.future.clone(),
                    };
                    self.forget_request(&task);
                    self.offers.remove(&task);
                }
            }
            Message::Withdraw(withdraw) => {
                let task = TaskRef {
                    client: withdraw.from.clone(),
                    future: withdraw.future.clone(),
                };
                self.forget_request(&task);
                self.offers.remove(&task);
                // A withdraw addressed to no worker (`to=<none>`) takes back a request; only one
                // addressed to us takes back a task we hold (the same future may run here,
                // sent on a session, while the client withdraws a request it had posted).
                if withdraw.to.as_ref() == Some(&self.config.me) {
                    self.stop_task(now, &task, "withdrawn by the client");
                }
            }
            _ => {}
        }
        self.fill(now);
    }

    fn on_hello(&mut self, now: Millis, hello: &Hello) {
        let expires = hello.expires.unix_ms();
        match hello.role {
            Role::Worker => {
                self.workers
                    .heard(now, &hello.from, expires, || (), |_, _| false);
            }
            Role::Client => {
                let sessions = &self.sessions;
                let (heard, _) = self.clients.heard(
                    now,
                    &hello.from,
                    expires,
                    || (),
                    // A client we are in a session with keeps its place.
                    |client, _| sessions.values().any(|s| s.client == *client),
                );
                if heard == Heard::New && !self.is_over(now) {
                    // A new client counts workers by their hellos: answer soon rather than
                    // at the next interval (jittered, so many workers do not answer at once).
                    let soon = now + self.jitter();
                    self.next_hello = self.next_hello.min(soon);
                }
            }
            Role::Cluster => {}
        }
    }

    fn forget_request(&mut self, task: &TaskRef) {
        self.requests
            .retain(|r| !(r.client == task.client && r.future == task.future));
    }

    fn on_request(&mut self, now: Millis, request: &Request) {
        if self.is_over(now) {
            return;
        }
        let expires = request.expires.unix_ms();
        let task = TaskRef {
            client: request.from.clone(),
            future: request.future.clone(),
        };
        if expires <= now || self.tasks.contains_key(&task) || self.offers.contains_key(&task) {
            return;
        }
        let refusal = if self
            .config
            .allow_users
            .as_ref()
            .is_some_and(|allowed| !allowed.contains(request.from.user()))
        {
            Some(DeclineReason::NotAllowed)
        } else if request.size > self.config.max_payload {
            Some(DeclineReason::TooLarge)
        } else {
            None
        };
        if let Some(reason) = refusal {
            // Once per request: a re-posted request must not make the worker spam the board.
            if self.declined.contains_key(&task) {
                return;
            }
            if self.declined.len() < MAX_DECLINED {
                let until = expires.min(now.saturating_add(MAX_HELLO_LIFE));
                self.declined.insert(task.clone(), until);
            }
            self.decline(now, &task, reason);
            return;
        }
        // A request posted again was not taken: whoever covered it did not get it.
        let open = OpenRequest {
            client: task.client,
            future: task.future,
            expires,
            protocols: request.protocols.clone().unwrap_or_default(),
            covered_until: 0,
        };
        let mut theirs = 0;
        let mut oldest_theirs = None;
        for (at, r) in self.requests.iter_mut().enumerate() {
            if r.client != open.client {
                continue;
            }
            if r.future == open.future {
                *r = open;
                return;
            }
            theirs += 1;
            oldest_theirs.get_or_insert(at);
        }
        if theirs >= MAX_REQUESTS_PER_CLIENT {
            if let Some(at) = oldest_theirs {
                self.requests.remove(at);
            }
        } else if self.requests.len() >= MAX_REQUESTS {
            self.requests.pop_front();
        }
        self.requests.push_back(open);
    }

    fn has_session_with(&self, client: &PeerId) -> bool {
        self.sessions.values().any(|s| s.client == *client)
    }

    fn served(&self, client: &PeerId) -> u64 {
        self.served.get(client).copied().unwrap_or(0)
    }

    fn mark_served(&mut self, client: &PeerId) {
        self.serve_count += 1;
        self.served.insert(client.clone(), self.serve_count);
    }

    /// Gives free slots away: to the client served longest ago, whether its next task waits
    /// on a session (it starts) or as a request on the board (it gets an offer).
    fn fill(&mut self, now: Millis) {
        if self.is_over(now) {
            return;
        }
        while self.free_slots() > 0 {
            let session = self
                .sessions
                .iter()
                .filter(|(_, s)| s.open && !s.queue.is_empty())
                .min_by_key(|(id, s)| (self.served(&s.client), **id))
                .map(|(id, s)| (*id, self.served(&s.client)));
            let request = self.pick_request(now);
            match (session, request) {
                (Some((id, s_served)), Some((_, r_served))) if s_served <= r_served => {
                    self.start_queued(now, id)
                }
                (Some((id, _)), None) => self.start_queued(now, id),
                (_, Some((at, _))) => self.offer(now, at),
                (None, None) => return,
            }
        }
    }

    /// The open request to offer on next, and how long ago its client was served: one of
    /// the client served longest ago, chosen at random among that client's requests. Every
    /// idle worker sees the same requests at once; were they all to pick the first, they
    /// would all offer on it and only one would win, request after request.
    fn pick_request(&mut self, now: Millis) -> Option<(usize, u64)> {
        let eligible: Vec<(usize, u64)> = self
            .requests
            .iter()
            .enumerate()
            .filter(|(_, r)| {
                r.covered_until <= now
                    && r.expires > now
                    && self.paused_until(&r.client) <= now
                    && !self.has_session_with(&r.client)
            })
            .map(|(at, r)| (at, self.served(&r.client)))
            .collect();
        if eligible.is_empty() {
            // Nothing to offer on: the next offer draws a fresh delay when there is.
            self.offer_due = None;
            return None;
        }
        // One delay per offer, drawn when an offer first becomes possible.
        let due = match self.offer_due {
            Some(due) => due,
            None => {
                let due = now + self.jitter();
                self.offer_due = Some(due);
                due
            }
        };
        if due > now {
            return None;
        }
        let longest_ago = eligible.iter().map(|(_, served)| *served).min()?;
        let candidates: Vec<usize> = eligible
            .iter()
            .filter(|(_, served)| *served == longest_ago)
            .map(|(at, _)| *at)
            .collect();
        let pick = (self.rng.next_u64() % candidates.len() as u64) as usize;
        Some((*candidates.get(pick)?, longest_ago))
    }

    fn start_queued(&mut self, now: Millis, session: SessionId) {
        let Some(state) = self.sessions.get_mut(&session) else {
            return;
        };
        let Some(future) = state.queue.pop_front() else {
            return;
        };
        let task = TaskRef {
            client: state.client.clone(),
            future,
        };
        self.start(now, task, Some(session));
    }

    /// `task` takes a slot and runs.
    fn start(&mut self, now: Millis, task: TaskRef, session: Option<SessionId>) {
        let deadline = self.config.time_limit.map(|limit| now + limit);
        if let Some(at) = deadline {
            self.deadlines.insert((at, task.clone()));
        }
        self.tasks
            .insert(task.clone(), Held::Running { session, deadline });
        self.busy += 1;
        self.load_changed();
        self.mark_served(&task.client);
        if let Some(id) = session
            && self.sessions.get(&id).is_some_and(|s| s.reports_starts)
        {
            self.actions.push_back(WorkerAction::Send {
                session: id,
                frame: Frame::Started(Started {
                    future: task.future.clone(),
                }),
            });
        }
        self.actions
            .push_back(WorkerAction::Start { task, session });
    }

    fn offer(&mut self, now: Millis, at: usize) {
        let Some(request) = self.requests.remove(at) else {
            return;
        };
        self.offer_due = None;
        let expires = now + self.config.offer_ttl;
        // The key only matters to a client that can seal to it.
        let pk = self
            .config
            .secret
            .as_ref()
            .filter(|_| request.protocols.supports(protocols::SEALED))
            .map(WorkerSecret::public);
        self.post(
            now,
            Message::Offer(Offer {
                from: self.config.me.clone(),
                expires: Expiry::from_unix_ms(expires),
                to: request.client.clone(),
                future: request.future.clone(),
                protocols: Some(self.protocols.clone()),
                pk,
            }),
        );
        self.mark_served(&request.client);
        // A future.p2p 0.4.0 client ignores `decline` lines: an accept of it that found no
        // free slot would leave it sending its future to nobody, for ever. Its offers keep
        // their slot for their whole life.
        let hold = match PayloadFormat::negotiate(
            self.config.native_format.as_deref(),
            &request.protocols,
        ) {
            PayloadFormat::Native => OFFER_HOLD.min(self.config.offer_ttl),
            PayloadFormat::FutureP2p => self.config.offer_ttl,
        };
        self.offers.insert(
            request.task(),
            Offered {
                request,
                expires,
                hold_until: now + hold,
                holding: true,
            },
        );
    }

    fn on_accept(&mut self, now: Millis, client: &PeerId, future: &FutureId, via: &TransferUri) {
        let task = TaskRef {
            client: client.clone(),
            future: future.clone(),
        };
        let Some(offered) = self.offers.get(&task) else {
            return;
        };
        if offered.expires <= now {
            return;
        }
        let code = match via {
            // We offered a key to a client that seals: a plain code is a downgrade, as
            // another member posing as that client would send it. The offer stands for the
            // real accept.
            TransferUri::Wormhole(_) | TransferUri::BareWormhole(_)
                if self.config.secret.is_some()
                    && offered.request.protocols.supports(protocols::SEALED) =>
            {
                self.actions
                    .push_back(WorkerAction::UnsealedAccept { task });
                return;
            }
            TransferUri::Wormhole(code) | TransferUri::BareWormhole(code) => code.clone(),
            TransferUri::Sealed(sealed) => {
                // A box we cannot open was not sealed for us (or is forged): keep the offer
                // standing, the real accept may still come.
                match self.config.secret.as_ref().map(|s| s.open(sealed)) {
                    Some(Ok(code)) => code,
                    _ => return,
                }
            }
        };
        let Some(offered) = self.offers.remove(&task) else {
            return;
        };
        // The client answers its offers.
        self.unanswered.remove(client);
        // The offer's slot was given back after its hold: take one if any is free.
        if !offered.holding && self.free_slots() == 0 {
            self.decline(now, &task, DeclineReason::Busy);
            return;
        }
        let session =
            self.config.sessions && offered.request.protocols.supports(protocols::SESSION);
        let format = PayloadFormat::negotiate(
            self.config.native_format.as_deref(),
            &offered.request.protocols,
        );
        let route = if session {
            let id = SessionId(self.next_session);
            self.next_session += 1;
            self.sessions.insert(
                id,
                SessionState {
                    client: client.clone(),
                    reserved: true,
                    open: false,
                    reports_starts: false,
                    queue: VecDeque::new(),
                },
            );
            Route::Session(id)
        } else {
            self.tasks.insert(task.clone(), Held::Receiving);
            self.load_changed();
            self.files.insert(
                task.clone(),
                FilesTask {
                    via: via.clone(),
                    code: code.clone(),
                    format,
                },
            );
            self.busy += 1;
            Route::Files
        };
        self.actions.push_back(WorkerAction::Open(Assignment {
            client: task.client,
            future: task.future,
            code,
            route,
            format,
        }));
    }

    /// Files route: the payload of `task` arrived; it runs now (in the slot it held).
    /// `false`: the task is over already (withdrawn meanwhile); drop the payload.
    pub fn payload_received(&mut self, now: Millis, task: &TaskRef) -> bool {
        self.now = self.now.max(now);
        if self.tasks.get(task) != Some(&Held::Receiving) {
            return false;
        }
        self.busy -= 1;
        self.start(now, task.clone(), None);
        true
    }

    /// Files route: receiving the payload of `task` failed; the client hears why.
    pub fn transfer_failed(&mut self, now: Millis, task: &TaskRef, reason: DeclineReason) {
        self.now = self.now.max(now);
        if self.tasks.get(task) == Some(&Held::Receiving) {
            self.end(task);
            self.decline(now, task, reason);
            self.after_end(now);
        }
    }

    /// The session's hellos were exchanged; `reports_starts` when both sides list
    /// [`protocols::SLOTS`] (the client then reads Started frames).
    pub fn session_opened(&mut self, now: Millis, session: SessionId, reports_starts: bool) {
        self.now = self.now.max(now);
        if let Some(state) = self.sessions.get_mut(&session) {
            state.open = true;
            state.reports_starts = reports_starts;
        }
        self.fill(now);
    }

    /// A task arrived on the session. `false`: the session is unknown or already holds that
    /// task; drop the payload.
    pub fn session_task(&mut self, now: Millis, session: SessionId, future: FutureId) -> bool {
        self.now = self.now.max(now);
        let over = self.is_over(now);
        let Some(state) = self.sessions.get_mut(&session) else {
            return false;
        };
        let task = TaskRef {
            client: state.client.clone(),
            future,
        };
        if self.tasks.contains_key(&task) || !state.open {
            return false;
        }
        if state.reserved && !over {
            // The slot kept since the accept is this task's.
            state.reserved = false;
            self.start(now, task, Some(session));
        } else {
            state.queue.push_back(task.future.clone());
            self.tasks.insert(task, Held::Queued(session));
            self.load_changed();
            self.fill(now);
        }
        true
    }

    /// The client cancelled a task on the session: a waiting one is dropped (the client has
    /// finished it already), a running one is stopped and answered as cancelled.
    pub fn session_cancel(&mut self, now: Millis, session: SessionId, future: FutureId) {
        self.now = self.now.max(now);
        let Some(client) = self.sessions.get(&session).map(|s| s.client.clone()) else {
            return;
        };
        let task = TaskRef { client, future };
        self.stop_task(now, &task, "cancelled by the client");
        self.fill(now);
    }

    /// The session ended (the client closed it, or it broke): its waiting tasks are
    /// dropped, its running ones stopped; their slots are free.
    pub fn session_closed(&mut self, now: Millis, session: SessionId) {
        self.now = self.now.max(now);
        let Some(state) = self.sessions.remove(&session) else {
            return;
        };
        for future in state.queue {
            let task = TaskRef {
                client: state.client.clone(),
                future,
            };
            self.tasks.remove(&task);
            self.load_changed();
            self.actions.push_back(WorkerAction::Interrupt { task });
        }
        let running: Vec<TaskRef> = self
            .tasks
            .iter()
            .filter(
                |(_, held)| matches!(held, Held::Running { session: Some(s), .. } if *s == session),
            )
            .map(|(task, _)| task.clone())
            .collect();
        for task in running {
            self.end(&task);
            self.actions.push_back(WorkerAction::Interrupt { task });
        }
        self.after_end(now);
    }

    /// The run of `task` ended with a value (`Ok`) or an error: where its outcome goes.
    /// Files-route errors are told to the client here, with a `decline` line.
    pub fn task_ended(
        &mut self,
        now: Millis,
        task: &TaskRef,
        outcome: Result<(), &RemoteError>,
    ) -> Delivery {
        self.now = self.now.max(now);
        let Some(Held::Running { session, .. }) = self.tasks.get(task).copied() else {
            return Delivery::Drop;
        };
        let files = self.files.get(task).cloned();
        self.end(task);
        let delivery = match (session, outcome, files) {
            (Some(id), _, _) if self.sessions.contains_key(&id) => Delivery::Session(id),
            (Some(_), _, _) | (None, _, None) => Delivery::Drop,
            (None, Ok(()), Some(files)) => {
                self.announce_result(now, task, &files);
                Delivery::Files
            }
            (None, Err(error), Some(files)) => {
                self.fail_files_task(now, task, files, error.clone());
                Delivery::Drop
            }
        };
        self.after_end(now);
        delivery
    }

    /// Files route: the result of `task` could not be sent; the client hears it.
    pub fn delivery_failed(&mut self, now: Millis, task: &TaskRef) {
        self.now = self.now.max(now);
        self.decline(now, task, DeclineReason::Failed);
    }

    /// The result of files-route `task` is about to be sent: a `result` line says so
    /// (future.p2p 0.4.0's clients wait for it before they receive).
    fn announce_result(&mut self, now: Millis, task: &TaskRef, files: &FilesTask) {
        self.post(
            now,
            Message::Result(ResultReady {
                from: self.config.me.clone(),
                expires: Expiry::from_unix_ms(now + RESULT_TTL),
                to: task.client.clone(),
                future: task.future.clone(),
                via: files.via.clone(),
            }),
        );
    }

    /// Files-route `task` failed with `error`: a client of ours hears it with a `decline`
    /// line (and retries elsewhere), a future.p2p 0.4.0 client with a result.
    fn fail_files_task(
        &mut self,
        now: Millis,
        task: &TaskRef,
        files: FilesTask,
        error: RemoteError,
    ) {
        match files.format {
            PayloadFormat::Native => self.decline(now, task, decline_reason(error.kind)),
            PayloadFormat::FutureP2p => {
                self.announce_result(now, task, &files);
                self.actions.push_back(WorkerAction::Answer {
                    task: task.clone(),
                    code: files.code,
                    error,
                });
            }
        }
    }

    /// Takes `task` out of its slot (or queue) and its timer.
    fn end(&mut self, task: &TaskRef) {
        self.files.remove(task);
        let held = self.tasks.remove(task);
        if held.is_some() {
            self.load_changed();
        }
        match held {
            Some(Held::Running { deadline, .. }) => {
                self.busy -= 1;
                if let Some(at) = deadline {
                    self.deadlines.remove(&(at, task.clone()));
                }
            }
            Some(Held::Receiving) => self.busy -= 1,
            Some(Held::Queued(session)) => {
                if let Some(state) = self.sessions.get_mut(&session) {
                    state.queue.retain(|f| *f != task.future);
                }
            }
            None => {}
        }
    }

    /// Stops a task the client gave up, wherever it is; a running session task is answered
    /// as cancelled.
    fn stop_task(&mut self, now: Millis, task: &TaskRef, why: &str) {
        let Some(held) = self.tasks.get(task).copied() else {
            return;
        };
        self.end(task);
        self.actions
            .push_back(WorkerAction::Interrupt { task: task.clone() });
        if let Held::Running {
            session: Some(id), ..
        } = held
        {
            self.send_error(id, task, RemoteErrorKind::Cancelled, why.to_owned());
        }
        self.after_end(now);
    }

    /// `task` ran past the time limit: stopped, and its client told so.
    fn time_out(&mut self, now: Millis, task: &TaskRef) {
        let Some(Held::Running { session, .. }) = self.tasks.get(task).copied() else {
            // A stale timer: nothing runs under it.
            self.deadlines.retain(|(_, t)| t != task);
            return;
        };
        let files = self.files.get(task).cloned();
        self.end(task);
        self.actions
            .push_back(WorkerAction::Interrupt { task: task.clone() });
        let limit = self.config.time_limit.unwrap_or_default();
        let message = format!(
            "the task ran past this worker's time limit of {:.3} s",
            limit as f64 / 1000.0
        );
        match (session, files) {
            (Some(id), _) if self.sessions.contains_key(&id) => {
                self.send_error(id, task, RemoteErrorKind::TimeLimit, message);
            }
            (Some(_), _) | (None, None) => {}
            (None, Some(files)) => {
                let error = RemoteError {
                    kind: RemoteErrorKind::TimeLimit,
                    message,
                };
                self.fail_files_task(now, task, files, error);
            }
        }
        self.after_end(now);
    }

    fn send_error(
        &mut self,
        session: SessionId,
        task: &TaskRef,
        kind: RemoteErrorKind,
        message: String,
    ) {
        self.actions.push_back(WorkerAction::Send {
            session,
            frame: Frame::Result(TaskResult {
                future: task.future.clone(),
                outcome: p2p_proto::frame::Outcome::Error(RemoteError { kind, message }),
            }),
        });
    }

    /// A slot came free: stop if the duration is over, else give it away.
    fn after_end(&mut self, now: Millis) {
        if self.is_over(now) {
            self.stop_if_idle();
        } else {
            self.fill(now);
        }
    }

    fn stop_if_idle(&mut self) {
        if self.busy == 0 && !self.stopped {
            self.stopped = true;
            self.actions.push_back(WorkerAction::Stop);
        }
    }
}

/// How a failure of the files route is said on the board.
fn decline_reason(kind: RemoteErrorKind) -> DeclineReason {
    match kind {
        RemoteErrorKind::TimeLimit => DeclineReason::TimeLimit,
        RemoteErrorKind::PayloadTooLarge => DeclineReason::TooLarge,
        RemoteErrorKind::Refused => DeclineReason::NotAllowed,
        RemoteErrorKind::Cancelled
        | RemoteErrorKind::Crashed
        | RemoteErrorKind::Unsupported
        | RemoteErrorKind::Failed => DeclineReason::Failed,
    }
}

#[cfg(test)]
mod tests;
