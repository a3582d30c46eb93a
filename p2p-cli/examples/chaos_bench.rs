//! Chaos, longer: a hub, a host and workers as separate `future-p2p` processes, a Rust
//! client with unique payloads, a random worker SIGKILLed every second (replaced by a fresh
//! process). Prints one table row per configuration: tasks, workers killed, lost,
//! duplicated, failed, wall time. Nothing here is timed against a target; the table is the
//! point.
//!
//! ```sh
//! cargo build --release -p p2p-cli --bin future-p2p
//! cargo run --release -p p2p-cli --example chaos_bench -- --tasks 1000
//! ```
//!
//! The `future-p2p` binary is `FUTURE_P2P_BIN`, or the one built next to this example.

use std::time::Duration;

use clap::Parser;
use p2p_testkit::chaos::{self, ChaosConfig};

#[derive(Parser)]
#[command(about = "Kill future-p2p workers at random under load and count what goes wrong")]
struct Args {
    /// Tasks per run.
    #[arg(long, default_value_t = 1000)]
    tasks: usize,
    /// Worker processes alive at any time.
    #[arg(long, default_value_t = 6)]
    workers: usize,
    /// How long each task runs, in seconds.
    #[arg(long, default_value_t = 0.2)]
    task_seconds: f64,
    /// Seconds between kills.
    #[arg(long, default_value_t = 1.0)]
    kill_every: f64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let bin = p2p_testkit::processes::future_p2p_binary()?;
    println!(
        "| slots per worker | tasks | workers killed | lost | duplicated | failed | wall time |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    for slots in [1, 2] {
        let config = ChaosConfig {
            tasks: args.tasks,
            workers: args.workers,
            slots,
            task_seconds: args.task_seconds,
            kill_every: Duration::from_secs_f64(args.kill_every),
            deadline: Duration::from_secs(1800),
        };
        let report = chaos::run(&bin, &config).await?;
        println!("| {slots} {}", report.row());
        for error in &report.errors {
            eprintln!("  {error}");
        }
    }
    Ok(())
}
