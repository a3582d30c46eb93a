//! The [`Executor`] trait: what evaluates a payload on a worker, and a shell-command one.
//!
//! An executor turns one payload into one serialized result. The worker driver calls it
//! once per task, up to its number of slots at once, and cancels a task by dropping the
//! future it returned: an executor must then stop the work (interrupt R, kill a command's
//! processes) and stay usable for the next task. Time limits are the driver's (it drops
//! the future when time is up); limits only the executor can enforce (memory, output) are
//! its own.
//!
//! A payload that arrives on a warm session reaches the executor while it is still
//! arriving ([`Executor::execute_stream`]): an executor that can start on part of it
//! (a command reading its stdin, R reading its job) overrides that method, so a worker
//! holds a few pieces of a large payload at a time rather than all of it. The others get
//! it whole through [`Executor::execute`].
//!
//! Each job says which [`PayloadFormat`] its client speaks. A client of future.p2p 0.4.0
//! has no error channel (it waits for a result and ignores `decline` lines): an executor
//! that can say "this failed" as a result in that format does so in
//! [`Executor::failure_result`], which the driver sends when such a task fails.

use std::process::Stdio;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use p2p_proto::frame::{RemoteError, RemoteErrorKind};
use p2p_proto::id::{FutureId, PeerId};
use p2p_proto::limits::DEFAULT_MAX_PAYLOAD;
use p2p_proto::protocols::PayloadFormat;
use p2p_transport::wormhole::{IncomingPayload, PayloadError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{ChildStdin, Command};
use tokio::sync::mpsc;

/// One task for an executor, its payload whole.
#[derive(Debug, Clone)]
pub struct Job {
    /// The task (its future, as named on the board).
    pub future: FutureId,
    /// The client that submitted it.
    pub client: PeerId,
    /// What the client shipped (RDS for R, opaque bytes for Rust embedders).
    pub payload: Bytes,
    /// The format of `payload`, and of the result the client expects.
    pub format: PayloadFormat,
}

/// One task for an executor, its payload possibly still arriving.
#[derive(Debug)]
pub struct StreamJob {
    /// The task (its future, as named on the board).
    pub future: FutureId,
    /// The client that submitted it.
    pub client: PeerId,
    /// What the client shipped, in pieces as they arrive.
    pub payload: IncomingPayload,
    /// The format of `payload`, and of the result the client expects.
    pub format: PayloadFormat,
}

/// Where an executor sends progress updates (e.g. serialized R conditions) while a job runs;
/// the driver relays them to the client as they come.
pub type ProgressSink = mpsc::UnboundedSender<Bytes>;

/// Evaluates payloads.
pub trait Executor: Send + Sync + 'static {
    /// Runs `job` to its serialized result. Dropping the returned future cancels the job.
    fn execute(
        &self,
        job: Job,
        progress: ProgressSink,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>>;

    /// Runs a job whose payload may still be arriving. The default gathers the payload,
    /// then calls [`Executor::execute`]; executors that can start on a partial payload
    /// override it. Dropping the returned future cancels the job.
    fn execute_stream(
        self: Arc<Self>,
        job: StreamJob,
        progress: ProgressSink,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
        Box::pin(async move {
            let payload = job.payload.collect().await.map_err(payload_error)?;
            let job = Job {
                future: job.future,
                client: job.client,
                payload,
                format: job.format,
            };
            self.execute(job, progress).await
        })
    }

    /// A result in `format` telling the client of `future` that it failed with `error`,
    /// for clients that learn of failures no other way (future.p2p 0.4.0's wait for a
    /// result); `None`: this executor has no such result.
    ///
    /// Required, without a default: an executor wrapping another must forward it, or
    /// such clients would wait forever for a failed task (it happened once).
    fn failure_result(
        &self,
        future: &FutureId,
        format: PayloadFormat,
        error: &RemoteError,
    ) -> Option<Bytes>;
}

impl<E: Executor + ?Sized> Executor for Arc<E> {
    fn execute(
        &self,
        job: Job,
        progress: ProgressSink,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
        (**self).execute(job, progress)
    }

    fn execute_stream(
        self: Arc<Self>,
        job: StreamJob,
        progress: ProgressSink,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
        E::execute_stream(Arc::clone(&*self), job, progress)
    }

    fn failure_result(
        &self,
        future: &FutureId,
        format: PayloadFormat,
        error: &RemoteError,
    ) -> Option<Bytes> {
        (**self).failure_result(future, format, error)
    }
}

/// The error a job fails with when its payload cannot be had.
pub fn payload_error(error: PayloadError) -> RemoteError {
    match error {
        PayloadError::TooLarge { .. } => RemoteError {
            kind: RemoteErrorKind::PayloadTooLarge,
            message: format!("{error} of this worker"),
        },
        PayloadError::Interrupted { .. } => failed(format!("receiving the payload: {error}")),
    }
}

/// Runs a Rust function per job, on tokio's blocking pool (so a slow function does not
/// stall the worker's board reading). For embedders whose tasks are Rust code.
pub struct FnExecutor<F>(Arc<F>);

impl<F> FnExecutor<F>
where
    F: Fn(Job) -> Result<Bytes, RemoteError> + Send + Sync + 'static,
{
    /// An executor calling `run` for each job.
    pub fn new(run: F) -> Self {
        FnExecutor(Arc::new(run))
    }
}

impl<F> Executor for FnExecutor<F>
where
    F: Fn(Job) -> Result<Bytes, RemoteError> + Send + Sync + 'static,
{
    fn execute(
        &self,
        job: Job,
        _progress: ProgressSink,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
        let run = Arc::clone(&self.0);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || run(job))
                .await
                .unwrap_or_else(|err| Err(failed(format!("executor function panicked: {err}"))))
        })
    }

    // a function's results are opaque bytes, never future.p2p 0.4.0's.
    fn failure_result(
        &self,
        _future: &FutureId,
        _format: PayloadFormat,
        _error: &RemoteError,
    ) -> Option<Bytes> {
        None
    }
}

