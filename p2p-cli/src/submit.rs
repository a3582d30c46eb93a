//! `future-p2p submit`: one task from the shell. The payload (an argument, or stdin) goes to
//! a worker of the cluster as a Rust client's task would, and the worker's result is
//! written to stdout, byte for byte. Meant for workers started with `--exec CMD`, which
//! run CMD with the payload on stdin; R workers expect serialized R futures. On a
//! terminal, a task whose payload is at least `--progress-above` (1 MiB) shows what it is
//! doing on stderr: a spinner while it waits or runs, and a byte bar while its payload
//! goes out or its result (as large) comes back, drawn from the session's or transfer's
//! [`Meter`] polled every [`POLL`].
//!
//! ```text
//!   echo hello | future-p2p submit --cluster alice/p2p       (a worker runs `--exec rev`)
//!   olleh
//! ```

use std::time::Duration;

use bytes::Bytes;
use clap::Args;
use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};
use p2p_cluster::ClusterError;
use p2p_cluster::tasklog::human_size;
use p2p_proto::id::FutureId;
use p2p_scheduler::TaskUpdate;
use p2p_scheduler::core::TaskEvent;
use p2p_transport::wormhole::{Meter, Moved, Way};
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
    /// Show what the task is doing (waiting, sending, running) on a terminal when its
    /// payload is at least this large (e.g. 1M; 0: always).
    #[arg(long, env = "FUTURE_P2P_PROGRESS_ABOVE", value_parser = parse_size, default_value = "1M")]
    pub progress_above: u64,
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

    let size = payload.len() as u64;
    let progress = (size >= args.progress_above && std::io::stderr().is_terminal())
        .then(|| Progress::start(size));
    let mut updates = client.updates();
    let future: FutureId = format!("submit-{}", std::process::id()).parse()?;
    let task = client.submit_as(future, payload).await?;
    let id = task.id();
    let mut poll = tokio::time::interval(POLL);
    let mut meter: Option<Meter> = None;
    let waited = async {
        tokio::pin!(task);
        loop {
            tokio::select! {
                result = &mut task => break result,
                Ok((of, TaskUpdate::Event(event))) = updates.recv() => {
                    if let Some(progress) = progress.as_ref().filter(|_| of == id) {
                        progress.phase(&event);
                    }
                }
                _ = poll.tick(), if progress.is_some() => {
                    if meter.is_none() {
                        meter = client.meter(id);
                    }
                    if let (Some(progress), Some(meter)) = (progress.as_ref(), meter.as_ref()) {
                        progress.bytes(meter, args.progress_above);
                    }
                }
            }
        }
    };
    // Dropping the task on a timeout cancels it.
    let outcome = tokio::time::timeout(args.timeout, waited).await;
    if let Some(progress) = &progress {
        progress.bar.finish_and_clear();
    }
    let result = match outcome {
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

/// How often the byte bar reads the meter.
const POLL: Duration = Duration::from_millis(100);

/// What a large task is doing, drawn on stderr while the user waits: the payload's size,
/// the phase (waiting for a worker, sending to it, running, ...) and the time so far; a
/// byte bar while a large payload moves.
struct Progress {
    bar: ProgressBar,
    size: String,
    spinner: ProgressStyle,
    bytes: ProgressStyle,
    /// The bar shows bytes now (else the spinner).
    moving: std::cell::Cell<bool>,
    /// The phase's line, put back when the bytes are through.
    phase: std::cell::RefCell<String>,
}

impl Progress {
    fn start(size: u64) -> Progress {
        let bar = ProgressBar::new_spinner();
        let spinner = ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        let bytes = ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(spinner.clone());
        bar.enable_steady_tick(Duration::from_millis(120));
        let size = human_size(size);
        let phase = phase_message(&TaskEvent::Queued, &size);
        bar.set_message(phase.clone());
        Progress {
            bar,
            size,
            spinner,
            bytes,
            moving: std::cell::Cell::new(false),
            phase: std::cell::RefCell::new(phase),
        }
    }

    fn phase(&self, event: &TaskEvent) {
        let message = phase_message(event, &self.size);
        if !self.moving.get() {
            self.bar.set_message(message.clone());
        }
        *self.phase.borrow_mut() = message;
    }

    /// Draws the payload or result moving on `meter`, if one at least `above` bytes is.
    fn bytes(&self, meter: &Meter, above: u64) {
        match moving(meter, above) {
            Some((way, moved)) => {
                if !self.moving.replace(true) {
                    self.bar.set_style(self.bytes.clone());
                }
                self.bar.set_length(moved.total);
                self.bar.set_position(moved.done);
                self.bar.set_message(match way {
                    Way::Sending => "sending the payload",
                    Way::Receiving => "receiving the result",
                });
            }
            None => {
                if self.moving.replace(false) {
                    self.bar.set_style(self.spinner.clone());
                    self.bar.set_message(self.phase.borrow().clone());
                }
            }
        }
    }
}

/// The payload worth a bar on `meter`: one of at least `above` bytes on its way, the
/// result first (it moves after the payload) (sans-IO).
fn moving(meter: &Meter, above: u64) -> Option<(Way, Moved)> {
    [Way::Receiving, Way::Sending]
        .into_iter()
        .map(|way| (way, meter.moved(way)))
        .find(|(_, moved)| moved.in_flight() && moved.total >= above.max(1))
}

/// The line a task's event puts under the spinner (sans-IO).
fn phase_message(event: &TaskEvent, size: &str) -> String {
    match event {
        TaskEvent::Queued => format!("{size} payload: waiting for a worker"),
        TaskEvent::Offered { worker } => format!("{size} payload: {worker} offered to run it"),
        TaskEvent::Accepted { worker } => format!("{size} payload: sending it to {worker}"),
        TaskEvent::Running { worker } => format!("{size} payload: running on {worker}"),
        TaskEvent::Declined { worker, reason } => {
            format!("{size} payload: {worker} declined it ({reason}); waiting for another")
        }
        TaskEvent::Requeued { worker } => {
            format!("{size} payload: taken back from {worker}; waiting for a worker")
        }
        TaskEvent::Retried { worker, error } => {
            format!("{size} payload: failed on {worker} ({error}); trying again")
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bar_is_for_a_large_payload_on_its_way() {
        let meter = Meter::default();
        assert_eq!(moving(&meter, 10), None);
        meter.begin(Way::Sending, 100);
        meter.add(Way::Sending, 40);
        assert_eq!(
            moving(&meter, 10),
            Some((
                Way::Sending,
                Moved {
                    done: 40,
                    total: 100
                }
            ))
        );
        // Too small for a bar, or through.
        assert_eq!(moving(&meter, 101), None);
        meter.add(Way::Sending, 60);
        assert_eq!(moving(&meter, 10), None);
        meter.begin(Way::Receiving, 50);
        assert_eq!(
            moving(&meter, 10),
            Some((Way::Receiving, Moved { done: 0, total: 50 }))
        );
    }

    #[test]
    fn each_phase_says_what_the_task_waits_for() {
        let bob: p2p_proto::id::PeerId = "bob@vm:1".parse().unwrap();
        assert_eq!(
            phase_message(&TaskEvent::Queued, "64.0 MiB"),
            "64.0 MiB payload: waiting for a worker"
        );
        assert_eq!(
            phase_message(
                &TaskEvent::Accepted {
                    worker: bob.clone()
                },
                "2 B"
            ),
            "2 B payload: sending it to bob@vm:1"
        );
        assert!(phase_message(&TaskEvent::Running { worker: bob }, "2 B").contains("running on"));
    }
}
