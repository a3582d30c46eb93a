//! What a worker is doing, said on its hellos: the futures it holds and whose they are,
//! and its payload transfers in flight (this project's extension, for `future-p2p status`).
//!
//! Four keys after the hello's own, in [`BoardLine::extra`](crate::message::BoardLine)
//! (future.p2p 0.4.0 keeps keys it does not know and ignores them):
//!
//! ```text
//!   tasks=run/carol@vm:3/f1;recv/carol@vm:3/f2;wait/dave@pc:9/g7    STATE/CLIENT/FUTURE
//!   tasks_more=12                                                  not listed
//!   xfers=in/carol@vm:3/f2/1048576/4194304                          DIR/CLIENT/FUTURE/DONE/TOTAL
//!   xfers_more=1
//! ```
//!
//! A board value may not hold `,` `=` or a line break; `;` and `/` never occur in a peer id
//! or a future id, so they separate entries and fields. A line is bounded (8 KiB): at most
//! [`MAX_LISTED`] entries of each kind are listed, and never more than [`MAX_VALUE_LEN`]
//! bytes in one value; the rest are counted in `*_more`. Decoding is strict: a malformed
//! entry is a [`LoadError`], never a panic.

use std::fmt;
use std::str::FromStr;

use crate::id::{FutureId, PeerId};

/// Entries listed at most per key; the rest are counted.
pub const MAX_LISTED: usize = 8;
/// Longest value of `tasks` or `xfers`: two of them leave most of a line free.
pub const MAX_VALUE_LEN: usize = 3000;

/// The keys, as written.
pub const TASKS: &str = "tasks";
/// Tasks not listed.
pub const TASKS_MORE: &str = "tasks_more";
/// Transfers in flight.
pub const XFERS: &str = "xfers";
/// Transfers not listed.
pub const XFERS_MORE: &str = "xfers_more";

/// Where a task a worker holds is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum TaskState {
    /// Running in a slot.
    Running,
    /// Its payload is on its way (files route; it holds a slot).
    Receiving,
    /// Came on a session and waits for a slot.
    Waiting,
}

impl TaskState {
    /// The word on the board.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Running => "run",
            TaskState::Receiving => "recv",
            TaskState::Waiting => "wait",
        }
    }
}

/// Which way a payload travels, seen from the worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    /// A task's payload, from its client.
    In,
    /// A result, to its client.
    Out,
}

impl Direction {
    /// The word on the board.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::In => "in",
            Direction::Out => "out",
        }
    }
}

/// One task a worker holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskLoad {
    /// Where it is.
    pub state: TaskState,
    /// Whose it is.
    pub client: PeerId,
    /// Which future.
    pub future: FutureId,
}

/// One payload moving between a worker and a client.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TransferLoad {
    /// Which way.
    pub direction: Direction,
    /// The client at the other end.
    pub client: PeerId,
    /// The future the payload belongs to.
    pub future: FutureId,
    /// Bytes moved so far (at most `total`).
    pub done: u64,
    /// The payload's size.
    pub total: u64,
}

/// What a worker holds and moves, as its hello says it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerLoad {
    /// Tasks listed.
    pub tasks: Vec<TaskLoad>,
    /// Tasks held but not listed.
    pub more_tasks: u64,
    /// Transfers listed.
    pub transfers: Vec<TransferLoad>,
    /// Transfers in flight but not listed.
    pub more_transfers: u64,
}

/// A malformed load key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// An entry of `key` does not have its fields.
    #[error("malformed {key} entry {entry:?}")]
    Entry {
        /// The key.
        key: &'static str,
        /// The entry, cut short.
        entry: String,
    },
    /// A count is not a number.
    #[error("{key} is not a count")]
    Count {
        /// The key.
        key: &'static str,
    },
}

impl WorkerLoad {
    /// The load of `tasks` and `transfers`, listing what fits (see the module notes) in the
    /// order given.
    pub fn listing(tasks: Vec<TaskLoad>, transfers: Vec<TransferLoad>) -> WorkerLoad {
        let (tasks, more_tasks) = cap(tasks, |t| entry_len(&t.to_string()));
        let (transfers, more_transfers) = cap(transfers, |t| entry_len(&t.to_string()));
        WorkerLoad {
            tasks,
            more_tasks,
            transfers,
            more_transfers,
        }
    }

    /// Tasks held in all.
    pub fn task_count(&self) -> u64 {
        self.tasks.len() as u64 + self.more_tasks
    }

