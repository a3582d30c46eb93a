//! Benchmark of tasks end to end, on an embedded hub on this machine. One run prints one
//! table; every figure is set against a baseline measured in the same run.
//!
//! ```sh
//! cargo run --release --example p2p_bench
//! ```
//!
//! - raw TCP round trip: one byte each way on a loopback connection (the baseline);
//! - sequential tasks, one at a time with a little think time between them (what
//!   `value(future(...))` in a loop does): with sessions closed as soon as they idle (the
//!   behaviour before issue 15, so each task pays the board round trips and a wormhole
//!   rendezvous), and with idle sessions kept warm (the default);
//! - warm sessions: many trivial tasks queued at once over warm sessions to two workers;
//!   tasks/s, and the per-task overhead it amortises to;
//! - parallel efficiency: N = 4W tasks of 1 s on W one-slot workers, against the ideal
//!   ceil(N/W) x 1 s.

use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use future_p2p::proto::frame::RemoteError;
use future_p2p::proto::id::{ClusterName, PeerId};
use future_p2p::scheduler::{Scheduler, SchedulerOptions, TaskHandle};
use future_p2p::worker::executor::ProgressSink;
use future_p2p::worker::{Executor, FnExecutor, Job};
use futures::future::BoxFuture;
use p2p_testkit::local::LocalHub;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser)]
#[command(about = "Benchmark future-p2p tasks on an embedded hub")]
struct Args {
    /// Tasks for the warm-session throughput.
    #[arg(long, default_value_t = 20_000)]
    warm_tasks: usize,
    /// Sequential tasks, each way.
    #[arg(long, default_value_t = 40)]
    sequential_tasks: usize,
    /// Think time between sequential tasks, in milliseconds.
    #[arg(long, default_value_t = 20)]
    think_ms: u64,
    /// Workers for the parallel efficiency (N = 4W tasks of 1 s).
    #[arg(long, default_value_t = 4)]
    spread_workers: usize,
    /// Round trips for the TCP baseline.
    #[arg(long, default_value_t = 2_000)]
    pings: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn tcp_round_trips(n: usize) -> Vec<Duration> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        socket.set_nodelay(true).unwrap();
        let mut byte = [0u8; 1];
        while socket.read_exact(&mut byte).await.is_ok() {
            if socket.write_all(&byte).await.is_err() {
                return;
            }
        }
    });
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.set_nodelay(true).unwrap();
    let mut times = Vec::with_capacity(n);
    let mut byte = [7u8; 1];
    for _ in 0..n {
        let start = Instant::now();
        socket.write_all(&byte).await.unwrap();
        socket.read_exact(&mut byte).await.unwrap();
        times.push(start.elapsed());
    }
    times.sort();
    times
}

/// The trivial executor: returns the payload at once, without leaving the runtime, so the
/// figures are the protocol's own cost.
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

