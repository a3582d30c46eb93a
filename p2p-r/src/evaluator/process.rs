//! One persistent R process running `future.p2p:::evaluator_loop()`: spawning it, moving
//! frames in and out, interrupting and killing it, and saying how it died.

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::io;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use thiserror::Error;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStderr, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

use p2p_transport::wormhole::{IncomingPayload, PayloadError};

use super::REvaluatorConfig;
use super::protocol::{self, FromR, Hello, PROTOCOL_VERSION, ToR};
use crate::frame::{BodyTooLarge, READ_CHUNK, RFrameError, RFrameReader};

/// How many of the last output lines of R are kept for crash reports.
const TAIL_LINES: usize = 20;
/// Longest output line kept, in characters; R can print megabytes on one line.
const TAIL_LINE_CHARS: usize = 500;
/// How long a dead R process gets to be reaped and to flush its last output.
const REAP_WAIT: Duration = Duration::from_secs(2);

/// The shell wrapper that gives R its channels: jobs on fd 4 and replies on fd 3, while
/// R's own stdout and stderr both go to the output pipe and its stdin is /dev/null, so
/// nothing user code prints or reads can touch a frame. `exec` keeps R's pid the child's
/// pid, which is what a SIGINT is sent to. `$1` is the `ulimit -v` command or `:`.
const WRAPPER: &str = r#"eval "$1"; shift; exec "$@" 3>&1 4<&0 1>&2 0</dev/null"#;

/// The R process could not be started.
#[derive(Debug, Error)]
pub enum SpawnError {
    #[error("starting R: the R library {0:?} has a ':' in its path, which R_LIBS cannot hold")]
    LibraryPath(PathBuf),
    #[error("cannot start {rscript}: {source}")]
    Spawn {
        rscript: String,
        #[source]
        source: io::Error,
    },
    #[error("starting R: its pipes are missing")]
    Pipes,
    #[error("R did not start the evaluator loop within {0:?}; its output: {1}")]
    Timeout(Duration, String),
    #[error(
        "R exited before starting the evaluator loop (is the future.p2p package installed? \
         see p2p_r::rpkg::install); its output: {0}"
    )]
    Exited(String),
    #[error("the evaluator loop sent a malformed frame: {0}")]
    Protocol(#[from] RFrameError),
    #[error("the evaluator loop sent {0:?} instead of its hello")]
    NoHello(Box<FromR>),
    #[error(
        "the installed future.p2p R package speaks evaluator protocol {found}, this program \
         speaks {PROTOCOL_VERSION}: reinstall the package (p2p_r::rpkg::install)"
    )]
    ProtocolVersion { found: u32 },
    #[error("reading from R: {0}")]
    Io(#[from] io::Error),
}