/// What a [`CommandExecutor`] lets one command use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLimits {
    /// Most bytes of output (the result) kept; a command printing more is killed and its
    /// task fails, so a runaway command cannot fill the worker's memory. Default: the
    /// payload limit, [`DEFAULT_MAX_PAYLOAD`] (results are bounded like payloads).
    pub max_output: u64,
    /// Address-space limit (`ulimit -v`, RLIMIT_AS) of the command and everything it
    /// starts, in bytes, as [`REvaluatorConfig::memory_limit`] is for R; `None` for none.
    ///
    /// [`REvaluatorConfig::memory_limit`]: https://docs.rs/p2p-r
    pub memory: Option<u64>,
}

impl Default for CommandLimits {
    fn default() -> Self {
        CommandLimits {
            max_output: DEFAULT_MAX_PAYLOAD,
            memory: None,
        }
    }
}

/// Runs a shell command per job: the payload on its stdin, the result from its stdout.
///
/// - A non-zero exit is a [`RemoteErrorKind::Failed`] carrying the end of stderr.
/// - Each command runs in a process group of its own, and the whole group is killed when
///   the job ends, is cancelled or runs out of time: nothing a task started outlives it.
/// - Output beyond [`CommandLimits::max_output`] fails the task; only the end of stderr is
///   kept; [`CommandLimits::memory`] bounds its address space.
/// - The payload is fed to stdin as it arrives, while stdout is read, so a command that
///   writes before it has read everything cannot deadlock on a full pipe.
///
/// The environment gets `FUTURE_P2P_FUTURE` and `FUTURE_P2P_CLIENT`, so a script can tell
/// tasks apart.
#[derive(Debug, Clone)]
pub struct CommandExecutor {
    command: String,
    limits: CommandLimits,
}

/// How much of a failed command's stderr goes into the error message.
const STDERR_TAIL: usize = 2048;
/// Bytes read from a command's output at a time.
const OUTPUT_CHUNK: usize = 64 << 10;

impl CommandExecutor {
    /// An executor running `command` with `sh -c`, with the default limits.
    pub fn new(command: impl Into<String>) -> Self {
        Self::with_limits(command, CommandLimits::default())
    }

    /// An executor running `command` with `sh -c` within `limits`.
    pub fn with_limits(command: impl Into<String>, limits: CommandLimits) -> Self {
        CommandExecutor {
            command: command.into(),
            limits,
        }
    }

    /// The script `sh -c` runs: the memory limit first, then the command.
    fn script(&self) -> String {
        match self.limits.memory {
            // ulimit -v counts KiB. If the limit cannot be set the task must not run
            // unbounded: the shell exits with the reason on stderr.
            Some(bytes) => format!(
                "ulimit -v {} || exit 125\n{}",
                (bytes / 1024).max(1),
                self.command
            ),
            None => self.command.clone(),
        }
    }
}

fn failed(message: String) -> RemoteError {
    RemoteError {
        kind: RemoteErrorKind::Failed,
        message,
    }
}

/// Kills a command's process group when dropped: at the end of the job, or when the job is
/// cancelled or timed out and its future dropped.
struct GroupKiller(Option<rustix::process::Pid>);

