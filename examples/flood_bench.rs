//! Cheap stalls by a member (issue 14.2), measured against a baseline from the same run:
//! - alice's task right after mallory posted N fake worker hellos, against the same task
//!   without a flood;
//! - ten requests mallory never accepts, against bob's only slot, for a minute: offers
//!   mallory drew (each holds the slot up to 3 s), and how long alice's task took.
//!
//! ```sh
//! cargo run --release --example flood_bench
//! ```

use std::time::Duration;

use clap::Parser;
use p2p_testkit::flood;

#[derive(Parser)]
#[command(about = "Stall of a client under a hello flood; a worker's slot under fake requests")]
struct Args {
    /// Fake worker hellos.
    #[arg(long, default_value_t = 20_000)]
    hellos: u32,
    /// Seconds of fake requests.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let bound = Duration::from_secs(600);
    let (stalled, baseline) = flood::hello_flood(args.hellos, bound).await?;
    println!("| flood | task time | without the flood | ratio |");
    println!("|---|---:|---:|---:|");
    println!(
        "| {} fake worker hellos | {:.3} s | {:.3} s | x{:.1} |",
        args.hellos,
        stalled.as_secs_f64(),
        baseline.as_secs_f64(),
        stalled.as_secs_f64() / baseline.as_secs_f64().max(1e-9)
    );
    let run = flood::fake_requests(10, Duration::from_secs(args.seconds), bound).await?;
    println!(
        "| 10 fake requests for {} s | alice's task {:.3} s | offers to mallory {} (slot held <= {} s) | |",
        args.seconds,
        run.alice_task.as_secs_f64(),
        run.offers_to_mallory,
        run.offers_to_mallory * 3
    );
    Ok(())
}
