//! Board traffic per completed task, at 2, 10 and 50 workers (issue 13): every line on the
//! cluster's topic is counted by a member that only reads, while one client runs 200
//! trivial tasks per worker through in-process workers on an embedded hub. Lines per task
//! must not grow with the number of workers: requests draw about one offer each, however
//! many workers listen, and warm sessions carry the tasks.
//!
//! ```sh
//! cargo run --release --example board_traffic_bench
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use future_p2p::proto::frame::RemoteError;
use future_p2p::proto::id::{ClusterName, PeerId};
use future_p2p::scheduler::{Scheduler, SchedulerOptions};
use future_p2p::worker::executor::ProgressSink;
use future_p2p::worker::{Executor, Job};
use futures::future::BoxFuture;
use p2p_testkit::local::LocalHub;
use tokio::sync::watch;

#[derive(Parser)]
#[command(about = "Count board lines per completed task at 2, 10 and 50 workers")]
struct Args {
    /// Tasks per worker (the run at W workers submits this many times W).
    #[arg(long, default_value_t = 200)]
    tasks_per_worker: usize,
    /// Worker counts to run.
    #[arg(long, value_delimiter = ',', default_value = "2,10,50")]
    workers: Vec<usize>,
}

/// Returns the payload at once: the figures are the protocol's own.
struct Identity;

impl Executor for Identity {
    fn execute(
        &self,
        job: Job,
        _progress: ProgressSink,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
        Box::pin(std::future::ready(Ok(job.payload)))
    }

    // opaque bytes: no future.p2p 0.4.0 client sends these.
    fn failure_result(
        &self,
        _future: &future_p2p::proto::id::FutureId,
        _format: future_p2p::proto::protocols::PayloadFormat,
        _error: &RemoteError,
    ) -> Option<Bytes> {
        None
    }
}

/// What the reader does with the lines it sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Workers are joining: not counted.
    Before,
    /// From the client's start to a second after the last result.
    Counting,
    /// The run is over: the reader returns its counts.
    Done,
}

struct Traffic {
    tasks: usize,
    wall: Duration,
    lines: BTreeMap<String, usize>,
    workers_used: usize,
}

/// One run: `workers` workers, `tasks` tasks; the lines seen from the first submit until
/// a second after the last result.
async fn run(workers: usize, tasks: usize) -> Result<Traffic, Box<dyn std::error::Error>> {
    let local = LocalHub::start(&["alice", "bob", "carol", "erin"]).await?;
    let (_alice, me, lines) = local
        .host("alice", "p2p", &["bob", "carol", "erin"])
        .await?;
    let cluster: ClusterName = "alice/p2p".parse()?;
    // The reader: counts every line by its type while the phase is `Counting`, and stops
    // at `Done` (its own connection stays open until the run is over).
    let (_erin, _, mut topic) = local.join("erin", &cluster).await?;
    let (phase_tx, mut phase) = watch::channel(Phase::Before);
    let reader = tokio::spawn(async move {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        loop {
            tokio::select! {
                line = topic.incoming.recv() => {
                    let Some(line) = line else { break };
                    if *phase.borrow() != Phase::Counting {
                        continue;
                    }
                    let kind = line
                        .split(',')
                        .find_map(|pair| pair.strip_prefix("type="))
                        .unwrap_or("(other)")
                        .to_owned();
                    *seen.entry(kind).or_default() += 1;
                }
                changed = phase.changed() => {
                    if changed.is_err() || *phase.borrow() == Phase::Done {
                        break;
                    }
                }
            }
        }
        seen
    });
    let mut running = Vec::new();
    for n in 0..workers {
        let user = if n % 2 == 0 { "bob" } else { "carol" };
        // Several workers per user, each with an identity of its own.
        let me = PeerId::new(user, "traffic", 1000 + n as u32)?;
        running.push(
            local
                .worker(user, &cluster, Identity, |options| options.core.me = me)
                .await?,
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Counting starts with the client: its hello, the workers' answers, then the work.
    phase_tx.send_replace(Phase::Counting);
    let scheduler = Scheduler::start(lines, SchedulerOptions::new(me, local.wormhole()));
    let start = Instant::now();
    let mut handles = Vec::with_capacity(tasks);
    for i in 0..tasks {
        handles.push(
            scheduler
                .submit(format!("t-{i}").parse()?, Bytes::from(format!("{i}")))
                .await?,
        );
    }
    for handle in handles {
        tokio::time::timeout(Duration::from_secs(300), handle).await??;
    }
    let wall = start.elapsed();
    tokio::time::sleep(Duration::from_secs(1)).await;
    phase_tx.send_replace(Phase::Done);
    let workers_used = scheduler.workers().borrow().len();
    drop(scheduler);
    drop(running);
    drop(local);
    let lines = tokio::time::timeout(Duration::from_secs(30), reader).await??;
    Ok(Traffic {
        tasks,
        wall,
        lines,
        workers_used,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    println!(
        "| workers | tasks | board lines | lines per task | requests | offers | accepts | withdraws | hellos | tasks/s |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for workers in args.workers {
        let tasks = workers * args.tasks_per_worker;
        let traffic = run(workers, tasks).await?;
        let total: usize = traffic.lines.values().sum();
        let count = |kind: &str| traffic.lines.get(kind).copied().unwrap_or(0);
        let hellos = count("worker") + count("client") + count("cluster");
        println!(
            "| {workers} ({} seen) | {} | {total} | {:.4} | {} | {} | {} | {} | {hellos} | {:.0} |",
            traffic.workers_used,
            traffic.tasks,
            total as f64 / traffic.tasks as f64,
            count("request"),
            count("offer"),
            count("accept"),
            count("withdraw"),
            traffic.tasks as f64 / traffic.wall.as_secs_f64(),
        );
    }
    Ok(())
}
