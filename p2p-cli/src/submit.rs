//! `future-p2p submit`: one task from the shell. The payload (an argument, or stdin) goes to
//! a worker of the cluster as a Rust client's task would, and the worker's result is
//! written to stdout, byte for byte. Meant for workers started with `--exec CMD`, which
//! run CMD with the payload on stdin; R workers expect serialized R futures.
//!
//! ```text
//!   echo hello | future-p2p submit --cluster alice/p2p       (a worker runs `--exec rev`)
//!   olleh
//! ```

use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use p2p_proto::id::{ClusterName, FutureId};
use p2p_scheduler::{Scheduler, SchedulerOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::CliError;
use crate::connect::BoardArgs;
use crate::units::{parse_duration, parse_size};

#[derive(Debug, Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub board: BoardArgs,
    /// The cluster, `OWNER/NAME` (or `NAME` for one of your own).
    #[arg(long, env = "FUTURE_P2P_CLUSTER")]
    pub cluster: String,
    /// The task's payload; read from stdin when absent.
    pub payload: Option<String>,
    /// Largest payload read from stdin (e.g. 500M, 2G).
    #[arg(long, env = "FUTURE_P2P_MAX_PAYLOAD", value_parser = parse_size, default_value = "1G")]
    pub max_payload: u64,
    /// Give up when no worker shows up on the cluster within this long.
    #[arg(long, env = "FUTURE_P2P_CLUSTER_TIMEOUT", value_parser = parse_duration, default_value = "30")]
    pub cluster_timeout: Duration,
    /// Give up when the result has not come back within this long (e.g. 600, 30m).
    #[arg(long, env = "FUTURE_P2P_TIMEOUT", value_parser = parse_duration, default_value = "3600")]
    pub timeout: Duration,
}

pub async fn run(args: SubmitArgs) -> Result<(), CliError> {
    let cluster: ClusterName = args.cluster.parse()?;
    let payload = match &args.payload {
        Some(payload) => Bytes::from(payload.clone().into_bytes()),
        None => read_stdin(args.max_payload).await?,
    };
    // No warning while waiting: a missing host is part of the error below.
    let joined = args.board.join(&cluster, None).await?;
    let qualified = cluster.qualified(&joined.user)?;
    let scheduler = Scheduler::start(
        joined.lines,
        SchedulerOptions::new(joined.me, args.board.wormhole()),
    );

    // A request nobody can take would wait for ever: first see a worker.
    let mut workers = scheduler.workers();
    // The guard wait_for returns holds the watch's lock: drop it at once, or the
    // scheduler's driver blocks on its next update of the workers.
    let seen = tokio::time::timeout(args.cluster_timeout, async {
        workers
            .wait_for(|workers| !workers.is_empty())
            .await
            .is_ok()
    })
    .await;
    if seen != Ok(true) {
        return Err(CliError::NoWorkers {
            cluster: qualified.to_string(),
            waited: args.cluster_timeout,
            host_seen: joined.watch.host_seen(),
        });
    }

    let future: FutureId = format!("submit-{}", std::process::id()).parse()?;
    let handle = scheduler.submit(future, payload).await?;
    let task = handle.id();
    let result = match tokio::time::timeout(args.timeout, handle).await {
        Ok(result) => result?,
        Err(_) => {
            scheduler.cancel(task);
            return Err(CliError::TimedOut {
                what: format!("the task on {qualified}"),
                waited: args.timeout,
            });
        }
    };
    let mut stdout = tokio::io::stdout();
    stdout.write_all(&result).await?;
    stdout.flush().await?;
    Ok(())
}

/// All of stdin, refused past `limit` bytes before it is all in memory.
async fn read_stdin(limit: u64) -> Result<Bytes, CliError> {
    let mut payload = Vec::new();
    let read = tokio::io::stdin()
        .take(limit.saturating_add(1))
        .read_to_end(&mut payload)
        .await?;
    if read as u64 > limit {
        return Err(CliError::PayloadTooLarge { limit });
    }
    Ok(Bytes::from(payload))
}
