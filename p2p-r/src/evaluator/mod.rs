//! The R evaluator: an [`Executor`] that evaluates future payloads in a pool of
//! persistent R processes, one per slot.
//!
//! ```text
//!   execute(job) --request--> shared queue --> slot task 1 -- frames --> Rscript (evaluator_loop)
//!        ^                                 \--> slot task 2 -- frames --> Rscript
//!        '--- result / RemoteError (oneshot), conditions (ProgressSink) ---'
//! ```
//!
//! Each slot task owns one R process ([`process`]) and runs one job at a time on it
//! ([`slot`]); an idle slot takes the next request from the shared queue. R starts once
//! per slot (about 150 ms plus loading future), not once per job: with the evaluator
//! (kept warm, the default), or at the slot's first job and stopped again after
//! [`REvaluatorConfig::idle_stop`] without one (lazy: no R process while unused). The
//! frames are those of [`protocol`].
//!
//! - Cancelling (dropping the future `execute` returned) sends R a SIGINT; the loop
//!   reports the interruption and the process is reused. One that does not answer within
//!   [`REvaluatorConfig::interrupt_grace`] is killed and replaced.
//! - A process that dies mid-job (killed, segfault, `quit()`) fails the job with
//!   [`RemoteErrorKind::Crashed`], its exit status and last output lines, and is replaced.
//! - Time limits are the caller's (it drops the future); the memory limit is a per-process
//!   `RLIMIT_AS` ([`REvaluatorConfig::memory_limit`]): R then fails allocations with
//!   "cannot allocate vector of size ...", which comes back as the future's error. Each R
//!   process leads a process group of its own, killed with it (what R started goes too).
//! - A payload is written to R as it arrives ([`Executor::execute_stream`]); a result
//!   larger than [`REvaluatorConfig::max_frame`] fails the job with `PayloadTooLarge`.
//! - Payloads that need a newer future than the worker's (the FutureBackend API, future
//!   >= 1.40) are refused by the R loop with [`RemoteErrorKind::Unsupported`].
//! - Jobs of future.p2p 0.4.0 clients ([`PayloadFormat::FutureP2p`]) are the RDS file of
//!   a Future; the R loop evaluates them as that package's worker does and answers with
//!   the RDS file of the FutureResult. Whatever keeps it from doing so (unreadable file,
//!   crash, time limit) reaches the client as a FutureResult carrying the error
//!   ([`Executor::failure_result`], written by [`crate::rds`]).

pub mod process;
pub mod protocol;
mod slot;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use p2p_proto::frame::{RemoteError, RemoteErrorKind};
use p2p_proto::id::FutureId;
use p2p_proto::limits::DEFAULT_MAX_PAYLOAD;
use p2p_proto::protocols::PayloadFormat;
use p2p_worker::executor::{Executor, Job, ProgressSink, StreamJob};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

pub use process::SpawnError;
pub use protocol::Hello;

use process::RProcess;
use slot::{Request, Slot};

/// How an [`REvaluator`] runs R.
#[derive(Debug, Clone)]
pub struct REvaluatorConfig {
    /// Number of R processes, i.e. of jobs evaluated at once.
    pub slots: usize,
    /// The `Rscript` to run.
    pub rscript: PathBuf,
    /// R libraries searched first (prepended to `R_LIBS`), e.g. where the future.p2p
    /// package was installed by [`crate::rpkg::install`].
    pub library_paths: Vec<PathBuf>,
    /// Address-space limit per R process, in bytes (`RLIMIT_AS`); `None` for none.
    pub memory_limit: Option<u64>,
    /// How long an interrupted R process has to report back before it is killed.
    pub interrupt_grace: Duration,
    /// How long R has to start and say hello.
    pub startup_timeout: Duration,
    /// `None`: R processes start with the evaluator and are kept (warm, no start-up cost
    /// on any job). `Some(idle)`: each starts at its slot's first job and stops after
    /// `idle` without one (lazy, no memory used while the worker has no work).
    pub idle_stop: Option<Duration>,
    /// Largest frame body accepted from R (a result or a condition), in bytes: results
    /// are bounded like payloads, by the worker's payload limit.
    pub max_frame: usize,
}

impl Default for REvaluatorConfig {
    fn default() -> Self {
        REvaluatorConfig {
            slots: 1,
            rscript: PathBuf::from("Rscript"),
            library_paths: Vec::new(),
            memory_limit: None,
            interrupt_grace: Duration::from_secs(5),
            startup_timeout: Duration::from_secs(60),
            idle_stop: None,
            max_frame: usize::try_from(DEFAULT_MAX_PAYLOAD)
                .unwrap_or(usize::MAX)
                .min(protocol::MAX_BODY_LEN),
        }
    }
}

/// The R and future versions of the evaluator's processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RWorkerInfo {
    pub r_version: String,
    pub future_version: String,
    /// Payload generations the processes evaluate: `expr`, plus `evalFuture` when
    /// future >= 1.40.
    pub apis: Vec<String>,
}

