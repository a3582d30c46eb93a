//! `future-p2p bridge`: the long-lived child of an R session. It speaks
//! [`p2p_r::bridge::protocol`] on stdin/stdout, joins the cluster and runs a
//! [`Scheduler`]; [`BridgeSession`] decides what each event means for R, this module only
//! moves bytes.
//!
//! ```text
//!   R --stdin--> requests --> session --> scheduler.submit / cancel
//!   R <--stdout-- replies <-- session <-- task results, task updates, worker slots
//!                                          (first told after a short discovery window),
//!                                          cluster hellos (the watchdog)
//!   R --upload connection--> payload --> session (SubmitUploaded) --> scheduler.submit
//! ```
//!
//! A large payload comes on a loopback connection of its own (see
//! [`p2p_r::bridge::protocol::UploadLine`]), read to its end. Up to [`SPILL_ABOVE`] bytes
//! stay in one buffer; a larger payload is written, a chunk at a time as it arrives, to an
//! unlinked temporary file in `$TMPDIR` (else `/var/tmp`, on disk where `/tmp` is memory),
//! which the wormhole session reads a record at a time for every worker the task is sent
//! to. So the bridge holds a few chunks of a payload of any size, and the file goes away
//! with the task (or the process).

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use clap::Args;
use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use p2p_proto::id::{ClusterName, FutureId};
use p2p_scheduler::{OriginalPayloads, Scheduler, SchedulerOptions, SubmitError};
use p2p_transport::payload::{FilePayload, Payload};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::CliError;
use crate::connect::{BoardArgs, host_advice};
use crate::units::{parse_duration, parse_size};
use p2p_proto::frame::RemoteErrorKind;
use p2p_r::bridge::protocol::{
    BRIDGE_PROTOCOL_VERSION, ErrorKind, Reply, Request, ServerHello, UploadLine,
};
use p2p_r::bridge::session::BridgeSession;
use p2p_r::frame::{RFrameError, RFrameReader};

#[derive(Debug, Args)]
pub struct BridgeArgs {
    #[command(flatten)]
    pub board: BoardArgs,
    /// The cluster, `OWNER/NAME` (or `NAME` for one of your own).
    #[arg(long, env = "FUTURE_P2P_CLUSTER")]
    pub cluster: String,
    /// Largest future payload sent to the cluster (e.g. 500M, 2G); R refuses a larger one
    /// before sending it. Workers have a limit of their own (the same by default).
    #[arg(long, env = "FUTURE_P2P_MAX_PAYLOAD", value_parser = parse_size, default_value_t = p2p_proto::limits::DEFAULT_MAX_PAYLOAD)]
    pub max_payload: u64,
    /// Fail waiting futures when neither the host nor a worker shows up within this long.
    #[arg(long, env = "FUTURE_P2P_CLUSTER_TIMEOUT", value_parser = parse_duration, default_value = "60")]
    pub cluster_timeout: Duration,
    /// Give up when reaching the board and joining the cluster takes longer than this.
    #[arg(long, env = "FUTURE_P2P_CONNECT_TIMEOUT", value_parser = parse_duration, default_value = "60")]
    pub connect_timeout: Duration,
    /// Longest a future may run once started (e.g. 600, 30m, 8h); past it the future is
    /// stopped on its worker and fails with a time-limit error. 0 for no limit.
    #[arg(long, env = "FUTURE_P2P_TIME_LIMIT", value_parser = parse_duration, default_value = "24h")]
    pub time_limit: Duration,
    /// Speak the protocol on a loopback TCP connection instead of stdin/stdout: print
    /// `port PORT` and accept one connection that starts with the line TOKEN (base R reads
    /// binary frames from sockets, not from a child's pipes). The session still ends when
    /// stdin closes, i.e. when the R session exits.
    #[arg(long, value_name = "TOKEN", env = "FUTURE_P2P_BRIDGE_TOKEN")]
    pub loopback: Option<String>,
}

/// How long after joining the bridge waits before it tells R how many workers there are:
/// long enough for idle workers to answer the scheduler's hello.
const DISCOVERY: Duration = Duration::from_millis(500);

/// How long R has to connect to the loopback port.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(60);

/// Room for the label and framing around the largest payload.
const FRAME_OVERHEAD: u64 = 1 << 16;

