//! future-p2p in one command: an embedded hub on free ports, three users with fresh keys,
//! two workers and a client on one machine, 1,000 small tasks, every result checked.
//!
//! ```sh
//! cargo run --release --example quickstart
//! ```
//!
//! alice hosts the cluster `alice/p2p` for bob and carol (`pipe p2p -a bob,carol`), bob and
//! carol each contribute a worker, alice's client submits the tasks. Everything goes over
//! the same paths as across the world: SSH to the board, magic wormhole (here through the
//! hub's relay) for payloads and results.

use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use future_p2p::Cluster;
use future_p2p::worker::{FnExecutor, Job};
use p2p_testkit::local::LocalHub;

#[derive(Parser)]
#[command(about = "Run a whole future-p2p cluster on this machine and time 1,000 tasks")]
struct Args {
    /// Tasks to run.
    #[arg(long, default_value_t = 1000)]
    tasks: usize,
    /// Log more (also RUST_LOG).
    #[arg(long, short)]
    verbose: bool,
}

/// What the workers compute: the payload reversed, so every result can be checked.
fn reverse(job: Job) -> Result<Bytes, future_p2p::proto::frame::RemoteError> {
    let mut bytes = job.payload.to_vec();
    bytes.reverse();
    Ok(Bytes::from(bytes))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(if args.verbose { "info" } else { "error" })
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();

    let local = LocalHub::start(&["alice", "bob", "carol"]).await?;
    let hub = &local.hub;
    println!(
        "hub: board ssh://127.0.0.1:{}, mailbox {}, relay {}",
        hub.board_addr().port(),
        hub.mailbox_url(),
        hub.relay_url()
    );

    // alice hosts the cluster for bob and carol (what `future-p2p host` does)...
    let _host = local.host("alice", "p2p", &["bob", "carol"]).await?;
    // ...bob and carol lend a worker each...
    let mut workers = Vec::new();
    for user in ["bob", "carol"] {
        let worker = Cluster::builder("alice/p2p")
            .board(local.board_config(user)?)
            .wormhole(local.wormhole())
            .connect()
            .await?
            .worker(FnExecutor::new(reverse))
            .start();
        workers.push(worker);
    }
    // ...and alice is its client.
    let client = Cluster::builder("alice/p2p")
        .board(local.board_config("alice")?)
        .wormhole(local.wormhole())
        .connect()
        .await?
        .client()
        .start();
    client.wait_for_workers(Duration::from_secs(60)).await?;

    let started = Instant::now();
    let mut running = Vec::with_capacity(args.tasks);
    for i in 0..args.tasks {
        let payload = Bytes::from(format!("task {i:06}"));
        let handle = client
            .submit_as(format!("quickstart-{i}").parse()?, payload.clone())
            .await?;
        let submitted = Instant::now();
        running.push(tokio::spawn(async move {
            let result = tokio::time::timeout(Duration::from_secs(300), handle).await;
            (payload, result, submitted.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(args.tasks);
    let mut wrong = 0;
    for task in running {
        let (payload, result, latency) = task.await?;
        let mut expected = payload.to_vec();
        expected.reverse();
        match result {
            Ok(Ok(value)) if value == expected => latencies.push(latency),
            Ok(Ok(_)) => wrong += 1,
            Ok(Err(err)) => return Err(format!("a task failed: {err}").into()),
            Err(_) => return Err("a task did not finish within 300 s".into()),
        }
    }
    let wall = started.elapsed();
    if wrong > 0 {
        return Err(format!("{wrong} results were wrong").into());
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    println!();
    println!("| tasks | workers | wall time | tasks/s | p50 latency | p99 latency |");
    println!("|------:|--------:|----------:|--------:|------------:|------------:|");
    println!(
        "| {} | {} | {:.3} s | {:.0} | {:.2} ms | {:.2} ms |",
        args.tasks,
        workers.len(),
        wall.as_secs_f64(),
        args.tasks as f64 / wall.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
    );
    println!("\nall {} results checked", args.tasks);
    client.shutdown(Duration::from_secs(5)).await;
    for worker in workers {
        worker.shutdown(Duration::from_secs(5)).await;
    }
    Ok(())
}
