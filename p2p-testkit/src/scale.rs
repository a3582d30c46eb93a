//! Many workers at once: a hub and a host as `future-p2p` processes, workers as processes
//! (`future-p2p worker --exec cat`) and in-process ([`p2p_worker::Worker`] over an SSH
//! connection of its own each), a Rust client keeping a window of tasks with unique
//! payloads in flight, and a member that only reads, counting every line on the cluster's
//! topic. Every result is checked against its own payload; no worker and no client may
//! stop. Shared by the CI test (`p2p-cli/tests/fifty_workers.rs`) and the bench
//! (`p2p-cli/examples/scale_bench.rs`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use p2p_proto::frame::RemoteError;
use p2p_proto::id::{ClusterName, PeerId, TopicStyle};
use p2p_scheduler::{Scheduler, SchedulerOptions};
use p2p_transport::board::{Board, join_cluster};
use p2p_worker::core::WorkerConfig;
use p2p_worker::executor::ProgressSink;
use p2p_worker::{Executor, Job, Worker, WorkerOptions, fresh_secret};
use rand::Rng;
use tokio::sync::watch;

use crate::processes::{ProcessCluster, ProcessError, WorkerProcess};

/// Members besides the owner `alice`; workers take turns among them, the reader is `erin`.
const MEMBERS: [&str; 3] = ["bob", "carol", "erin"];

/// What a scale run does.
#[derive(Debug, Clone)]
pub struct ScaleConfig {
    /// Worker processes (`future-p2p worker --exec cat`, one slot each).
    pub process_workers: usize,
    /// Workers in this process, one slot each, each with its own board connection.
    pub in_process_workers: usize,
    /// Tasks in all; each payload is unique and comes back as it went.
    pub tasks: usize,
    /// Tasks in flight at once per worker (the client submits more as results come).
    pub window_per_worker: usize,
    /// The run fails past this.
    pub deadline: Duration,
}

/// What a scale run saw.
#[derive(Debug, Clone, Default)]
pub struct ScaleReport {
    /// Workers in the run.
    pub workers: usize,
    /// Tasks submitted.
    pub tasks: usize,
    /// Results equal to their payloads, each counted once.
    pub ok: usize,
    /// Results that were not their task's payload.
    pub wrong: usize,
    /// Tasks that failed (with the first few errors in `errors`).
    pub failed: usize,
    /// Tasks not finished by the deadline.
    pub lost: usize,
    /// Runs on in-process workers beyond one per task (retries that ran again).
    pub reruns: usize,
    /// Workers that stopped during the run (none may).
    pub workers_stopped: usize,
    /// Whether the client stopped.
    pub client_stopped: bool,
    /// From the first submit to the last result.
    pub wall: Duration,
    /// Submit to result, per task: median and 99th percentile.
    pub p50: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Board lines during the run, by `type=`.
    pub lines: BTreeMap<String, usize>,
    /// The hub's resident memory at the end, and its peak, in KiB.
    pub hub_rss_kib: u64,
    /// The hub's peak resident memory in KiB.
    pub hub_peak_kib: u64,
    /// A few errors, for the log.
    pub errors: Vec<String>,
}

impl ScaleReport {
    /// The table header for [`ScaleReport::row`].
    pub const HEADER: &'static str = "| workers | tasks | ok | failed | lost | tasks/s | p50 | p99 | board lines | lines/task | offers | requests | hub RSS (peak) | stopped |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|";

    /// Board lines in all.
    pub fn total_lines(&self) -> usize {
        self.lines.values().sum()
    }

    /// Tasks per second over the run.
    pub fn tasks_per_second(&self) -> f64 {
        self.ok as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    /// Board lines per completed task.
    pub fn lines_per_task(&self) -> f64 {
        self.total_lines() as f64 / self.ok.max(1) as f64
    }

    /// One table row.
    pub fn row(&self) -> String {
        let count = |kind: &str| self.lines.get(kind).copied().unwrap_or(0);
        format!(
            "| {} | {} | {} | {} | {} | {:.0} | {:.1} ms | {:.1} ms | {} | {:.4} | {} | {} | {:.1} MiB ({:.1}) | {}{} |",
            self.workers,
            self.tasks,
            self.ok,
            self.failed,
            self.lost,
            self.tasks_per_second(),
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
            self.total_lines(),
            self.lines_per_task(),
            count("offer"),
            count("request"),
            self.hub_rss_kib as f64 / 1024.0,
            self.hub_peak_kib as f64 / 1024.0,
            self.workers_stopped,
            if self.client_stopped { " + client" } else { "" },
        )
    }
}

/// Echoes the payload and counts runs per payload.
struct Echo(Arc<Mutex<HashMap<Bytes, usize>>>);

impl Executor for Echo {
    fn execute(
        &self,
        job: Job,
        _progress: ProgressSink,
    ) -> futures::future::BoxFuture<'static, Result<Bytes, RemoteError>> {
        if let Ok(mut runs) = self.0.lock() {
            *runs.entry(job.payload.clone()).or_default() += 1;
        }
        Box::pin(std::future::ready(Ok(job.payload)))
    }

    // opaque bytes: no future.p2p 0.4.0 client sends these.
    fn failure_result(
        &self,
        _future: &p2p_proto::id::FutureId,
        _format: p2p_proto::protocols::PayloadFormat,
        _error: &RemoteError,
    ) -> Option<Bytes> {
        None
    }
}

fn io(err: impl std::fmt::Display) -> ProcessError {
    ProcessError::Io(std::io::Error::other(err.to_string()))
}

