//! The bridge's bookkeeping (sans-IO): which future of the R session is which scheduler
//! task, what R is told about each, and when the cluster looks unreachable.
//!
//! The driver (`cli::bridge`) feeds it the R session's requests and the scheduler's task
//! events, results and worker counts, and writes the [`Reply`]s it returns. Every future R
//! submits gets exactly one final reply (a `Result` or an `Error`); nothing is said about
//! it afterwards, so a late result or event of a cancelled task is dropped here.

use std::collections::HashMap;

use bytes::Bytes;
use p2p_proto::frame::RemoteErrorKind;
use p2p_proto::id::FutureId;
use p2p_proto::message::DeclineReason;
use p2p_scheduler::core::{TaskEvent, TaskId};
use p2p_scheduler::{AttemptError, SubmitError, TaskError, TaskUpdate};

use super::protocol::{ErrorKind, FutureState, Reply};

/// One future R submitted that has no final reply yet.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pending {
    /// `None` until the scheduler has taken it.
    task: Option<TaskId>,
    state: FutureState,
    detail: String,
}

/// See the module docs.
#[derive(Debug, Clone)]
pub struct BridgeSession {
    /// Makes scheduler future ids unique across R sessions (e.g. `r1234`).
    id_prefix: String,
    pending: HashMap<u32, Pending>,
    by_task: HashMap<TaskId, u32>,
    workers_seen: u32,
    /// Why futures cannot run, while the cluster looks unreachable.
    unreachable: Option<String>,
}

impl BridgeSession {
    /// A session whose scheduler future ids start with `id_prefix` (letters, digits, `-`).
    pub fn new(id_prefix: impl Into<String>) -> Self {
        BridgeSession {
            id_prefix: id_prefix.into(),
            pending: HashMap::new(),
            by_task: HashMap::new(),
            workers_seen: 0,
            unreachable: None,
        }
    }

    /// R submits future `id`: the scheduler's id for it, or the final reply refusing it.
    pub fn submit(&mut self, id: u32) -> Result<FutureId, Reply> {
        if id == 0 || self.pending.contains_key(&id) {
            return Err(Reply::Error {
                id,
                kind: ErrorKind::Protocol,
                message: format!("future id {id} is 0 or already in use in this session"),
            });
        }
        if let Some(reason) = &self.unreachable {
            return Err(Reply::Error {
                id,
                kind: ErrorKind::Cluster,
                message: reason.clone(),
            });
        }
        let future = format!("{}-{id}", self.id_prefix)
            .parse::<FutureId>()
            .map_err(|err| Reply::Error {
                id,
                kind: ErrorKind::Protocol,
                message: format!("cannot name future {id}: {err}"),
            })?;
        self.pending.insert(
            id,
            Pending {
                task: None,
                state: FutureState::Queued,
                detail: String::new(),
            },
        );
        Ok(future)
    }

    /// The scheduler took future `id` as `task`: its status for R.
    pub fn submitted(&mut self, id: u32, task: TaskId) -> Option<Reply> {
        let pending = self.pending.get_mut(&id)?;
        pending.task = Some(task);
        self.by_task.insert(task, id);
        Some(Reply::Status {
            id,
            state: pending.state,
            detail: pending.detail.clone(),
        })
    }

    /// R cancels future `id`: the task to cancel in the scheduler, if it has one. Its final
    /// reply comes when the scheduler reports the cancellation; a future the scheduler has
    /// not taken yet is answered at once.
    pub fn cancel(&mut self, id: u32) -> (Option<TaskId>, Option<Reply>) {
        match self.pending.get(&id).map(|pending| pending.task) {
            None => (None, None),
            Some(Some(task)) => (Some(task), None),
            Some(None) => {
                self.pending.remove(&id);
                (
                    None,
                    Some(Reply::Error {
                        id,
                        kind: ErrorKind::Remote(RemoteErrorKind::Cancelled),
                        message: "cancelled".into(),
                    }),
                )
            }
        }
    }

