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
use p2p_cluster::ClusterError;
use p2p_proto::id::FutureId;
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
    let payload = match &args.payload {
        Some(payload) => Bytes::from(payload.clone().into_bytes()),
        None => read_stdin(args.max_payload).await?,
    };
    // No warning while waiting: a missing host is part of the error below.
    let client = args
        .board
        .cluster(&args.cluster)?
        .connect()
        .await?
        .client()
        .start();
    let qualified = client.cluster().to_string();

    // A request nobody can take would wait for ever: first see a worker. A cluster the
    // board refuses (a wrong name, not on its list) fails here at once.
    match client.wait_for_workers(args.cluster_timeout).await {
        Ok(_) => {}
        Err(ClusterError::NoWorkers {
            cluster,
            waited,
            host_seen,
        }) => {
            return Err(CliError::NoWorkers {
                cluster,
                waited,
                host_seen,
            });
        }
        Err(err) => return Err(err.into()),
    }

    let future: FutureId = format!("submit-{}", std::process::id()).parse()?;
    let task = client.submit_as(future, payload).await?;
    // Dropping the task on a timeout cancels it.
    let result = match tokio::time::timeout(args.timeout, task).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(CliError::TimedOut {
                what: format!("the task on {qualified}"),
                waited: args.timeout,
            });
        }
    };
    let mut stdout = tokio::io::stdout();
    stdout.write_all(&result).await?;
    stdout.flush().await?;
    client.shutdown(Duration::from_secs(1)).await;
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
