//! What a persistent R process buys: the round trip of `value(future(1))` through a warm
//! REvaluator, against the same evaluation in an Rscript started per job, against R
//! evaluating it locally.
//!
//! ```sh
//! cargo run --release -p p2p-r --example r_eval_bench -- [JOBS]
//! ```
//!
//! Needs R with the future package (.ci/setup/40-r.sh); installs the bundled future.p2p
//! package into a temporary library.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::Bytes;
use p2p_r::evaluator::process::RProcess;
use p2p_r::evaluator::protocol::{FromR, ToR};
use p2p_r::evaluator::{REvaluator, REvaluatorConfig};
use p2p_worker::executor::{Executor, Job};
use tokio::sync::mpsc;

type Error = Box<dyn std::error::Error>;

/// Makes the payload of `future(1)` once, and times R's own evaluation of it: the
/// future resolved locally, and the payload evaluated in-process as the worker loop does.
/// (It runs in a local(): evaluating a payload empties the global environment.)
const R_SCRIPT: &str = r#"
suppressPackageStartupMessages(library(future))
local({
args <- commandArgs(trailingOnly = TRUE)
n <- as.integer(args[2])
f <- future(1, lazy = TRUE)
payload <- future.p2p:::future_payload(f)
writeBin(payload, args[1])
t0 <- proc.time()[["elapsed"]]
for (i in seq_len(n)) value(future(1))
t1 <- proc.time()[["elapsed"]]
for (i in seq_len(n)) future.p2p:::eval_expr_payload(unserialize(payload))
t2 <- proc.time()[["elapsed"]]
cat((t1 - t0) / n, (t2 - t1) / n, "\n")
})
"#;

fn per_job(total: Duration, jobs: usize) -> f64 {
    total.as_secs_f64() * 1000.0 / jobs as f64
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let jobs: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(200);
    let work = tempfile::tempdir()?;
    let library = p2p_r::rpkg::install(Path::new("R"), &work.path().join("lib")).await?;

    let payload_path = work.path().join("payload.bin");
    let output = Command::new("Rscript")
        .args(["-e", R_SCRIPT])
        .arg(&payload_path)
        .arg(jobs.to_string())
        .env("R_LIBS", &library)
        .output()?;
    if !output.status.success() {
        return Err(format!(
            "R failed: {}",
            String::from_utf8_lossy(&output.stderr).trim_end()
        )
        .into());
    }
    let local: Vec<f64> = String::from_utf8(output.stdout)?
        .split_whitespace()
        .map(|ms| ms.parse::<f64>().map(|s| s * 1000.0))
        .collect::<Result<_, _>>()?;
    let [local_value, local_payload] = local[..] else {
        return Err("R printed no timings".into());
    };
    let payload = Bytes::from(std::fs::read(&payload_path)?);

    let config = REvaluatorConfig {
        library_paths: vec![library.clone()],
        ..REvaluatorConfig::default()
    };

    // Warm: one R process for all jobs (its start is not timed).
    let evaluator = REvaluator::start(config.clone()).await?;
    let job = Job {
        future: "f-1".parse()?,
        client: "bench@localhost:1".parse()?,
        payload: payload.clone(),
        format: p2p_proto::protocols::PayloadFormat::Native,
    };
    let started = Instant::now();
    for _ in 0..jobs {
        let (progress, _) = mpsc::unbounded_channel();
        evaluator.execute(job.clone(), progress).await?;
    }
    let warm = per_job(started.elapsed(), jobs);
    evaluator.shutdown().await;

    // Cold: a new Rscript per job, doing the same (start, load future, evaluate, reply).
    let cold_jobs = jobs.clamp(1, 20);
    let started = Instant::now();
    for id in 1..=cold_jobs as u32 {
        let mut process = RProcess::spawn(&config).await?;
        process
            .send(&ToR::Job {
                job: id,
                payload: payload.clone(),
            })
            .await?;
        loop {
            match process.next_frame().await? {
                FromR::Result { .. } => break,
                FromR::Started { .. } | FromR::Condition { .. } => {}
                other => return Err(format!("unexpected reply {other:?}").into()),
            }
        }
        process.shutdown().await;
    }
    let cold = per_job(started.elapsed(), cold_jobs);

    println!(
        "value(future(1)) round trip, payload of {} bytes made once by R ({jobs} jobs; {cold_jobs} cold)",
        payload.len()
    );
    println!(
        "{:<48} {:>10} {:>12} {:>12}",
        "how", "ms/job", "x local", "x payload"
    );
    let rows = [
        ("R, value(future(1)) in-process (sequential)", local_value),
        ("R, the payload evaluated in-process", local_payload),
        ("warm REvaluator (persistent Rscript)", warm),
        ("Rscript spawned per job", cold),
    ];
    for (how, ms) in rows {
        println!(
            "{how:<48} {ms:>10.3} {:>12.1} {:>12.1}",
            ms / local_value,
            ms / local_payload
        );
    }
    println!("Rscript per job / warm REvaluator: {:.1}x", cold / warm);
    Ok(())
}