    /// What the scheduler reported about `task`, for R (`None`: nothing to say).
    pub fn task_update(&mut self, task: TaskId, update: TaskUpdate) -> Option<Reply> {
        let id = *self.by_task.get(&task)?;
        let pending = self.pending.get_mut(&id)?;
        let (state, detail) = match update {
            TaskUpdate::Progress(condition) => return Some(Reply::Condition { id, condition }),
            TaskUpdate::Event(event) => match event {
                TaskEvent::Queued | TaskEvent::Offered { .. } | TaskEvent::Declined { .. } => {
                    return None;
                }
                TaskEvent::Accepted { worker } => (FutureState::Sent, worker.to_string()),
                TaskEvent::Running { worker } => (FutureState::Running, worker.to_string()),
                TaskEvent::Requeued { worker } => (
                    FutureState::Queued,
                    format!("waited on worker {worker}; queued again for a free one"),
                ),
                TaskEvent::Retried { worker, error } => (
                    FutureState::Requeued,
                    format!("worker {worker} was lost ({error}); queued again"),
                ),
            },
        };
        pending.state = state;
        pending.detail = detail.clone();
        Some(Reply::Status { id, state, detail })
    }

    /// Future `id` ended in the scheduler: its final reply, unless it already had one.
    pub fn finished(&mut self, id: u32, outcome: Result<Bytes, SubmitError>) -> Option<Reply> {
        let pending = self.pending.remove(&id)?;
        if let Some(task) = pending.task {
            self.by_task.remove(&task);
        }
        Some(match outcome {
            Ok(result) => Reply::Result { id, result },
            Err(err) => Reply::Error {
                id,
                kind: error_kind(&err),
                message: err.to_string(),
            },
        })
    }

    /// R asks about future `id` (0: the worker counts).
    pub fn poll(&self, id: u32) -> Reply {
        if id == 0 {
            return self.workers();
        }
        match self.pending.get(&id) {
            Some(pending) => Reply::Status {
                id,
                state: pending.state,
                detail: pending.detail.clone(),
            },
            None => Reply::Error {
                id,
                kind: ErrorKind::Protocol,
                message: format!("no pending future with id {id} in this session"),
            },
        }
    }

    /// The worker slots seen on the board changed (the sum of the slots of the workers
    /// whose hellos stand): the new counts for R.
    pub fn workers_changed(&mut self, slots: usize) -> Reply {
        self.workers_seen = u32::try_from(slots).unwrap_or(u32::MAX);
        if slots > 0 {
            self.unreachable = None;
        }
        self.workers()
    }

    /// Worker slots: those seen on the board, free when none of our futures occupies them.
    pub fn workers(&self) -> Reply {
        let busy = self
            .pending
            .values()
            .filter(|p| matches!(p.state, FutureState::Sent | FutureState::Running))
            .count();
        let busy = u32::try_from(busy).unwrap_or(u32::MAX);
        Reply::Workers {
            total: self.workers_seen,
            free: self.workers_seen.saturating_sub(busy),
        }
    }

    /// The host has been seen: the cluster is reachable.
    pub fn cluster_seen(&mut self) {
        self.unreachable = None;
    }

    /// Neither the host nor any worker has shown up in time: every future still waiting
    /// for a worker fails with `reason`, and so do later ones until the cluster shows up.
    /// Returns the tasks to cancel in the scheduler and the final replies for R.
    pub fn cluster_unreachable(&mut self, reason: &str) -> (Vec<TaskId>, Vec<Reply>) {
        self.unreachable = Some(reason.to_owned());
        let waiting: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| matches!(p.state, FutureState::Queued | FutureState::Requeued))
            .map(|(id, _)| *id)
            .collect();
        let mut tasks = Vec::new();
        let mut replies = Vec::new();
        for id in waiting {
            if let Some(pending) = self.pending.remove(&id) {
                if let Some(task) = pending.task {
                    self.by_task.remove(&task);
                    tasks.push(task);
                }
                replies.push(Reply::Error {
                    id,
                    kind: ErrorKind::Cluster,
                    message: reason.to_owned(),
                });
            }
        }
        (tasks, replies)
    }

    /// Futures without a final reply yet.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// The kind R sees for `err`: a task that failed the same way on every try is that kind of