pub async fn run(args: BridgeArgs) -> Result<(), CliError> {
    let max_body = usize::try_from(args.max_payload.saturating_add(FRAME_OVERHEAD))
        .unwrap_or(usize::MAX)
        .min(p2p_r::frame::MAX_BODY_LEN);
    let (replies, reply_rx) = mpsc::unbounded_channel();
    let (requests, writer, uploads) = match &args.loopback {
        None => (
            spawn_request_reader(tokio::io::stdin(), max_body),
            tokio::spawn(write_replies(tokio::io::stdout(), reply_rx)),
            None,
        ),
        Some(token) => {
            let (stream, listener) = accept_r_session(token).await?;
            let (read, write) = stream.into_split();
            let uploads = spawn_upload_acceptor(listener, token.clone(), max_body, spill_dir());
            // R exiting closes our stdin: the session is over even if the socket lingers.
            tokio::spawn(async {
                let mut stdin = tokio::io::stdin();
                let mut sink = [0u8; 256];
                while matches!(stdin.read(&mut sink).await, Ok(n) if n > 0) {}
                tracing::info!("stdin closed: the R session is gone");
                std::process::exit(0);
            });
            (
                spawn_request_reader(read, max_body),
                tokio::spawn(write_replies(write, reply_rx)),
                Some(uploads),
            )
        }
    };
    let outcome = serve(&args, requests, uploads, &replies).await;
    if let Err(err) = &outcome {
        let _ = replies.send(Reply::Error {
            id: 0,
            kind: ErrorKind::Cluster,
            message: err.to_string(),
        });
    }
    drop(replies);
    // The last replies (e.g. the error above) reach R before we exit.
    let _ = writer.await;
    outcome
}

