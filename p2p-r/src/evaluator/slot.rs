//! One slot of an [`REvaluator`](super::REvaluator): a task that owns one R process, runs
//! one job at a time on it, and replaces the process when it dies or can no longer be
//! trusted (an interrupt that was not acknowledged, a malformed frame).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use p2p_proto::frame::{RemoteError, RemoteErrorKind};
use p2p_proto::protocols::PayloadFormat;
use p2p_worker::executor::{ProgressSink, StreamJob};
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::time::Instant;

use super::REvaluatorConfig;
use super::process::{ProcessError, RProcess, SendError};
use super::protocol::{FromR, ToR};
use crate::frame::{BodyTooLarge, RFrameError};

/// How long a slot waits before trying again to start an R process that failed to start.
const RESPAWN_BACKOFF: Duration = Duration::from_secs(1);
/// After R answered the wake-up ping of an interrupt, how long its acknowledgement may
/// still take before the process is considered to have lost the interrupt.
const LATE_INTERRUPT_WAIT: Duration = Duration::from_millis(250);

/// One job waiting for a slot.
pub struct Request {
    pub job: StreamJob,
    pub progress: ProgressSink,
    /// Closed by the caller when it drops its future: the job is cancelled.
    pub reply: oneshot::Sender<Result<Bytes, RemoteError>>,
}

type Queue = Arc<Mutex<mpsc::UnboundedReceiver<Request>>>;

/// What becomes of the R process after a job.
enum After {
    /// It is back in its loop, waiting for the next job.
    Reuse,
    /// It must go: kill it and start another.
    Kill,
    /// It has already exited and been reaped; start another.
    Dead,
}

pub struct Slot {
    index: usize,
    config: Arc<REvaluatorConfig>,
    process: Option<RProcess>,
    queue: Queue,
    last_job: u32,
}

fn remote_error(kind: RemoteErrorKind, message: impl Into<String>) -> RemoteError {
    RemoteError {
        kind,
        message: message.into(),
    }
}

async fn next_request(queue: &Queue) -> Option<Request> {
    queue.lock().await.recv().await
}

impl Slot {
    /// A slot running its jobs on `process`, or, without one, starting R at its first
    /// job (a lazy evaluator).
    pub fn new(
        index: usize,
        config: Arc<REvaluatorConfig>,
        process: Option<RProcess>,
        queue: Queue,
    ) -> Slot {
        Slot {
            index,
            config,
            process,
            queue,
            last_job: 0,
        }
    }

    /// Serves requests until the evaluator is dropped.
    pub async fn run(mut self) {
        loop {
            let request = match self.process.as_mut() {
                // While idle, watch the process too: one that dies between jobs is
                // replaced before it gets a job; a lazy slot lets it go after a while.
                Some(process) => tokio::select! {
                    request = next_request(&self.queue) => request,
                    frame = process.next_frame() => {
                        match frame {
                            Ok(frame) => tracing::debug!(slot = self.index, ?frame, "ignoring a frame from an idle R"),
                            Err(err) => {
                                let report = process.exit_report().await;
                                tracing::warn!(slot = self.index, %err, %report, "R evaluator died while idle; restarting it");
                                self.process = None;
                            }
                        }
                        continue;
                    }
                    () = idle_timeout(self.config.idle_stop) => {
                        tracing::debug!(slot = self.index, "stopping an idle R evaluator");
                        if let Some(process) = self.process.take() {
                            process.shutdown().await;
                        }
                        continue;
                    }
                },
                // Lazy: R starts when there is work for it.
                None if self.config.idle_stop.is_some() => next_request(&self.queue).await,
                None => {
                    if !self.respawn().await {
                        return;
                    }
                    continue;
                }
            };
            let Some(request) = request else {
                if let Some(process) = self.process.take() {
                    process.shutdown().await;
                }
                return;
            };
            if request.reply.is_closed() {
                continue;
            }
            let process = match self.process.as_mut() {
                Some(process) => process,
                None => match RProcess::spawn(&self.config).await {
                    Ok(process) => self.process.insert(process),
                    Err(err) => {
                        tracing::error!(slot = self.index, %err, "cannot start the R evaluator");
                        let _ = request.reply.send(Err(remote_error(
                            RemoteErrorKind::Crashed,
                            format!("the worker's R evaluator cannot be started: {err}"),
                        )));
                        tokio::time::sleep(RESPAWN_BACKOFF).await;
                        continue;
                    }
                },
            };
            self.last_job = next_job_id(self.last_job);
            match run_job(process, self.last_job, request, self.config.interrupt_grace).await {
                After::Reuse => {}
                After::Kill => {
                    let report = process.kill().await;
                    tracing::debug!(slot = self.index, %report, "replaced the R evaluator");
                    self.process = None;
                }
                After::Dead => self.process = None,
            }
        }
    }

