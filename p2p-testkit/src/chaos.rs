//! Chaos with real processes: a hub, a host and workers as separate `future-p2p`
//! processes, a Rust client submitting tasks with unique payloads, and a worker SIGKILLed
//! at random every so often (a fresh one takes its place). Every result is checked
//! against its own payload. Shared by the CI test (`p2p-cli/tests/chaos.rs`) and the
//! longer bench (`p2p-cli/examples/chaos_bench.rs`).

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use p2p_proto::id::{ClusterName, TopicStyle};
use p2p_scheduler::{Scheduler, SchedulerOptions};
use p2p_transport::board::{Board, join_cluster};
use rand::Rng;

use crate::processes::{ProcessCluster, ProcessError, WorkerProcess};

/// What a chaos run does.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// Tasks submitted (all at once).
    pub tasks: usize,
    /// Worker processes alive at any time (a killed one is replaced).
    pub workers: usize,
    /// Slots per worker.
    pub slots: usize,
    /// How long each task runs (the worker's command sleeps this long).
    pub task_seconds: f64,
    /// A random worker is SIGKILLed this often.
    pub kill_every: Duration,
    /// Tasks not finished by then are lost.
    pub deadline: Duration,
}

/// What a chaos run saw.
#[derive(Debug, Clone, Default)]
pub struct ChaosReport {
    /// Tasks submitted.
    pub tasks: usize,
    /// Workers SIGKILLed.
    pub kills: usize,
    /// Tasks without an outcome at the deadline.
    pub lost: usize,
    /// Results that were not their own task's, or came for a payload already answered.
    pub duplicated: usize,
    /// Tasks that ended with an error, and the first few errors.
    pub failed: usize,
    /// The first errors, for the log.
    pub errors: Vec<String>,
    /// From the first submit to the last outcome.
    pub wall: Duration,
}

impl ChaosReport {
    /// The run as a Markdown table row: tasks, kills, lost, duplicated, failed, wall time.
    pub fn row(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {} | {:.1} s |",
            self.tasks,
            self.kills,
            self.lost,
            self.duplicated,
            self.failed,
            self.wall.as_secs_f64()
        )
    }

    /// The table header matching [`ChaosReport::row`].
    pub const HEADER: &'static str = "| tasks | workers killed | lost | duplicated | failed | wall time |\n|---:|---:|---:|---:|---:|---:|";
}

const MEMBERS: [&str; 3] = ["bob", "carol", "dave"];

/// Runs the chaos scenario with the `future-p2p` program `bin`.
pub async fn run(bin: &Path, config: &ChaosConfig) -> Result<ChaosReport, ProcessError> {
    let cluster = {
        let bin = bin.to_owned();
        tokio::task::spawn_blocking(move || ProcessCluster::start(&bin, "alice", "p2p", &MEMBERS))
            .await
            .map_err(|err| std::io::Error::other(err.to_string()))??
    };
    let cluster = std::sync::Arc::new(cluster);
    let exec = format!("sleep {}; printf 'done:'; cat", config.task_seconds);
    let slots = config.slots.to_string();
    let start_worker = {
        let cluster = std::sync::Arc::clone(&cluster);
        move |n: usize| {
            let cluster = std::sync::Arc::clone(&cluster);
            let exec = exec.clone();
            let slots = slots.clone();
            async move {
                tokio::task::spawn_blocking(move || {
                    let user = MEMBERS[n % MEMBERS.len()];
                    cluster.worker(user, "alice/p2p", &exec, &["--slots", &slots])
                })
                .await
                .map_err(|err| std::io::Error::other(err.to_string()))?
            }
        }
    };
    let mut workers: Vec<WorkerProcess> = Vec::new();
    for n in 0..config.workers {
        workers.push(start_worker(n).await?);
    }

    let board = Board::connect(cluster.board_config("alice")?).await?;
    let name: ClusterName = "alice/p2p"
        .parse()
        .map_err(|err: p2p_proto::id::IdError| std::io::Error::other(err.to_string()))?;
    let (me, lines) = join_cluster(&board, &name, Some("alice"), TopicStyle::FutureP2p)
        .await
        .map_err(|err| std::io::Error::other(err.to_string()))?;
    let scheduler = Scheduler::start(lines, SchedulerOptions::new(me, cluster.wormhole()));
    // Let the workers answer the client's hello.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let nonce: u64 = rand::rng().random();
    let started = Instant::now();
    let mut handles = Vec::with_capacity(config.tasks);
    for i in 0..config.tasks {
        let payload = format!("chaos-{nonce:x}-{i}");
        let future = format!("chaos-{i}")
            .parse()
            .map_err(|err: p2p_proto::id::IdError| std::io::Error::other(err.to_string()))?;
        let handle = scheduler
            .submit(future, Bytes::from(payload.clone()))
            .await
            .map_err(|err| std::io::Error::other(err.to_string()))?;
        handles.push((payload, handle));
    }
    let mut running: FuturesUnordered<_> = handles
        .into_iter()
        .map(|(payload, handle)| async move { (payload, handle.await) })
        .collect();

    let mut report = ChaosReport {
        tasks: config.tasks,
        ..ChaosReport::default()
    };
    let deadline = tokio::time::sleep(config.deadline);
    tokio::pin!(deadline);
    let mut next_kill = tokio::time::interval_at(
        tokio::time::Instant::now() + config.kill_every,
        config.kill_every,
    );
    let mut spawned = config.workers;
    let mut seen = HashSet::new();
    loop {
        tokio::select! {
            outcome = running.next() => {
                let Some((payload, outcome)) = outcome else {
                    break;
                };
                match outcome {
                    Ok(result) => {
                        let expected = format!("done:{payload}");
                        if result != expected.as_bytes() || !seen.insert(result) {
                            report.duplicated += 1;
                        }
                    }
                    Err(err) => {
                        report.failed += 1;
                        if report.errors.len() < 5 {
                            report.errors.push(format!("{payload}: {err}"));
                        }
                    }
                }
            }
            _ = next_kill.tick() => {
                let victim = rand::rng().random_range(0..workers.len());
                let killed = workers.swap_remove(victim);
                let cluster = std::sync::Arc::clone(&cluster);
                tokio::task::spawn_blocking(move || cluster.kill(killed))
                    .await
                    .map_err(|err| std::io::Error::other(err.to_string()))?;
                report.kills += 1;
                workers.push(start_worker(spawned).await?);
                spawned += 1;
            }
            () = &mut deadline => {
                report.lost = running.len();
                break;
            }
        }
    }
    report.wall = started.elapsed();
    drop(scheduler);
    drop(board);
    Ok(report)
}