async fn serve(
    args: &BridgeArgs,
    mut requests: mpsc::Receiver<Result<Request, RFrameError>>,
    mut uploads: Option<mpsc::Receiver<Upload>>,
    replies: &mpsc::UnboundedSender<Reply>,
) -> Result<(), CliError> {
    let cluster: ClusterName = args.cluster.parse()?;
    let joined = tokio::time::timeout(
        args.connect_timeout,
        args.board.join(&cluster, Some(args.cluster_timeout)),
    )
    .await
    .map_err(|_| CliError::TimedOut {
        what: format!(
            "reaching the board at {} and joining cluster {cluster}",
            args.board.host
        ),
        waited: args.connect_timeout,
    })??;
    let (user, me, lines) = (joined.user, joined.me, joined.lines);
    let mut host_seen = joined.watch.sightings();
    let _ = replies.send(Reply::Hello(ServerHello {
        protocol: BRIDGE_PROTOCOL_VERSION,
        version: env!("CARGO_PKG_VERSION").to_owned(),
        cluster: cluster.qualified(&user)?.to_string(),
        max_payload: args.max_payload,
    }));
    let mut options = SchedulerOptions::new(me, args.board.wormhole());
    options.core.time_limit =
        (!args.time_limit.is_zero()).then_some(args.time_limit.as_millis() as u64);
    options.max_payload = args.max_payload;
    options.max_result_size = args.max_payload;
    // R futures travel as this package's payloads to workers that read them, and as
    // future.p2p 0.4.0's, made by R on demand, to its workers.
    options.core.native_format = Some(p2p_proto::protocols::R_PAYLOAD.to_owned());
    let originals = OriginalsFromR::new(replies);
    options.original_payloads = Some(Arc::new(originals.clone()));
    let scheduler = Scheduler::start(lines, options);
    let mut session = BridgeSession::new(format!("r{}", std::process::id()));
    let mut updates = scheduler.updates();
    let mut workers = scheduler.workers();
    // The scheduler's first hello makes idle workers say hello again at once: R hears the
    // worker count once they had time to, not the first of them alone.
    let discovery = tokio::time::sleep(DISCOVERY);
    tokio::pin!(discovery);
    let mut discovering = true;
    let mut poll_deferred = false;
    let mut running: FuturesUnordered<BoxFuture<'static, (u32, Result<Bytes, SubmitError>)>> =
        FuturesUnordered::new();
    let unreachable = unreachable_advice(&cluster, &user, &args.board.host, args.cluster_timeout);
    let watchdog = tokio::time::sleep(args.cluster_timeout);
    tokio::pin!(watchdog);
    let mut watchdog_armed = true;
    let mut pairing = UploadPairing::default();

    loop {
        tokio::select! {
            // In this order: a task's conditions (progress) reach R before its result,
            // which the scheduler resolves only after broadcasting them; R drops what
            // comes for a future after its result.
            biased;
            update = updates.recv() => match update {
                Ok((task, update)) => {
                    if let Some(reply) = session.task_update(task, update) {
                        let _ = replies.send(reply);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "task updates were dropped");
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            Some((id, outcome)) = running.next(), if !running.is_empty() => {
                if let Some(reply) = session.finished(id, outcome) {
                    let _ = replies.send(reply);
                }
            }
            request = requests.recv() => match request {
                // The R session is gone.
                None => break,
                Some(Err(err)) => return Err(err.into()),
                Some(Ok(request)) => match request {
                    Request::Hello(hello) => {
                        if hello.protocol != BRIDGE_PROTOCOL_VERSION {
                            let _ = replies.send(Reply::Error {
                                id: 0,
                                kind: ErrorKind::Protocol,
                                message: format!(
                                    "the R package speaks bridge protocol {} but this future-p2p speaks {}: install matching versions",
                                    hello.protocol, BRIDGE_PROTOCOL_VERSION
                                ),
                            });
                        }
                        tracing::info!(r = %hello.r_version, future = %hello.future_version, pid = hello.pid, "R session");
                    }
                    Request::Submit { id, label, payload } => match session.submit(id) {
                        Err(reply) => { let _ = replies.send(reply); }
                        Ok(future) => {
                            let ready = Ready { id, future, label, payload: payload.into() };
                            start(&scheduler, &mut session, &mut running, replies, ready).await;
                        }
                    },
                    Request::SubmitUploaded { id, label } => match session.submit(id) {
                        Err(reply) => {
                            pairing.refused(id);
                            let _ = replies.send(reply);
                        }
                        Ok(future) => match pairing.submitted(id, future, label) {
                            Some(Ok(ready)) => {
                                start(&scheduler, &mut session, &mut running, replies, ready).await;
                            }
                            Some(Err(failure)) => {
                                session.cancel(id);
                                let _ = replies.send(failure);
                            }
                            None => {}
                        },
                    },
                    Request::Cancel { id } => {
                        pairing.cancelled(id);
                        let (task, reply) = session.cancel(id);
                        if let Some(task) = task {
                            scheduler.cancel(task);
                        }
                        if let Some(reply) = reply {
                            let _ = replies.send(reply);
                        }
                    }
                    Request::Original { id, payload } => originals.answered(id, payload),
                    Request::Poll { id: 0 } if discovering => poll_deferred = true,
                    Request::Poll { id } => { let _ = replies.send(session.poll(id)); }
                },
            },
            Some((id, upload)) = next_upload(&mut uploads) => match pairing.uploaded(id, upload) {
                Some(Ok(ready)) => start(&scheduler, &mut session, &mut running, replies, ready).await,
                Some(Err(failure)) => {
                    session.cancel(id);
                    let _ = replies.send(failure);
                }
                None => {}
            },
            Ok(()) = workers.changed() => {
                let slots = workers.borrow_and_update().iter().map(|w| w.slots as usize).sum();
                let reply = session.workers_changed(slots);
                if !discovering {
                    let _ = replies.send(reply);
                }
            }
            () = &mut discovery, if discovering => {
                discovering = false;
                if poll_deferred {
                    let _ = replies.send(session.workers());
                }
            }
            Ok(()) = host_seen.changed() => session.cluster_seen(),
            _ = &mut watchdog, if watchdog_armed => {
                watchdog_armed = false;
                if host_seen.borrow().is_none() && workers.borrow().is_empty() {
                    tracing::warn!("{unreachable}");
                    let (tasks, failed) = session.cluster_unreachable(&unreachable);
                    for task in tasks {
                        scheduler.cancel(task);
                    }
                    for reply in failed {
                        let _ = replies.send(reply);
                    }
                }
            }
        }
    }
    tracing::info!(pending = session.pending(), "R session ended");
    Ok(())
}

/// Longest R may take to make a future in future.p2p 0.4.0's format: it answers when it
/// next looks at the bridge (value(), resolved(), a new future), and an R busy elsewhere
/// must not hold the accepted worker for long.
const ORIGINAL_WAIT: Duration = Duration::from_secs(50);

type OriginalAnswer = Result<bytes::Bytes, String>;

/// Asks the R session for a future in future.p2p 0.4.0's format ([`Reply::WantOriginal`])
/// and hands its answer ([`Request::Original`]) to the scheduler waiting for it.
#[derive(Debug, Clone)]
struct OriginalsFromR {
    /// Weak: the replies' writer ends when the session's own sender is dropped.
    replies: mpsc::WeakUnboundedSender<Reply>,
    waiting: Arc<Mutex<HashMap<u32, oneshot::Sender<OriginalAnswer>>>>,
}

impl OriginalsFromR {
    fn new(replies: &mpsc::UnboundedSender<Reply>) -> Self {
        OriginalsFromR {
            replies: replies.downgrade(),
            waiting: Arc::default(),
        }
    }

    fn answered(&self, id: u32, payload: OriginalAnswer) {
        let waiter = self.waiting.lock().ok().and_then(|mut w| w.remove(&id));
        if let Some(waiter) = waiter {
            let _ = waiter.send(payload);
        }
    }
}

impl OriginalPayloads for OriginalsFromR {
    fn original_payload(
        &self,
        future: &FutureId,
        _native: &Payload,
    ) -> Pin<Box<dyn Future<Output = OriginalAnswer> + Send>> {
        // BridgeSession names R's future `id` `PREFIX-id`.
        let id = future
            .as_str()
            .rsplit('-')
            .next()
            .and_then(|n| n.parse::<u32>().ok());
        let future = future.to_string();
        let (this, gone) = (self.clone(), || "the R session is gone".to_owned());
        Box::pin(async move {
            let id = id.ok_or_else(|| format!("future {future} is not one of this R session's"))?;
            let (waiter, answer) = oneshot::channel();
            if let Ok(mut waiting) = this.waiting.lock() {
                waiting.insert(id, waiter);
            }
            let replies = this.replies.upgrade().ok_or_else(gone)?;
            replies
                .send(Reply::WantOriginal { id, future })
                .map_err(|_| gone())?;
            drop(replies);
            match tokio::time::timeout(ORIGINAL_WAIT, answer).await {
                Ok(answer) => answer.map_err(|_| gone())?,
                Err(_) => {
                    if let Ok(mut waiting) = this.waiting.lock() {
                        waiting.remove(&id);
                    }
                    Err(format!(
                        "the R session did not make the future.p2p 0.4.0 payload within {} s",
                        ORIGINAL_WAIT.as_secs()
                    ))
                }
            }
        })
    }
}

/// A future ready for the scheduler.
struct Ready {
    id: u32,
    future: FutureId,
    label: String,
    payload: Payload,
}

type Running = FuturesUnordered<BoxFuture<'static, (u32, Result<Bytes, SubmitError>)>>;

/// Hands `ready` to the scheduler; R hears that it is queued, or why it was refused.
async fn start(
    scheduler: &Scheduler,
    session: &mut BridgeSession,
    running: &mut Running,
    replies: &mpsc::UnboundedSender<Reply>,
    ready: Ready,
) {
    let Ready {
        id,
        future,
        label,
        payload,
    } = ready;
    tracing::debug!(id, %label, size = payload.len(), "submit");
    match scheduler.submit(future, payload).await {
        Ok(handle) => {
            if let Some(reply) = session.submitted(id, handle.id()) {
                let _ = replies.send(reply);
            }
            running.push(Box::pin(async move { (id, handle.await) }));
        }
        Err(err) => {
            if let Some(reply) = session.finished(id, Err(err)) {
                let _ = replies.send(reply);
            }
        }
    }
}

/// A payload read from an upload connection, or the error (for R) that ended it.
type Upload = (u32, Result<Payload, Reply>);

/// Pairs each upload with its SubmitUploaded frame, whichever comes first: R sends the
/// frame after closing the upload, but this side may read the frame before the upload's
/// last bytes. Both halves are keyed by R's future id, unique within its session.
#[derive(Default)]
struct UploadPairing {
    /// Frames whose upload has not ended yet.
    awaiting: HashMap<u32, (FutureId, String)>,
    /// Uploads whose frame has not come yet.
    arrived: HashMap<u32, Result<Payload, Reply>>,
    /// Futures cancelled or refused while their upload was still coming: dropped on arrival.
    abandoned: HashSet<u32>,
}

impl UploadPairing {
    /// The frame for `id` came: the future if its upload is in, else it waits for it.
    fn submitted(
        &mut self,
        id: u32,
        future: FutureId,
        label: String,
    ) -> Option<Result<Ready, Reply>> {
        match self.arrived.remove(&id) {
            Some(upload) => Some(upload.map(|payload| Ready {
                id,
                future,
                label,
                payload,
            })),
            None => {
                self.awaiting.insert(id, (future, label));
                None
            }
        }
    }

    /// The upload for `id` ended: the future if its frame came, else it waits for it.
    fn uploaded(
        &mut self,
        id: u32,
        upload: Result<Payload, Reply>,
    ) -> Option<Result<Ready, Reply>> {
        if self.abandoned.remove(&id) {
            return None;
        }
        match self.awaiting.remove(&id) {
            Some((future, label)) => Some(upload.map(|payload| Ready {
                id,
                future,
                label,
                payload,
            })),
            None => {
                self.arrived.insert(id, upload);
                None
            }
        }
    }

    /// The frame for `id` was refused: its upload is dropped, now or when it ends.
    fn refused(&mut self, id: u32) {
        if self.arrived.remove(&id).is_none() {
            self.abandoned.insert(id);
        }
    }

    /// Future `id` is cancelled: if it still waits for its upload, that is dropped when it
    /// ends.
    fn cancelled(&mut self, id: u32) {
        if self.awaiting.remove(&id).is_some() {
            self.abandoned.insert(id);
        }
    }
}

/// The next upload, or never when there are none (R speaks on stdin).
async fn next_upload(uploads: &mut Option<mpsc::Receiver<Upload>>) -> Option<Upload> {
    match uploads {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// What to tell a user whose cluster shows neither a host nor a worker.
fn unreachable_advice(cluster: &ClusterName, user: &str, host: &str, waited: Duration) -> String {
    let owner = cluster.owner().unwrap_or(user);
    format!(
        "cluster {owner}/{name} on {host}: neither its host nor any worker showed up within {secs} s (0 workers seen): \
         {advice} Then call plan() again.",
        name = cluster.name(),
        secs = waited.as_secs(),
        advice = host_advice(cluster, user),
    )
}

/// Listens on a free loopback port, prints it, and returns the first connection that
/// presents `token`, and the listener (for uploads).
async fn accept_r_session(
    token: &str,
) -> Result<(tokio::net::TcpStream, tokio::net::TcpListener), CliError> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    println!("port {}", listener.local_addr()?.port());
    let expected = format!("{token}\n");
    let accept = async {
        loop {
            let (mut stream, peer) = listener.accept().await?;
            let mut presented = vec![0u8; expected.len()];
            let read =
                tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut presented))
                    .await;
            if matches!(read, Ok(Ok(_))) && presented == expected.as_bytes() {
                stream.set_nodelay(true)?;
                return Ok::<_, std::io::Error>(stream);
            }
            tracing::warn!(%peer, "a loopback connection without the session token was refused");
        }
    };
    let stream = tokio::time::timeout(ACCEPT_TIMEOUT, accept)
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the R session did not connect",
            )
        })??;
    Ok((stream, listener))
}

