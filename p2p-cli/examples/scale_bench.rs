//! Fifty workers against two (issue 13.4): a hub and a host as `future-p2p` processes,
//! worker processes (`--exec cat`, one slot each), a Rust client keeping unique tasks in
//! flight, a member counting every board line. One row per worker count, from the same
//! run: tasks/s, latency (submit to result) p50 and p99, board lines per completed task,
//! the hub's memory, and how many workers or clients stopped (none may). Nothing here is
//! timed against a target; the table is the point.
//!
//! ```sh
//! cargo build --release -p p2p-cli --bin future-p2p
//! cargo run --release -p p2p-cli --example scale_bench -- --tasks 10000
//! ```
//!
//! The `future-p2p` binary is `FUTURE_P2P_BIN`, or the one built next to this example.

use std::time::Duration;

use clap::Parser;
use p2p_testkit::scale::{self, ScaleConfig, ScaleReport};

#[derive(Parser)]
#[command(about = "Tasks/s, latency, board lines per task and hub memory at 2 and 50 workers")]
struct Args {
    /// Tasks per run.
    #[arg(long, default_value_t = 10_000)]
    tasks: usize,
    /// Worker processes per run, in order; the first is the baseline.
    #[arg(long, value_delimiter = ',', default_value = "2,50")]
    workers: Vec<usize>,
    /// Tasks in flight per worker.
    #[arg(long, default_value_t = 4)]
    window: usize,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let bin = p2p_testkit::processes::future_p2p_binary()?;
    println!("{}", ScaleReport::HEADER);
    let mut baseline: Option<ScaleReport> = None;
    for workers in args.workers {
        let config = ScaleConfig {
            process_workers: workers,
            in_process_workers: 0,
            tasks: args.tasks,
            window_per_worker: args.window,
            deadline: Duration::from_secs(1800),
        };
        let report = scale::run(&bin, &config).await?;
        println!("{}", report.row());
        for error in &report.errors {
            eprintln!("  {error}");
        }
        match &baseline {
            None => baseline = Some(report),
            Some(base) => println!(
                "  vs {} workers: tasks/s x{:.2}, p99 x{:.2}, lines/task x{:.2}",
                base.workers,
                report.tasks_per_second() / base.tasks_per_second(),
                report.p99.as_secs_f64() / base.p99.as_secs_f64().max(1e-9),
                report.lines_per_task() / base.lines_per_task().max(1e-9),
            ),
        }
    }
    Ok(())
}
