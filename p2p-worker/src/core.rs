//! The worker's protocol logic as a deterministic state machine (sans-IO).
//!
//! It follows future.p2p 0.4.0's worker loop: say hello, keep a table of open requests,
//! offer to run one (an offer is valid 15 s), and on an accept addressed to this worker
//! fetch the future and run it. Beyond future.p2p it offers as many tasks as it has free
//! slots, reads sealed codes, runs warm sessions when the client speaks them, declines
//! requests it will not run (allowlist, payload size) with a `decline` line, and stops
//! after its own duration once its running tasks are done.
//!
//! Feed it board lines ([`WorkerCore::handle_line`]), the passing of time
//! ([`WorkerCore::handle_timeout`] at [`WorkerCore::poll_timeout`]) and the end of tasks
//! ([`WorkerCore::task_finished`]); take [`WorkerAction`]s out with
//! [`WorkerCore::poll_action`]. Time is Unix milliseconds, supplied by the caller.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

use p2p_proto::id::{FutureId, PeerId, WormholeCode};
use p2p_proto::limits::DEFAULT_MAX_PAYLOAD;
use p2p_proto::message::{
    BoardLine, Decline, DeclineReason, Hello, Message, Offer, Request, Role, TransferUri,
};
use p2p_proto::protocols::{self, Protocols};
use p2p_proto::seal::WorkerSecret;
use p2p_proto::time::{BoardTime, Expiry, Millis};

/// How long an offer stands, as in future.p2p 0.4.0.
pub const OFFER_TTL: Millis = 15_000;
/// How often a worker says hello; its hello expires after two intervals.
pub const HELLO_INTERVAL: Millis = 30_000;

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
}

impl WorkerConfig {
    /// One slot, no time limit, everyone allowed, payloads up to the common limit
    /// ([`DEFAULT_MAX_PAYLOAD`]), plain codes, no sessions.
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
        }
        Protocols::try_from(tokens).unwrap_or_else(|_| Protocols::future_p2p())
    }
}

/// How an accepted task's payload and result travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferMode {
    /// future.p2p: the payload as a wormhole file under `CODE-f`, the result under `CODE-r`.
    Files,
    /// A warm session under `CODE`: task and result as frames; further tasks follow on it.
    Session,
}

/// A task the worker was accepted for: fetch the payload, run it, return the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The client that gave the task.
    pub client: PeerId,
    /// The task.
    pub future: FutureId,
    /// The code, already unsealed.
    pub code: WormholeCode,
    /// How the payload and result travel.
    pub mode: TransferMode,
}

/// What the driver must do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerAction {
    /// Write this line to the board.
    Post(BoardLine),
    /// Receive and run an accepted task; report its end with [`WorkerCore::task_finished`].
    Run(Assignment),
    /// The client withdrew a task that is running: stop it.
    Interrupt {
        /// The client that withdrew it.
        client: PeerId,
        /// The task.
        future: FutureId,
    },
    /// The worker's duration is over and nothing runs any more.
    Stop,
}

#[derive(Debug, Clone)]
struct OpenRequest {
    client: PeerId,
    future: FutureId,
    expires: Millis,
    protocols: Protocols,
}

#[derive(Debug, Clone)]
struct Offered {
    request: OpenRequest,
    expires: Millis,
}

/// The worker state machine.
#[derive(Debug)]
pub struct WorkerCore {
    config: WorkerConfig,
    protocols: Protocols,
    /// Requests that can still be offered for, oldest first.
    requests: VecDeque<OpenRequest>,
    offers: HashMap<FutureId, Offered>,
    /// Running tasks and their clients.
    running: HashMap<FutureId, PeerId>,
    declined: HashSet<(PeerId, FutureId)>,
    next_hello: Millis,
    stopped: bool,
    actions: VecDeque<WorkerAction>,
}

