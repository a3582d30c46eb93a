//! Cheap stalls by a member (issue 14.2), on an embedded hub: alice hosts and runs a client,
//! bob lends a one-slot worker, and mallory, a member like them, posts lines meant to
//! stall them. Shared by the end-to-end test (`tests/flood_end_to_end.rs`, loose bounds)
//! and the bench (`examples/flood_bench.rs`, the figures against a run without the flood).

use std::time::{Duration, Instant};

use bytes::Bytes;
use p2p_proto::id::{ClusterName, FutureId, PeerId};
use p2p_proto::message::{BoardLine, Hello, Message, Request, Role};
use p2p_proto::protocols::Protocols;
use p2p_proto::time::{BoardTime, Expiry};
use p2p_scheduler::{Scheduler, SchedulerOptions};
use p2p_transport::clock::unix_ms;
use p2p_transport::lines::post_line;
use p2p_worker::executor::ProgressSink;
use p2p_worker::{Executor, Job};

use crate::local::{LocalError, LocalHub};

/// Echoes the payload at once.
struct Echo;

impl Executor for Echo {
    fn execute(
        &self,
        job: Job,
        _progress: ProgressSink,
    ) -> futures::future::BoxFuture<'static, Result<Bytes, p2p_proto::frame::RemoteError>> {
        Box::pin(std::future::ready(Ok(job.payload)))
    }

    // opaque bytes: no future.p2p 0.4.0 client sends these.
    fn failure_result(
        &self,
        _future: &p2p_proto::id::FutureId,
        _format: p2p_proto::protocols::PayloadFormat,
        _error: &p2p_proto::frame::RemoteError,
    ) -> Option<Bytes> {
        None
    }
}

/// Why a flood run failed.
#[derive(Debug, thiserror::Error)]
pub enum FloodError {
    #[error(transparent)]
    Local(#[from] LocalError),
    #[error("{0}")]
    Run(String),
}

fn run_err(err: impl std::fmt::Display) -> FloodError {
    FloodError::Run(err.to_string())
}

/// The cluster of a flood run: alice's client, bob's worker, mallory's topic.
struct Stage {
    local: LocalHub,
    scheduler: Scheduler,
    mallory: p2p_transport::lines::LineChannel,
    mallory_id: PeerId,
    /// Kept open for the run.
    _boards: Vec<p2p_transport::board::Board>,
    _worker: p2p_worker::Worker,
}

async fn stage() -> Result<Stage, FloodError> {
    let local = LocalHub::start(&["alice", "bob", "mallory"]).await?;
    let (alice_board, me, lines) = local.host("alice", "p2p", &["bob", "mallory"]).await?;
    let cluster: ClusterName = "alice/p2p".parse().map_err(run_err)?;
    let (mallory_board, mallory_id, mallory) = local.join("mallory", &cluster).await?;
    let (bob_board, worker) = local.worker("bob", &cluster, Echo, |_| {}).await?;
    let scheduler = Scheduler::start(lines, SchedulerOptions::new(me, local.wormhole()));
    Ok(Stage {
        local,
        scheduler,
        mallory,
        mallory_id,
        _boards: vec![alice_board, mallory_board, bob_board],
        _worker: worker,
    })
}

/// Submits one task and waits for its result: how long it took.
async fn one_task(
    scheduler: &Scheduler,
    name: &str,
    bound: Duration,
) -> Result<Duration, FloodError> {
    let start = Instant::now();
    let future: FutureId = name.parse().map_err(run_err)?;
    let payload = Bytes::from(name.to_owned());
    let handle = scheduler
        .submit(future, payload.clone())
        .await
        .map_err(run_err)?;
    let result = tokio::time::timeout(bound, handle)
        .await
        .map_err(|_| FloodError::Run(format!("{name} took longer than {bound:?}")))?
        .map_err(run_err)?;
    if result != payload {
        return Err(FloodError::Run(format!("{name}: a wrong result")));
    }
    Ok(start.elapsed())
}

/// mallory posts `fakes` worker hellos under made-up ids (as fast as the board takes
/// them) while alice's client has a warm session with bob; returns how long alice's next
/// task took from the start of the flood, and the same without a flood (the baseline, in
/// the same run). Each task must end within `bound`.
pub async fn hello_flood(fakes: u32, bound: Duration) -> Result<(Duration, Duration), FloodError> {
    let stage = stage().await?;
    // Warm: bob is found and in a session.
    one_task(&stage.scheduler, "warm", bound).await?;
    let baseline = one_task(&stage.scheduler, "baseline", bound).await?;
    let start = Instant::now();
    let now = unix_ms();
    let protocols = Protocols::ours();
    for pid in 0..fakes {
        let fake = PeerId::new("mallory", "flood", pid).map_err(run_err)?;
        let line = BoardLine::new(
            BoardTime::from_unix_ms(now),
            Message::Hello(Hello {
                role: Role::Worker,
                from: fake,
                expires: Expiry::from_unix_ms(now + 600_000),
                protocols: Some(protocols.clone()),
                slots: Some(1),
                busy: Some(0),
            }),
        );
        post_line(&stage.mallory.outgoing, &line)
            .await
            .map_err(run_err)?;
    }
    one_task(&stage.scheduler, "flooded", bound).await?;
    let stalled = start.elapsed();
    drop(stage.local);
    Ok((stalled, baseline))
}

/// What a run with fake requests saw.
#[derive(Debug, Clone, Copy)]
pub struct FakeRequests {
    /// How long alice's task took, submitted a second into the run.
    pub alice_task: Duration,
    /// Offers bob's worker made to mallory during the run.
    pub offers_to_mallory: usize,
}

/// mallory keeps `fakes` requests standing (posted again every 10 s) for `run`, never
/// accepting an offer; bob's worker has one slot. alice submits a task a second in.
pub async fn fake_requests(
    fakes: u32,
    run: Duration,
    bound: Duration,
) -> Result<FakeRequests, FloodError> {
    let mut stage = stage().await?;
    let start = Instant::now();
    let mut offers = 0;
    let mut next_post = Instant::now();
    let mut alice = None;
    let scheduler = &stage.scheduler;
    let alice_task = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        one_task(scheduler, "alice", bound).await
    };
    tokio::pin!(alice_task);
    while start.elapsed() < run || alice.is_none() {
        if Instant::now() >= next_post {
            let now = unix_ms();
            for n in 0..fakes {
                let line = BoardLine::new(
                    BoardTime::from_unix_ms(now),
                    Message::Request(Request {
                        from: stage.mallory_id.clone(),
                        expires: Expiry::from_unix_ms(now + 30_000),
                        future: format!("fake-{n}").parse().map_err(run_err)?,
                        size: 1,
                        protocols: Some(Protocols::ours()),
                    }),
                );
                post_line(&stage.mallory.outgoing, &line)
                    .await
                    .map_err(run_err)?;
            }
            next_post += Duration::from_secs(10);
        }
        tokio::select! {
            line = stage.mallory.incoming.recv() => {
                let Some(line) = line else {
                    return Err(FloodError::Run("mallory's topic closed".into()));
                };
                if line.contains("type=offer") && line.contains(&format!("to={}", stage.mallory_id)) {
                    offers += 1;
                }
            }
            done = &mut alice_task, if alice.is_none() => alice = Some(done?),
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
    Ok(FakeRequests {
        alice_task: alice.unwrap_or_default(),
        offers_to_mallory: offers,
    })
}
