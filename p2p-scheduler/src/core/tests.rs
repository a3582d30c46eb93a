use super::*;
use p2p_proto::line;
use p2p_proto::message::{Offer, WorkerKey};
use p2p_proto::seal::WorkerSecret;
use p2p_transport::wormhole::SessionError;
use rand_chacha::rand_core::SeedableRng;

const T0: Millis = 1_760_000_000_000;

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
            route: Route::Files { code: code.clone() }
        }]
    );
    core.task_started(task, &bob());
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
    assert!(matches!(
        posted(&actions)[..],
        [Message::Accept(Accept {
            via: TransferUri::BareWormhole(_),
            ..
        })]
    ));

    let secret = WorkerSecret::from_bytes([5; 32]);
    core.handle_line(
        T0,
        &offer(
            &carol(),
            &fid(2),
            Some("wormhole;sealed-v1;session-v1"),
            Some(secret.public()),
        ),
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
fn warm_session_takes_queued_tasks_without_the_board_then_closes() {
    let mut config = SchedulerConfig::new(me());
    config.max_open_requests = 1;
    let mut core = core(config);
    let t1 = core.submit(T0, fid(1), 1);
    let t2 = core.submit(T0, fid(2), 1);
    drain(&mut core);
    core.handle_line(
        T0,
        &offer(&bob(), &fid(1), Some("wormhole;session-v1"), None),
    );
    let actions = drain(&mut core);
    // Accepting t1 frees the one request slot: t2's request goes up.
    assert!(
        posted(&actions)
            .iter()
            .any(|m| matches!(m, Message::Request(r) if r.future == fid(2)))
    );
    core.session_opened(T0, &bob(), t1);
    core.task_started(t1, &bob());
    assert!(core.task_succeeded(T0 + 1, t1, &bob()));
    let actions = drain(&mut core);
    // t2 goes over the idle session, and its standing request is withdrawn.
    assert!(
        posted(&actions)
            .iter()
            .any(|m| matches!(m, Message::Withdraw(w) if w.future == fid(2)))
    );
    assert_eq!(
        dispatches(&actions)[0],
        &Dispatch {
            task: t2,
            future: fid(2),
            worker: bob(),
            route: Route::Session
        }
    );
    assert!(core.task_succeeded(T0 + 2, t2, &bob()));
    let actions = drain(&mut core);
    assert!(actions.contains(&SchedulerAction::CloseSession { worker: bob() }));
    assert_eq!(core.pending(), 0);
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
    core.task_failed(
        T0 + 1,
        task,
        &bob(),
        AttemptError::Session(SessionError::Closed),
    );
    let actions = drain(&mut core);
    assert!(actions.iter().any(|a| matches!(
        a,
        SchedulerAction::Event {
            event: TaskEvent::Retried { .. },
            ..
        }
    )));
    assert!(
        matches!(posted(&actions)[..], [Message::Request(_)]),
        "re-posted"
    );
    // bob failed it once: while carol is around, his new offer is skipped.
    let hello = line::decode(&format!(
        "when=2025-10-01T09:00:00,expires={},type=worker,from={},protocols=wormhole",
        T0 / 1000 + 60,
        carol()
    ))
    .unwrap();
    core.handle_line(T0 + 2, &hello);
    core.handle_line(T0 + 2, &offer(&bob(), &fid(1), Some("wormhole"), None));
    assert!(posted(&drain(&mut core)).is_empty());
    core.handle_line(T0 + 2, &offer(&carol(), &fid(1), Some("wormhole"), None));
    drain(&mut core);
    // carol never starts: the accept deadline fails the task for good.
    core.handle_timeout(T0 + 2 + 60_000);
    let outcome = finished(&drain(&mut core));
    match &outcome[..] {
        [(t, Err(TaskError::Exhausted { tried, last }))] => {
            assert_eq!(*t, task);
            assert_eq!(tried, &vec![bob(), carol()]);
            assert_eq!(last, &AttemptError::NotStarted);
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
    assert!(
        matches!(posted(&actions)[..], [Message::Withdraw(w)] if w.future == fid(1) && w.to == me())
    );
    assert_eq!(finished(&actions), vec![(t1, Err(TaskError::Cancelled))]);

    core.handle_line(T0, &offer(&bob(), &fid(2), Some("wormhole"), None));
    drain(&mut core);
    core.cancel(T0, t2);
    let actions = drain(&mut core);
    assert!(
        matches!(posted(&actions)[..], [Message::Withdraw(w)] if w.future == fid(2) && w.to == bob())
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
fn open_requests_are_bounded_and_workers_are_tracked() {
    let mut config = SchedulerConfig::new(me());
    config.max_open_requests = 3;
    let mut core = core(config);
    for n in 0..10 {
        core.submit(T0, fid(n), 1);
    }
    assert_eq!(posted(&drain(&mut core)).len(), 3);
    let hello = line::decode(&format!(
        "when=2025-10-01T09:00:00,expires={},type=worker,from={},protocols=wormhole",
        T0 / 1000 + 60,
        bob()
    ))
    .unwrap();
    core.handle_line(T0, &hello);
    assert_eq!(core.workers(T0).count(), 1);
    assert_eq!(core.workers(T0 + 61_000).count(), 0);
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
    core.task_started(task, &bob());
    assert!(core.poll_timeout().is_some_and(|t| t <= T0 + 60_000));
    core.handle_timeout(T0 + 60_000);
    let actions = drain(&mut core);
    assert!(actions.iter().any(|a| matches!(a, SchedulerAction::Event { event: TaskEvent::Retried { error, .. }, .. } if *error == AttemptError::Vanished)), "{actions:?}");
}