impl WorkerCore {
    /// A worker that will say hello at `now`.
    pub fn new(config: WorkerConfig, now: Millis) -> Self {
        let protocols = config.protocols();
        WorkerCore {
            config,
            protocols,
            requests: VecDeque::new(),
            offers: HashMap::new(),
            running: HashMap::new(),
            declined: HashSet::new(),
            next_hello: now,
            stopped: false,
            actions: VecDeque::new(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// Tasks running now.
    pub fn running(&self) -> usize {
        self.running.len()
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
        let offers = self.offers.values().map(|o| o.expires);
        let requests = self.requests.iter().map(|r| r.expires);
        let hello = (!self.is_over(self.next_hello)).then_some(self.next_hello);
        offers
            .chain(requests)
            .chain(hello)
            .chain(self.config.until)
            .min()
    }

    fn is_over(&self, now: Millis) -> bool {
        self.config.until.is_some_and(|until| now >= until)
    }

    /// Time passed: hello, expire requests and offers, stop when the duration is over.
    pub fn handle_timeout(&mut self, now: Millis) {
        if self.stopped {
            return;
        }
        self.requests.retain(|r| r.expires > now);
        self.offers.retain(|_, o| o.expires > now);
        if self.is_over(now) {
            self.requests.clear();
            self.offers.clear();
            self.stop_if_idle();
            return;
        }
        if now >= self.next_hello {
            self.say_hello(now);
        }
        self.offer(now);
    }

    fn say_hello(&mut self, now: Millis) {
        self.next_hello = now + self.config.hello_interval;
        let mut expires = now + 2 * self.config.hello_interval;
        if let Some(until) = self.config.until {
            expires = expires.min(until);
        }
        self.post(
            now,
            Message::Hello(Hello {
                role: Role::Worker,
                from: self.config.me.clone(),
                expires: Expiry::from_unix_ms(expires),
                protocols: Some(self.protocols.clone()),
            }),
        );
    }

    fn post(&mut self, now: Millis, message: Message) {
        self.actions.push_back(WorkerAction::Post(BoardLine::new(
            BoardTime::from_unix_ms(now),
            message,
        )));
    }

    /// A line from the board.
    pub fn handle_line(&mut self, now: Millis, line: &BoardLine) {
        if self.stopped || line.message.from() == Some(&self.config.me) {
            return;
        }
        match &line.message {
            Message::Request(request) => self.on_request(now, request),
            Message::Accept(accept) => {
                if accept.to == self.config.me {
                    self.on_accept(&accept.from, &accept.future, &accept.via);
                } else if self
                    .offers
                    .get(&accept.future)
                    .is_some_and(|o| o.request.client == accept.from)
                {
                    // The client took another worker: the slot is free again.
                    self.offers.remove(&accept.future);
                }
            }
            Message::Withdraw(withdraw) => {
                let (client, future) = (&withdraw.from, &withdraw.future);
                self.requests
                    .retain(|r| !(r.client == *client && r.future == *future));
                if self
                    .offers
                    .get(future)
                    .is_some_and(|o| o.request.client == *client)
                {
                    self.offers.remove(future);
                }
                if self.running.get(future) == Some(client) {
                    self.actions.push_back(WorkerAction::Interrupt {
                        client: client.clone(),
                        future: future.clone(),
                    });
                }
            }
            _ => {}
        }
        self.offer(now);
    }

    fn on_request(&mut self, now: Millis, request: &Request) {
        if self.is_over(now) {
            return;
        }
        let expires = request.expires.unix_ms();
        if expires <= now
            || self.running.contains_key(&request.future)
            || self.offers.contains_key(&request.future)
        {
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
            if self
                .declined
                .insert((request.from.clone(), request.future.clone()))
            {
                self.post(
                    now,
                    Message::Decline(Decline {
                        from: self.config.me.clone(),
                        to: request.from.clone(),
                        future: request.future.clone(),
                        reason,
                    }),
                );
            }
            return;
        }
        let open = OpenRequest {
            client: request.from.clone(),
            future: request.future.clone(),
            expires,
            protocols: request.protocols.clone().unwrap_or_default(),
        };
        match self
            .requests
            .iter_mut()
            .find(|r| r.future == open.future && r.client == open.client)
        {
            Some(existing) => *existing = open,
            None => self.requests.push_back(open),
        }
    }

    /// Offers for the oldest open requests while slots are free.
    fn offer(&mut self, now: Millis) {
        if self.is_over(now) {
            return;
        }
        while self.running.len() + self.offers.len() < self.config.slots {
            let Some(request) = self.requests.pop_front() else {
                return;
            };
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
            self.offers
                .insert(request.future.clone(), Offered { request, expires });
        }
    }

    fn on_accept(&mut self, client: &PeerId, future: &FutureId, via: &TransferUri) {
        let Some(offered) = self.offers.get(future) else {
            return;
        };
        if offered.request.client != *client {
            return;
        }
        let code = match via {
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
        let Some(offered) = self.offers.remove(future) else {
            return;
        };
        let session =
            self.config.sessions && offered.request.protocols.supports(protocols::SESSION);
        self.running.insert(future.clone(), client.clone());
        self.actions.push_back(WorkerAction::Run(Assignment {
            client: client.clone(),
            future: future.clone(),
            code,
            mode: if session {
                TransferMode::Session
            } else {
                TransferMode::Files
            },
        }));
    }

    /// A task arrived over a warm session, outside the board: it takes a slot.
    pub fn session_task_started(&mut self, client: &PeerId, future: &FutureId) {
        self.running.insert(future.clone(), client.clone());
    }

    /// A task ended (result sent, failed, or interrupted): its slot is free.
    pub fn task_finished(&mut self, now: Millis, future: &FutureId) {
        self.running.remove(future);
        if self.is_over(now) {
            self.stop_if_idle();
        } else {
            self.offer(now);
        }
    }

    /// A task this worker took could not produce a result: tell its client why with a
    /// `decline` line (so it retries elsewhere instead of waiting) and free the slot.
    pub fn task_failed(&mut self, now: Millis, future: &FutureId, reason: DeclineReason) {
        if let Some(client) = self.running.get(future).cloned() {
            self.post(
                now,
                Message::Decline(Decline {
                    from: self.config.me.clone(),
                    to: client,
                    future: future.clone(),
                    reason,
                }),
            );
        }
        self.task_finished(now, future);
    }

    fn stop_if_idle(&mut self) {
        if self.running.is_empty() && !self.stopped {
            self.stopped = true;
            self.actions.push_back(WorkerAction::Stop);
        }
    }
}

#[cfg(test)]
mod tests;
