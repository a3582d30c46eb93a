//! `future-p2p user`, `ls` and `status`: who am I, which clusters do I host, and what a
//! cluster has: its host, its workers with their slots (busy and free), the futures each
//! holds and whose they are, the payloads moving between workers and clients, other
//! clients and open requests. `status` says hello as a client, which every worker answers
//! at once with a hello that lists its work (`p2p_proto::load`), so it takes about
//! `--listen` (1 s). Its exit status says whether the cluster can run work
//! ([`EXIT_CODES`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use clap::Args;
use p2p_proto::id::{ClusterName, PeerId};
use p2p_proto::load::{Direction, TaskState, WorkerLoad};
use p2p_proto::message::{BoardLine, Hello, Message, Role};
use p2p_proto::time::{BoardTime, Expiry};
use p2p_transport::clock::unix_ms;
use serde::Serialize;

use crate::CliError;
use crate::connect::BoardArgs;
use crate::units::parse_duration;
use p2p_cluster::tasklog::human_size;

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(flatten)]
    pub board: BoardArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub board: BoardArgs,
    /// The cluster, `OWNER/NAME` (or `NAME` for one of your own).
    #[arg(long, env = "FUTURE_P2P_CLUSTER")]
    pub cluster: String,
    /// How long to listen for the answers to our hello (every worker answers at once).
    #[arg(long, env = "FUTURE_P2P_LISTEN", value_parser = parse_duration, default_value = "1")]
    pub listen: Duration,
    /// Print the status as JSON (for scripts); the exit status is the same.
    #[arg(long, conflicts_with = "tsv")]
    pub json: bool,
    /// Print one tab-separated line per peer (role, id, slots, busy, futures, transfers),
    /// with a header; R's `future.p2p::p2p_status()` reads it.
    #[arg(long)]
    pub tsv: bool,
}

pub async fn user(args: UserArgs) -> Result<(), CliError> {
    let board = args.board.connect().await?;
    println!("{}", args.board.username(&board).await?);
    Ok(())
}

/// The clusters in an `ls` listing: topics with an access list, and their members.
pub fn hosted_clusters(listing: &str) -> Vec<(String, String)> {
    listing
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("- ")?;
            let (topic, access) = rest.split_once(": (Access List: ")?;
            Some((
                topic.to_owned(),
                access.trim_end().trim_end_matches(')').to_owned(),
            ))
        })
        .collect()
}

pub async fn ls(args: UserArgs) -> Result<(), CliError> {
    let board = args.board.connect().await?;
    let clusters = hosted_clusters(&board.ls().await?);
    if clusters.is_empty() {
        println!("no clusters hosted");
    }
    for (topic, members) in clusters {
        // 0.4.0-style topics are named after their cluster; others are seed-era clusters.
        match topic.strip_suffix(ClusterName::FUTURE_P2P_SUFFIX) {
            Some(cluster) => println!("{cluster} members: {members}"),
            None => println!("{topic} (seed topic) members: {members}"),
        }
    }
    Ok(())
}

/// What a status check saw on a cluster's topic (sans-IO: [`Census::observe`] takes
/// lines, [`Census::status`] says what they add up to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterStatus {
    /// The cluster, `OWNER/NAME`.
    pub cluster: String,
    /// The host's peer id, if its `type=cluster` hello was seen.
    pub host: Option<String>,
    /// Every worker that said hello, by id.
    pub workers: Vec<WorkerStatus>,
    /// Slots of all workers together.
    pub slots: u32,
    /// Slots holding a task, as the workers said (workers that do not say count as idle).
    pub busy: u32,
    /// Other clients that said hello while we listened.
    pub clients: Vec<String>,
    /// Futures requested and not yet taken, among the lines seen.
    pub open_requests: usize,
    /// How long we listened, in milliseconds.
    pub listened_ms: u64,
}

/// The exit statuses of `future-p2p status`, for `--help` and the README.
pub const EXIT_CODES: &str = "Exit status: 0 the cluster can run work (its host and at least one worker answered); \
1 the check itself failed (board unreachable, bad key or options); 2 bad command line; \
3 the host answered but no worker did; 4 no host answered, or the board refused the \
cluster (wrong name, or you are not on its access list).";