/// How long an upload connection may take to say which future it carries.
const UPLOAD_LINE_TIMEOUT: Duration = Duration::from_secs(5);

/// Accepts upload connections for the rest of the session, each read by a task of its
/// own; a connection without the session's token is dropped unread.
fn spawn_upload_acceptor(
    listener: tokio::net::TcpListener,
    token: String,
    max_body: usize,
    spill_dir: PathBuf,
) -> mpsc::Receiver<Upload> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let Ok((stream, peer)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            let token = token.clone();
            let spill_dir = spill_dir.clone();
            tokio::spawn(async move {
                let mut stream = tokio::io::BufReader::new(stream);
                let line = tokio::time::timeout(UPLOAD_LINE_TIMEOUT, read_line(&mut stream)).await;
                let upload = match line {
                    Ok(Ok(line)) => UploadLine::parse(&line).filter(|line| line.token == token),
                    _ => None,
                };
                let Some(upload) = upload else {
                    tracing::warn!(%peer, "a loopback connection without the session token was refused");
                    return;
                };
                let body = read_upload(&mut stream, &upload, max_body, &spill_dir).await;
                let _ = tx.send((upload.id, body)).await;
            });
        }
    });
    rx
}

/// A line of at most [`UploadLine::MAX_LEN`] bytes, without its newline.
async fn read_line(input: &mut (impl tokio::io::AsyncBufRead + Unpin)) -> std::io::Result<String> {
    use tokio::io::AsyncBufReadExt;
    let mut line = Vec::new();
    (&mut *input)
        .take(UploadLine::MAX_LEN as u64)
        .read_until(b'\n', &mut line)
        .await?;
    if line.pop() != Some(b'\n') {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "no line",
        ));
    }
    String::from_utf8(line)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"))
}