impl Drop for GroupKiller {
    fn drop(&mut self) {
        if let Some(group) = self.0 {
            // The group may be gone already (ESRCH): nothing is left to stop.
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
    }
}

impl Executor for CommandExecutor {
    fn execute(
        &self,
        job: Job,
        progress: ProgressSink,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
        Arc::new(self.clone()).execute_stream(
            StreamJob {
                future: job.future,
                client: job.client,
                payload: IncomingPayload::from(job.payload),
                format: job.format,
            },
            progress,
        )
    }

    fn execute_stream(
        self: Arc<Self>,
        job: StreamJob,
        _progress: ProgressSink,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
        Box::pin(async move {
            let command = &self.command;
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(self.script())
                .env("FUTURE_P2P_FUTURE", job.future.as_str())
                .env("FUTURE_P2P_CLIENT", job.client.as_str())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .process_group(0)
                .kill_on_drop(true)
                .spawn()
                .map_err(|err| {
                    failed(format!("cannot start executor command {command:?}: {err}"))
                })?;
            // Declared after `child`, so dropped before it: the group dies first, while the
            // unreaped leader still holds the group's id.
            let _group = GroupKiller(
                child
                    .id()
                    .and_then(|pid| rustix::process::Pid::from_raw(pid as i32)),
            );
            let (Some(stdin), Some(stdout), Some(stderr)) =
                (child.stdin.take(), child.stdout.take(), child.stderr.take())
            else {
                return Err(failed("executor pipes unavailable".into()));
            };
            let feed = feed_stdin(stdin, job.payload);
            let read_out = read_bounded(stdout, self.limits.max_output);
            let read_err = read_tail(stderr, STDERR_TAIL);
            tokio::pin!(feed, read_out, read_err);
            let (mut fed, mut out, mut err) = (false, None, None);
            // Until both outputs end. Any failure returns at once, which kills the group:
            // a command that floods its output or whose payload broke off is not waited for.
            while out.is_none() || err.is_none() {
                tokio::select! {
                    result = &mut feed, if !fed => {
                        result?;
                        fed = true;
                    }
                    result = &mut read_out, if out.is_none() => match result {
                        Ok(bytes) => out = Some(bytes),
                        Err(OutputError::TooLarge) => {
                            return Err(failed(format!(
                                "executor command {command:?} printed more than the output \
                                 limit of {} bytes",
                                self.limits.max_output
                            )));
                        }
                        Err(OutputError::Io(e)) => {
                            return Err(failed(format!("reading executor output: {e}")));
                        }
                    },
                    result = &mut read_err, if err.is_none() => {
                        err = Some(result.map_err(|e| failed(format!("reading executor errors: {e}")))?);
                    }
                }
            }
            // Both outputs ended: the rest of the payload, if any, is not needed.
            let (out, err) = (out.unwrap_or_default(), err.unwrap_or_default());
            let status = child
                .wait()
                .await
                .map_err(|e| failed(format!("waiting for executor command: {e}")))?;
            if status.success() {
                Ok(Bytes::from(out))
            } else {
                Err(failed(format!(
                    "executor command {command:?} failed ({status}): {}",
                    String::from_utf8_lossy(&err).trim_end()
                )))
            }
        })
    }