/// Sequential tasks with `think` between them; their latencies, sorted.
async fn sequential(
    scheduler: &Scheduler,
    prefix: &str,
    n: usize,
    think: Duration,
) -> Result<Vec<Duration>, Box<dyn std::error::Error>> {
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        let handle = scheduler
            .submit(format!("{prefix}-{i}").parse()?, Bytes::from_static(b"x"))
            .await?;
        tokio::time::timeout(Duration::from_secs(60), handle).await??;
        times.push(start.elapsed());
        tokio::time::sleep(think).await;
    }
    times.sort();
    Ok(times)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let tcp = tcp_round_trips(args.pings).await;
    let tcp_p50 = percentile(&tcp, 0.5);
    let think = Duration::from_millis(args.think_ms);

    let local = LocalHub::start(&["alice", "bob", "carol", "dave", "erin"]).await?;
    let (_alice, me, lines) = local
        .host("alice", "p2p", &["bob", "carol", "dave", "erin"])
        .await?;
    let scheduler = Scheduler::start(lines, SchedulerOptions::new(me, local.wormhole()));
    let cluster: ClusterName = "alice/p2p".parse()?;
    let mut workers = Vec::new();
    for user in ["bob", "carol"] {
        workers.push(local.worker(user, &cluster, Identity, |_| {}).await?);
    }
    // A second client that closes its sessions as soon as they idle: what every client
    // did before idle sessions stayed warm.
    let (_dave, dave, dave_lines) = local.join("dave", &cluster).await?;
    let mut closing = SchedulerOptions::new(dave, local.wormhole());
    closing.core.session_idle_grace = 0;
    let cold_client = Scheduler::start(dave_lines, closing);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let cold = sequential(&cold_client, "cold", args.sequential_tasks, think).await?;
    let warm_idle = sequential(&scheduler, "idle", args.sequential_tasks, think).await?;

    // Warm: a first batch opens the sessions, then everything is queued at once.
    for handle in submit_many(&scheduler, "warmup", 64).await? {
        handle.await?;
    }
    let start = Instant::now();
    let handles = submit_many(&scheduler, "warm", args.warm_tasks).await?;
    for handle in handles {
        handle.await?;
    }
    let warm = start.elapsed();
    let per_task = warm / args.warm_tasks as u32;

    // Parallel efficiency: fresh one-slot workers running 1 s tasks, a fresh client; the
    // trivial workers leave first.
    for (_, worker) in &workers {
        worker.shutdown();
    }
    for (_, mut worker) in workers {
        worker.stopped().await;
    }
    let spread = spread(&local, &cluster, args.spread_workers).await?;

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!("| measurement | value | vs baseline |");
    println!("|---|---:|---:|");
    println!(
        "| raw TCP round trip (loopback, p50) | {:.1} us | 1.0x |",
        us(tcp_p50)
    );
    println!(
        "| sequential tasks, sessions closed when idle (before; p50 / p99 of {}) | {:.2} ms / {:.2} ms | {:.0}x TCP |",
        args.sequential_tasks,
        ms(percentile(&cold, 0.5)),
        ms(percentile(&cold, 0.99)),
        us(percentile(&cold, 0.5)) / us(tcp_p50)
    );
    println!(
        "| sequential tasks, idle sessions kept warm (p50 / p99 of {}) | {:.2} ms / {:.2} ms | {:.3}x before |",
        args.sequential_tasks,
        ms(percentile(&warm_idle, 0.5)),
        ms(percentile(&warm_idle, 0.99)),
        us(percentile(&warm_idle, 0.5)) / us(percentile(&cold, 0.5))
    );
    println!(
        "| warm sessions, 2 workers, trivial executor ({} tasks) | {:.0} tasks/s | |",
        args.warm_tasks,
        args.warm_tasks as f64 / warm.as_secs_f64()
    );
    println!(
        "| per-task overhead, amortised | {:.1} us | {:.2}x TCP |",
        us(per_task),
        us(per_task) / us(tcp_p50)
    );
    println!(
        "| {} tasks of 1 s on {} one-slot workers (ideal {:.0} s) | {:.2} s, on {} workers | efficiency {:.2} |",
        spread.tasks,
        spread.workers,
        spread.ideal.as_secs_f64(),
        spread.wall.as_secs_f64(),
        spread.used,
        spread.ideal.as_secs_f64() / spread.wall.as_secs_f64()
    );
    Ok(())
}

struct Spread {
    tasks: usize,
    workers: usize,
    used: usize,
    ideal: Duration,
    wall: Duration,
}

/// N = 4W tasks of 1 s on W fresh one-slot workers, submitted at once by a fresh client.
async fn spread(
    local: &LocalHub,
    cluster: &ClusterName,
    workers: usize,
) -> Result<Spread, Box<dyn std::error::Error>> {
    let mut running = Vec::new();
    for n in 0..workers {
        // One user may lend several workers; each gets an identity of its own.
        let me = PeerId::new("bob", "spread", 1000 + n as u32)?;
        let sleeper = FnExecutor::new(move |job: Job| {
            std::thread::sleep(Duration::from_secs(1));
            let mut answer = format!("{n}:").into_bytes();
            answer.extend_from_slice(&job.payload);
            Ok(Bytes::from(answer))
        });
        running.push(
            local
                .worker("bob", cluster, sleeper, |options| options.core.me = me)
                .await?,
        );
    }
    let (_erin, erin, lines) = local.join("erin", cluster).await?;
    let client = Scheduler::start(lines, SchedulerOptions::new(erin, local.wormhole()));
    // The workers answer the client's hello: it knows them before the work comes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let tasks = 4 * workers;
    let start = Instant::now();
    let handles = submit_many(&client, "spread", tasks).await?;
    let mut used = std::collections::BTreeSet::new();
    for handle in handles {
        let result = tokio::time::timeout(Duration::from_secs(120), handle).await??;
        let worker = result
            .split(|b| *b == b':')
            .next()
            .unwrap_or_default()
            .to_vec();
        used.insert(worker);
    }
    Ok(Spread {
        tasks,
        workers,
        used: used.len(),
        ideal: Duration::from_secs(tasks.div_ceil(workers) as u64),
        wall: start.elapsed(),
    })
}

/// Submits `n` tasks named `prefix-i` and returns their handles.
async fn submit_many(
    scheduler: &Scheduler,
    prefix: &str,
    n: usize,
) -> Result<Vec<TaskHandle>, Box<dyn std::error::Error>> {
    let mut handles = Vec::with_capacity(n);
    for i in 0..n {
        handles.push(
            scheduler
                .submit(format!("{prefix}-{i}").parse()?, Bytes::from_static(b"x"))
                .await?,
        );
    }
    Ok(handles)
}