/// Largest payload kept in memory; a larger one is spilled to a file as it arrives.
const SPILL_ABOVE: usize = 4 << 20;

/// Bytes of a spilling upload read before they are written to its file.
const SPILL_CHUNK: usize = 1 << 20;

/// Where large payloads are spilled: `$TMPDIR`, else `/var/tmp` (not `/tmp`, which is
/// often memory: a spill there would cost as much RAM as keeping the payload).
fn spill_dir() -> PathBuf {
    std::env::var_os("TMPDIR")
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| PathBuf::from("/var/tmp"), PathBuf::from)
}

/// The payload of an upload: everything up to the connection's end, in memory up to
/// [`SPILL_ABOVE`] bytes, else in an unlinked file in `spill_dir`; more than `max_body`
/// bytes are refused.
async fn read_upload(
    input: &mut (impl AsyncRead + Unpin),
    upload: &UploadLine,
    max_body: usize,
    spill_dir: &Path,
) -> Result<Payload, Reply> {
    let id = upload.id;
    let hint = usize::try_from(upload.size_hint)
        .unwrap_or(usize::MAX)
        .min(max_body);
    // R's hint is the size of the globals; the payload adds the future's expression and
    // settings (tens of kilobytes). Room that is never written costs no memory.
    let room = hint.saturating_add(hint / 16).saturating_add(1 << 20);
    let mut body = BytesMut::new();
    // Globals that alone are over the bound go to the file from the first byte, so
    // nothing of theirs is held here; a hint that was too low is found out on the way.
    if hint <= SPILL_ABOVE {
        body.reserve(room.min(SPILL_ABOVE.saturating_add(p2p_r::frame::READ_CHUNK)));
        while body.len() <= SPILL_ABOVE {
            if body.len() > max_body {
                return Err(too_large(id, max_body));
            }
            body.reserve(p2p_r::frame::READ_CHUNK);
            match input.read_buf(&mut body).await {
                Ok(0) => return Ok(Payload::Memory(body.freeze())),
                Ok(_) => {}
                Err(err) => return Err(broken_off(id, body.len() as u64, &err)),
            }
        }
        if body.len() > max_body {
            return Err(too_large(id, max_body));
        }
    }
    spill(input, &body, id, max_body, spill_dir).await
}