    // A command's output is opaque bytes: its clients are this project's (or embedders'),
    // which hear of failures on the session or through declines.
    fn failure_result(
        &self,
        _future: &FutureId,
        _format: PayloadFormat,
        _error: &RemoteError,
    ) -> Option<Bytes> {
        None
    }
}

/// Writes the payload to the command's stdin piece by piece as it arrives, then closes it.
async fn feed_stdin(
    mut stdin: ChildStdin,
    mut payload: IncomingPayload,
) -> Result<(), RemoteError> {
    loop {
        match payload.next_chunk().await {
            Ok(Some(chunk)) => {
                // A command that exits without reading its input is not an error here; its
                // exit status says whether it worked. The rest of the payload is not needed.
                if stdin.write_all(&chunk).await.is_err() {
                    return Ok(());
                }
            }
            Ok(None) => return Ok(()),
            Err(error) => return Err(payload_error(error)),
        }
    }
}

enum OutputError {
    TooLarge,
    Io(std::io::Error),
}

/// Reads `from` to its end, refusing more than `max` bytes.
async fn read_bounded(mut from: impl AsyncRead + Unpin, max: u64) -> Result<Vec<u8>, OutputError> {
    let mut out = Vec::new();
    loop {
        out.reserve(OUTPUT_CHUNK);
        match from.read_buf(&mut out).await {
            Ok(0) => return Ok(out),
            Ok(_) if out.len() as u64 > max => return Err(OutputError::TooLarge),
            Ok(_) => {}
            Err(err) => return Err(OutputError::Io(err)),
        }
    }
}

/// Reads `from` to its end, keeping only its last `keep` bytes.
async fn read_tail(mut from: impl AsyncRead + Unpin, keep: usize) -> std::io::Result<Vec<u8>> {
    let mut tail = Vec::with_capacity(2 * keep);
    let mut buf = [0u8; 4096];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            let cut = tail.len().saturating_sub(keep);
            tail.drain(..cut);
            return Ok(tail);
        }
        tail.extend_from_slice(&buf[..n]);
        if tail.len() > 2 * keep {
            let cut = tail.len() - keep;
            tail.drain(..cut);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn job(payload: &'static [u8]) -> Job {
        Job {
            future: "f-1".parse().unwrap(),
            client: "alice@h:1".parse().unwrap(),
            payload: Bytes::from_static(payload),
            format: PayloadFormat::Native,
        }
    }

    fn sink() -> ProgressSink {
        mpsc::unbounded_channel().0
    }

    fn pid_alive(pid: i32) -> bool {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| stat.split(' ').nth(2) == Some("Z"))
    }

    #[tokio::test]
    async fn functions_run_off_the_runtime_and_panics_are_errors() {
        let upper = FnExecutor::new(|job: Job| Ok(Bytes::from(job.payload.to_ascii_uppercase())));
        assert_eq!(
            &upper.execute(job(b"abc"), sink()).await.unwrap()[..],
            b"ABC"
        );
        let broken = FnExecutor::new(|_: Job| -> Result<Bytes, RemoteError> { panic!("bug") });
        let err = broken.execute(job(b""), sink()).await.unwrap_err();
        assert_eq!(err.kind, RemoteErrorKind::Failed);
        assert!(err.message.contains("panicked"), "{}", err.message);
    }

    #[tokio::test]
    async fn whole_payload_executors_get_a_streamed_payload_gathered() {
        let upper = Arc::new(FnExecutor::new(|job: Job| {
            Ok(Bytes::from(job.payload.to_ascii_uppercase()))
        }));
        let (payload, pieces) = IncomingPayload::stream(6);
        pieces.send(Bytes::from_static(b"abc")).unwrap();
        pieces.send(Bytes::from_static(b"def")).unwrap();
        let job = StreamJob {
            future: "f-1".parse().unwrap(),
            client: "alice@h:1".parse().unwrap(),
            payload,
            format: PayloadFormat::Native,
        };
        assert_eq!(
            &upper.execute_stream(job, sink()).await.unwrap()[..],
            b"ABCDEF"
        );
    }

    #[tokio::test]
    async fn payload_in_result_out() {
        let executor =
            CommandExecutor::new("tr a-z A-Z; printf \" $FUTURE_P2P_FUTURE $FUTURE_P2P_CLIENT\"");
        let result = executor.execute(job(b"hello"), sink()).await.unwrap();
        assert_eq!(&result[..], b"HELLO f-1 alice@h:1");
    }

    #[tokio::test]
    async fn a_streamed_payload_reaches_the_command_as_it_arrives() {
        let executor = Arc::new(CommandExecutor::new("head -c 3; echo; cat"));
        let (payload, pieces) = IncomingPayload::stream(6);
        let job = StreamJob {
            future: "f-1".parse().unwrap(),
            client: "alice@h:1".parse().unwrap(),
            payload,
            format: PayloadFormat::Native,
        };
        let run = tokio::spawn(executor.execute_stream(job, sink()));
        pieces.send(Bytes::from_static(b"abc")).unwrap();
        // The command has the first piece before the second exists.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!run.is_finished());
        pieces.send(Bytes::from_static(b"def")).unwrap();
        let result = tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .expect("finishes")
            .unwrap()
            .unwrap();
        assert_eq!(&result[..], b"abc\ndef");
    }

    #[tokio::test]
    async fn a_payload_cut_short_fails_the_task() {
        let executor = Arc::new(CommandExecutor::new("cat"));
        let (payload, pieces) = IncomingPayload::stream(6);
        pieces.send(Bytes::from_static(b"abc")).unwrap();
        drop(pieces);
        let job = StreamJob {
            future: "f-1".parse().unwrap(),
            client: "alice@h:1".parse().unwrap(),
            payload,
            format: PayloadFormat::Native,
        };
        let err = executor.execute_stream(job, sink()).await.unwrap_err();
        assert_eq!(err.kind, RemoteErrorKind::Failed);
        assert!(err.message.contains("3 of 6"), "{}", err.message);
    }