/// `VmRSS` and `VmHWM` of a process, in KiB (0 where /proc does not say).
fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|kib| kib.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Runs the scenario with the `future-p2p` program at `bin`.
pub async fn run(bin: &Path, config: &ScaleConfig) -> Result<ScaleReport, ProcessError> {
    let cluster = {
        let bin = bin.to_owned();
        tokio::task::spawn_blocking(move || ProcessCluster::start(&bin, "alice", "p2p", &MEMBERS))
            .await
            .map_err(io)??
    };
    let cluster = Arc::new(cluster);
    let name: ClusterName = "alice/p2p".parse().map_err(io)?;

    // The reader joins first and counts from the first submit on.
    let reader_board = Board::connect(cluster.board_config("erin")?).await?;
    let (_, mut topic) = join_cluster(&reader_board, &name, Some("erin"), TopicStyle::FutureP2p)
        .await
        .map_err(io)?;
    let (counting_tx, mut counting) = watch::channel(false);
    let reader = tokio::spawn(async move {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        loop {
            tokio::select! {
                line = topic.incoming.recv() => {
                    let Some(line) = line else { break };
                    if !*counting.borrow() {
                        continue;
                    }
                    let kind = line
                        .split(',')
                        .find_map(|pair| pair.strip_prefix("type="))
                        .unwrap_or("(other)")
                        .to_owned();
                    *seen.entry(kind).or_default() += 1;
                }
                changed = counting.changed() => {
                    if changed.is_err() || !*counting.borrow() {
                        break;
                    }
                }
            }
        }
        seen
    });

    let mut processes: Vec<WorkerProcess> = Vec::new();
    for n in 0..config.process_workers {
        let cluster = Arc::clone(&cluster);
        processes.push(
            tokio::task::spawn_blocking(move || {
                cluster.worker(MEMBERS[n % 2], "alice/p2p", "cat", &["--slots", "1"])
            })
            .await
            .map_err(io)??,
        );
    }
    let runs = Arc::new(Mutex::new(HashMap::new()));
    let mut in_process: Vec<(Board, Worker)> = Vec::new();
    for n in 0..config.in_process_workers {
        let user = MEMBERS[n % 2];
        let board = Board::connect(cluster.board_config(user)?).await?;
        let (_, lines) = join_cluster(&board, &name, Some(user), TopicStyle::FutureP2p)
            .await
            .map_err(io)?;
        // Each worker of this process needs an identity of its own.
        let me = PeerId::new(user, "scale", 10_000 + n as u32).map_err(io)?;
        let mut core = WorkerConfig::new(me);
        core.sessions = true;
        core.secret = Some(fresh_secret());
        let worker = Worker::start(
            lines,
            Echo(Arc::clone(&runs)),
            WorkerOptions::new(core, cluster.wormhole()),
        );
        in_process.push((board, worker));
    }

    let client_board = Board::connect(cluster.board_config("alice")?).await?;
    let (me, lines) = join_cluster(&client_board, &name, Some("alice"), TopicStyle::FutureP2p)
        .await
        .map_err(io)?;
    let workers = config.process_workers + config.in_process_workers;
    counting_tx.send_replace(true);
    let scheduler = Scheduler::start(lines, SchedulerOptions::new(me, cluster.wormhole()));

    let nonce: u64 = rand::rng().random();
    let window = (workers * config.window_per_worker).max(1);
    let started = Instant::now();
    let deadline = tokio::time::sleep(config.deadline);
    tokio::pin!(deadline);
    let mut report = ScaleReport {
        workers,
        tasks: config.tasks,
        ..ScaleReport::default()
    };
    let mut latencies: Vec<Duration> = Vec::with_capacity(config.tasks);
    let mut running = FuturesUnordered::new();
    let mut submitted = 0;
    loop {
        while submitted < config.tasks && running.len() < window {
            let payload = Bytes::from(format!("scale-{nonce:x}-{submitted}"));
            let future = format!("s-{submitted}").parse().map_err(io)?;
            let handle = scheduler
                .submit(future, payload.clone())
                .await
                .map_err(io)?;
            let at = Instant::now();
            running.push(async move { (payload, at, handle.await) });
            submitted += 1;
        }
        tokio::select! {
            done = running.next() => {
                let Some((payload, at, outcome)) = done else { break };
                match outcome {
                    Ok(result) if result == payload => {
                        report.ok += 1;
                        latencies.push(at.elapsed());
                    }
                    Ok(_) => report.wrong += 1,
                    Err(err) => {
                        report.failed += 1;
                        if report.errors.len() < 5 {
                            report.errors.push(err.to_string());
                        }
                    }
                }
            }
            () = &mut deadline => {
                report.lost = config.tasks - report.ok - report.wrong - report.failed;
                break;
            }
        }
    }
    report.wall = started.elapsed();
    latencies.sort();
    let at = |q: f64| {
        latencies
            .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    report.p50 = at(0.50);
    report.p99 = at(0.99);
    (report.hub_rss_kib, report.hub_peak_kib) = rss_kib(cluster.hub_pid());
    report.client_stopped = scheduler.stopped().borrow().is_some();
    for (_, worker) in &mut in_process {
        if worker.stopped().now_or_never().is_some() {
            report.workers_stopped += 1;
        }
    }
    for process in &mut processes {
        if process.exited() {
            report.workers_stopped += 1;
        }
    }
    report.reruns = runs
        .lock()
        .map(|runs| runs.values().map(|n| n.saturating_sub(1)).sum())
        .unwrap_or(0);
    counting_tx.send_replace(false);
    report.lines = tokio::time::timeout(Duration::from_secs(30), reader)
        .await
        .map_err(io)?
        .map_err(io)?;
    drop(scheduler);
    for (_, worker) in &in_process {
        worker.shutdown();
    }
    Ok(report)
}