/// Writes `start`, then the rest of `input`, to a new unlinked file in `dir`, a chunk at
/// a time: the payload in that file.
async fn spill(
    input: &mut (impl AsyncRead + Unpin),
    start: &[u8],
    id: u32,
    max_body: usize,
    dir: &Path,
) -> Result<Payload, Reply> {
    let failed = |what: &str, err: std::io::Error| Reply::Error {
        id,
        kind: ErrorKind::Remote(RemoteErrorKind::Failed),
        message: format!(
            "the future-p2p bridge cannot {what} {dir} to hold the future's payload (over {} MiB): \
             {err}; set TMPDIR to a writable directory with room",
            SPILL_ABOVE >> 20,
            dir = dir.display(),
        ),
    };
    // Unlinked from the start: the file goes with its last handle, or with the process.
    let file = tempfile::tempfile_in(dir).map_err(|err| failed("make a file in", err))?;
    // Writes run on blocking threads, one behind the next read.
    let mut file = tokio::fs::File::from_std(file);
    let mut written = start.len() as u64;
    file.write_all(start)
        .await
        .map_err(|err| failed("write to", err))?;
    let mut chunk = BytesMut::with_capacity(SPILL_CHUNK);
    loop {
        chunk.clear();
        match input.read_buf(&mut chunk).await {
            Ok(0) => break,
            Ok(read) => written += read as u64,
            Err(err) => return Err(broken_off(id, written, &err)),
        }
        if written > max_body as u64 {
            return Err(too_large(id, max_body));
        }
        file.write_all(&chunk)
            .await
            .map_err(|err| failed("write to", err))?;
    }
    // A write that failed in the background (the disk filled) surfaces here.
    file.flush().await.map_err(|err| failed("write to", err))?;
    let file = FilePayload::new(file.into_std().await).map_err(|err| failed("read", err))?;
    Ok(Payload::File(Arc::new(file)))
}

fn too_large(id: u32, max_body: usize) -> Reply {
    Reply::Error {
        id,
        kind: ErrorKind::Remote(RemoteErrorKind::PayloadTooLarge),
        message: format!(
            "the future's payload is more than the limit of {max_body} bytes of this future-p2p bridge"
        ),
    }
}