/// One worker as its last hello described it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerStatus {
    /// Its peer id (`user@host:pid`).
    pub id: String,
    /// Tasks it runs at once.
    pub slots: u32,
    /// Of those, how many hold a task (`None`: the worker does not say, e.g. future.p2p).
    pub busy: Option<u32>,
    /// The futures it holds, as many as its hello lists (`[]`: none, or it does not say).
    pub futures: Vec<FutureStatus>,
    /// Futures it holds beyond those listed.
    pub more_futures: u64,
    /// Payloads moving between it and clients.
    pub transfers: Vec<TransferStatus>,
    /// Transfers beyond those listed.
    pub more_transfers: u64,
}

/// A future a worker holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FutureStatus {
    /// The future's id, as its client named it.
    pub future: String,
    /// Whose it is: the client's peer id (`user@host:pid`).
    pub client: String,
    /// `running`, `receiving` (its payload is on its way) or `waiting` (for a slot).
    pub state: &'static str,
}

/// A payload moving between a worker and a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TransferStatus {
    /// The future it belongs to.
    pub future: String,
    /// The client at the other end.
    pub client: String,
    /// `to worker` (a task's payload) or `to client` (a result).
    pub direction: &'static str,
    /// Bytes moved so far.
    pub done: u64,
    /// The payload's size in bytes.
    pub total: u64,
}

impl WorkerStatus {
    /// A worker of `slots` slots, `busy` of them in use, doing what `load` says.
    fn new(id: String, slots: u32, busy: Option<u32>, load: WorkerLoad) -> WorkerStatus {
        WorkerStatus {
            id,
            slots,
            busy,
            futures: load
                .tasks
                .into_iter()
                .map(|task| FutureStatus {
                    future: task.future.to_string(),
                    client: task.client.to_string(),
                    state: match task.state {
                        TaskState::Running => "running",
                        TaskState::Receiving => "receiving",
                        TaskState::Waiting => "waiting",
                    },
                })
                .collect(),
            more_futures: load.more_tasks,
            transfers: load
                .transfers
                .into_iter()
                .map(|t| TransferStatus {
                    future: t.future.to_string(),
                    client: t.client.to_string(),
                    direction: match t.direction {
                        Direction::In => "to worker",
                        Direction::Out => "to client",
                    },
                    done: t.done,
                    total: t.total,
                })
                .collect(),
            more_transfers: load.more_transfers,
        }
    }

    /// The futures column of `--tsv`: `FUTURE CLIENT STATE` entries joined by `; `.
    fn futures_cell(&self) -> String {
        let mut cell: Vec<String> = self
            .futures
            .iter()
            .map(|f| format!("{} {} {}", f.future, f.client, f.state))
            .collect();
        if self.more_futures > 0 {
            cell.push(format!("+{} more", self.more_futures));
        }
        cell.join("; ")
    }

    /// The transfers column of `--tsv`: `FUTURE DIRECTION CLIENT DONE/TOTAL` entries.
    fn transfers_cell(&self) -> String {
        let mut cell: Vec<String> = self
            .transfers
            .iter()
            .map(|t| {
                format!(
                    "{} {} {} {}/{}",
                    t.future, t.direction, t.client, t.done, t.total
                )
            })
            .collect();
        if self.more_transfers > 0 {
            cell.push(format!("+{} more", self.more_transfers));
        }
        cell.join("; ")
    }
}

impl ClusterStatus {
    /// Whether the cluster can run work: a host and at least one worker.
    pub fn healthy(&self) -> bool {
        self.host.is_some() && !self.workers.is_empty()
    }

    /// One line per peer under a header: `role id slots busy futures transfers`,
    /// tab-separated, empty where a peer does not say.
    pub fn tsv(&self) -> String {
        let mut out = String::from("role\tid\tslots\tbusy\tfutures\ttransfers\n");
        if let Some(host) = &self.host {
            out.push_str(&format!("host\t{host}\t\t\t\t\n"));
        }
        for worker in &self.workers {
            let busy = worker.busy.map(|b| b.to_string()).unwrap_or_default();
            out.push_str(&format!(
                "worker\t{}\t{}\t{busy}\t{}\t{}\n",
                worker.id,
                worker.slots,
                worker.futures_cell(),
                worker.transfers_cell()
            ));
        }
        for client in &self.clients {
            out.push_str(&format!("client\t{client}\t\t\t\t\n"));
        }
        out
    }

