//! The [`Executor`] trait: what evaluates a payload on a worker, and a shell-command one.
//!
//! An executor turns one payload into one serialized result. The worker driver calls it
//! once per task, up to its number of slots at once, and cancels a task by dropping the
//! future `execute` returned: an executor must then stop the work (interrupt R, kill a
//! child) and stay usable for the next task. Time limits are the driver's (it drops the
//! future when time is up); limits only the executor can enforce (memory) are its own.

use std::process::Stdio;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use p2p_proto::frame::{RemoteError, RemoteErrorKind};
use p2p_proto::id::{FutureId, PeerId};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;
use tokio::sync::mpsc;

/// One task for an executor.
#[derive(Debug, Clone)]
pub struct Job {
    /// The task (its future, as named on the board).
    pub future: FutureId,
    /// The client that submitted it.
    pub client: PeerId,
    /// What the client shipped (RDS for R, opaque bytes for Rust embedders).
    pub payload: Bytes,
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
}

impl<E: Executor + ?Sized> Executor for Arc<E> {
    fn execute(
        &self,
        job: Job,
        progress: ProgressSink,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
        (**self).execute(job, progress)
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
}

/// Runs a shell command per job: the payload on its stdin, the result from its stdout.
///
/// A non-zero exit is a [`RemoteErrorKind::Failed`] carrying the end of stderr. The child
/// is killed when the job is cancelled. The environment gets `FUTURE_P2P_FUTURE` and
/// `FUTURE_P2P_CLIENT`, so a script can tell tasks apart.
#[derive(Debug, Clone)]
pub struct CommandExecutor {
    command: String,
}

/// How much of a failed command's stderr goes into the error message.
const STDERR_TAIL: usize = 2048;

impl CommandExecutor {
    /// An executor running `command` with `sh -c`.
    pub fn new(command: impl Into<String>) -> Self {
        CommandExecutor {
            command: command.into(),
        }
    }
}

fn failed(message: String) -> RemoteError {
    RemoteError {
        kind: RemoteErrorKind::Failed,
        message,
    }
}

impl Executor for CommandExecutor {
    fn execute(
        &self,
        job: Job,
        _progress: ProgressSink,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
        let command = self.command.clone();
        Box::pin(async move {
            let mut child = Command::new("sh")
                .arg("-c")
                .arg(&command)
                .env("FUTURE_P2P_FUTURE", job.future.as_str())
                .env("FUTURE_P2P_CLIENT", job.client.as_str())
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .map_err(|err| {
                    failed(format!("cannot start executor command {command:?}: {err}"))
                })?;
            let mut stdin = child
                .stdin
                .take()
                .ok_or_else(|| failed("executor stdin unavailable".into()))?;
            let mut stdout = child
                .stdout
                .take()
                .ok_or_else(|| failed("executor stdout unavailable".into()))?;
            let mut stderr = child
                .stderr
                .take()
                .ok_or_else(|| failed("executor stderr unavailable".into()))?;
            let payload = job.payload.clone();
            // Feed stdin while draining stdout and stderr, so a command that writes before it
            // has read everything cannot deadlock on a full pipe.
            let write = async move {
                // A command that exits without reading its input is not an error here; its
                // exit status says whether it worked.
                let _ = stdin.write_all(&payload).await;
                drop(stdin);
            };
            let mut out = Vec::new();
            let mut err = Vec::new();
            let (_, read_out, read_err) = tokio::join!(
                write,
                stdout.read_to_end(&mut out),
                stderr.read_to_end(&mut err)
            );
            read_out.map_err(|e| failed(format!("reading executor output: {e}")))?;
            read_err.map_err(|e| failed(format!("reading executor errors: {e}")))?;
            let status = child
                .wait()
                .await
                .map_err(|e| failed(format!("waiting for executor command: {e}")))?;
            if status.success() {
                Ok(Bytes::from(out))
            } else {
                let tail = String::from_utf8_lossy(&err[err.len().saturating_sub(STDERR_TAIL)..]);
                Err(failed(format!(
                    "executor command {command:?} failed ({status}): {}",
                    tail.trim_end()
                )))
            }
        })
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
        }
    }

    fn sink() -> ProgressSink {
        mpsc::unbounded_channel().0
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
    async fn payload_in_result_out() {
        let executor =
            CommandExecutor::new("tr a-z A-Z; printf \" $FUTURE_P2P_FUTURE $FUTURE_P2P_CLIENT\"");
        let result = executor.execute(job(b"hello"), sink()).await.unwrap();
        assert_eq!(&result[..], b"HELLO f-1 alice@h:1");
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
    async fn cancelling_kills_the_command() {
        let dir = std::env::temp_dir().join(format!("p2p-exec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let marker = dir.join("done");
        let command = format!("sleep 2; touch {}", marker.display());
        let run = CommandExecutor::new(command).execute(job(b""), sink());
        assert!(
            tokio::time::timeout(Duration::from_millis(200), run)
                .await
                .is_err()
        );
        tokio::time::sleep(Duration::from_millis(2500)).await;
        assert!(!marker.exists(), "the cancelled command ran to the end");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