    /// The keys and values for a hello's [`BoardLine::extra`](crate::message::BoardLine);
    /// empty lists and zero counts are left out.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        let mut list = |key: &str, entries: Vec<String>, more: u64, more_key: &str| {
            if !entries.is_empty() {
                pairs.push((key.to_owned(), entries.join(";")));
            }
            if more > 0 {
                pairs.push((more_key.to_owned(), more.to_string()));
            }
        };
        list(
            TASKS,
            self.tasks.iter().map(ToString::to_string).collect(),
            self.more_tasks,
            TASKS_MORE,
        );
        list(
            XFERS,
            self.transfers.iter().map(ToString::to_string).collect(),
            self.more_transfers,
            XFERS_MORE,
        );
        pairs
    }

    /// The load a hello's extra keys describe; `None` when it has none of them (a worker
    /// that does not say, or an idle one).
    pub fn from_pairs(pairs: &[(String, String)]) -> Result<Option<WorkerLoad>, LoadError> {
        let value = |key: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.as_str())
        };
        if [TASKS, TASKS_MORE, XFERS, XFERS_MORE]
            .iter()
            .all(|key| value(key).is_none())
        {
            return Ok(None);
        }
        let count = |key: &'static str| match value(key) {
            None => Ok(0),
            Some(v) => v.parse::<u64>().map_err(|_| LoadError::Count { key }),
        };
        Ok(Some(WorkerLoad {
            tasks: entries(value(TASKS), TASKS)?,
            more_tasks: count(TASKS_MORE)?,
            transfers: entries(value(XFERS), XFERS)?,
            more_transfers: count(XFERS_MORE)?,
        }))
    }
}

/// The first entries that fit [`MAX_LISTED`] and [`MAX_VALUE_LEN`], and how many did not.
fn cap<T>(items: Vec<T>, len: impl Fn(&T) -> usize) -> (Vec<T>, u64) {
    let total = items.len() as u64;
    let mut used = 0;
    let kept: Vec<T> = items
        .into_iter()
        .take(MAX_LISTED)
        .take_while(|item| {
            used += len(item);
            used <= MAX_VALUE_LEN
        })
        .collect();
    let more = total - kept.len() as u64;
    (kept, more)
}

/// An entry's length with its separator.
fn entry_len(entry: &str) -> usize {
    entry.len() + 1
}

fn entries<T: FromStr<Err = ()>>(
    value: Option<&str>,
    key: &'static str,
) -> Result<Vec<T>, LoadError> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    value
        .split(';')
        .map(|entry| {
            entry.parse().map_err(|()| LoadError::Entry {
                key,
                entry: entry.chars().take(80).collect(),
            })
        })
        .collect()
}

/// The client and future fields of an entry.
fn whose<'a>(fields: &mut impl Iterator<Item = &'a str>) -> Result<(PeerId, FutureId), ()> {
    let client = fields.next().ok_or(())?.parse().map_err(|_| ())?;
    let future = fields.next().ok_or(())?.parse().map_err(|_| ())?;
    Ok((client, future))
}

impl fmt::Display for TaskLoad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.state.as_str(), self.client, self.future)
    }
}

impl FromStr for TaskLoad {
    type Err = ();

    fn from_str(entry: &str) -> Result<Self, ()> {
        let mut fields = entry.split('/');
        let state = match fields.next() {
            Some("run") => TaskState::Running,
            Some("recv") => TaskState::Receiving,
            Some("wait") => TaskState::Waiting,
            _ => return Err(()),
        };
        let (client, future) = whose(&mut fields)?;
        if fields.next().is_some() {
            return Err(());
        }
        Ok(TaskLoad {
            state,
            client,
            future,
        })
    }
}

impl fmt::Display for TransferLoad {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{}/{}/{}",
            self.direction.as_str(),
            self.client,
            self.future,
            self.done,
            self.total
        )
    }
}

impl FromStr for TransferLoad {
    type Err = ();