    /// What the exit status says ([`EXIT_CODES`]): 0 healthy, 3 no worker, 4 no host.
    pub fn exit_code(&self) -> u8 {
        match (self.host.is_some(), self.workers.is_empty()) {
            (true, false) => 0,
            (true, true) => 3,
            (false, _) => 4,
        }
    }

    /// The screen `future-p2p status` prints.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(out, "cluster {}", self.cluster);
        match &self.host {
            Some(host) => {
                let _ = writeln!(out, "host    {host}");
            }
            None => {
                let _ = writeln!(
                    out,
                    "host    not seen (is the cluster hosted, and are you on its access list?)"
                );
            }
        }
        let _ = writeln!(
            out,
            "workers {} with {} slot(s): {} busy, {} free",
            self.workers.len(),
            self.slots,
            self.busy,
            self.slots.saturating_sub(self.busy)
        );
        for worker in &self.workers {
            let busy = worker
                .busy
                .map_or_else(|| "?".to_owned(), |busy| busy.to_string());
            let _ = writeln!(
                out,
                "  {:<32} slots {:>3}  busy {:>3}",
                worker.id, worker.slots, busy
            );
            for future in &worker.futures {
                let _ = writeln!(
                    out,
                    "    {:<9} {:<28} for {}",
                    future.state, future.future, future.client
                );
            }
            if worker.more_futures > 0 {
                let _ = writeln!(out, "    +{} more futures", worker.more_futures);
            }
        }
        let transfers: Vec<(&WorkerStatus, &TransferStatus)> = self
            .workers
            .iter()
            .flat_map(|w| w.transfers.iter().map(move |t| (w, t)))
            .collect();
        let more: u64 = self.workers.iter().map(|w| w.more_transfers).sum();
        let _ = writeln!(out, "transfers {}", transfers.len() as u64 + more);
        for (worker, t) in transfers {
            let (from, to) = match t.direction {
                "to worker" => (&t.client, &worker.id),
                _ => (&worker.id, &t.client),
            };
            let _ = writeln!(
                out,
                "  {:<28} {from} -> {to}  {} / {} ({})",
                t.future,
                human_size(t.done),
                human_size(t.total),
                percent(t.done, t.total)
            );
        }
        if more > 0 {
            let _ = writeln!(out, "  +{more} more");
        }
        let _ = writeln!(out, "clients {}", self.clients.len());
        for client in &self.clients {
            let _ = writeln!(out, "  {client}");
        }
        let _ = writeln!(
            out,
            "open requests {} (seen in {:.1} s)",
            self.open_requests,
            self.listened_ms as f64 / 1000.0
        );
        out
    }
}

/// Hellos and requests seen on a topic.
#[derive(Debug, Default, Clone)]
pub struct Census {
    host: Option<String>,
    workers: BTreeMap<String, WorkerStatus>,
    clients: BTreeSet<String>,
    requests: BTreeSet<(String, String)>,
    /// Until when (Unix s) each peer's last hello, and each request, stands.
    expires: BTreeMap<Seen, i64>,
}

/// What a [`Census`] entry is, for its expiry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Seen {
    Peer(String),
    Request(String, String),
}

