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
//! ```

use std::collections::HashMap;
use std::future::Future;
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
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::CliError;
use crate::connect::{BoardArgs, host_advice};
use crate::units::{parse_duration, parse_size};
use p2p_r::bridge::protocol::{BRIDGE_PROTOCOL_VERSION, ErrorKind, Reply, Request, ServerHello};
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
    let (requests, writer) = match &args.loopback {
        None => (
            spawn_request_reader(tokio::io::stdin(), max_body),
            tokio::spawn(write_replies(tokio::io::stdout(), reply_rx)),
        ),
        Some(token) => {
            let (read, write) = accept_r_session(token).await?.into_split();
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
            )
        }
    };
    let outcome = serve(&args, requests, &replies).await;
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
                    },
                    Request::Cancel { id } => {
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
        _native: &Bytes,
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
/// presents `token`.
async fn accept_r_session(token: &str) -> Result<tokio::net::TcpStream, CliError> {
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
    tokio::time::timeout(ACCEPT_TIMEOUT, accept)
        .await
        .map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the R session did not connect",
            )
        })?
        .map_err(CliError::from)
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