fn broken_off(id: u32, read: u64, err: &std::io::Error) -> Reply {
    Reply::Error {
        id,
        kind: ErrorKind::Protocol,
        message: format!("the payload's upload broke off after {read} bytes: {err}"),
    }
}

/// Decodes requests from `input` until it closes or a frame is bad (then the stream cannot
/// be resynchronised: the error is the last item).
fn spawn_request_reader(
    mut input: impl AsyncRead + Unpin + Send + 'static,
    max_body: usize,
) -> mpsc::Receiver<Result<Request, RFrameError>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let decoder = RFrameReader::new(max_body);
        let mut buffer = BytesMut::with_capacity(1 << 16);
        loop {
            loop {
                match decoder.decode::<Request>(&mut buffer) {
                    Ok(Some(request)) => {
                        if tx.send(Ok(request)).await.is_err() {
                            return;
                        }
                    }
                    Ok(None) => break,
                    Err(err) => {
                        let _ = tx.send(Err(err)).await;
                        return;
                    }
                }
            }
            buffer.reserve(p2p_r::frame::READ_CHUNK);
            match input.read_buf(&mut buffer).await {
                Ok(0) => return,
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(%err, "reading from the R session");
                    return;
                }
            }
        }
    });
    rx
}

/// Writes replies to `output`, flushing after each batch; results are written from
/// where they are, not copied into the batch.
async fn write_replies(
    mut output: impl AsyncWrite + Unpin,
    mut replies: mpsc::UnboundedReceiver<Reply>,
) {
    let mut buffer = BytesMut::new();
    while let Some(reply) = replies.recv().await {
        let mut next = Some(reply);
        while let Some(reply) = next {
            match reply.encode_split(&mut buffer) {
                Ok(Some(body)) => {
                    if output.write_all(&buffer).await.is_err()
                        || output.write_all(&body).await.is_err()
                    {
                        return;
                    }
                    buffer.clear();
                }
                Ok(None) => {}
                Err(err) => tracing::warn!(%err, "cannot encode a reply for R"),
            }
            next = replies.try_recv().ok();
        }
        if output.write_all(&buffer).await.is_err() || output.flush().await.is_err() {
            return;
        }
        buffer.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn future(id: u32) -> FutureId {
        format!("r1-{id}").parse().unwrap()
    }

    fn upload(bytes: &'static [u8]) -> Result<Payload, Reply> {
        Ok(Payload::Memory(Bytes::from_static(bytes)))
    }

    #[test]
    fn an_upload_meets_its_frame_whichever_comes_first() {
        let mut pairing = UploadPairing::default();
        // Frame first.
        assert!(pairing.submitted(1, future(1), "a".into()).is_none());
        let ready = pairing.uploaded(1, upload(b"p1")).unwrap().unwrap();
        assert_eq!(
            (
                ready.id,
                &ready.label[..],
                ready.payload.to_bytes().unwrap()
            ),
            (1, "a", Bytes::from_static(b"p1"))
        );
        // Upload first.
        assert!(pairing.uploaded(2, upload(b"p2")).is_none());
        let ready = pairing
            .submitted(2, future(2), "b".into())
            .unwrap()
            .unwrap();
        assert_eq!(ready.payload.to_bytes().unwrap(), &b"p2"[..]);
        // A broken upload reaches R as its error.
        let broken = Reply::Error {
            id: 3,
            kind: ErrorKind::Protocol,
            message: "cut".into(),
        };
        assert!(pairing.submitted(3, future(3), String::new()).is_none());
        assert_eq!(
            pairing.uploaded(3, Err(broken.clone())).unwrap().err(),
            Some(broken)
        );
        // Cancelled while its upload was coming: the upload is dropped when it ends.
        assert!(pairing.submitted(4, future(4), String::new()).is_none());
        pairing.cancelled(4);
        assert!(pairing.uploaded(4, upload(b"late")).is_none());
        // Refused frames drop their upload, before or after it ends.
        assert!(pairing.uploaded(5, upload(b"p5")).is_none());
        pairing.refused(5);
        pairing.refused(6);
        assert!(pairing.uploaded(6, upload(b"p6")).is_none());
        // A cancel of a future that is not waiting for an upload leaves nothing behind.
        pairing.cancelled(7);
        assert!(
            pairing.awaiting.is_empty()
                && pairing.arrived.is_empty()
                && pairing.abandoned.is_empty()
        );
    }

    #[tokio::test]
    async fn an_upload_is_read_to_its_end_within_the_limit() {
        let line = UploadLine {
            token: "t".into(),
            id: 9,
            size_hint: 4,
        };
        let dir = Path::new("/nonexistent");
        let mut input = &b"0123456789"[..];
        assert_eq!(
            read_upload(&mut input, &line, 64, dir)
                .await
                .unwrap()
                .to_bytes()
                .unwrap(),
            &b"0123456789"[..]
        );
        let big = vec![7u8; 3 * p2p_r::frame::READ_CHUNK];
        let refused = read_upload(&mut &big[..], &line, 1000, dir)
            .await
            .unwrap_err();
        assert!(matches!(
            refused,
            Reply::Error {
                id: 9,
                kind: ErrorKind::Remote(RemoteErrorKind::PayloadTooLarge),
                ..
            }
        ));
    }

    #[tokio::test]
    async fn a_large_upload_is_spilled_to_an_unlinked_file_and_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let mut line = UploadLine {
            token: "t".into(),
            id: 3,
            size_hint: 0,
        };
        // Hints too low (found out on the way), and right (spilled from the start).
        for (len, hinted) in [
            (SPILL_ABOVE, false),
            (SPILL_ABOVE + 1, false),
            (3 * SPILL_ABOVE + 12_345, false),
            (SPILL_ABOVE + 1, true),
            (3 * SPILL_ABOVE + 12_345, true),
        ] {
            line.size_hint = if hinted { len as u64 } else { 0 };
            let sent: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            let payload = read_upload(&mut &sent[..], &line, usize::MAX, dir.path())
                .await
                .unwrap();
            assert_eq!(matches!(payload, Payload::File(_)), len > SPILL_ABOVE);
            assert_eq!(payload.len(), len as u64);
            assert!(payload.to_bytes().unwrap() == sent, "{len} bytes differ");
            // Nothing in the directory: the file has no name to outlive the process.
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        }
        // The limit holds past the spill too.
        let sent = vec![1u8; 2 * SPILL_ABOVE];
        let refused = read_upload(&mut &sent[..], &line, SPILL_ABOVE + 5, dir.path())
            .await
            .unwrap_err();
        assert!(matches!(
            refused,
            Reply::Error {
                kind: ErrorKind::Remote(RemoteErrorKind::PayloadTooLarge),
                ..
            }
        ));
    }

    #[tokio::test]
    async fn a_spill_dir_that_cannot_take_the_file_fails_the_future_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        // Root may write anywhere: a directory that is not there fails for everyone.
        let missing = dir.path().join("gone");
        let line = UploadLine {
            token: "t".into(),
            id: 4,
            size_hint: 0,
        };
        let sent = vec![0u8; SPILL_ABOVE + 1];
        let failed = read_upload(&mut &sent[..], &line, usize::MAX, &missing)
            .await
            .unwrap_err();
        let Reply::Error { id, kind, message } = failed else {
            panic!("not an error: {failed:?}")
        };
        assert_eq!((id, kind), (4, ErrorKind::Remote(RemoteErrorKind::Failed)));
        assert!(
            message.contains(&missing.display().to_string()),
            "{message}"
        );
        assert!(message.contains("TMPDIR"), "{message}");
    }

    #[tokio::test]
    async fn upload_lines_are_bounded() {
        let mut good = tokio::io::BufReader::new(&b"t upload 1 5\npayload"[..]);
        assert_eq!(read_line(&mut good).await.unwrap(), "t upload 1 5");
        let long = vec![b'a'; 2 * UploadLine::MAX_LEN];
        assert!(
            read_line(&mut tokio::io::BufReader::new(&long[..]))
                .await
                .is_err()
        );
    }

    #[test]
    fn advice_names_the_owner_and_the_user() {
        let cluster: ClusterName = "alice/p2p".parse().unwrap();
        let text = unreachable_advice(&cluster, "dave", "pipe.pico.sh", Duration::from_secs(60));
        assert!(text.contains("alice/p2p"));
        assert!(text.contains("ask alice to add you"));
        assert!(text.contains("(dave)"));
    }

    #[test]
    fn the_hosts_hello_is_what_members_watch_for() {
        use p2p_transport::cluster_watch::host_hello;
        let me = p2p_proto::id::PeerId::new("alice", "box", 7).unwrap();
        let line = crate::host::cluster_hello(&me, Duration::from_secs(5)).unwrap();
        assert_eq!(host_hello(&line).map(|(host, _)| host), Some(me));
        assert!(host_hello(&line.replace("type=cluster", "type=worker")).is_none());
    }
}
