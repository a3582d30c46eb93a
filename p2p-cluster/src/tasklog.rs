//! [`TaskLog`]: an executor wrapper that says what each task on a worker is doing, at
//! info level under the `future_p2p::tasks` target: when it starts (whose, which, how
//! large), and how it ends (finished with its result's size, failed, or cancelled) and
//! after how long. Every [`ClusterWorker`](crate::ClusterWorker) runs its executor in one.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures::future::BoxFuture;
use p2p_proto::frame::RemoteError;
use p2p_proto::id::{FutureId, PeerId};
use p2p_proto::protocols::PayloadFormat;
use p2p_worker::executor::ProgressSink;
use p2p_worker::{Executor, Job, StreamJob};

/// The target these logs are under, for log filters (`RUST_LOG=future_p2p::tasks=info`).
pub const TARGET: &str = "future_p2p::tasks";

/// Wraps an executor; see the module notes.
#[derive(Debug)]
pub struct TaskLog<E>(Arc<E>);

impl<E> TaskLog<E> {
    /// Logs the tasks `executor` runs.
    pub fn new(executor: E) -> Self {
        TaskLog(Arc::new(executor))
    }
}

/// One task from its start until it ends (logged when dropped, if nothing else was).
struct Running {
    future: FutureId,
    client: PeerId,
    started: Instant,
    ended: bool,
}

impl Running {
    fn start(future: &FutureId, client: &PeerId, size: u64, arriving: bool) -> Running {
        let size = human_size(size);
        if arriving {
            tracing::info!(target: TARGET, "task {future} from {client}: started, its {size} payload arriving");
        } else {
            tracing::info!(target: TARGET, "task {future} from {client}: received {size}, started");
        }
        Running {
            future: future.clone(),
            client: client.clone(),
            started: Instant::now(),
            ended: false,
        }
    }

    fn end(mut self, outcome: &Result<Bytes, RemoteError>) {
        self.ended = true;
        let (future, client) = (&self.future, &self.client);
        let took = self.started.elapsed().as_secs_f64();
        match outcome {
            Ok(result) => tracing::info!(
                target: TARGET,
                "task {future} from {client}: finished in {took:.2} s, result {}",
                human_size(result.len() as u64)
            ),
            Err(err) => tracing::info!(
                target: TARGET,
                "task {future} from {client}: failed after {took:.2} s: {}",
                err.message
            ),
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.ended {
            tracing::info!(
                target: TARGET,
                "task {} from {}: stopped after {:.2} s (cancelled, timed out, or the worker stopped)",
                self.future,
                self.client,
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}

impl<E: Executor> Executor for TaskLog<E> {
    fn execute(
        &self,
        job: Job,
        progress: ProgressSink,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
        let running = Running::start(&job.future, &job.client, job.payload.len() as u64, false);
        let run = self.0.execute(job, progress);
        Box::pin(async move {
            let outcome = run.await;
            running.end(&outcome);
            outcome
        })
    }

    fn execute_stream(
        self: Arc<Self>,
        job: StreamJob,
        progress: ProgressSink,
    ) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
        let running = Running::start(&job.future, &job.client, job.payload.len(), true);
        let run = E::execute_stream(Arc::clone(&self.0), job, progress);
        Box::pin(async move {
            let outcome = run.await;
            running.end(&outcome);
            outcome
        })
    }

    // The wrapped executor's, or future.p2p 0.4.0 clients never hear of a failure.
    fn failure_result(
        &self,
        future: &FutureId,
        format: PayloadFormat,
        error: &RemoteError,
    ) -> Option<Bytes> {
        self.0.failure_result(future, format, error)
    }
}

/// `512 B`, `3.4 KiB`, `64.0 MiB`, `1.50 GiB`.
pub fn human_size(bytes: u64) -> String {
    const KIB: f64 = 1024.0;
    let b = bytes as f64;
    if b < KIB {
        format!("{bytes} B")
    } else if b < KIB * KIB {
        format!("{:.1} KiB", b / KIB)
    } else if b < KIB * KIB * KIB {
        format!("{:.1} MiB", b / (KIB * KIB))
    } else {
        format!("{:.2} GiB", b / (KIB * KIB * KIB))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(3 * 1024 + 400), "3.4 KiB");
        assert_eq!(human_size(64 << 20), "64.0 MiB");
        assert_eq!(human_size(3 << 29), "1.50 GiB");
    }

    /// An executor that can tell future.p2p 0.4.0 clients of failures.
    struct Answers;

    impl Executor for Answers {
        fn execute(
            &self,
            _job: Job,
            _progress: ProgressSink,
        ) -> BoxFuture<'static, Result<Bytes, RemoteError>> {
            Box::pin(async { Ok(Bytes::new()) })
        }

        fn failure_result(
            &self,
            future: &FutureId,
            _format: PayloadFormat,
            error: &RemoteError,
        ) -> Option<Bytes> {
            Some(Bytes::from(format!("{future}: {}", error.message)))
        }
    }

    #[test]
    fn failure_results_of_the_wrapped_executor_come_through() {
        let error = RemoteError {
            kind: p2p_proto::frame::RemoteErrorKind::Failed,
            message: "boom".into(),
        };
        let future: FutureId = "f-1".parse().unwrap();
        assert_eq!(
            TaskLog::new(Answers).failure_result(&future, PayloadFormat::FutureP2p, &error),
            Some(Bytes::from_static(b"f-1: boom"))
        );
    }
}