    fn from_str(entry: &str) -> Result<Self, ()> {
        let mut fields = entry.split('/');
        let direction = match fields.next() {
            Some("in") => Direction::In,
            Some("out") => Direction::Out,
            _ => return Err(()),
        };
        let (client, future) = whose(&mut fields)?;
        let done: u64 = fields.next().ok_or(())?.parse().map_err(|_| ())?;
        let total: u64 = fields.next().ok_or(())?.parse().map_err(|_| ())?;
        if fields.next().is_some() || done > total {
            return Err(());
        }
        Ok(TransferLoad {
            direction,
            client,
            future,
            done,
            total,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{BoardLine, Hello, Message, Role};
    use crate::time::{BoardTime, Expiry};
    use proptest::prelude::*;

    fn task(state: TaskState, client: &str, future: &str) -> TaskLoad {
        TaskLoad {
            state,
            client: client.parse().unwrap(),
            future: future.parse().unwrap(),
        }
    }

    #[test]
    fn a_hello_carries_its_load_and_reads_it_back() {
        let load = WorkerLoad::listing(
            vec![
                task(TaskState::Running, "carol@vm:3", "f1"),
                task(TaskState::Waiting, "dave@pc:9", "g-7:1"),
            ],
            vec![TransferLoad {
                direction: Direction::In,
                client: "carol@vm:3".parse().unwrap(),
                future: "f2".parse().unwrap(),
                done: 1024,
                total: 4096,
            }],
        );
        let mut line = BoardLine::new(
            BoardTime::from_unix(1_795_698_440),
            Message::Hello(Hello {
                role: Role::Worker,
                from: "bob@vm:1".parse().unwrap(),
                expires: Expiry::Unix(1_795_698_500),
                protocols: None,
                slots: Some(2),
                busy: Some(1),
            }),
        );
        line.extra = load.to_pairs();
        let text = line.encode().unwrap();
        assert!(
            text.ends_with(
                ",slots=2,busy=1,tasks=run/carol@vm:3/f1;wait/dave@pc:9/g-7:1,xfers=in/carol@vm:3/f2/1024/4096"
            ),
            "{text}"
        );
        let back = crate::line::decode(&text).unwrap();
        assert_eq!(WorkerLoad::from_pairs(&back.extra), Ok(Some(load)));
    }

    #[test]
    fn long_lists_are_cut_and_counted() {
        let tasks: Vec<TaskLoad> = (0..20)
            .map(|n| task(TaskState::Running, "carol@vm:3", &format!("f{n}")))
            .collect();
        let load = WorkerLoad::listing(tasks, Vec::new());
        assert_eq!(load.tasks.len(), MAX_LISTED);
        assert_eq!(load.more_tasks, 12);
        assert_eq!(load.task_count(), 20);
        let pairs = load.to_pairs();
        assert_eq!(pairs[1], ("tasks_more".to_owned(), "12".to_owned()));
    }

    #[test]
    fn an_idle_or_silent_worker_has_no_load_and_bad_entries_are_errors() {
        assert_eq!(WorkerLoad::from_pairs(&[]), Ok(None));
        assert!(
            WorkerLoad::listing(Vec::new(), Vec::new())
                .to_pairs()
                .is_empty()
        );
        let pairs = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        for (key, value) in [
            ("tasks", "run/carol@vm:3"),
            ("tasks", "jog/carol@vm:3/f1"),
            ("tasks", "run/carol@vm:3/f1/x"),
            ("tasks", ""),
            ("xfers", "in/carol@vm:3/f1/5/4"),
            ("xfers", "up/carol@vm:3/f1/1/4"),
            ("tasks_more", "-1"),
        ] {
            assert!(
                WorkerLoad::from_pairs(&pairs(key, value)).is_err(),
                "{key}={value}"
            );
        }
    }

    fn arb_task() -> impl Strategy<Value = TaskLoad> {
        (
            0..3u8,
            "[a-z0-9]{1,50}",
            "[a-z0-9.-]{1,60}",
            any::<u32>(),
            "[A-Za-z0-9._:-]{1,128}",
        )
            .prop_map(|(s, user, host, pid, future)| TaskLoad {
                state: [TaskState::Running, TaskState::Receiving, TaskState::Waiting][s as usize],
                client: PeerId::new(&user, &host, pid).unwrap(),
                future: future.parse().unwrap(),
            })
    }

    fn arb_transfer() -> impl Strategy<Value = TransferLoad> {
        (arb_task(), any::<bool>(), any::<u64>(), any::<u64>()).prop_map(|(t, out, a, b)| {
            TransferLoad {
                direction: if out { Direction::Out } else { Direction::In },
                client: t.client,
                future: t.future,
                done: a.min(b),
                total: a.max(b),
            }
        })
    }

    proptest! {
        #[test]
        fn loads_round_trip_through_a_line_that_stays_bounded(
            tasks in proptest::collection::vec(arb_task(), 0..30),
            transfers in proptest::collection::vec(arb_transfer(), 0..30),
        ) {
            let n_tasks = tasks.len() as u64;
            let load = WorkerLoad::listing(tasks, transfers);
            prop_assert_eq!(load.task_count(), n_tasks);
            let mut line = BoardLine::new(
                BoardTime::from_unix(1_795_698_440),
                Message::Hello(Hello {
                    role: Role::Worker,
                    from: PeerId::new(&"u".repeat(50), &"h".repeat(130), u32::MAX).unwrap(),
                    expires: Expiry::Unix(1_795_698_500),
                    protocols: Some(crate::protocols::Protocols::ours()),
                    slots: Some(u32::MAX),
                    busy: Some(u32::MAX),
                }),
            );
            line.extra = load.to_pairs();
            // Whatever is listed, the hello is a valid line.
            let text = line.encode().unwrap();
            let back = crate::line::decode(&text).unwrap();
            let read = WorkerLoad::from_pairs(&back.extra).unwrap();
            if load == WorkerLoad::default() {
                prop_assert_eq!(read, None);
            } else {
                prop_assert_eq!(read, Some(load));
            }
        }

        #[test]
        fn any_value_decodes_or_errs_without_panicking(value in "[ -~]{0,200}") {
            for key in [TASKS, TASKS_MORE, XFERS, XFERS_MORE] {
                let _ = WorkerLoad::from_pairs(&[(key.to_owned(), value.clone())]);
            }
        }
    }
}