/// Evaluates R future payloads in persistent R processes; see the module docs.
///
/// Dropping it lets the processes finish their current job and exit; [`shutdown`]
/// (Self::shutdown) also waits for that.
#[derive(Debug)]
pub struct REvaluator {
    requests: mpsc::UnboundedSender<Request>,
    slots: Vec<JoinHandle<()>>,
    info: RWorkerInfo,
}

impl REvaluator {
    /// Starts `config.slots` R processes and waits until each has said hello, so that a
    /// missing R or future.p2p package is an error here rather than on the first job. A
    /// lazy evaluator ([`REvaluatorConfig::idle_stop`]) starts one to check that, and
    /// stops it.
    pub async fn start(config: REvaluatorConfig) -> Result<REvaluator, SpawnError> {
        let config = Arc::new(config);
        let warm = if config.idle_stop.is_some() {
            1
        } else {
            config.slots.max(1)
        };
        let processes =
            futures::future::join_all((0..warm).map(|_| RProcess::spawn(&config))).await;
        let mut started = Vec::with_capacity(processes.len());
        let mut failure = None;
        for process in processes {
            match process {
                Ok(process) => started.push(process),
                Err(err) => failure = failure.or(Some(err)),
            }
        }
        if let Some(err) = failure {
            for process in started {
                process.shutdown().await;
            }
            return Err(err);
        }
        let hello = started[0].hello();
        let info = RWorkerInfo {
            r_version: hello.r_version.clone(),
            future_version: hello.future_version.clone(),
            apis: hello.apis.clone(),
        };
        if config.idle_stop.is_some() {
            for process in started.drain(..) {
                process.shutdown().await;
            }
        }
        let (requests, queue) = mpsc::unbounded_channel();
        let queue = Arc::new(Mutex::new(queue));
        let mut started = started.into_iter();
        let slots = (0..config.slots.max(1))
            .map(|index| {
                let slot = Slot::new(index, config.clone(), started.next(), queue.clone());
                tokio::spawn(slot.run())
            })
            .collect();
        Ok(REvaluator {
            requests,
            slots,
            info,
        })
    }

    /// The R and future versions the processes reported.
    pub fn info(&self) -> &RWorkerInfo {
        &self.info
    }

    /// Number of R processes.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Stops taking jobs, lets the running ones finish and waits for the R processes to
    /// exit.
    pub async fn shutdown(self) {
        drop(self.requests);
        for slot in self.slots {
            if let Err(err) = slot.await {
                tracing::warn!(%err, "an R evaluator slot task failed");
            }
        }
    }
}

impl REvaluator {
    /// Queues `job` for the next free slot.
    fn submit(
        &self,
        job: StreamJob,
        progress: ProgressSink,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
        let requests = self.requests.clone();
        Box::pin(async move {
            let (reply, result) = oneshot::channel();
            requests
                .send(Request {
                    job,
                    progress,
                    reply,
                })
                .map_err(|_| RemoteError {
                    kind: RemoteErrorKind::Failed,
                    message: "the R evaluator has shut down".to_owned(),
                })?;
            // Dropping `result` (this future) is what tells the slot to cancel the job.
            result.await.map_err(|_| RemoteError {
                kind: RemoteErrorKind::Failed,
                message: "the R evaluator stopped before the job ended".to_owned(),
            })?
        })
    }
}

impl Executor for REvaluator {
    fn execute(
        &self,
        job: Job,
        progress: ProgressSink,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
        let job = StreamJob {
            future: job.future,
            client: job.client,
            payload: job.payload.into(),
            format: job.format,
        };
        self.submit(job, progress)
    }

    fn execute_stream(
        self: Arc<Self>,
        job: StreamJob,
        progress: ProgressSink,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
        self.submit(job, progress)
    }

    fn failure_result(
        &self,
        future: &FutureId,
        format: PayloadFormat,
        error: &RemoteError,
    ) -> Option<Bytes> {
        match format {
            // Our clients hear of failures in frames and decline lines.
            PayloadFormat::Native => None,
            PayloadFormat::FutureP2p => Some(Bytes::from(crate::rds::failure_result(
                future.as_str(),
                &failure_message(error),
            ))),
        }
    }
}

/// The error a future.p2p 0.4.0 client sees when this worker could not run its future.
fn failure_message(error: &RemoteError) -> String {
    let what = match error.kind {
        RemoteErrorKind::Refused => "refused it",
        RemoteErrorKind::PayloadTooLarge => "found it too large",
        RemoteErrorKind::TimeLimit => "stopped it at its time limit",
        RemoteErrorKind::Cancelled => "stopped it",
        RemoteErrorKind::Crashed => "lost its R process while evaluating it",
        RemoteErrorKind::Unsupported => "cannot evaluate it",
        RemoteErrorKind::Failed => "could not evaluate it",
    };
    format!(
        "the future-p2p worker that took this future {what}: {}",
        error.message
    )
}