impl Census {
    /// Takes one line of the topic in; lines that are not board messages are ignored.
    pub fn observe(&mut self, line: &str) {
        let Ok(decoded) = p2p_proto::line::decode(line) else {
            return;
        };
        match decoded.message {
            Message::Hello(hello) => {
                let id = hello.from.to_string();
                self.expires
                    .insert(Seen::Peer(id.clone()), hello.expires.unix_seconds());
                match hello.role {
                    Role::Cluster => self.host = Some(id),
                    Role::Client => {
                        self.clients.insert(id);
                    }
                    Role::Worker => {
                        let slots = hello.slots.unwrap_or(1).max(1);
                        // A listing we cannot read shows no work rather than no worker.
                        let load = WorkerLoad::from_pairs(&decoded.extra)
                            .ok()
                            .flatten()
                            .unwrap_or_default();
                        let status = WorkerStatus::new(
                            id.clone(),
                            slots,
                            hello.busy.map(|busy| busy.min(slots)),
                            load,
                        );
                        self.workers.insert(id, status);
                    }
                }
            }
            Message::Request(request) => {
                let key = (request.from.to_string(), request.future.to_string());
                self.expires.insert(
                    Seen::Request(key.0.clone(), key.1.clone()),
                    request.expires.unix_seconds(),
                );
                self.requests.insert(key);
            }
            Message::Accept(accept) => {
                self.requests
                    .remove(&(accept.from.to_string(), accept.future.to_string()));
            }
            Message::Withdraw(withdraw) => {
                self.requests
                    .remove(&(withdraw.from.to_string(), withdraw.future.to_string()));
            }
            _ => {}
        }
    }

    /// Forgets the peers whose last hello, and the requests that, lapsed before `now`
    /// (Unix s): a live view shows who is there now, not who ever was.
    pub fn forget_lapsed(&mut self, now: i64) {
        let lapsed: Vec<Seen> = self
            .expires
            .iter()
            .filter(|(_, expires)| **expires < now)
            .map(|(seen, _)| seen.clone())
            .collect();
        for seen in lapsed {
            self.expires.remove(&seen);
            match seen {
                Seen::Peer(id) => {
                    if self.host.as_deref() == Some(id.as_str()) {
                        self.host = None;
                    }
                    self.workers.remove(&id);
                    self.clients.remove(&id);
                }
                Seen::Request(from, future) => {
                    self.requests.remove(&(from, future));
                }
            }
        }
    }

    /// What the lines so far add up to; `me` (the status check's own hello) is left out.
    pub fn status(&self, cluster: &str, me: &str, listened: Duration) -> ClusterStatus {
        let workers: Vec<WorkerStatus> = self.workers.values().cloned().collect();
        ClusterStatus {
            cluster: cluster.to_owned(),
            host: self.host.clone(),
            slots: workers.iter().map(|w| w.slots).sum(),
            busy: workers.iter().filter_map(|w| w.busy).sum(),
            workers,
            clients: self.clients.iter().filter(|c| *c != me).cloned().collect(),
            open_requests: self.requests.len(),
            listened_ms: listened.as_millis() as u64,
        }
    }
}

/// `done` of `total` as a percentage (a payload of nothing is done).
fn percent(done: u64, total: u64) -> String {
    if total == 0 {
        return "100%".to_owned();
    }
    format!(
        "{}%",
        (u128::from(done.min(total)) * 100 / u128::from(total))
    )
}

/// A client's hello from `me`: every worker answers a client it has not seen with a hello
/// of its own at once, which is what makes a status check take a second, not an interval.
pub(crate) fn status_hello(me: &PeerId, lasts: Duration) -> Option<String> {
    let now = (unix_ms() / 1000) as i64;
    BoardLine::new(
        BoardTime::from_unix(now),
        Message::Hello(Hello {
            role: Role::Client,
            from: me.clone(),
            expires: Expiry::Unix(now + lasts.as_secs().max(1) as i64),
            protocols: None,
            slots: None,
            busy: None,
        }),
    )
    .encode()
    .ok()
}