/// failure (a time limit stays a time limit); other exhausted retries, and a scheduler that
/// stopped, have kinds of their own.
fn error_kind(err: &SubmitError) -> ErrorKind {
    match err {
        SubmitError::Task(TaskError::Cancelled) => ErrorKind::Remote(RemoteErrorKind::Cancelled),
        SubmitError::Task(TaskError::TimedOut { .. }) => {
            ErrorKind::Remote(RemoteErrorKind::TimeLimit)
        }
        SubmitError::Task(TaskError::Undeliverable { .. }) => ErrorKind::Exhausted,
        SubmitError::Task(TaskError::Exhausted { last, .. }) => match last {
            AttemptError::Remote(remote) => ErrorKind::Remote(remote.kind),
            AttemptError::Declined(DeclineReason::NotAllowed) => {
                ErrorKind::Remote(RemoteErrorKind::Refused)
            }
            AttemptError::Declined(DeclineReason::TooLarge) => {
                ErrorKind::Remote(RemoteErrorKind::PayloadTooLarge)
            }
            AttemptError::Declined(DeclineReason::TimeLimit) => {
                ErrorKind::Remote(RemoteErrorKind::TimeLimit)
            }
            _ => ErrorKind::Exhausted,
        },
        SubmitError::PayloadTooLarge { .. } => ErrorKind::Remote(RemoteErrorKind::PayloadTooLarge),
        SubmitError::Stopped(_) => ErrorKind::Cluster,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use p2p_proto::id::PeerId;
    use proptest::prelude::*;
    use std::collections::HashSet;

    #[test]
    fn a_failure_of_one_kind_on_every_try_reaches_r_as_that_kind() {
        let exhausted = |last| {
            SubmitError::Task(TaskError::Exhausted {
                tried: vec![worker()],
                last,
            })
        };
        let time_limit = AttemptError::Remote(p2p_proto::frame::RemoteError {
            kind: RemoteErrorKind::TimeLimit,
            message: "ran past 1s".into(),
        });
        assert_eq!(
            error_kind(&exhausted(time_limit)),
            ErrorKind::Remote(RemoteErrorKind::TimeLimit)
        );
        assert_eq!(
            error_kind(&exhausted(AttemptError::Declined(DeclineReason::TimeLimit))),
            ErrorKind::Remote(RemoteErrorKind::TimeLimit)
        );
        assert_eq!(
            error_kind(&exhausted(AttemptError::Declined(
                DeclineReason::NotAllowed
            ))),
            ErrorKind::Remote(RemoteErrorKind::Refused)
        );
        assert_eq!(
            error_kind(&exhausted(AttemptError::NotStarted)),
            ErrorKind::Exhausted
        );
        assert_eq!(
            error_kind(&SubmitError::Task(TaskError::Cancelled)),
            ErrorKind::Remote(RemoteErrorKind::Cancelled)
        );
        assert_eq!(
            error_kind(&SubmitError::Task(TaskError::TimedOut {
                worker: worker(),
                limit: p2p_scheduler::TimeLimit::Client { millis: 1_000 },
            })),
            ErrorKind::Remote(RemoteErrorKind::TimeLimit)
        );
        assert_eq!(
            error_kind(&SubmitError::Stopped(
                p2p_scheduler::StopReason::BoardClosed
            )),
            ErrorKind::Cluster
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Submit(u32),
        Cancel(u32),
        Event(u32, u8),
        Progress(u32),
        Finish(u32, u8),
        Workers(usize),
        Unreachable,
        ClusterSeen,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u32..8).prop_map(Op::Submit),
            (0u32..8).prop_map(Op::Cancel),
            ((0u32..8), 0u8..7).prop_map(|(id, e)| Op::Event(id, e)),
            (0u32..8).prop_map(Op::Progress),
            ((0u32..8), 0u8..4).prop_map(|(id, o)| Op::Finish(id, o)),
            (0usize..5).prop_map(Op::Workers),
            Just(Op::Unreachable),
            Just(Op::ClusterSeen),
        ]
    }

    fn worker() -> PeerId {
        PeerId::new("bob", "box", 1).unwrap()
    }

    fn final_id(reply: &Reply) -> Option<u32> {
        match reply {
            Reply::Result { id, .. } | Reply::Error { id, .. } => Some(*id),
            _ => None,
        }
    }

    proptest! {
        /// Whatever R and the scheduler do, in any order: every accepted future gets
        /// exactly one final reply, nothing is said about a future after it, free workers
        /// never exceed the total, and the two maps agree.
        #[test]
        fn one_final_reply_per_future(ops in proptest::collection::vec(op(), 0..60)) {
            let mut session = BridgeSession::new("r1");
            let mut next_task: TaskId = 100;
            let mut tasks: HashMap<u32, TaskId> = HashMap::new();
            let mut accepted: HashSet<u32> = HashSet::new();
            let mut finished: HashSet<u32> = HashSet::new();
            let mut replies = Vec::new();
            for op in ops {
                match op {
                    Op::Submit(id) => match session.submit(id) {
                        Ok(future) => {
                            prop_assert!(!accepted.contains(&id) || finished.contains(&id));
                            let suffix = format!("-{id}");
                            prop_assert!(future.as_str().ends_with(&suffix));
                            accepted.insert(id);
                            finished.remove(&id);
                            next_task += 1;
                            tasks.insert(id, next_task);
                            replies.extend(session.submitted(id, next_task));
                        }
                        Err(reply) => {
                            prop_assert_eq!(final_id(&reply), Some(id));
                            // A refusal is not about an accepted future.
                            continue;
                        }
                    },
                    Op::Cancel(id) => replies.extend(session.cancel(id).1),
                    Op::Event(id, e) => {
                        let task = tasks.get(&id).copied().unwrap_or(1);
                        let event = match e {
                            0 => TaskEvent::Queued,
                            1 => TaskEvent::Offered { worker: worker() },
                            2 => TaskEvent::Accepted { worker: worker() },
                            3 => TaskEvent::Running { worker: worker() },
                            4 => TaskEvent::Retried { worker: worker(), error: AttemptError::Vanished },
                            5 => TaskEvent::Requeued { worker: worker() },
                            _ => TaskEvent::Declined { worker: worker(), reason: p2p_proto::message::DeclineReason::TooLarge },
                        };
                        replies.extend(session.task_update(task, TaskUpdate::Event(event)));
                    }
                    Op::Progress(id) => {
                        let task = tasks.get(&id).copied().unwrap_or(1);
                        replies.extend(session.task_update(task, TaskUpdate::Progress(Bytes::from_static(b"c"))));
                    }
                    Op::Finish(id, o) => {
                        let outcome = match o {
                            0 => Ok(Bytes::from_static(b"r")),
                            1 => Err(SubmitError::Task(TaskError::Cancelled)),
                            2 => Err(SubmitError::Stopped(p2p_scheduler::StopReason::BoardClosed)),
                            _ => Err(SubmitError::Task(TaskError::Exhausted { tried: vec![worker()], last: AttemptError::NotStarted })),
                        };
                        replies.extend(session.finished(id, outcome));
                    }
                    Op::Workers(n) => replies.push(session.workers_changed(n)),
                    Op::Unreachable => replies.extend(session.cluster_unreachable("no host").1),
                    Op::ClusterSeen => session.cluster_seen(),
                }
                // Check the replies of this step.
                for reply in replies.drain(..) {
                    match &reply {
                        Reply::Workers { total, free } => prop_assert!(free <= total),
                        Reply::Hello(_) => prop_assert!(false, "the session never says hello"),
                        _ => {}
                    }
                    let id = match &reply {
                        Reply::Status { id, .. } | Reply::Condition { id, .. }
                        | Reply::Result { id, .. } | Reply::Error { id, .. } => Some(*id),
                        _ => None,
                    };
                    if let Some(id) = id {
                        prop_assert!(accepted.contains(&id), "reply about unknown future {}", id);
                        prop_assert!(!finished.contains(&id), "reply after the final one: {:?}", reply);
                    }
                    if let Some(id) = final_id(&reply) {
                        finished.insert(id);
                    }
                }
                prop_assert_eq!(session.pending.len() + finished.len(), accepted.len());
                for (task, id) in &session.by_task {
                    prop_assert_eq!(session.pending.get(id).and_then(|p| p.task), Some(*task));
                }
            }
        }
    }

    #[test]
    fn unreachable_cluster_fails_waiting_futures_and_refuses_new_ones() {
        let mut session = BridgeSession::new("r1");
        session.submit(1).unwrap();
        session.submitted(1, 7);
        let (tasks, replies) = session.cluster_unreachable("ask alice");
        assert_eq!(tasks, vec![7]);
        assert!(matches!(
            &replies[..],
            [Reply::Error { id: 1, kind: ErrorKind::Cluster, message }] if message == "ask alice"
        ));
        assert!(matches!(
            session.submit(2),
            Err(Reply::Error {
                kind: ErrorKind::Cluster,
                ..
            })
        ));
        session.workers_changed(1);
        assert!(session.submit(2).is_ok());
    }
}
