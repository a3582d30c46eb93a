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

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use future_p2p::proto::id::ClusterName;
use future_p2p::scheduler::{Scheduler, SchedulerOptions};
use future_p2p::transport::board::client::{Board, BoardConfig, PipeOptions};
use future_p2p::transport::board::server::hostkey::generate_key_file;
use future_p2p::transport::hub::{Hub, HubConfig};
use future_p2p::transport::lines::{join_cluster, local_peer_id, topic_lines};
use future_p2p::worker::core::WorkerConfig;
use future_p2p::worker::{FnExecutor, Job, Worker, WorkerOptions, fresh_secret};

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

/// Writes a fresh key for `user` and returns its path and `name key` registry line.
fn new_user(dir: &Path, user: &str) -> Result<(PathBuf, String), Box<dyn std::error::Error>> {
    let path = dir.join(format!("{user}_ed25519"));
    let key = generate_key_file(&path)?;
    let public = key.public_key().to_openssh()?;
    let mut words = public.split_whitespace();
    let line = format!(
        "{user} {} {}\n",
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default()
    );
    Ok((path, line))
}

fn board_config(
    hub: &Hub,
    key: &Path,
    known_hosts: &Path,
) -> Result<BoardConfig, Box<dyn std::error::Error>> {
    let port = hub.board_addr().port().to_string();
    let args = [
        "-p".to_owned(),
        port,
        "-i".to_owned(),
        key.display().to_string(),
        "-o".to_owned(),
        format!("UserKnownHostsFile={}", known_hosts.display()),
    ];
    let mut config = BoardConfig::from_ssh_args("127.0.0.1", &args)?;
    // Only the key made here: the user's own agent keys are none of this demo's business.
    config.use_agent = false;
    Ok(config)
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

    let dir = tempfile::tempdir()?;
    let state = dir.path().join("hub");
    let mut registry = String::new();
    let mut keys = Vec::new();
    for user in ["alice", "bob", "carol"] {
        let (key, line) = new_user(dir.path(), user)?;
        registry.push_str(&line);
        keys.push(key);
    }
    std::fs::create_dir_all(&state)?;
    std::fs::write(state.join("users"), registry)?;
    let hub = Hub::start(HubConfig::localhost(&state)).await?;
    let known_hosts = dir.path().join("known_hosts");
    std::fs::write(
        &known_hosts,
        format!(
            "[127.0.0.1]:{} {}\n",
            hub.board_addr().port(),
            hub.board.host_key().to_openssh()?
        ),
    )?;
    println!(
        "hub: board ssh://127.0.0.1:{}, mailbox {}, relay {}",
        hub.board_addr().port(),
        hub.mailbox_url(),
        hub.relay_url()
    );

    // alice hosts the cluster and is its client.
    let alice = Board::connect(board_config(&hub, &keys[0], &known_hosts)?).await?;
    let access = PipeOptions {
        access: vec!["bob".into(), "carol".into()],
        ..PipeOptions::default()
    };
    let topic = alice.open("p2p", &access).await?;
    let me = local_peer_id("alice")?;
    let scheduler = Scheduler::start(
        topic_lines(topic),
        SchedulerOptions::new(me, hub.wormhole()),
    );

    // bob and carol contribute a worker each.
    let cluster: ClusterName = "alice/p2p".parse()?;
    let mut workers = Vec::new();
    for key in &keys[1..] {
        let board = Board::connect(board_config(&hub, key, &known_hosts)?).await?;
        let (id, lines) = join_cluster(&board, &cluster, None).await?;
        let mut config = WorkerConfig::new(id);
        config.sessions = true;
        config.secret = Some(fresh_secret());
        workers.push((
            board,
            Worker::start(
                lines,
                FnExecutor::new(reverse),
                WorkerOptions::new(config, hub.wormhole()),
            ),
        ));
    }

    let started = Instant::now();
    let mut running = Vec::with_capacity(args.tasks);
    for i in 0..args.tasks {
        let payload = Bytes::from(format!("task {i:06}"));
        let handle = scheduler
            .submit(format!("quickstart-{i}").parse()?, payload.clone())
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
    Ok(())
}
