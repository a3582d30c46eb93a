use super::*;
use p2p_proto::frame::{RemoteError, RemoteErrorKind};
use p2p_proto::line;
use p2p_proto::message::{Offer, WorkerKey};
use p2p_proto::seal::WorkerSecret;
use p2p_transport::wormhole::SessionError;
use rand_chacha::rand_core::SeedableRng;

const T0: Millis = 1_760_000_000_000;
const OURS: &str = "wormhole;sealed-v1;session-v1;slots-v1";

fn me() -> PeerId {
    "alice@desktop:200".parse().unwrap()
}

fn bob() -> PeerId {
    "bob@laptop:100".parse().unwrap()
}

fn carol() -> PeerId {
    "carol@server:300".parse().unwrap()
}

fn fid(n: u32) -> FutureId {
    format!("f-{n}").parse().unwrap()
}

fn core(config: SchedulerConfig) -> SchedulerCore {
    let mut core = SchedulerCore::new(config, ChaCha20Rng::seed_from_u64(1), T0);
    core.handle_timeout(T0);
    let hello = drain(&mut core);
    assert!(matches!(
        posted(&hello)[..],
        [Message::Hello(Hello {
            role: Role::Client,
            ..
        })]
    ));
    core
}

fn drain(core: &mut SchedulerCore) -> Vec<SchedulerAction> {
    std::iter::from_fn(|| core.poll_action()).collect()
}

fn posted(actions: &[SchedulerAction]) -> Vec<&Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            SchedulerAction::Post(line) => Some(&line.message),
            _ => None,
        })
        .collect()
}

fn requests(actions: &[SchedulerAction]) -> Vec<FutureId> {
    posted(actions)
        .into_iter()
        .filter_map(|m| match m {
            Message::Request(r) => Some(r.future.clone()),
            _ => None,
        })
        .collect()
}

fn dispatches(actions: &[SchedulerAction]) -> Vec<&Dispatch> {
    actions
        .iter()
        .filter_map(|a| match a {
            SchedulerAction::Dispatch(d) => Some(d),
            _ => None,
        })
        .collect()
}

fn finished(actions: &[SchedulerAction]) -> Vec<(TaskId, Result<PeerId, TaskError>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            SchedulerAction::Finished { task, outcome } => Some((*task, outcome.clone())),
            _ => None,
        })
        .collect()
}

fn offer(
    from: &PeerId,
    future: &FutureId,
    protocols: Option<&str>,
    pk: Option<WorkerKey>,
) -> BoardLine {
    BoardLine::new(
        BoardTime::from_unix((T0 / 1000) as i64),
        Message::Offer(Offer {
            from: from.clone(),
            expires: Expiry::Unix((T0 / 1000 + 15) as i64),
            to: me(),
            future: future.clone(),
            protocols: protocols.map(|p| p.parse().unwrap()),
            pk,
        }),
    )
}

/// An offer from a worker of future.p2p's kind, standing until `expires`.
fn offer_until(from: &PeerId, future: &FutureId, expires: Millis) -> BoardLine {
    let mut line = offer(from, future, Some("wormhole"), None);
    if let Message::Offer(offer) = &mut line.message {
        offer.expires = Expiry::from_unix_ms(expires);
    }
    line
}

fn hello(worker: &PeerId, slots: u32) -> BoardLine {
    line::decode(&format!(
        "when=2025-10-01T09:00:00,expires={},type=worker,from={worker},protocols={OURS},slots={slots}",
        T0 / 1000 + 600,
    ))
    .unwrap()
}

/// A client in a warm session with `worker` (of `slots`), opened for task `first`; the
/// task has started.
fn with_session(core: &mut SchedulerCore, worker: &PeerId, slots: u32, first: u32) -> TaskId {
    core.handle_line(T0, &hello(worker, slots));
    let id = core.submit(T0, fid(first), 1);
    drain(core);
    core.handle_line(
        T0,
        &offer(
            worker,
            &fid(first),
            Some("wormhole;session-v1;slots-v1"),
            None,
        ),
    );
    let actions = drain(core);
    assert!(
        matches!(
            dispatches(&actions)[..],
            [Dispatch {
                route: Route::NewSession { .. },
                ..
            }]
        ),
        "{actions:?}"
    );
    assert!(core.session_opened(T0, worker, id, true));
    core.task_started(T0, id, worker);
    drain(core);
    id
}

