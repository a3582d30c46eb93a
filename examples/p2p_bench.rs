//! Benchmark of tasks end to end, on an embedded hub on this machine. One run prints one
//! table; every figure is set against the raw TCP round trip measured in the same run.
//!
//! ```sh
//! cargo run --release --example p2p_bench
//! ```
//!
//! - raw TCP round trip: one byte each way on a loopback connection (the baseline);
//! - cold task: one task at a time with no warm session, so each pays the board round
//!   trips (request, offer, accept) and a wormhole rendezvous;
//! - warm sessions: many tasks queued at once over warm sessions to two workers with a
//!   trivial executor; tasks/s, and the per-task overhead it amortises to.

use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use future_p2p::proto::frame::RemoteError;
use future_p2p::proto::id::ClusterName;
use future_p2p::scheduler::{Scheduler, SchedulerOptions};
use future_p2p::worker::executor::ProgressSink;
use future_p2p::worker::{Executor, Job};
use futures::future::BoxFuture;
use p2p_testkit::local::LocalHub;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Parser)]
#[command(about = "Benchmark future-p2p tasks on an embedded hub")]
struct Args {
    /// Tasks for the warm-session throughput.
    #[arg(long, default_value_t = 20_000)]
    warm_tasks: usize,
    /// Cold tasks (each measured alone).
    #[arg(long, default_value_t = 30)]
    cold_tasks: usize,
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
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let tcp = tcp_round_trips(args.pings).await;
    let tcp_p50 = percentile(&tcp, 0.5);

    let local = LocalHub::start(&["alice", "bob", "carol"]).await?;
    let (_alice, me, lines) = local.host("alice", "p2p", &["bob", "carol"]).await?;
    let scheduler = Scheduler::start(lines, SchedulerOptions::new(me, local.wormhole()));
    let cluster: ClusterName = "alice/p2p".parse()?;
    let mut workers = Vec::new();
    for user in ["bob", "carol"] {
        workers.push(local.worker(user, &cluster, Identity, |_| {}).await?);
    }

    // Cold: one task at a time; the session closes when the queue empties, so each task
    // starts from the board.
    let mut cold = Vec::with_capacity(args.cold_tasks);
    for i in 0..args.cold_tasks {
        let start = Instant::now();
        let handle = scheduler
            .submit(format!("cold-{i}").parse()?, Bytes::from_static(b"x"))
            .await?;
        tokio::time::timeout(Duration::from_secs(60), handle).await??;
        cold.push(start.elapsed());
        // Let the idle session close before the next task.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    cold.sort();

    // Warm: a first task opens the sessions, then everything is queued at once.
    let warmup: Vec<_> = submit_many(&scheduler, "warmup", 64).await?;
    for handle in warmup {
        handle.await?;
    }
    let start = Instant::now();
    let handles = submit_many(&scheduler, "warm", args.warm_tasks).await?;
    for handle in handles {
        handle.await?;
    }
    let warm = start.elapsed();
    let per_task = warm / args.warm_tasks as u32;

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!("| measurement | value | vs raw TCP round trip |");
    println!("|---|---:|---:|");
    println!(
        "| raw TCP round trip (loopback, p50) | {:.1} us | 1.0x |",
        us(tcp_p50)
    );
    println!(
        "| cold task: board + rendezvous + transit (p50 / p99 of {}) | {:.2} ms / {:.2} ms | {:.0}x |",
        args.cold_tasks,
        us(percentile(&cold, 0.5)) / 1e3,
        us(percentile(&cold, 0.99)) / 1e3,
        us(percentile(&cold, 0.5)) / us(tcp_p50)
    );
    println!(
        "| warm sessions, 2 workers, trivial executor ({} tasks) | {:.0} tasks/s | |",
        args.warm_tasks,
        args.warm_tasks as f64 / warm.as_secs_f64()
    );
    println!(
        "| per-task overhead, amortised | {:.1} us | {:.2}x |",
        us(per_task),
        us(per_task) / us(tcp_p50)
    );
    Ok(())
}

/// Submits `n` tasks named `prefix-i` and returns their handles.
async fn submit_many(
    scheduler: &Scheduler,
    prefix: &str,
    n: usize,
) -> Result<Vec<future_p2p::scheduler::TaskHandle>, Box<dyn std::error::Error>> {
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