    /// Starts a new R process; while that fails, fails the waiting jobs instead of letting
    /// them wait forever. Returns false once the evaluator is gone.
    async fn respawn(&mut self) -> bool {
        match RProcess::spawn(&self.config).await {
            Ok(process) => {
                self.process = Some(process);
                true
            }
            Err(err) => {
                tracing::error!(slot = self.index, %err, "cannot restart the R evaluator");
                let Some(request) = next_request(&self.queue).await else {
                    return false;
                };
                let _ = request.reply.send(Err(remote_error(
                    RemoteErrorKind::Crashed,
                    format!("the worker's R evaluator cannot be restarted: {err}"),
                )));
                tokio::time::sleep(RESPAWN_BACKOFF).await;
                true
            }
        }
    }
}

/// Ends after `idle`, or never.
async fn idle_timeout(idle: Option<Duration>) {
    match idle {
        Some(idle) => tokio::time::sleep(idle).await,
        None => std::future::pending().await,
    }
}

/// Job ids stay within R's positive integers.
fn next_job_id(last: u32) -> u32 {
    if last >= i32::MAX as u32 { 1 } else { last + 1 }
}

async fn run_job(process: &mut RProcess, id: u32, request: Request, grace: Duration) -> After {
    let Request {
        job,
        progress,
        mut reply,
    } = request;
    tracing::debug!(future = %job.future, id, bytes = job.payload.len(), format = ?job.format, "evaluating in R");
    let mut payload = job.payload;
    let future = job.future.to_string();
    let send = async {
        match job.format {
            PayloadFormat::Native => process.send_job(id, &mut payload).await,
            // A 0.4.0 client's RDS file came whole by file transfer: R reads it whole.
            PayloadFormat::FutureP2p => {
                let payload = payload.collect().await?;
                super::protocol::original_job_header(id, &future, payload.len())?;
                let frame = ToR::OriginalJob {
                    job: id,
                    future,
                    payload,
                };
                Ok(process.send(&frame).await?)
            }
        }
    };
    let sent = tokio::select! {
        sent = send => sent,
        // R is in the middle of reading the job: only a new process is in a known state.
        _ = reply.closed() => return After::Kill,
    };
    match sent {
        Ok(()) => {}
        // Refused before a byte went to R: it is still waiting for a frame.
        Err(SendError::TooLarge(error)) => {
            let _ = reply.send(Err(remote_error(
                RemoteErrorKind::PayloadTooLarge,
                format!("{error}: R reads jobs of at most that size"),
            )));
            return After::Reuse;
        }
        // The payload broke off with R mid-frame.
        Err(SendError::Payload(error)) => {
            let _ = reply.send(Err(p2p_worker::executor::payload_error(error)));
            return After::Kill;
        }
        Err(SendError::Process(err)) => {
            let report = process.kill().await;
            let _ = reply.send(Err(remote_error(
                RemoteErrorKind::Crashed,
                format!("cannot send the job to R ({err}); {report}"),
            )));
            return After::Dead;
        }
    }
    let mut started = false;
    loop {
        let frame = tokio::select! {
            _ = reply.closed() => return cancel(process, id, started, grace).await,
            frame = process.next_frame() => frame,
        };
        let outcome = match frame {
            Ok(FromR::Started { job }) if job == id => {
                started = true;
                continue;
            }
            Ok(FromR::Condition { job, condition }) if job == id => {
                // A caller that stopped listening to progress still wants the result.
                let _ = progress.send(condition);
                continue;
            }
            Ok(FromR::Result { job, result }) if job == id => Ok(result),
            Ok(FromR::Interrupted { job }) if job == id => Err(remote_error(
                RemoteErrorKind::Failed,
                "the evaluation was interrupted on the worker (a SIGINT not sent by future-p2p)",
            )),
            Ok(FromR::Unsupported { job, message }) if job == id => {
                Err(remote_error(RemoteErrorKind::Unsupported, message))
            }
            // Failing before `Started`, R could not read the payload exactly and ends its
            // loop (the next frame's start is unknown): a new process serves the next job.
            Ok(FromR::Failed { job, message }) if job == id && !started => {
                let _ = reply.send(Err(remote_error(RemoteErrorKind::Failed, message)));
                return After::Kill;
            }
            Ok(FromR::Failed { job, message }) if job == id => {
                Err(remote_error(RemoteErrorKind::Failed, message))
            }
            Ok(frame) => {
                tracing::debug!(?frame, id, "ignoring a frame of another job");
                continue;
            }
            Err(ProcessError::Protocol(RFrameError::BodyTooLarge(BodyTooLarge { len, max }))) => {
                // R is writing a result no one will read: only a new process is usable.
                let _ = reply.send(Err(remote_error(
                    RemoteErrorKind::PayloadTooLarge,
                    format!("the result of {len} bytes exceeds this worker's limit of {max} bytes"),
                )));
                return After::Kill;
            }
            Err(err @ ProcessError::Protocol(_)) => {
                let report = process.kill().await;
                let _ = reply.send(Err(remote_error(
                    RemoteErrorKind::Crashed,
                    format!("the R evaluator broke the protocol ({err}); {report}"),
                )));
                return After::Dead;
            }
            Err(err) => {
                let report = process.exit_report().await;
                tracing::warn!(%err, %report, "R evaluator crashed during a job");
                let _ = reply.send(Err(remote_error(
                    RemoteErrorKind::Crashed,
                    format!("the R evaluator crashed while evaluating the future: {report}"),
                )));
                return After::Dead;
            }
        };
        let _ = reply.send(outcome);
        return After::Reuse;
    }
}