fn moved(actions: &[SchedulerAction]) -> Vec<(TaskId, PeerId)> {
    actions
        .iter()
        .filter_map(|a| match a {
            SchedulerAction::Interrupt { task, worker } => Some((*task, worker.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn request_offer_accept_files_for_a_future_p2p_worker() {
    let mut core = core(SchedulerConfig::new(me()));
    let task = core.submit(T0, fid(1), 2371);
    let actions = drain(&mut core);
    match posted(&actions)[..] {
        [Message::Request(request)] => {
            assert_eq!(request.size, 2371);
            assert_eq!(request.expires, Expiry::Unix((T0 / 1000 + 10) as i64));
            assert!(
                request
                    .protocols
                    .as_ref()
                    .unwrap()
                    .supports(protocols::SESSION)
            );
        }
        ref other => panic!("{other:?}"),
    }
    core.handle_line(T0 + 5, &offer(&bob(), &fid(1), Some("wormhole"), None));
    let actions = drain(&mut core);
    let accept = match posted(&actions)[..] {
        [Message::Accept(accept)] => accept.clone(),
        ref other => panic!("{other:?}"),
    };
    let TransferUri::Wormhole(code) = &accept.via else {
        panic!("{:?}", accept.via)
    };
    assert_eq!(accept.to, bob());
    assert_eq!(
        dispatches(&actions),
        vec![&Dispatch {
            task,
            future: fid(1),
            worker: bob(),
            route: Route::Files { code: code.clone() },
            format: PayloadFormat::Native,
        }]
    );
    core.task_started(T0 + 6, task, &bob());
    assert!(core.task_succeeded(T0 + 10, task, &bob()));
    assert_eq!(finished(&drain(&mut core)), vec![(task, Ok(bob()))]);
    assert!(
        !core.task_succeeded(T0 + 11, task, &bob()),
        "a second result is refused"
    );
}

#[test]
fn seed_workers_get_bare_codes_and_ours_get_sealed_sessions() {
    let mut core = core(SchedulerConfig::new(me()));
    core.submit(T0, fid(1), 1);
    core.submit(T0, fid(2), 1);
    drain(&mut core);
    core.handle_line(T0, &offer(&bob(), &fid(1), None, None));
    let actions = drain(&mut core);
    // (With no worker known, one request stood: the next goes up now.)
    assert!(matches!(
        posted(&actions)[..],
        [
            Message::Accept(Accept {
                via: TransferUri::BareWormhole(_),
                ..
            }),
            Message::Request(_)
        ]
    ));

    let secret = WorkerSecret::from_bytes([5; 32]);
    core.handle_line(
        T0,
        &offer(&carol(), &fid(2), Some(OURS), Some(secret.public())),
    );
    let actions = drain(&mut core);
    let sealed = match posted(&actions)[..] {
        [
            Message::Accept(Accept {
                via: TransferUri::Sealed(sealed),
                ..
            }),
        ] => sealed.clone(),
        ref other => panic!("{other:?}"),
    };
    let code = secret.open(&sealed).unwrap();
    assert_eq!(dispatches(&actions)[0].route, Route::NewSession { code });
}

#[test]
fn an_offer_under_a_known_worker_id_with_another_key_is_refused() {
    let mut core = core(SchedulerConfig::new(me()));
    for n in 1..=3 {
        core.submit(T0, fid(n), 1);
    }
    drain(&mut core);
    let sealed_files = Some("wormhole;sealed-v1");
    let bobs = WorkerSecret::from_bytes([5; 32]);
    core.handle_line(
        T0,
        &offer(&bob(), &fid(1), sealed_files, Some(bobs.public())),
    );
    // (With no worker known one request stands at a time: the next may go up too.)
    let accepts = |actions: &[SchedulerAction]| {
        posted(actions)
            .iter()
            .filter(|m| matches!(m, Message::Accept(_)))
            .count()
    };
    assert_eq!(accepts(&drain(&mut core)), 1, "bob's first offer is taken");

    // Mallory poses as bob with her own key, and then without one (a downgrade).
    let mallorys = WorkerSecret::from_bytes([6; 32]);
    core.handle_line(
        T0,
        &offer(&bob(), &fid(2), sealed_files, Some(mallorys.public())),
    );
    let actions = drain(&mut core);
    assert!(
        actions.contains(&SchedulerAction::KeyChanged { worker: bob() }) && accepts(&actions) == 0,
        "refused and reported, nothing accepted: {actions:?}"
    );
    core.handle_line(T0, &offer(&bob(), &fid(2), Some("wormhole"), None));
    let actions = drain(&mut core);
    assert!(
        !actions.contains(&SchedulerAction::KeyChanged { worker: bob() }) && accepts(&actions) == 0,
        "refused again, reported once: {actions:?}"
    );

    // Carol, and bob with his own key, are still served.
    let carols = WorkerSecret::from_bytes([7; 32]);
    core.handle_line(
        T0,
        &offer(&carol(), &fid(2), sealed_files, Some(carols.public())),
    );
    assert_eq!(accepts(&drain(&mut core)), 1);
    core.handle_line(
        T0,
        &offer(&bob(), &fid(3), sealed_files, Some(bobs.public())),
    );
    assert_eq!(accepts(&drain(&mut core)), 1);
}

#[test]
fn a_reopened_board_gets_the_hello_and_the_standing_requests_at_once() {
    let mut core = core(SchedulerConfig::new(me()));
    // Two workers to find: two requests stand.
    core.handle_line(T0, &hello(&bob(), 1));
    core.handle_line(T0, &hello(&carol(), 1));
    core.submit(T0, fid(1), 1);
    core.submit(T0, fid(2), 1);
    assert_eq!(requests(&drain(&mut core)), vec![fid(1), fid(2)]);
    // Long before the requests lapse or the next hello is due.
    core.board_reopened(T0 + 1_000);
    let actions = drain(&mut core);
    assert!(matches!(
        posted(&actions)[0],
        Message::Hello(Hello {
            role: Role::Client,
            ..
        })
    ));
    let mut again = requests(&actions);
    again.sort();
    assert_eq!(again, vec![fid(1), fid(2)]);
    // Once: nothing more until they lapse.
    core.handle_timeout(T0 + 2_000);
    assert!(requests(&drain(&mut core)).is_empty());
}

#[test]
fn a_warm_session_takes_the_next_tasks_and_stays_open_while_idle() {
    let mut config = SchedulerConfig::new(me());
    config.max_open_requests = 1;
    let mut core = core(config);
    core.handle_line(T0, &hello(&bob(), 1));
    let t1 = core.submit(T0, fid(1), 1);
    let t2 = core.submit(T0, fid(2), 1);
    // One request may stand.
    assert_eq!(requests(&drain(&mut core)), vec![fid(1)]);
    core.handle_line(T0, &offer(&bob(), &fid(1), Some(OURS), None));
    let actions = drain(&mut core);
    // With bob taken, no other worker is there to ask: no request for t2.
    assert!(requests(&actions).is_empty(), "{actions:?}");
    assert!(core.session_opened(T0 + 1, &bob(), t1, true));
    let actions = drain(&mut core);
    // t2 goes over the session: one slot plus one task ahead.
    assert_eq!(
        dispatches(&actions),
        vec![&Dispatch {
            task: t2,
            future: fid(2),
            worker: bob(),
            route: Route::Session,
            format: PayloadFormat::Native,
        }]
    );
    assert!(posted(&actions).is_empty(), "{actions:?}");
    core.task_started(T0 + 2, t1, &bob());
    assert!(core.task_succeeded(T0 + 3, t1, &bob()));
    core.task_started(T0 + 3, t2, &bob());
    assert!(core.task_succeeded(T0 + 4, t2, &bob()));
    let actions = drain(&mut core);
    assert!(!actions.contains(&SchedulerAction::CloseSession { worker: bob() }));
    // A task submitted while the session idles skips the board.
    let t3 = core.submit(T0 + 1_000, fid(3), 1);
    let actions = drain(&mut core);
    assert!(posted(&actions).is_empty());
    assert_eq!(dispatches(&actions)[0].task, t3);
    core.task_started(T0 + 1_001, t3, &bob());
    assert!(core.task_succeeded(T0 + 1_002, t3, &bob()));
    drain(&mut core);
    // After the grace with nothing to do, the session closes.
    let grace = T0 + 1_002 + core.config().session_idle_grace;
    core.handle_timeout(grace - 1);
    assert!(!drain(&mut core).contains(&SchedulerAction::CloseSession { worker: bob() }));
    assert_eq!(core.poll_timeout(), Some(grace));
    core.handle_timeout(grace);
    assert!(drain(&mut core).contains(&SchedulerAction::CloseSession { worker: bob() }));
    assert_eq!(core.pending(), 0);
    assert_eq!(core.sessions(), 0);
}

#[test]
fn a_session_holds_its_slots_and_a_small_prefetch_only() {
    let mut config = SchedulerConfig::new(me());
    config.max_open_requests = 3;
    let mut core = core(config);
    with_session(&mut core, &bob(), 2, 0);
    for n in 1..10 {
        core.submit(T0, fid(n), 1);
    }
    let actions = drain(&mut core);
    // Two slots, one running: two more go (the second slot and one ahead), the rest wait.
    assert_eq!(dispatches(&actions).len(), 2);
    // carol is known and in no session: the queue's tail goes on the board for her, one
    // request for one worker to find.
    core.handle_line(T0, &hello(&carol(), 1));
    assert_eq!(requests(&drain(&mut core)), vec![fid(9)]);
}

#[test]
fn tiny_tasks_get_a_deeper_prefetch() {
    let mut core = core(SchedulerConfig::new(me()));
    let first = with_session(&mut core, &bob(), 1, 0);
    assert!(core.task_succeeded(T0, first, &bob()));
    let ids: Vec<TaskId> = (1..100).map(|n| core.submit(T0, fid(n), 1)).collect();
    drain(&mut core);
    // Results come back within the same millisecond: the window opens up to the maximum.
    for id in &ids[..10] {
        core.task_started(T0, *id, &bob());
        assert!(core.task_succeeded(T0, *id, &bob()));
    }
    let in_flight = core.sessions.get(&bob()).unwrap().in_flight.len();
    assert_eq!(in_flight, 1 + core.config().max_prefetch);
}

#[test]
fn waiting_tasks_move_to_an_idle_worker() {
    let mut core = core(SchedulerConfig::new(me()));
    let b0 = with_session(&mut core, &bob(), 1, 0);
    let c1 = with_session(&mut core, &carol(), 1, 1);
    let t2 = core.submit(T0, fid(2), 1);
    let t3 = core.submit(T0, fid(3), 1);
    drain(&mut core);
    // Each worker: one running, one waiting behind it.
    for (t, w) in [(t2, bob()), (t3, carol())] {
        assert!(core.sessions.get(&w).unwrap().in_flight.contains(&t));
    }
    // Long tasks: results a second apart.
    core.handle_timeout(T0 + 1_000);
    assert!(core.task_succeeded(T0 + 1_000, c1, &carol()));
    core.task_started(T0 + 1_000, t3, &carol());
    drain(&mut core);
    assert!(core.task_succeeded(T0 + 2_000, t3, &carol()));
    // carol is idle, the queue is empty, t2 would wait a second behind b0: it moves.
    let actions = drain(&mut core);
    assert_eq!(moved(&actions), vec![(t2, bob())]);
    assert_eq!(
        dispatches(&actions),
        vec![&Dispatch {
            task: t2,
            future: fid(2),
            worker: carol(),
            route: Route::Session,
            format: PayloadFormat::Native,
        }]
    );
    // bob's late word about t2 is refused.
    assert!(!core.task_succeeded(T0 + 2_001, t2, &bob()));
    assert!(core.task_succeeded(T0 + 2_500, b0, &bob()));
}

#[test]
fn a_task_stuck_behind_a_busy_worker_goes_on_the_board_for_a_free_one() {
    let mut core = core(SchedulerConfig::new(me()));
    let b0 = with_session(&mut core, &bob(), 1, 0);
    assert!(core.task_succeeded(T0 + 1_000, b0, &bob()));
    let t1 = core.submit(T0 + 1_000, fid(1), 1);
    let t2 = core.submit(T0 + 1_000, fid(2), 1);
    core.task_started(T0 + 1_000, t1, &bob());
    drain(&mut core);
    // carol appears, in no session with us: t2, a second behind t1, is put up for her.
    core.handle_line(T0 + 1_001, &hello(&carol(), 1));
    assert_eq!(requests(&drain(&mut core)), vec![fid(2)]);
    core.handle_line(T0 + 1_002, &offer(&carol(), &fid(2), Some(OURS), None));
    let actions = drain(&mut core);
    assert_eq!(moved(&actions), vec![(t2, bob())]);
    assert!(matches!(
        dispatches(&actions)[..],
        [Dispatch { task, route: Route::NewSession { .. }, .. }] if *task == t2
    ));
}

#[test]
fn only_started_tasks_spend_a_try_when_a_session_dies() {
    let mut core = core(SchedulerConfig::new(me()));
    let b0 = with_session(&mut core, &bob(), 1, 0);
    let t1 = core.submit(T0, fid(1), 1);
    drain(&mut core);
    core.session_closed(T0 + 5, &bob(), AttemptError::Session(SessionError::Closed));
    let actions = drain(&mut core);
    let events: Vec<_> = actions
        .iter()
        .filter_map(|a| match a {
            SchedulerAction::Event { task, event } => Some((*task, event.clone())),
            _ => None,
        })
        .collect();
    assert!(events.contains(&(
        b0,
        TaskEvent::Retried {
            worker: bob(),
            error: AttemptError::Session(SessionError::Closed)
        }
    )));
    assert!(events.contains(&(t1, TaskEvent::Requeued { worker: bob() })));
    assert_eq!(core.tasks[&b0].tried, vec![bob()]);
    assert!(core.tasks[&t1].tried.is_empty());
}

#[test]
fn sessions_without_started_frames_count_starts_by_position() {
    let mut core = core(SchedulerConfig::new(me()));
    core.handle_line(T0, &hello(&bob(), 1));
    let t0 = core.submit(T0, fid(0), 1);
    drain(&mut core);
    core.handle_line(
        T0,
        &offer(&bob(), &fid(0), Some("wormhole;session-v1"), None),
    );
    drain(&mut core);
    assert!(core.session_opened(T0, &bob(), t0, false));
    let t1 = core.submit(T0, fid(1), 1);
    drain(&mut core);
    assert!(matches!(core.tasks[&t0].phase, Phase::Running { .. }));
    assert!(matches!(core.tasks[&t1].phase, Phase::Sent { .. }));
    assert!(core.task_succeeded(T0 + 1, t0, &bob()));
    assert!(matches!(core.tasks[&t1].phase, Phase::Running { .. }));
}

/// The sequence of the simulation's seed 13648062918053255850: a result frees the one slot
/// of a session, the next task goes into it, and the session breaks before that task
/// reaches the worker. A worker that reports starts never said it started, so the task goes
/// back untouched; one without Started frames is taken to have started it (the client
/// cannot tell a task lost on the way from one that started and died with the session),
/// so it spends a try, as a task that kills every such worker it reaches must.
#[test]
fn a_task_sent_into_a_freed_slot_spends_a_try_only_where_starts_are_not_reported() {
    for reports_starts in [true, false] {
        let mut core = core(SchedulerConfig::new(me()));
        core.handle_line(T0, &hello(&bob(), 1));
        let t0 = core.submit(T0, fid(0), 1);
        drain(&mut core);
        core.handle_line(
            T0,
            &offer(&bob(), &fid(0), Some("wormhole;session-v1;slots-v1"), None),
        );
        drain(&mut core);
        assert!(core.session_opened(T0, &bob(), t0, reports_starts));
        if reports_starts {
            core.task_started(T0, t0, &bob());
        }
        let t1 = core.submit(T0, fid(1), 1);
        drain(&mut core);
        assert!(matches!(core.tasks[&t1].phase, Phase::Sent { .. }));
        assert!(core.task_succeeded(T0 + 100, t0, &bob()));
        drain(&mut core);
        core.session_closed(
            T0 + 103,
            &bob(),
            AttemptError::Session(SessionError::Closed),
        );
        let actions = drain(&mut core);
        let expected = if reports_starts {
            TaskEvent::Requeued { worker: bob() }
        } else {
            TaskEvent::Retried {
                worker: bob(),
                error: AttemptError::Session(SessionError::Closed),
            }
        };
        assert!(
            actions.contains(&SchedulerAction::Event {
                task: t1,
                event: expected
            }),
            "reports starts: {reports_starts}: {actions:?}"
        );
        let tried = if reports_starts { vec![] } else { vec![bob()] };
        assert_eq!(core.tasks[&t1].tried, tried);
    }
}

#[test]
fn failures_retry_on_other_workers_then_fail_naming_them() {
    let mut config = SchedulerConfig::new(me());
    config.max_retries = 1;
    let mut core = core(config);
    let task = core.submit(T0, fid(1), 1);
    drain(&mut core);
    core.handle_line(T0, &offer(&bob(), &fid(1), Some("wormhole"), None));
    drain(&mut core);
    core.task_started(T0 + 1, task, &bob());
    core.task_failed(
        T0 + 1,
        task,
        &bob(),
        AttemptError::Transfer {
            stage: crate::error::TransferStage::ReceivingResult,
            source: p2p_transport::wormhole::TransferError::Cancelled.into(),
        },
    );
    let actions = drain(&mut core);
    assert!(actions.iter().any(|a| matches!(
        a,
        SchedulerAction::Event {
            event: TaskEvent::Retried { .. },
            ..
        }
    )));
    assert_eq!(requests(&actions), vec![fid(1)], "re-posted");
    // bob failed it once: while carol is around, his new offer is skipped.
    core.handle_line(T0 + 2, &hello(&carol(), 1));
    drain(&mut core);
    core.handle_line(T0 + 2, &offer(&bob(), &fid(1), Some("wormhole"), None));
    assert!(posted(&drain(&mut core)).is_empty());
    core.handle_line(T0 + 2, &offer(&carol(), &fid(1), Some("wormhole"), None));
    drain(&mut core);
    core.task_started(T0 + 3, task, &carol());
    core.task_failed(
        T0 + 4,
        task,
        &carol(),
        AttemptError::Declined(DeclineReason::Failed),
    );
    let outcome = finished(&drain(&mut core));
    match &outcome[..] {
        [(t, Err(TaskError::Exhausted { tried, last }))] => {
            assert_eq!(*t, task);
            assert_eq!(tried, &vec![bob(), carol()]);
            let message = TaskError::Exhausted {
                tried: tried.clone(),
                last: last.clone(),
            }
            .to_string();
            assert!(
                message.contains("bob@laptop:100") && message.contains("carol@server:300"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A late result from bob is refused.
    assert!(!core.task_succeeded(T0 + 70_000, task, &bob()));
}

#[test]
fn hand_overs_that_never_start_spend_no_try_but_are_bounded() {
    let mut config = SchedulerConfig::new(me());
    config.max_dispatch_failures = 2;
    config.set_aside = 1;
    let mut core = core(config);
    let task = core.submit(T0, fid(1), 1);
    drain(&mut core);
    let mut now = T0;
    for round in 0..3 {
        core.handle_line(now, &offer_until(&bob(), &fid(1), now + 15_000));
        drain(&mut core);
        now += core.config().accept_ttl;
        core.handle_timeout(now);
        let actions = drain(&mut core);
        if round < 2 {
            assert!(finished(&actions).is_empty());
            assert!(core.tasks[&task].tried.is_empty());
        } else {
            assert!(matches!(
                &finished(&actions)[..],
                [(
                    _,
                    Err(TaskError::Undeliverable {
                        attempts: 3,
                        last: AttemptError::NotStarted
                    })
                )]
            ));
        }
        now += 60_000;
        core.handle_timeout(now);
        drain(&mut core);
    }
}

#[test]
fn a_worker_that_keeps_failing_is_set_aside_for_a_while() {
    let mut core = core(SchedulerConfig::new(me()));
    core.handle_line(T0, &hello(&carol(), 1));
    for n in 0..2 {
        let task = core.submit(T0, fid(n), 1);
        drain(&mut core);
        core.handle_line(T0, &offer(&bob(), &fid(n), Some("wormhole"), None));
        drain(&mut core);
        core.task_started(T0, task, &bob());
        core.task_failed(T0, task, &bob(), AttemptError::Vanished);
        drain(&mut core);
    }
    let fresh = core.submit(T0, fid(5), 1);
    drain(&mut core);
    core.handle_line(T0 + 10, &offer(&bob(), &fid(5), Some("wormhole"), None));
    assert!(posted(&drain(&mut core)).is_empty(), "bob is set aside");
    core.handle_line(T0 + 2_000, &offer(&bob(), &fid(5), Some("wormhole"), None));
    assert!(
        dispatches(&drain(&mut core))
            .iter()
            .any(|d| d.task == fresh)
    );
}

#[test]
fn requests_are_reposted_when_they_expire() {
    let mut core = core(SchedulerConfig::new(me()));
    core.submit(T0, fid(1), 1);
    drain(&mut core);
    let deadline = core.poll_timeout().unwrap();
    assert_eq!(deadline, T0 + 10_000);
    core.handle_timeout(deadline);
    assert!(
        matches!(posted(&drain(&mut core))[..], [Message::Request(r)] if r.expires == Expiry::Unix((T0 / 1000 + 20) as i64))
    );
}

#[test]
fn cancel_withdraws_queued_and_interrupts_running_tasks() {
    let mut core = core(SchedulerConfig::new(me()));
    let t1 = core.submit(T0, fid(1), 1);
    let t2 = core.submit(T0, fid(2), 1);
    drain(&mut core);
    core.cancel(T0, t1);
    let actions = drain(&mut core);
    // One request stood (no worker known): withdrawn, and the next task's goes up.
    assert!(
        matches!(posted(&actions)[..], [Message::Withdraw(w), Message::Request(r)] if w.future == fid(1) && w.to.is_none() && r.future == fid(2))
    );
    assert_eq!(finished(&actions), vec![(t1, Err(TaskError::Cancelled))]);

    core.handle_line(T0, &offer(&bob(), &fid(2), Some("wormhole"), None));
    drain(&mut core);
    core.cancel(T0, t2);
    let actions = drain(&mut core);
    assert!(
        matches!(posted(&actions)[..], [Message::Withdraw(w)] if w.future == fid(2) && w.to == Some(bob()))
    );
    assert!(actions.contains(&SchedulerAction::Interrupt {
        task: t2,
        worker: bob()
    }));
    assert!(!core.task_succeeded(T0, t2, &bob()));
    // Offers for a cancelled future are ignored.
    core.handle_line(T0, &offer(&carol(), &fid(1), Some("wormhole"), None));
    assert!(drain(&mut core).is_empty());
}

#[test]
fn open_requests_are_bounded_and_workers_are_tracked_with_their_slots() {
    let mut config = SchedulerConfig::new(me());
    config.max_open_requests = 3;
    let mut core = core(config);
    for n in 0..10 {
        core.submit(T0, fid(n), 1);
    }
    // No worker known: one request finds the first.
    assert_eq!(requests(&drain(&mut core)), vec![fid(0)]);
    let version = core.workers_version();
    core.handle_line(T0, &hello(&bob(), 4));
    // Posted again for bob (who may not have seen it), for the queue's tail.
    assert_eq!(requests(&drain(&mut core)), vec![fid(9)]);
    assert_ne!(core.workers_version(), version);
    // More workers to find: more requests, up to the bound.
    for w in 1..=5 {
        let other = PeerId::new("dave", "box", w).unwrap();
        core.handle_line(T0 + 1_000 * w as Millis, &hello(&other, 1));
    }
    let standing: BTreeSet<FutureId> = requests(&drain(&mut core)).into_iter().collect();
    assert!(standing.len() >= 3, "{standing:?}");
    let seen: Vec<_> = core
        .workers(T0)
        .filter(|(id, _)| id.user() == "bob")
        .map(|(id, w)| (id.clone(), w.slots))
        .collect();
    assert_eq!(seen, vec![(bob(), 4)]);
    assert_eq!(core.workers(T0 + 601_000).count(), 0);
    // Offers addressed to someone else are not ours to take.
    let mut other = offer(&bob(), &fid(0), Some("wormhole"), None);
    if let Message::Offer(o) = &mut other.message {
        o.to = carol();
    }
    core.handle_line(T0, &other);
    assert!(drain(&mut core).is_empty());
}

#[test]
fn a_lone_worker_gets_a_failed_task_again() {
    let mut core = core(SchedulerConfig::new(me()));
    let task = core.submit(T0, fid(1), 1);
    drain(&mut core);
    core.handle_line(T0, &offer(&bob(), &fid(1), Some("wormhole"), None));
    drain(&mut core);
    core.task_started(T0, task, &bob());
    core.task_failed(T0 + 1, task, &bob(), AttemptError::Vanished);
    drain(&mut core);
    core.handle_line(T0 + 2, &offer(&bob(), &fid(1), Some("wormhole"), None));
    let actions = drain(&mut core);
    assert!(matches!(posted(&actions)[..], [Message::Accept(a)] if a.to == bob()));
}

#[test]
fn a_worker_whose_hello_expires_mid_task_loses_the_task() {
    let mut core = core(SchedulerConfig::new(me()));
    let task = core.submit(T0, fid(1), 1);
    drain(&mut core);
    let hello = line::decode(&format!(
        "when=2025-10-01T09:00:00,expires={},type=worker,from={},protocols=wormhole",
        T0 / 1000 + 60,
        bob()
    ))
    .unwrap();
    core.handle_line(T0, &hello);
    core.handle_line(T0, &offer(&bob(), &fid(1), Some("wormhole"), None));
    drain(&mut core);
    core.task_started(T0, task, &bob());
    assert!(core.poll_timeout().is_some_and(|t| t <= T0 + 60_000));
    core.handle_timeout(T0 + 60_000);
    let actions = drain(&mut core);
    assert!(actions.iter().any(|a| matches!(a, SchedulerAction::Event { event: TaskEvent::Retried { error, .. }, .. } if *error == AttemptError::Vanished)), "{actions:?}");
}

#[test]
fn a_worker_never_heard_of_keeps_its_file_route_task() {
    // future.p2p 0.4.0 workers say hello once, when they join: one that joined before
    // this client offers without ever having said hello to it.
    let mut config = SchedulerConfig::new(me());
    config.time_limit = Some(600_000);
    let mut core = core(config);
    let task = core.submit(T0, fid(1), 1);
    drain(&mut core);
    core.handle_line(T0, &offer(&bob(), &fid(1), Some("wormhole"), None));
    drain(&mut core);
    core.task_started(T0, task, &bob());
    drain(&mut core);
    // A minute on, well past any hello's life, the task still runs there.
    core.handle_timeout(T0 + 60_000);
    let actions = drain(&mut core);
    assert!(
        !actions.iter().any(|a| matches!(
            a,
            SchedulerAction::Event { .. }
                | SchedulerAction::Finished { .. }
                | SchedulerAction::Interrupt { .. }
        )),
        "{actions:?}"
    );
    assert!(core.task_succeeded(T0 + 70_000, task, &bob()));
}

#[test]
fn time_limits_finish_hung_tasks_as_timed_out() {
    let mut config = SchedulerConfig::new(me());
    config.time_limit = Some(5_000);
    let mut core = core(config);
    let task = with_session(&mut core, &bob(), 1, 0);
    assert_eq!(core.poll_timeout(), Some(T0 + 5_000));
    core.handle_timeout(T0 + 5_000);
    let actions = drain(&mut core);
    assert!(actions.contains(&SchedulerAction::Interrupt {
        task,
        worker: bob()
    }));
    assert_eq!(
        finished(&actions),
        vec![(
            task,
            Err(TaskError::TimedOut {
                worker: bob(),
                limit: TimeLimit::Client { millis: 5_000 }
            })
        )]
    );
    // A worker's own time limit ends a task the same way, without a retry.
    let task = core.submit(T0 + 6_000, fid(1), 1);
    drain(&mut core);
    core.task_started(T0 + 6_000, task, &bob());
    let error = RemoteError {
        kind: RemoteErrorKind::TimeLimit,
        message: "ran past 1 s".into(),
    };
    core.task_failed(T0 + 7_000, task, &bob(), AttemptError::Remote(error));
    assert!(matches!(
        &finished(&drain(&mut core))[..],
        [(_, Err(TaskError::TimedOut { limit: TimeLimit::Worker(message), .. }))] if message == "ran past 1 s"
    ));
}

#[test]
fn a_busy_decline_requeues_without_blame() {
    let mut core = core(SchedulerConfig::new(me()));
    let task = core.submit(T0, fid(1), 1);
    drain(&mut core);
    core.handle_line(T0, &offer(&bob(), &fid(1), Some("wormhole"), None));
    drain(&mut core);
    let decline = line::decode(&format!(
        "when=2025-10-01T09:00:00,type=decline,from={},to={},future=f-1,reason=busy",
        bob(),
        me()
    ))
    .unwrap();
    core.handle_line(T0 + 1, &decline);
    let actions = drain(&mut core);
    assert!(actions.contains(&SchedulerAction::Event {
        task,
        event: TaskEvent::Requeued { worker: bob() }
    }));
    assert_eq!(core.tasks[&task].dispatch_failures, 0);
    assert_eq!(requests(&actions), vec![fid(1)]);
}

#[test]
fn a_worker_that_just_came_sees_the_standing_requests_again() {
    let mut core = core(SchedulerConfig::new(me()));
    core.submit(T0, fid(1), 1);
    assert_eq!(requests(&drain(&mut core)), vec![fid(1)]);
    // bob comes after the request was posted: he never read it.
    core.handle_line(T0 + 2_000, &hello(&bob(), 1));
    assert_eq!(requests(&drain(&mut core)), vec![fid(1)]);
    // carol right after: once a second is enough.
    core.handle_line(T0 + 2_100, &hello(&carol(), 1));
    assert!(requests(&drain(&mut core)).is_empty());
    // A worker already known saying hello again changes nothing.
    core.handle_line(T0 + 5_000, &hello(&bob(), 1));
    assert!(requests(&drain(&mut core)).is_empty());
}

#[test]
fn a_session_that_opens_too_late_is_closed_and_its_task_queued_again() {
    let mut core = core(SchedulerConfig::new(me()));
    core.handle_line(T0, &hello(&bob(), 1));
    let task = core.submit(T0, fid(1), 1);
    drain(&mut core);
    core.handle_line(T0, &offer(&bob(), &fid(1), Some(OURS), None));
    drain(&mut core);
    let deadline = T0 + core.config().session_open_ttl;
    assert_eq!(core.poll_timeout(), Some(deadline));
    core.handle_timeout(deadline);
    let actions = drain(&mut core);
    assert!(actions.contains(&SchedulerAction::CloseSession { worker: bob() }));
    assert!(actions.contains(&SchedulerAction::Event {
        task,
        event: TaskEvent::Retried {
            worker: bob(),
            error: AttemptError::NotStarted
        }
    }));
    assert_eq!(core.tasks[&task].dispatch_failures, 1);
    assert!(core.tasks[&task].tried.is_empty());
    // The rendezvous completes after all: the driver is told to close it.
    assert!(!core.session_opened(deadline + 5, &bob(), task, true));
}

#[test]
fn no_prefetch_on_a_busy_session_while_another_worker_has_none() {
    let mut core = core(SchedulerConfig::new(me()));
    // bob runs a long task in his only slot; carol said hello but has no session with us.
    with_session(&mut core, &bob(), 1, 1);
    core.handle_line(T0, &hello(&carol(), 1));
    drain(&mut core);
    let second = core.submit(T0, fid(2), 1);
    let actions = drain(&mut core);
    // Not queued behind bob's running task: it stays queued, and its request is up.
    assert!(dispatches(&actions).is_empty(), "{actions:?}");
    assert!(
        posted(&actions)
            .iter()
            .any(|m| matches!(m, Message::Request(r) if r.future == fid(2))),
        "{actions:?}"
    );
    // carol offers: the task goes to her.
    core.handle_line(
        T0,
        &offer(
            &carol(),
            &fid(2),
            Some("wormhole;session-v1;slots-v1"),
            None,
        ),
    );
    let actions = drain(&mut core);
    assert!(
        matches!(dispatches(&actions)[..], [Dispatch { task, worker, .. }] if *task == second && *worker == carol()),
        "{actions:?}"
    );
}

#[test]
fn a_flood_of_made_up_workers_fills_only_its_users_share() {
    let mut core = core(SchedulerConfig::new(me()));
    let first = with_session(&mut core, &bob(), 1, 1);
    core.handle_line(T0, &hello(&carol(), 1));
    for pid in 0..20_000 {
        let fake = PeerId::new("mallory", "flood", pid).unwrap();
        core.handle_line(T0 + 1, &hello(&fake, 1));
    }
    drain(&mut core);
    // Mallory's made-up workers fill mallory's share, not the table; the real workers
    // keep their places.
    assert_eq!(core.known_workers(), MAX_WORKERS_PER_USER + 2);
    let known: Vec<PeerId> = core.workers(T0 + 1).map(|(w, _)| w.clone()).collect();
    assert!(known.contains(&bob()) && known.contains(&carol()));
    // bob's session still carries the work.
    assert!(core.task_succeeded(T0 + 2, first, &bob()));
    core.submit(T0 + 2, fid(2), 1);
    let actions = drain(&mut core);
    assert!(
        dispatches(&actions)
            .iter()
            .any(|d| d.worker == bob() && d.route == Route::Session),
        "{actions:?}"
    );
}

#[test]
fn a_hello_claiming_a_long_life_lapses_after_the_longest_hello_life() {
    let mut core = core(SchedulerConfig::new(me()));
    let forever = line::decode(&format!(
        "when=2025-10-01T09:00:00,expires={},type=worker,from={},protocols={OURS},slots=1",
        T0 / 1000 + 365 * 24 * 3600,
        carol()
    ))
    .unwrap();
    core.handle_line(T0, &forever);
    assert_eq!(core.known_workers(), 1);
    assert!(
        core.poll_timeout()
            .is_some_and(|at| at <= T0 + MAX_HELLO_LIFE)
    );
    core.handle_timeout(T0 + MAX_HELLO_LIFE);
    assert_eq!(core.known_workers(), 0);
}

#[test]
fn a_new_client_hears_our_hello_at_once_and_a_known_one_does_not() {
    let mut core = core(SchedulerConfig::new(me()));
    let client_hello = |from: &str| {
        line::decode(&format!(
            "when=2025-10-01T09:00:00,expires={},type=client,from={from}",
            T0 / 1000 + 600
        ))
        .unwrap()
    };
    // Within the answer gap of our first hello: the answer waits for the gap.
    core.handle_line(T0 + 200, &client_hello("carol@server:300"));
    assert_eq!(core.poll_timeout(), Some(T0 + ANSWER_GAP));
    core.handle_timeout(T0 + ANSWER_GAP);
    let answer = drain(&mut core);
    assert!(matches!(
        posted(&answer)[..],
        [Message::Hello(Hello {
            role: Role::Client,
            ..
        })]
    ));
    // Known: no answer before the interval.
    core.handle_line(T0 + 5_000, &client_hello("carol@server:300"));
    core.handle_timeout(T0 + 5_000);
    assert!(posted(&drain(&mut core)).is_empty());
    // Our own hello coming back is no new client.
    core.handle_line(T0 + 6_000, &client_hello("alice@desktop:200"));
    core.handle_timeout(T0 + 6_000);
    assert!(posted(&drain(&mut core)).is_empty());
    // Another new one is answered at once, the gap being over.
    core.handle_line(T0 + 7_000, &client_hello("dave@box:400"));
    core.handle_timeout(T0 + 7_000);
    assert_eq!(posted(&drain(&mut core)).len(), 1);
}

#[test]
fn a_native_format_is_announced_and_only_workers_reading_it_are_accepted() {
    let mut config = SchedulerConfig::new(me());
    config.native_format = Some(p2p_proto::protocols::R_PAYLOAD.to_owned());
    let mut core = core(config);
    core.submit(T0, fid(1), 1);
    let actions = drain(&mut core);
    assert!(matches!(posted(&actions)[..], [Message::Request(r)]
        if r.protocols.as_ref().is_some_and(|p| p.supports("rpayload-v1"))));
    // future.p2p 0.4.0 offers with `wormhole` only: it could not read our payload, and
    // this client cannot make 0.4.0's.
    core.handle_line(T0, &offer(&bob(), &fid(1), Some("wormhole"), None));
    assert!(dispatches(&drain(&mut core)).is_empty());
    core.handle_line(
        T0,
        &offer(&carol(), &fid(1), Some("wormhole;rpayload-v1"), None),
    );
    assert!(matches!(dispatches(&drain(&mut core))[..],
        [d] if d.worker == carol() && d.format == PayloadFormat::Native));
}

#[test]
fn a_client_making_original_payloads_sends_them_to_future_p2p_workers_only() {
    let mut config = SchedulerConfig::new(me());
    config.native_format = Some(p2p_proto::protocols::R_PAYLOAD.to_owned());
    config.original_payloads = true;
    let mut core = core(config);
    for n in 1..=3 {
        core.submit(T0, fid(n), 1);
    }
    drain(&mut core);
    // A worker of this project that reads neither format (it speaks sessions) is refused.
    core.handle_line(
        T0,
        &offer(&carol(), &fid(1), Some("wormhole;session-v1"), None),
    );
    assert!(dispatches(&drain(&mut core)).is_empty());
    // future.p2p 0.4.0 (`wormhole`) and the seed version (no protocols) get its format,
    // on the file route.
    core.handle_line(T0, &offer(&bob(), &fid(1), Some("wormhole"), None));
    let actions = drain(&mut core);
    assert!(matches!(dispatches(&actions)[..], [d] if d.worker == bob()
        && d.format == PayloadFormat::FutureP2p && matches!(d.route, Route::Files { .. })));
    let dave = PeerId::new("dave", "box", 4).unwrap();
    core.handle_line(T0, &offer(&dave, &fid(2), None, None));
    assert!(matches!(dispatches(&drain(&mut core))[..],
        [d] if d.worker == dave && d.format == PayloadFormat::FutureP2p));
    // Ours get the native one.
    core.handle_line(
        T0,
        &offer(&carol(), &fid(3), Some("wormhole;rpayload-v1"), None),
    );
    assert!(matches!(dispatches(&drain(&mut core))[..],
        [d] if d.worker == carol() && d.format == PayloadFormat::Native));
}

proptest::proptest! {
    /// Whatever a worker lists and whatever the client can make, a task goes to it only in
    /// a format it reads: the native one if it lists the token (or payloads are opaque),
    /// future.p2p 0.4.0's, on the file route, only to a worker without sessions and only
    /// from a client that makes it.
    #[test]
    fn a_payload_goes_only_where_it_is_read(
        tokens in proptest::sample::subsequence(
            vec!["wormhole", "sealed-v1", "session-v1", "slots-v1", "rpayload-v1"], 0..=5),
        lists_protocols: bool,
        native: bool,
        original: bool,
    ) {
        let mut config = SchedulerConfig::new(me());
        config.native_format = native.then(|| p2p_proto::protocols::R_PAYLOAD.to_owned());
        config.original_payloads = original;
        let mut core = core(config);
        core.submit(T0, fid(1), 1);
        drain(&mut core);
        let listed = tokens.join(";");
        let protocols = lists_protocols.then_some(listed.as_str());
        core.handle_line(T0, &offer(&bob(), &fid(1), protocols, None));
        let actions = drain(&mut core);
        let sent = dispatches(&actions);
        let reads_native = !native || tokens.contains(&"rpayload-v1") && lists_protocols;
        let reads_original = original && !(lists_protocols && tokens.contains(&"session-v1"));
        proptest::prop_assert_eq!(sent.len(), usize::from(reads_native || reads_original));
        if let [d] = sent[..] {
            if reads_native {
                proptest::prop_assert_eq!(d.format, PayloadFormat::Native);
            } else {
                proptest::prop_assert_eq!(d.format, PayloadFormat::FutureP2p);
                let on_files = matches!(d.route, Route::Files { .. });
                proptest::prop_assert!(on_files, "{:?}", d.route);
            }
        }
    }
}