    #[tokio::test]
    async fn large_payloads_do_not_deadlock() {
        let payload: &'static [u8] = Box::leak(vec![b'x'; 4 << 20].into_boxed_slice());
        let result = tokio::time::timeout(
            Duration::from_secs(30),
            CommandExecutor::new("cat").execute(job(payload), sink()),
        )
        .await
        .expect("cat of 4 MiB finishes")
        .unwrap();
        assert_eq!(result.len(), 4 << 20);
    }

    #[tokio::test]
    async fn failures_are_typed_with_stderr() {
        let err = CommandExecutor::new("echo boom >&2; exit 3")
            .execute(job(b""), sink())
            .await
            .unwrap_err();
        assert_eq!(err.kind, RemoteErrorKind::Failed);
        assert!(
            err.message.contains("boom") && err.message.contains("exit status: 3"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn only_the_end_of_a_flood_on_stderr_is_kept() {
        // 8 MiB on stderr, then a marker: the message ends with the marker, bounded.
        let err = CommandExecutor::new(
            "head -c 8388608 /dev/zero | tr '\\0' x >&2; echo END >&2; exit 1",
        )
        .execute(job(b""), sink())
        .await
        .unwrap_err();
        assert!(
            err.message.ends_with("END"),
            "{}",
            &err.message[err.message.len() - 20..]
        );
        assert!(
            err.message.len() < STDERR_TAIL + 200,
            "{} bytes",
            err.message.len()
        );
    }

    #[tokio::test]
    async fn output_beyond_the_limit_fails_the_task_and_stops_the_command() {
        let limits = CommandLimits {
            max_output: 1 << 20,
            memory: None,
        };
        // Endless output: the limit, not the command, ends it.
        let run = CommandExecutor::with_limits("yes", limits).execute(job(b""), sink());
        let err = tokio::time::timeout(Duration::from_secs(30), run)
            .await
            .expect("the limit ends the task")
            .unwrap_err();
        assert_eq!(err.kind, RemoteErrorKind::Failed);
        assert!(
            err.message.contains("output limit of 1048576 bytes"),
            "{}",
            err.message
        );
    }

    #[tokio::test]
    async fn the_memory_limit_applies_to_the_command() {
        let limits = CommandLimits {
            max_output: 1 << 20,
            memory: Some(64 << 20),
        };
        let executor = CommandExecutor::with_limits("ulimit -v", limits.clone());
        let shown = executor.execute(job(b""), sink()).await.unwrap();
        assert_eq!(String::from_utf8_lossy(&shown).trim(), "65536");
        // An allocation beyond it fails inside the command (and so the task).
        let err = CommandExecutor::with_limits(
            "awk 'BEGIN { s = sprintf(\"%200000000s\", \"\"); print length(s) }'",
            limits,
        )
        .execute(job(b""), sink())
        .await
        .unwrap_err();
        assert_eq!(err.kind, RemoteErrorKind::Failed, "{}", err.message);
    }

    #[tokio::test]
    async fn cancelling_kills_the_whole_process_group() {
        let dir = tempfile_dir();
        let pids = dir.join("pids");
        // The shell starts a child that would outlive it, and reports both pids.
        let command = format!("sleep 30 & echo $$ $! > {}; wait", pids.display());
        let run = CommandExecutor::new(command).execute(job(b""), sink());
        assert!(
            tokio::time::timeout(Duration::from_millis(500), run)
                .await
                .is_err()
        );
        let text = std::fs::read_to_string(&pids).expect("pids written");
        let pids: Vec<i32> = text
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        // Killing is immediate; reaping the shell may take the runtime a moment.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while pids.iter().any(|pid| pid_alive(*pid)) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            !pids.iter().any(|pid| pid_alive(*pid)),
            "a process of the cancelled task still runs: {pids:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn processes_left_behind_by_a_finished_task_are_killed() {
        let dir = tempfile_dir();
        let pid_file = dir.join("pid");
        let command = format!(
            "sleep 30 > /dev/null 2>&1 & echo $! > {}; echo done",
            pid_file.display()
        );
        let result = CommandExecutor::new(command)
            .execute(job(b""), sink())
            .await
            .unwrap();
        assert_eq!(&result[..], b"done\n");
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while pid_alive(pid) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            !pid_alive(pid),
            "the background child of a finished task still runs"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn tempfile_dir() -> std::path::PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "p2p-exec-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