/// The R process stopped being a usable peer.
#[derive(Debug, Error)]
pub enum ProcessError {
    #[error("the R process closed its reply channel")]
    Closed,
    #[error("the R process sent a malformed frame: {0}")]
    Protocol(#[from] RFrameError),
    #[error("talking to the R process: {0}")]
    Io(#[from] io::Error),
}

/// A job could not be handed to R.
#[derive(Debug, Error)]
pub enum SendError {
    /// The payload is too large for a frame; nothing was written, R still waits for one.
    #[error(transparent)]
    TooLarge(#[from] BodyTooLarge),
    /// The payload broke off before it was all there; R is left mid-frame.
    #[error(transparent)]
    Payload(#[from] PayloadError),
    /// Writing to R failed.
    #[error(transparent)]
    Process(#[from] ProcessError),
}

/// The last lines R printed (stdout and stderr), for post-mortems.
#[derive(Debug, Default)]
struct OutputTail {
    lines: VecDeque<String>,
}

impl OutputTail {
    fn push(&mut self, line: &str) {
        if self.lines.len() == TAIL_LINES {
            self.lines.pop_front();
        }
        self.lines
            .push_back(line.chars().take(TAIL_LINE_CHARS).collect());
    }

    fn render(&self) -> String {
        if self.lines.is_empty() {
            "(no output)".to_owned()
        } else {
            self.lines.iter().cloned().collect::<Vec<_>>().join("\n")
        }
    }
}

/// A running R evaluator process that has said hello.
#[derive(Debug)]
pub struct RProcess {
    child: Child,
    hello: Hello,
    jobs: ChildStdin,
    replies: ChildStdout,
    decoder: RFrameReader,
    buffer: BytesMut,
    tail: Arc<Mutex<OutputTail>>,
    output: JoinHandle<()>,
}

impl RProcess {
    /// Starts R and waits for the evaluator loop's hello.
    pub async fn spawn(config: &REvaluatorConfig) -> Result<RProcess, SpawnError> {
        let limit = match config.memory_limit {
            // ulimit -v counts KiB; RLIMIT_AS covers all of R's address space.
            Some(bytes) => format!("ulimit -v {}", (bytes / 1024).max(1)),
            None => ":".to_owned(),
        };
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(WRAPPER)
            .arg("future-p2p-r")
            .arg(limit)
            .arg(&config.rscript)
            .arg("-e")
            .arg("future.p2p:::evaluator_loop()")
            // One thread per evaluator: parallelism comes from the number of slots.
            .env("OMP_NUM_THREADS", "1")
            .env("OPENBLAS_NUM_THREADS", "1")
            .env("R_PARALLELLY_AVAILABLECORES_FALLBACK", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A group of its own: whatever R starts (system(), forks) is killed with it.
            .process_group(0)
            .kill_on_drop(true);
        if !config.library_paths.is_empty() {
            let inherited = std::env::var_os("R_LIBS");
            command.env(
                "R_LIBS",
                r_libs(&config.library_paths, inherited.as_deref())?,
            );
        }
        let mut child = command.spawn().map_err(|source| SpawnError::Spawn {
            rscript: config.rscript.display().to_string(),
            source,
        })?;
        let (Some(jobs), Some(replies), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(SpawnError::Pipes);
        };
        let tail = Arc::new(Mutex::new(OutputTail::default()));
        let output = tokio::spawn(drain_output(stderr, tail.clone(), child.id()));
        let mut process = RProcess {
            child,
            hello: Hello {
                protocol: 0,
                r_version: String::new(),
                future_version: String::new(),
                pid: 0,
                apis: Vec::new(),
            },
            jobs,
            replies,
            decoder: RFrameReader::new(config.max_frame),
            buffer: BytesMut::new(),
            tail,
            output,
        };
        let first = match tokio::time::timeout(config.startup_timeout, process.next_frame()).await {
            Err(_) => {
                return Err(SpawnError::Timeout(
                    config.startup_timeout,
                    process.kill().await,
                ));
            }
            Ok(Err(ProcessError::Closed)) => {
                return Err(SpawnError::Exited(process.exit_report().await));
            }
            Ok(Err(ProcessError::Protocol(err))) => return Err(err.into()),
            Ok(Err(ProcessError::Io(err))) => return Err(err.into()),
            Ok(Ok(frame)) => frame,
        };
        match first {
            FromR::Hello(hello) if hello.protocol == PROTOCOL_VERSION => process.hello = hello,
            FromR::Hello(hello) => {
                return Err(SpawnError::ProtocolVersion {
                    found: hello.protocol,
                });
            }
            other => return Err(SpawnError::NoHello(Box::new(other))),
        }
        tracing::debug!(
            pid = process.hello.pid,
            r = %process.hello.r_version,
            future = %process.hello.future_version,
            "R evaluator started"
        );
        Ok(process)
    }

    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// Sends one frame. Not cancel-safe: a frame cut in the middle leaves R mid-read, so
    /// a caller that gives up on a send must kill the process.
    pub async fn send(&mut self, frame: &ToR) -> Result<(), ProcessError> {
        self.jobs.write_all(&frame.header()?).await?;
        match frame {
            ToR::Job { payload, .. } => {
                self.jobs.write_all(payload).await?;
                self.jobs.write_all(&protocol::JOB_TRAILER).await?;
            }
            ToR::OriginalJob {
                future, payload, ..
            } => {
                self.jobs
                    .write_all(&protocol::original_job_prefix(future))
                    .await?;
                self.jobs.write_all(payload).await?;
                self.jobs.write_all(&protocol::JOB_TRAILER).await?;
            }
            ToR::Ping { .. } => {}
        }
        self.jobs.flush().await?;
        Ok(())
    }

    /// Sends a job frame, its payload written to R piece by piece as it arrives. Not
    /// cancel-safe, like [`RProcess::send`].
    pub async fn send_job(
        &mut self,
        job: u32,
        payload: &mut IncomingPayload,
    ) -> Result<(), SendError> {
        let len = usize::try_from(payload.len()).unwrap_or(usize::MAX);
        let header = protocol::job_header(job, len)?;
        self.jobs
            .write_all(&header)
            .await
            .map_err(ProcessError::from)?;
        while let Some(piece) = payload.next_chunk().await? {
            self.jobs
                .write_all(&piece)
                .await
                .map_err(ProcessError::from)?;
        }
        self.jobs
            .write_all(&protocol::JOB_TRAILER)
            .await
            .map_err(ProcessError::from)?;
        self.jobs.flush().await.map_err(ProcessError::from)?;
        Ok(())
    }

    /// The next frame from R. Cancel-safe: bytes read so far stay buffered.
    pub async fn next_frame(&mut self) -> Result<FromR, ProcessError> {
        loop {
            if let Some(frame) = self.decoder.decode::<FromR>(&mut self.buffer)? {
                return Ok(frame);
            }
            self.buffer.reserve(READ_CHUNK);
            if self.replies.read_buf(&mut self.buffer).await? == 0 {
                return Err(ProcessError::Closed);
            }
        }
    }

    /// Sends SIGINT to R, which interrupts the running evaluation.
    pub fn interrupt(&self) -> io::Result<()> {
        let pid = self
            .child
            .id()
            .and_then(|pid| rustix::process::Pid::from_raw(pid as i32))
            .ok_or_else(|| io::Error::other("the R process has exited"))?;
        rustix::process::kill_process(pid, rustix::process::Signal::INT)?;
        Ok(())
    }

    /// Kills R and what it started, and returns its post-mortem.
    pub async fn kill(&mut self) -> String {
        self.kill_group();
        if let Err(err) = self.child.start_kill() {
            tracing::debug!(%err, "killing R");
        }
        self.exit_report().await
    }

    /// Kills R's process group. Only while R is not reaped yet (so its pid, the group's id,
    /// cannot have been reused).
    fn kill_group(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        if let Some(group) = self
            .child
            .id()
            .and_then(|pid| rustix::process::Pid::from_raw(pid as i32))
        {
            // Gone already (ESRCH) is fine.
            let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
        }
    }

    /// Ends R politely: end of input makes the loop return and R exit; killed if it
    /// does not within a moment.
    pub async fn shutdown(self) {
        let RProcess {
            mut child, jobs, ..
        } = self;
        drop(jobs);
        match tokio::time::timeout(REAP_WAIT, child.wait()).await {
            Ok(Ok(status)) => tracing::debug!(%status, "R evaluator exited"),
            _ => {
                if let Some(group) = child
                    .id()
                    .and_then(|pid| rustix::process::Pid::from_raw(pid as i32))
                {
                    let _ =
                        rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
                }
                if let Err(err) = child.start_kill() {
                    tracing::debug!(%err, "killing R at shutdown");
                }
            }
        }
    }

    /// Waits (briefly) for R to be gone and describes how it ended, with its last output.
    pub async fn exit_report(&mut self) -> String {
        let pid = self.hello.pid;
        let status = match tokio::time::timeout(REAP_WAIT, self.child.wait()).await {
            Ok(Ok(status)) => describe(status),
            Ok(Err(err)) => format!("in an unknown way ({err})"),
            Err(_) => {
                if let Err(err) = self.child.start_kill() {
                    tracing::debug!(%err, "killing R");
                }
                "without exiting; it was killed".to_owned()
            }
        };
        // Its last words may still be in the pipe: let the reader catch up, briefly (a
        // grandchild that inherited the pipe can keep it open forever).
        let _ = tokio::time::timeout(Duration::from_millis(500), &mut self.output).await;
        let tail = self
            .tail
            .lock()
            .map(|tail| tail.render())
            .unwrap_or_else(|_| "(output unavailable)".to_owned());
        format!("R process {pid} ended {status}; its last output:\n{tail}")
    }
}

/// `R_LIBS` for R: the libraries `first`, then those of the `inherited` value, a
/// `:`-separated list as R reads it (ordinary usage: `R_LIBS=/a:/b`).
fn r_libs(first: &[PathBuf], inherited: Option<&OsStr>) -> Result<OsString, SpawnError> {
    if let Some(path) = first
        .iter()
        .find(|path| path.as_os_str().as_encoded_bytes().contains(&b':'))
    {
        return Err(SpawnError::LibraryPath(path.clone()));
    }
    let inherited = inherited
        .into_iter()
        .flat_map(std::env::split_paths)
        .filter(|path| !path.as_os_str().is_empty());
    let mut value = OsString::new();
    for path in first.iter().cloned().chain(inherited) {
        if !value.is_empty() {
            value.push(":");
        }
        value.push(path);
    }
    Ok(value)
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("with exit status {code}"),
        (None, Some(signal)) => format!("by signal {signal}"),
        _ => format!("({status})"),
    }
}

async fn drain_output(stderr: ChildStderr, tail: Arc<Mutex<OutputTail>>, pid: Option<u32>) {
    let mut reader = BufReader::new(stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end();
                tracing::debug!(target: "p2p_r::r_output", pid, "{text}");
                if let Ok(mut tail) = tail.lock() {
                    tail.push(text);
                }
            }
            // The pipe broke: what was kept is all there will be.
            Err(err) => {
                tracing::debug!(pid, %err, "reading R's output");
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inherited_r_libs_keep_each_library() {
        let first = [PathBuf::from("/pkg/lib")];
        assert_eq!(
            r_libs(&first, Some(OsStr::new("/a:/b"))).unwrap(),
            OsString::from("/pkg/lib:/a:/b")
        );
        assert_eq!(
            r_libs(&first, Some(OsStr::new("/a::/b:"))).unwrap(),
            OsString::from("/pkg/lib:/a:/b")
        );
        assert_eq!(r_libs(&first, None).unwrap(), OsString::from("/pkg/lib"));
        assert_eq!(
            r_libs(&first, Some(OsStr::new(""))).unwrap(),
            OsString::from("/pkg/lib")
        );
    }

    #[test]
    fn a_library_with_a_separator_is_refused_by_name() {
        let err = r_libs(&[PathBuf::from("/odd:name")], None).unwrap_err();
        assert!(matches!(err, SpawnError::LibraryPath(_)));
        assert!(err.to_string().starts_with("starting R:"), "{err}");
    }
}