/// Interrupts the job and waits for R to acknowledge it, so that no interrupt is left
/// pending to hit the next job. R acknowledges every SIGINT with exactly one
/// `Interrupted` frame of the job, whether it landed in the evaluation or just after.
async fn cancel(process: &mut RProcess, id: u32, started: bool, grace: Duration) -> After {
    tracing::debug!(id, started, "cancelling the R evaluation");
    let mut deadline = Instant::now() + grace;
    // Before `Started`, a SIGINT could land while R reads the job and cut the frame.
    let mut signalled = false;
    if started {
        if let Err(err) = process.interrupt() {
            tracing::debug!(%err, "interrupting R");
            return After::Kill;
        }
        signalled = true;
    }
    loop {
        let frame = match tokio::time::timeout_at(deadline, process.next_frame()).await {
            Err(_) => {
                tracing::warn!(
                    id,
                    "R did not acknowledge the interrupt in time; replacing it"
                );
                return After::Kill;
            }
            Ok(Err(err)) => {
                tracing::debug!(%err, id, "R went away while being interrupted");
                return After::Kill;
            }
            Ok(Ok(frame)) => frame,
        };
        match frame {
            FromR::Started { job } if job == id && !signalled => {
                if let Err(err) = process.interrupt() {
                    tracing::debug!(%err, "interrupting R");
                    return After::Kill;
                }
                signalled = true;
            }
            FromR::Interrupted { job } if job == id => return After::Reuse,
            FromR::Result { job, .. }
            | FromR::Unsupported { job, .. }
            | FromR::Failed { job, .. }
                if job == id =>
            {
                if !signalled {
                    return After::Reuse;
                }
                // The job ended just as it was interrupted: the SIGINT is pending in a
                // loop blocked reading its next frame. A ping wakes it and lets the
                // interrupt fire (and be acknowledged) now rather than in the next job.
                if let Err(err) = process.send(&ToR::Ping { nonce: id }).await {
                    tracing::debug!(%err, "pinging R");
                    return After::Kill;
                }
            }
            FromR::Pong { nonce } if nonce == id => {
                deadline = deadline.min(Instant::now() + LATE_INTERRUPT_WAIT);
            }
            frame => tracing::debug!(?frame, id, "dropping a frame of a cancelled job"),
        }
    }
}