pub async fn status(args: StatusArgs) -> Result<(), CliError> {
    let cluster: ClusterName = args.cluster.parse()?;
    let started = std::time::Instant::now();
    // No warning about a missing host here: saying whether one was seen is the point.
    let joined = args.board.join(&cluster, None).await?;
    let qualified = cluster.qualified(&joined.user)?.to_string();
    let mut lines = joined.lines;
    let mut refusals = joined.refusals;
    if let Some(hello) = status_hello(&joined.me, args.listen) {
        let _ = lines.outgoing.send(hello).await;
    }
    let mut census = Census::default();
    let listen = tokio::time::sleep(args.listen);
    tokio::pin!(listen);
    loop {
        tokio::select! {
            line = lines.incoming.recv() => match line {
                Some(line) => census.observe(&line),
                None => break,
            },
            _ = &mut listen => break,
            // The board refused the topic (a wrong name, not on its list): nothing more
            // will come.
            Ok(()) = refusals.changed() => {
                if refusals.borrow_and_update().is_some() {
                    break;
                }
            }
        }
    }
    let status = census.status(&qualified, &joined.me.to_string(), started.elapsed());
    if args.json {
        let json = serde_json::to_string_pretty(&status)
            .map_err(|err| std::io::Error::other(format!("encoding the status: {err}")))?;
        println!("{json}");
    } else if args.tsv {
        print!("{}", status.tsv());
    } else {
        print!("{}", status.render());
    }
    let refused = refusals.borrow().clone();
    if status.healthy() {
        Ok(())
    } else if let Some(said) = refused {
        Err(p2p_cluster::ClusterError::Refused {
            cluster: qualified,
            user: joined.user,
            said,
        }
        .into())
    } else {
        Err(CliError::Unhealthy {
            cluster: qualified,
            host_seen: status.host.is_some(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clusters_are_the_topics_with_access_lists() {
        let listing = "Channel Information\r\n- alice/p2p: (Access List: bob, carol)\r\n  Pipes:\r\n  - x\r\n- alice/tmp:\r\n";
        assert_eq!(
            hosted_clusters(listing),
            vec![("alice/p2p".to_owned(), "bob, carol".to_owned())]
        );
    }

    #[test]
    fn census_adds_up_hellos_and_requests() {
        let host = p2p_proto::id::PeerId::new("alice", "box", 7).unwrap();
        let mut census = Census::default();
        census.observe(&crate::host::cluster_hello(&host, Duration::from_secs(5)).unwrap());
        census.observe("garbage");
        census.observe("when=2026-11-26T10:00:00,expires=1795698440,type=worker,from=bob@vm:1,protocols=wormhole,slots=4,busy=3");
        // A later hello replaces the earlier one; a worker that does not count (0.4.0) has
        // one slot of unknown use.
        census.observe("when=2026-11-26T10:00:01,expires=1795698440,type=worker,from=bob@vm:1,protocols=wormhole,slots=4,busy=1");
        census.observe("when=2026-11-26T10:00:01,expires=1795698440,type=worker,from=dave@vm:2");
        census.observe("when=2026-11-26T10:00:01,expires=1795698440,type=client,from=carol@vm:3");
        census.observe("when=2026-11-26T10:00:01,expires=1795698440,type=client,from=alice@box:9");
        census.observe("when=2026-11-26T10:00:02,expires=1795698440,type=request,from=carol@vm:3,future=f1,size=10");
        census.observe("when=2026-11-26T10:00:02,expires=1795698440,type=request,from=carol@vm:3,future=f2,size=10");
        census.observe("when=2026-11-26T10:00:03,expires=1795698440,type=accept,from=carol@vm:3,to=bob@vm:1,future=f1,via=wormhole://3141-0a3f9c1b2e4d");
        let status = census.status("alice/p2p", "alice@box:9", Duration::from_millis(1500));
        assert_eq!(status.host.as_deref(), Some("alice@box:7"));
        assert_eq!(status.slots, 5);
        assert_eq!(status.busy, 1);
        assert_eq!(status.workers[0].busy, Some(1));
        assert_eq!(status.workers[1].busy, None);
        assert_eq!(status.clients, vec!["carol@vm:3".to_owned()]);
        assert_eq!(status.open_requests, 1);
        assert!(status.healthy());
        let screen = status.render();
        assert!(
            screen.contains("workers 2 with 5 slot(s): 1 busy, 4 free"),
            "{screen}"
        );
        assert!(screen.contains("bob@vm:1"), "{screen}");
        assert_eq!(
            status.tsv(),
            "role\tid\tslots\tbusy\tfutures\ttransfers\nhost\talice@box:7\t\t\t\t\nworker\tbob@vm:1\t4\t1\t\t\nworker\tdave@vm:2\t1\t\t\t\nclient\tcarol@vm:3\t\t\t\t\n"
        );
        assert_eq!(status.exit_code(), 0);
        let json: serde_json::Value = serde_json::to_value(&status).unwrap();
        assert_eq!(json["workers"][0]["slots"], 4);
    }

    #[test]
    fn lapsed_hellos_and_requests_are_forgotten() {
        let mut census = Census::default();
        census.observe("when=2026-11-26T10:00:00,expires=1000,type=worker,from=bob@vm:1,slots=2");
        census.observe("when=2026-11-26T10:00:00,expires=2000,type=worker,from=dave@vm:2");
        census.observe("when=2026-11-26T10:00:00,expires=1000,type=client,from=carol@vm:3");
        census.observe("when=2026-11-26T10:00:00,expires=1000,type=cluster,from=alice@box:7");
        census.observe(
            "when=2026-11-26T10:00:00,expires=1000,type=request,from=carol@vm:3,future=f1,size=1",
        );
        census.forget_lapsed(999);
        assert_eq!(
            census
                .status("alice/p2p", "me", Duration::ZERO)
                .workers
                .len(),
            2
        );
        census.forget_lapsed(1001);
        let status = census.status("alice/p2p", "me", Duration::ZERO);
        assert_eq!(status.workers.len(), 1);
        assert_eq!(status.workers[0].id, "dave@vm:2");
        assert!(status.clients.is_empty() && status.host.is_none());
        assert_eq!(status.open_requests, 0);
    }

    #[test]
    fn a_cluster_without_host_or_workers_is_not_healthy() {
        let status = Census::default().status("alice/p2p", "me", Duration::ZERO);
        assert!(!status.healthy());
        assert_eq!(status.exit_code(), 4);
        assert!(status.render().contains("host    not seen"));
        let mut census = Census::default();
        census.observe("when=2026-11-26T10:00:00,expires=1795698440,type=cluster,from=alice@box:7");
        assert_eq!(
            census.status("alice/p2p", "me", Duration::ZERO).exit_code(),
            3
        );
    }

    #[test]
    fn the_screen_shows_whose_futures_run_where_and_what_moves() {
        let mut census = Census::default();
        census.observe("when=2026-11-26T10:00:00,expires=1795698440,type=cluster,from=alice@box:7");
        census.observe("when=2026-11-26T10:00:00,expires=1795698440,type=worker,from=bob@vm:1,slots=2,busy=2,tasks=run/carol@vm:3/f1;recv/dave@pc:4/g1,tasks_more=3,xfers=in/dave@pc:4/g1/1048576/4194304");
        // A listing that does not parse costs the work, not the worker.
        census.observe("when=2026-11-26T10:00:00,expires=1795698440,type=worker,from=erin@vm:5,slots=1,busy=1,tasks=run/nonsense");
        let status = census.status("alice/p2p", "me", Duration::from_millis(1100));
        let screen = status.render();
        for expected in [
            "    running   f1                           for carol@vm:3\n",
            "    receiving g1                           for dave@pc:4\n",
            "    +3 more futures\n",
            "transfers 1\n",
            "  g1                           dave@pc:4 -> bob@vm:1  1.0 MiB / 4.0 MiB (25%)\n",
        ] {
            assert!(screen.contains(expected), "{expected:?} in\n{screen}");
        }
        assert!(screen.contains("erin@vm:5"), "{screen}");
        assert_eq!(status.workers[1].futures, Vec::new());
        let tsv = status.tsv();
        assert!(
            tsv.contains("\tf1 carol@vm:3 running; g1 dave@pc:4 receiving; +3 more\tg1 to worker dave@pc:4 1048576/4194304\n"),
            "{tsv}"
        );
        let json: serde_json::Value = serde_json::to_value(&status).unwrap();
        assert_eq!(json["workers"][0]["futures"][0]["client"], "carol@vm:3");
        assert_eq!(json["workers"][0]["transfers"][0]["done"], 1048576);
        assert_eq!(percent(3, 0), "100%");
        assert_eq!(percent(u64::MAX, u64::MAX), "100%");
    }
}
