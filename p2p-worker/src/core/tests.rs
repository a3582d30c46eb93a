use super::*;
use p2p_proto::line;
use p2p_proto::seal;
use proptest::prelude::*;
use std::collections::HashSet;

const T0: Millis = 1_760_000_000_000;

fn me() -> PeerId {
    "bob@laptop:100".parse().unwrap()
}

fn client() -> PeerId {
    "alice@desktop:200".parse().unwrap()
}

fn dave() -> PeerId {
    "dave@box:400".parse().unwrap()
}

fn fid(n: u32) -> FutureId {
    format!("f-{n}").parse().unwrap()
}

fn task(client: &PeerId, n: u32) -> TaskRef {
    TaskRef {
        client: client.clone(),
        future: fid(n),
    }
}

fn line(text: &str) -> BoardLine {
    line::decode(text).unwrap()
}

fn request(
    from: &PeerId,
    future: &FutureId,
    expires_s: u64,
    size: u64,
    protocols: &str,
) -> BoardLine {
    let protocols = if protocols.is_empty() {
        String::new()
    } else {
        format!(",protocols={protocols}")
    };
    line(&format!(
        "when=2025-10-01T09:00:00,expires={expires_s},type=request,from={from},future={future},size={size}{protocols}"
    ))
}

fn accept(from: &PeerId, to: &PeerId, future: &FutureId, via: &str) -> BoardLine {
    line(&format!(
        "when=2025-10-01T09:00:00,expires={},type=accept,from={from},to={to},future={future},via={via}",
        T0 / 1000 + 60
    ))
}

fn hello(role: &str, from: &PeerId) -> BoardLine {
    line(&format!(
        "when=2025-10-01T09:00:00,expires={},type={role},from={from},protocols=wormhole",
        T0 / 1000 + 60
    ))
}

fn withdraw(from: &PeerId, to: &PeerId, future: &FutureId) -> BoardLine {
    line(&format!(
        "when=2025-10-01T09:00:00,type=withdraw,from={from},to={to},future={future}"
    ))
}

fn drain(core: &mut WorkerCore) -> Vec<WorkerAction> {
    std::iter::from_fn(|| core.poll_action()).collect()
}

fn posted(actions: &[WorkerAction]) -> Vec<&Message> {
    actions
        .iter()
        .filter_map(|a| match a {
            WorkerAction::Post(line) => Some(&line.message),
            _ => None,
        })
        .collect()
}

fn offers(actions: &[WorkerAction]) -> Vec<FutureId> {
    posted(actions)
        .into_iter()
        .filter_map(|m| match m {
            Message::Offer(offer) => Some(offer.future.clone()),
            _ => None,
        })
        .collect()
}

fn started_tasks(actions: &[WorkerAction]) -> Vec<TaskRef> {
    actions
        .iter()
        .filter_map(|a| match a {
            WorkerAction::Start { task, .. } => Some(task.clone()),
            _ => None,
        })
        .collect()
}

fn sent(actions: &[WorkerAction]) -> Vec<&Frame> {
    actions
        .iter()
        .filter_map(|a| match a {
            WorkerAction::Send { frame, .. } => Some(frame),
            _ => None,
        })
        .collect()
}

fn started(now: Millis, config: WorkerConfig) -> WorkerCore {
    let mut core = WorkerCore::new(config, now);
    core.handle_timeout(now);
    let hello = drain(&mut core);
    assert!(matches!(
        posted(&hello)[..],
        [Message::Hello(Hello {
            role: Role::Worker,
            ..
        })]
    ));
    core
}

fn session_config(slots: usize) -> WorkerConfig {
    let mut config = WorkerConfig::new(me());
    config.sessions = true;
    config.slots = slots;
    config
}

/// A worker in a session with `client()`, opened through the board for `f-0`; its first
/// task (`f-0`) runs.
fn in_session(slots: usize) -> (WorkerCore, SessionId) {
    let mut core = started(T0, session_config(slots));
    core.handle_line(
        T0,
        &request(
            &client(),
            &fid(0),
            T0 / 1000 + 10,
            1,
            "wormhole;session-v1;slots-v1",
        ),
    );
    assert_eq!(offers(&drain(&mut core)), vec![fid(0)]);
    core.handle_line(
        T0,
        &accept(&client(), &me(), &fid(0), "wormhole://1-abcdefabcdef"),
    );
    let session = match &drain(&mut core)[..] {
        [
            WorkerAction::Open(Assignment {
                route: Route::Session(id),
                ..
            }),
        ] => *id,
        other => panic!("{other:?}"),
    };
    core.session_opened(T0, session, true);
    assert!(core.session_task(T0, session, fid(0)));
    let actions = drain(&mut core);
    assert_eq!(started_tasks(&actions), vec![task(&client(), 0)]);
    (core, session)
}

#[test]
fn future_p2p_flow_offer_accept_receive_run() {
    let mut core = started(T0, WorkerConfig::new(me()));
    core.handle_line(
        T0,
        &request(&client(), &fid(1), T0 / 1000 + 10, 2371, "wormhole"),
    );
    let actions = drain(&mut core);
    let offer = match posted(&actions)[..] {
        [Message::Offer(offer)] => offer.clone(),
        ref other => panic!("expected one offer, got {other:?}"),
    };
    assert_eq!(offer.to, client());
    assert_eq!(offer.future, fid(1));
    assert_eq!(offer.expires, Expiry::Unix((T0 + OFFER_TTL) as i64 / 1000));
    assert_eq!(offer.pk, None);

    // The only slot is held by the offer: a second request waits.
    core.handle_line(
        T0,
        &request(&client(), &fid(2), T0 / 1000 + 10, 1, "wormhole"),
    );
    assert!(drain(&mut core).is_empty());

    core.handle_line(
        T0 + 1,
        &accept(&client(), &me(), &fid(1), "wormhole://3141-0a3f9c1b2e4d"),
    );
    assert_eq!(
        drain(&mut core),
        vec![WorkerAction::Open(Assignment {
            client: client(),
            future: fid(1),
            code: "3141-0a3f9c1b2e4d".parse().unwrap(),
            route: Route::Files,
            format: PayloadFormat::Native,
        })]
    );
    assert_eq!(core.running(), 1);
    assert!(core.payload_received(T0 + 2, &task(&client(), 1)));
    assert_eq!(
        drain(&mut core),
        vec![WorkerAction::Start {
            task: task(&client(), 1),
            session: None
        }]
    );
    assert_eq!(
        core.task_ended(T0 + 3, &task(&client(), 1), Ok(())),
        Delivery::Files
    );
    // The slot is free again: the waiting request gets its offer.
    assert_eq!(offers(&drain(&mut core)), vec![fid(2)]);
    assert_eq!(core.running(), 0);
}

#[test]
fn hellos_count_slots_and_answer_new_clients_soon() {
    let mut config = WorkerConfig::new(me());
    config.slots = 3;
    config.offer_jitter = 50;
    let mut core = WorkerCore::new(config, T0);
    core.handle_timeout(T0);
    match posted(&drain(&mut core))[..] {
        [Message::Hello(hello)] => assert_eq!(hello.slots, Some(3)),
        ref other => panic!("{other:?}"),
    }
    assert_eq!(core.poll_timeout(), Some(T0 + HELLO_INTERVAL));
    for n in 0..10 {
        let other: PeerId = format!("w{n}@x:{n}").parse().unwrap();
        core.handle_line(T0 + 1, &hello("worker", &other));
    }
    // A new client: the next hello comes within the jitter window, once.
    core.handle_line(T0 + 1, &hello("client", &client()));
    let soon = core.poll_timeout().unwrap();
    assert!(soon <= T0 + 1 + 50, "{soon}");
    core.handle_timeout(soon);
    assert!(matches!(posted(&drain(&mut core))[..], [Message::Hello(_)]));
    core.handle_line(soon + 1, &hello("client", &client()));
    assert_eq!(core.poll_timeout(), Some(soon + HELLO_INTERVAL));
}

#[test]
fn hellos_say_whose_futures_run_and_what_moves() {
    let (mut core, session) = in_session(1);
    // A second task on the session waits for the slot.
    assert!(core.session_task(T0 + 1, session, fid(1)));
    drain(&mut core);
    core.set_transfers(vec![TransferLoad {
        direction: p2p_proto::load::Direction::Out,
        client: client(),
        future: fid(0),
        done: 10,
        total: 40,
    }]);
    // A new client's hello brings the worker's hello soon.
    core.handle_line(T0 + 2, &hello("client", &dave()));
    let due = core.poll_timeout().unwrap();
    assert!(core.hello_due(due));
    core.handle_timeout(due);
    let actions = drain(&mut core);
    let hello = actions
        .iter()
        .find_map(|a| match a {
            WorkerAction::Post(line) if matches!(line.message, Message::Hello(_)) => Some(line),
            _ => None,
        })
        .expect("a hello");
    let text = hello.encode().unwrap();
    assert!(
        text.ends_with(
            ",busy=1,tasks=run/alice@desktop:200/f-0;wait/alice@desktop:200/f-1,xfers=out/alice@desktop:200/f-0/10/40"
        ),
        "{text}"
    );
    let load = WorkerLoad::from_pairs(&line::decode(&text).unwrap().extra)
        .unwrap()
        .unwrap();
    assert_eq!(load.task_count(), 2);
    assert!(!core.hello_due(due + 1));
}

/// The hellos among `actions`, with the tasks each says (`tasks=` as sent).
fn hello_tasks(actions: &[WorkerAction]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            WorkerAction::Post(line) if matches!(line.message, Message::Hello(_)) => Some(
                line.extra
                    .iter()
                    .find(|(key, _)| key == "tasks")
                    .map_or(String::new(), |(_, value)| value.clone()),
            ),
            _ => None,
        })
        .collect()
}

#[test]
fn a_task_that_starts_or_ends_brings_the_next_hello_forward_once_a_gap() {
    let mut core = started(T0, WorkerConfig::new(me()));
    assert_eq!(core.poll_timeout(), Some(T0 + HELLO_INTERVAL));
    core.handle_line(
        T0 + 100,
        &request(&client(), &fid(1), T0 / 1000 + 10, 1, "wormhole"),
    );
    core.handle_line(
        T0 + 100,
        &accept(&client(), &me(), &fid(1), "wormhole://3141-0a3f9c1b2e4d"),
    );
    assert!(core.payload_received(T0 + 200, &task(&client(), 1)));
    drain(&mut core);
    // The task arrived and started within the gap after the last hello: one hello, a gap
    // after it, says both at once.
    assert_eq!(core.poll_timeout(), Some(T0 + LOAD_HELLO_GAP));
    assert!(!core.hello_due(T0 + LOAD_HELLO_GAP - 1));
    core.handle_timeout(T0 + LOAD_HELLO_GAP - 1);
    assert!(hello_tasks(&drain(&mut core)).is_empty());
    core.handle_timeout(T0 + LOAD_HELLO_GAP);
    assert_eq!(
        hello_tasks(&drain(&mut core)),
        vec!["run/alice@desktop:200/f-1".to_owned()]
    );
    // Its end, long after: a hello at once (the next millisecond), saying nothing runs.
    let later = T0 + 5 * LOAD_HELLO_GAP;
    assert_eq!(
        core.task_ended(later, &task(&client(), 1), Ok(())),
        Delivery::Files
    );
    assert_eq!(core.poll_timeout(), Some(later + 1));
    core.handle_timeout(later + 1);
    assert_eq!(hello_tasks(&drain(&mut core)), vec![String::new()]);
    // Nothing changes: back to the interval.
    assert_eq!(core.poll_timeout(), Some(later + 1 + HELLO_INTERVAL));
}

#[test]
fn a_burst_of_short_tasks_adds_at_most_one_hello_a_gap() {
    let (mut core, session) = in_session(1);
    drain(&mut core);
    let mut hellos = Vec::new();
    // A task ends and the next starts every 37 ms for 10 s; time is handled as it comes.
    let mut now = T0;
    for n in 1..=270 {
        now += 37;
        core.handle_timeout(now);
        if !hello_tasks(&drain(&mut core)).is_empty() {
            hellos.push(now);
        }
        core.task_ended(now, &task(&client(), n - 1), Ok(()));
        assert!(core.session_task(now, session, fid(n)));
        drain(&mut core);
    }
    // Every gap has its hello (the changes are said), and never two.
    assert!(hellos.len() >= 9, "{hellos:?}");
    for pair in hellos.windows(2) {
        assert!(pair[1] - pair[0] >= LOAD_HELLO_GAP, "{hellos:?}");
        assert!(pair[1] - pair[0] < LOAD_HELLO_GAP + 37, "{hellos:?}");
    }
}

#[test]
fn seed_version_bare_code_is_accepted() {
    let seed_request = line(&format!(
        "when=2025-07-20T14:03:13,expires=2025-07-20T14:04:13,type=request,from={},future=f-1,size=10",
        client()
    ));
    // The seed writes civil expiry; pretend it is that time.
    let now = 1_753_020_193_000;
    let mut core = started(now, WorkerConfig::new(me()));
    core.handle_line(now, &seed_request);
    assert_eq!(posted(&drain(&mut core)).len(), 1);
    core.handle_line(now, &accept(&client(), &me(), &fid(1), "0419-a3f09c1b2e4d"));
    assert!(
        matches!(&drain(&mut core)[..], [WorkerAction::Open(a)] if a.code.as_str() == "0419-a3f09c1b2e4d")
    );
    // An expired request is not offered.
    let mut core = started(T0, WorkerConfig::new(me()));
    core.handle_line(T0, &request(&client(), &fid(9), T0 / 1000 - 1, 1, ""));
    assert!(drain(&mut core).is_empty());
}

#[test]
fn sealed_codes_and_sessions_when_the_client_speaks_them() {
    let secret = WorkerSecret::from_bytes([3; 32]);
    let mut config = WorkerConfig::new(me());
    config.secret = Some(secret.clone());
    config.sessions = true;
    let mut core = started(T0, config);
    core.handle_line(
        T0,
        &request(
            &client(),
            &fid(1),
            T0 / 1000 + 10,
            5,
            "wormhole;sealed-v1;session-v1",
        ),
    );
    let actions = drain(&mut core);
    let offer = match posted(&actions)[..] {
        [Message::Offer(offer)] => offer.clone(),
        ref other => panic!("{other:?}"),
    };
    assert_eq!(offer.pk, Some(secret.public()));
    let theirs = offer.protocols.as_ref().unwrap();
    assert!(theirs.supports(protocols::SESSION) && theirs.supports(protocols::SLOTS));

    let code: WormholeCode = "77-ab12cd34ef56ab78".parse().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let other_key = WorkerSecret::from_bytes([4; 32]).public();
    // A box sealed to somebody else is not ours: the offer stands.
    let wrong = seal::seal(&code, &other_key, &mut rng).unwrap();
    core.handle_line(
        T0,
        &accept(
            &client(),
            &me(),
            &fid(1),
            &TransferUri::Sealed(wrong).to_string(),
        ),
    );
    assert!(drain(&mut core).is_empty());
    // A plain code is a downgrade: refused and reported, the offer stands.
    for via in ["wormhole://77-ab12cd34ef56ab78", "77-ab12cd34ef56ab78"] {
        core.handle_line(T0, &accept(&client(), &me(), &fid(1), via));
        assert_eq!(
            drain(&mut core),
            vec![WorkerAction::UnsealedAccept {
                task: task(&client(), 1)
            }]
        );
    }
    let sealed = seal::seal(&code, &secret.public(), &mut rng).unwrap();
    core.handle_line(
        T0,
        &accept(
            &client(),
            &me(),
            &fid(1),
            &TransferUri::Sealed(sealed).to_string(),
        ),
    );
    assert_eq!(
        drain(&mut core),
        vec![WorkerAction::Open(Assignment {
            client: client(),
            future: fid(1),
            code,
            route: Route::Session(SessionId(1)),
            format: PayloadFormat::Native,
        })]
    );
}

#[test]
fn session_tasks_wait_for_a_slot_and_say_when_they_start() {
    let (mut core, session) = in_session(1);
    // The first task started in the slot kept since the accept, and said so.
    assert_eq!(core.running(), 1);
    assert!(core.session_task(T0 + 1, session, fid(1)));
    assert!(core.session_task(T0 + 1, session, fid(2)));
    assert!(drain(&mut core).is_empty(), "one slot: the others wait");
    assert_eq!(core.queued(), 2);
    assert!(!core.session_task(T0 + 1, session, fid(2)), "a duplicate");
    assert_eq!(
        core.task_ended(T0 + 2, &task(&client(), 0), Ok(())),
        Delivery::Session(session)
    );
    let actions = drain(&mut core);
    assert_eq!(
        sent(&actions),
        vec![&Frame::Started(Started { future: fid(1) })]
    );
    assert_eq!(started_tasks(&actions), vec![task(&client(), 1)]);
    // A waiting task cancelled by the client is dropped without a word to it.
    core.session_cancel(T0 + 3, session, fid(2));
    assert_eq!(
        drain(&mut core),
        vec![WorkerAction::Interrupt {
            task: task(&client(), 2)
        }]
    );
    assert_eq!(core.queued(), 0);
    // A running one is stopped and answered as cancelled; its slot is free.
    core.session_cancel(T0 + 3, session, fid(1));
    let actions = drain(&mut core);
    assert!(actions.contains(&WorkerAction::Interrupt {
        task: task(&client(), 1)
    }));
    assert!(matches!(
        sent(&actions)[..],
        [Frame::Result(TaskResult {
            outcome: p2p_proto::frame::Outcome::Error(RemoteError {
                kind: RemoteErrorKind::Cancelled,
                ..
            }),
            ..
        })]
    ));
    assert_eq!(core.running(), 0);
    // Its late end goes nowhere.
    assert_eq!(
        core.task_ended(T0 + 4, &task(&client(), 1), Ok(())),
        Delivery::Drop
    );
}

#[test]
fn a_slot_is_freed_when_the_session_dies_mid_task() {
    let (mut core, session) = in_session(1);
    assert!(core.session_task(T0 + 1, session, fid(1)));
    core.session_closed(T0 + 2, session);
    let mut forgotten = drain(&mut core);
    forgotten.sort_by_key(|a| format!("{a:?}"));
    assert_eq!(
        forgotten,
        vec![
            WorkerAction::Interrupt {
                task: task(&client(), 0)
            },
            WorkerAction::Interrupt {
                task: task(&client(), 1)
            }
        ]
    );
    assert_eq!((core.running(), core.queued()), (0, 0));
    // The one slot is free: the next request gets an offer.
    core.handle_line(
        T0 + 3,
        &request(&dave(), &fid(7), T0 / 1000 + 10, 1, "wormhole"),
    );
    assert_eq!(offers(&drain(&mut core)), vec![fid(7)]);
    // The dead run's end is ignored.
    assert_eq!(
        core.task_ended(T0 + 4, &task(&client(), 0), Ok(())),
        Delivery::Drop
    );
}

#[test]
fn a_warm_session_does_not_keep_other_clients_out() {
    let (mut core, session) = in_session(1);
    assert!(core.session_task(T0 + 1, session, fid(1)));
    // dave asks while alice's session holds the slot and has a task waiting.
    core.handle_line(
        T0 + 1,
        &request(&dave(), &fid(9), T0 / 1000 + 10, 1, "wormhole"),
    );
    assert!(drain(&mut core).is_empty());
    core.task_ended(T0 + 2, &task(&client(), 0), Ok(()));
    // alice was served last: dave gets the slot (an offer), alice's task waits.
    let actions = drain(&mut core);
    assert_eq!(offers(&actions), vec![fid(9)]);
    assert!(started_tasks(&actions).is_empty());
    core.handle_line(
        T0 + 3,
        &accept(&dave(), &me(), &fid(9), "wormhole://1-abcdefabcdef"),
    );
    drain(&mut core);
    core.payload_received(T0 + 4, &task(&dave(), 9));
    drain(&mut core);
    core.task_ended(T0 + 5, &task(&dave(), 9), Ok(()));
    assert_eq!(started_tasks(&drain(&mut core)), vec![task(&client(), 1)]);
}

#[test]
fn idle_clients_with_a_session_get_no_offers() {
    let (mut core, _) = in_session(2);
    core.handle_line(
        T0 + 1,
        &request(&client(), &fid(5), T0 / 1000 + 10, 1, "wormhole;session-v1"),
    );
    assert!(
        offers(&drain(&mut core)).is_empty(),
        "alice uses the session"
    );
}

#[test]
fn one_offer_per_request_however_many_workers_listen() {
    let mut config = WorkerConfig::new(me());
    config.offer_jitter = 50;
    let mut core = started(T0, config);
    for n in 0..20 {
        let other: PeerId = format!("w{n}@x:{n}").parse().unwrap();
        core.handle_line(T0, &hello("worker", &other));
    }
    core.handle_line(
        T0,
        &request(&client(), &fid(1), T0 / 1000 + 10, 1, "wormhole"),
    );
    assert!(drain(&mut core).is_empty(), "the offer waits for its delay");
    let due = core.poll_timeout().unwrap();
    assert!(due <= T0 + 50);
    // Somebody else offered in the meantime: we hold back...
    let rival: PeerId = "w3@x:3".parse().unwrap();
    let rival_offer = line(&format!(
        "when=2025-10-01T09:00:00,expires={},type=offer,from={rival},to={},future=f-1,protocols=wormhole",
        T0 / 1000 + 15,
        client()
    ));
    core.handle_line(T0, &rival_offer);
    core.handle_timeout(due);
    assert!(offers(&drain(&mut core)).is_empty());
    // ...until the rival's offer went unanswered for a while (then after a delay of our
    // own, as every worker that held back sees the lapse at once).
    let patience = core.poll_timeout().unwrap();
    assert_eq!(patience, T0 + COVER_PATIENCE);
    core.handle_timeout(patience);
    let due = core.poll_timeout().unwrap();
    assert!(due <= patience + 50, "{due}");
    core.handle_timeout(due);
    assert_eq!(offers(&drain(&mut core)), vec![fid(1)]);
    // A request the client gave to the rival is forgotten at once.
    core.handle_line(
        T0 + 2000,
        &request(&client(), &fid(2), T0 / 1000 + 10, 1, "wormhole"),
    );
    core.handle_line(
        T0 + 2000,
        &accept(&client(), &rival, &fid(2), "wormhole://1-abcdefabcdef"),
    );
    core.handle_timeout(T0 + 3000);
    assert!(offers(&drain(&mut core)).is_empty());
}

#[test]
fn workers_that_lost_an_offer_spread_over_the_requests_left() {
    // Ten one-slot workers, each with a seed of its own, offer on the first of ten
    // requests; the client takes a rival's offer. Every one of them sees that accept at
    // the same moment, with its slot free again and nine requests open: were they all to
    // offer on the oldest, only one would win, request after request.
    let rival: PeerId = "w3@x:3".parse().unwrap();
    let mut chosen = HashSet::new();
    for seed in 0..10u64 {
        let mut config = WorkerConfig::new(me());
        config.seed = seed;
        let mut core = started(T0, config);
        let mut offered = Vec::new();
        for n in 0..10 {
            core.handle_line(
                T0,
                &request(&client(), &fid(n), T0 / 1000 + 10, 1, "wormhole"),
            );
            offered.extend(offers(&drain(&mut core)));
        }
        assert_eq!(offered, vec![fid(0)], "one slot, one offer");
        core.handle_line(
            T0 + 10,
            &accept(&client(), &rival, &fid(0), "wormhole://1-abcdefabcdef"),
        );
        let next = offers(&drain(&mut core));
        assert_eq!(next.len(), 1, "{next:?}");
        chosen.extend(next);
    }
    // Uniform choices of 10 among 9 cover at least 4 with probability > 0.99; the seeds
    // are fixed, so this is deterministic.
    assert!(chosen.len() >= 4, "{chosen:?}");
}

#[test]
fn declines_once_for_disallowed_users_and_large_payloads() {
    let mut config = WorkerConfig::new(me());
    config.allow_users = Some(["carol".to_owned()].into());
    config.max_payload = 100;
    let mut core = started(T0, config);
    for _ in 0..3 {
        core.handle_line(
            T0,
            &request(&client(), &fid(1), T0 / 1000 + 10, 5, "wormhole"),
        );
    }
    let carol: PeerId = "carol@x:1".parse().unwrap();
    core.handle_line(
        T0,
        &request(&carol, &fid(2), T0 / 1000 + 10, 101, "wormhole"),
    );
    let actions = drain(&mut core);
    let declines: Vec<_> = posted(&actions)
        .into_iter()
        .map(|m| match m {
            Message::Decline(d) => (d.to.user().to_owned(), d.reason.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        declines,
        vec![
            ("alice".into(), DeclineReason::NotAllowed),
            ("carol".into(), DeclineReason::TooLarge)
        ]
    );
}

#[test]
fn offers_expire_and_accepts_for_others_free_the_slot() {
    let mut core = started(T0, WorkerConfig::new(me()));
    core.handle_line(
        T0,
        &request(&client(), &fid(1), T0 / 1000 + 100, 5, "wormhole"),
    );
    assert_eq!(posted(&drain(&mut core)).len(), 1);
    let carol: PeerId = "carol@x:1".parse().unwrap();
    // The client chose another worker.
    core.handle_line(
        T0,
        &accept(&client(), &carol, &fid(1), "wormhole://1-abcdefabcdef"),
    );
    core.handle_line(
        T0,
        &request(&client(), &fid(2), T0 / 1000 + 100, 5, "wormhole"),
    );
    assert_eq!(offers(&drain(&mut core)), vec![fid(2)]);
    // Nobody accepts: the offer gives its slot back first, and lapses later.
    assert_eq!(core.poll_timeout(), Some(T0 + OFFER_HOLD));
    core.handle_timeout(T0 + OFFER_HOLD);
    assert_eq!(core.free_slots(), 1);
    assert_eq!(core.poll_timeout(), Some(T0 + OFFER_TTL));
    core.handle_timeout(T0 + OFFER_TTL);
    // A late accept for the lapsed offer is ignored.
    core.handle_line(
        T0 + OFFER_TTL,
        &accept(&client(), &me(), &fid(2), "wormhole://1-abcdefabcdef"),
    );
    assert!(
        drain(&mut core)
            .iter()
            .all(|a| !matches!(a, WorkerAction::Open(_)))
    );
}

#[test]
fn a_late_accept_that_finds_the_slots_taken_is_declined_as_busy() {
    let mut core = started(T0, WorkerConfig::new(me()));
    core.handle_line(
        T0,
        &request(&client(), &fid(1), T0 / 1000 + 100, 5, "wormhole"),
    );
    drain(&mut core);
    core.handle_timeout(T0 + OFFER_HOLD);
    // The slot went to dave while alice's offer stood unanswered.
    core.handle_line(
        T0 + OFFER_HOLD,
        &request(&dave(), &fid(2), T0 / 1000 + 100, 5, "wormhole"),
    );
    assert_eq!(offers(&drain(&mut core)), vec![fid(2)]);
    core.handle_line(
        T0 + OFFER_HOLD + 1,
        &accept(&client(), &me(), &fid(1), "wormhole://1-abcdefabcdef"),
    );
    let actions = drain(&mut core);
    assert!(
        matches!(posted(&actions)[..], [Message::Decline(d)] if d.reason == DeclineReason::Busy && d.to == client())
    );
}

#[test]
fn withdraw_stops_a_task_only_when_addressed_to_the_worker() {
    let mut core = started(T0, WorkerConfig::new(me()));
    core.handle_line(
        T0,
        &request(&client(), &fid(1), T0 / 1000 + 100, 5, "wormhole"),
    );
    core.handle_line(
        T0,
        &accept(&client(), &me(), &fid(1), "wormhole://1-abcdefabcdef"),
    );
    core.payload_received(T0, &task(&client(), 1));
    drain(&mut core);
    let mallory: PeerId = "mallory@x:1".parse().unwrap();
    core.handle_line(T0, &withdraw(&mallory, &me(), &fid(1)));
    // The client takes back a request for the same future: not this task.
    core.handle_line(T0, &withdraw(&client(), &client(), &fid(1)));
    // Nor does future.p2p 0.4.0's form of it, which names no worker.
    core.handle_line(
        T0,
        &line(&format!(
            "when=2025-10-01T09:00:00,type=withdraw,from={},to=<none>,future={}",
            client(),
            fid(1)
        )),
    );
    assert!(drain(&mut core).is_empty());
    core.handle_line(T0, &withdraw(&client(), &me(), &fid(1)));
    assert_eq!(
        drain(&mut core),
        vec![WorkerAction::Interrupt {
            task: task(&client(), 1)
        }]
    );
    assert_eq!(core.running(), 0);
}

#[test]
fn time_limits_end_hung_tasks_with_a_clear_error() {
    let mut config = session_config(1);
    config.time_limit = Some(5_000);
    let mut core = started(T0, config);
    core.handle_line(
        T0,
        &request(
            &client(),
            &fid(0),
            T0 / 1000 + 10,
            1,
            "wormhole;session-v1;slots-v1",
        ),
    );
    core.handle_line(
        T0,
        &accept(&client(), &me(), &fid(0), "wormhole://1-abcdefabcdef"),
    );
    drain(&mut core);
    core.session_opened(T0, SessionId(1), true);
    core.session_task(T0, SessionId(1), fid(0));
    core.session_task(T0, SessionId(1), fid(1));
    drain(&mut core);
    // First the hello that says the tasks arrived.
    assert_eq!(core.poll_timeout(), Some(T0 + LOAD_HELLO_GAP));
    core.handle_timeout(T0 + LOAD_HELLO_GAP);
    assert!(matches!(posted(&drain(&mut core))[..], [Message::Hello(_)]));
    assert_eq!(core.poll_timeout(), Some(T0 + 5_000));
    core.handle_timeout(T0 + 5_000);
    let actions = drain(&mut core);
    assert!(actions.contains(&WorkerAction::Interrupt {
        task: task(&client(), 0)
    }));
    match &sent(&actions)[..] {
        [
            Frame::Result(TaskResult {
                future,
                outcome: p2p_proto::frame::Outcome::Error(error),
            }),
            Frame::Started(Started { future: next }),
        ] => {
            assert_eq!((future, next), (&fid(0), &fid(1)));
            assert_eq!(error.kind, RemoteErrorKind::TimeLimit);
            assert!(error.message.contains("5.000 s"), "{}", error.message);
        }
        other => panic!("{other:?}"),
    }
    // The task behind it got the slot.
    assert_eq!(started_tasks(&actions), vec![task(&client(), 1)]);

    // On the files route the client hears it on the board.
    let mut config = WorkerConfig::new(me());
    config.time_limit = Some(1_000);
    let mut core = started(T0, config);
    core.handle_line(
        T0,
        &request(&client(), &fid(1), T0 / 1000 + 100, 5, "wormhole"),
    );
    core.handle_line(
        T0,
        &accept(&client(), &me(), &fid(1), "wormhole://1-abcdefabcdef"),
    );
    core.payload_received(T0 + 10, &task(&client(), 1));
    drain(&mut core);
    core.handle_timeout(T0 + 1_010);
    let actions = drain(&mut core);
    // Besides the hello that says the task started.
    let lines: Vec<&Message> = posted(&actions)
        .into_iter()
        .filter(|m| !matches!(m, Message::Hello(_)))
        .collect();
    assert!(
        matches!(lines[..], [Message::Decline(d)] if d.reason == DeclineReason::TimeLimit),
        "{lines:?}"
    );
    assert_eq!(core.running(), 0);
}

#[test]
fn a_failed_files_task_is_declined_to_its_client_and_frees_the_slot() {
    let mut core = started(T0, WorkerConfig::new(me()));
    core.handle_line(
        T0,
        &request(&client(), &fid(1), T0 / 1000 + 100, 5, "wormhole"),
    );
    core.handle_line(
        T0,
        &accept(&client(), &me(), &fid(1), "wormhole://1-abcdefabcdef"),
    );
    core.payload_received(T0, &task(&client(), 1));
    drain(&mut core);
    let error = RemoteError {
        kind: RemoteErrorKind::Crashed,
        message: "boom".into(),
    };
    assert_eq!(
        core.task_ended(T0 + 1, &task(&client(), 1), Err(&error)),
        Delivery::Drop
    );
    let actions = drain(&mut core);
    assert!(
        matches!(posted(&actions)[..], [Message::Decline(d)] if d.reason == DeclineReason::Failed && d.to == client() && d.future == fid(1))
    );
    assert_eq!(core.running(), 0);
    // A receive that fails frees the slot too.
    core.handle_line(
        T0 + 2,
        &request(&client(), &fid(2), T0 / 1000 + 100, 5, "wormhole"),
    );
    core.handle_line(
        T0 + 2,
        &accept(&client(), &me(), &fid(2), "wormhole://1-abcdefabcdef"),
    );
    drain(&mut core);
    core.transfer_failed(T0 + 3, &task(&client(), 2), DeclineReason::TooLarge);
    assert!(
        matches!(posted(&drain(&mut core))[..], [Message::Decline(d)] if d.reason == DeclineReason::TooLarge)
    );
    assert_eq!(core.running(), 0);
}

#[test]
fn stops_after_its_duration_once_idle() {
    let mut config = WorkerConfig::new(me());
    config.until = Some(T0 + 60_000);
    let mut core = started(T0, config);
    core.handle_line(
        T0,
        &request(&client(), &fid(1), T0 / 1000 + 100, 5, "wormhole"),
    );
    core.handle_line(
        T0,
        &accept(&client(), &me(), &fid(1), "wormhole://1-abcdefabcdef"),
    );
    core.payload_received(T0, &task(&client(), 1));
    drain(&mut core);
    core.handle_timeout(T0 + 60_000);
    assert!(
        drain(&mut core).is_empty(),
        "a running task is finished first"
    );
    // The duration is past: no timer keeps firing while the task runs.
    assert!(core.poll_timeout().is_none_or(|t| t > T0 + 60_000));
    core.handle_line(
        T0 + 60_001,
        &request(&client(), &fid(2), T0 / 1000 + 100, 5, "wormhole"),
    );
    assert!(drain(&mut core).is_empty(), "no offers after the duration");
    assert_eq!(
        core.task_ended(T0 + 60_002, &task(&client(), 1), Ok(())),
        Delivery::Files
    );
    // The result is announced (as future.p2p 0.4.0's workers do), then the worker stops.
    let actions = drain(&mut core);
    assert!(
        matches!(posted(&actions)[..], [Message::Result(r)] if r.future == fid(1) && r.to == client())
    );
    assert_eq!(actions.last(), Some(&WorkerAction::Stop));
    assert_eq!(core.poll_timeout(), None);
}

#[test]
fn a_reopened_board_hears_the_hello_at_once() {
    let mut core = started(T0, WorkerConfig::new(me()));
    assert!(core.poll_timeout().unwrap() > T0 + 1_000);
    core.board_reopened(T0 + 1_000);
    assert!(matches!(posted(&drain(&mut core))[..], [Message::Hello(_)]));
}

#[test]
fn hello_is_repeated_and_never_outlives_the_worker() {
    let mut config = WorkerConfig::new(me());
    config.until = Some(T0 + 45_000);
    let mut core = started(T0, config);
    let next = core.poll_timeout().unwrap();
    assert_eq!(next, T0 + HELLO_INTERVAL);
    core.handle_timeout(next);
    match posted(&drain(&mut core))[..] {
        [Message::Hello(hello)] => {
            assert_eq!(hello.expires, Expiry::Unix(((T0 + 45_000) / 1000) as i64))
        }
        ref other => panic!("{other:?}"),
    }
}

/// What a random event stream does to one worker: requests and accepts from two clients,
/// payloads arriving, sessions opening, carrying tasks, cancelling, closing, tasks ending,
/// withdraws, other workers' hellos and offers (delays, covers), time passing.
#[derive(Debug, Clone)]
enum Op {
    Request(bool, u32),
    Accept(bool, u32),
    Received(bool, u32),
    Opened(u64),
    SessionTask(u64, u32),
    SessionCancel(u64, u32),
    SessionClosed(u64),
    End(bool, u32),
    Withdraw(bool, u32),
    OtherWorker(u32),
    RivalOffer(bool, u32),
    Reopened,
    Time(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let who = any::<bool>();
    let n = 0u32..6;
    prop_oneof![
        (who, n.clone()).prop_map(|(w, n)| Op::Request(w, n)),
        (who, n.clone()).prop_map(|(w, n)| Op::Accept(w, n)),
        (who, n.clone()).prop_map(|(w, n)| Op::Received(w, n)),
        (1u64..4).prop_map(Op::Opened),
        (1u64..4, n.clone()).prop_map(|(s, n)| Op::SessionTask(s, n)),
        (1u64..4, n.clone()).prop_map(|(s, n)| Op::SessionCancel(s, n)),
        (1u64..4).prop_map(Op::SessionClosed),
        (who, n.clone()).prop_map(|(w, n)| Op::End(w, n)),
        (who, n.clone()).prop_map(|(w, n)| Op::Withdraw(w, n)),
        (0u32..40).prop_map(Op::OtherWorker),
        (who, n).prop_map(|(w, n)| Op::RivalOffer(w, n)),
        Just(Op::Reopened),
        (0u64..20_000).prop_map(Op::Time),
    ]
}

proptest! {
    /// Whatever arrives, in whatever order, the worker never runs more tasks than it has
    /// slots, never runs a task twice at once, never panics, and every slot comes back.
    #[test]
    fn slots_are_never_oversubscribed_and_always_come_back(
        slots in 1usize..4,
        time_limit in proptest::option::of(1_000u64..30_000),
        ops in proptest::collection::vec(op(), 0..120),
    ) {
        let mut config = session_config(slots);
        config.time_limit = time_limit;
        let mut core = started(T0, config);
        let mut running: HashSet<TaskRef> = HashSet::new();
        // Every session the worker asked the driver to open, whatever its id.
        let mut sessions: HashSet<SessionId> = (1..4).map(SessionId).collect();
        let mut now = T0;
        let who = |w: bool| if w { client() } else { dave() };
        for op in ops {
            match op {
                Op::Request(w, n) => core.handle_line(now, &request(&who(w), &fid(n), now / 1000 + 20, 1, "wormhole;session-v1;slots-v1")),
                Op::Accept(w, n) => core.handle_line(now, &accept(&who(w), &me(), &fid(n), "wormhole://1-abcdefabcdef")),
                Op::Received(w, n) => { core.payload_received(now, &task(&who(w), n)); }
                Op::Opened(s) => core.session_opened(now, SessionId(s), s % 2 == 1),
                Op::SessionTask(s, n) => { core.session_task(now, SessionId(s), fid(n)); }
                Op::SessionCancel(s, n) => core.session_cancel(now, SessionId(s), fid(n)),
                Op::SessionClosed(s) => core.session_closed(now, SessionId(s)),
                Op::End(w, n) => {
                    let t = task(&who(w), n);
                    let delivery = core.task_ended(now, &t, Ok(()));
                    prop_assert_eq!(delivery != Delivery::Drop, running.remove(&t), "delivery of {:?}", t);
                }
                Op::Withdraw(w, n) => core.handle_line(now, &withdraw(&who(w), &me(), &fid(n))),
                Op::OtherWorker(n) => core.handle_line(now, &hello("worker", &PeerId::new("w", "x", n).unwrap())),
                Op::Reopened => core.board_reopened(now),
                Op::RivalOffer(w, n) => core.handle_line(now, &line(&format!(
                    "when=2025-10-01T09:00:00,expires={},type=offer,from=w@x:1,to={},future={},protocols=wormhole",
                    now / 1000 + 15,
                    who(w),
                    fid(n)
                ))),
                Op::Time(dt) => { now += dt; core.handle_timeout(now); }
            }
            for action in drain(&mut core) {
                match action {
                    WorkerAction::Start { task, .. } => {
                        prop_assert!(running.insert(task.clone()), "ran {:?} twice at once", task);
                    }
                    WorkerAction::Interrupt { task } => { running.remove(&task); }
                    WorkerAction::Open(Assignment { route: Route::Session(id), .. }) => { sessions.insert(id); }
                    _ => {}
                }
            }
            prop_assert!(running.len() <= slots);
            prop_assert!(core.running() <= slots);
            // The hello's listing names exactly the tasks that run (running ones first).
            let load = core.load();
            let listed: HashSet<TaskRef> = load
                .tasks
                .iter()
                .filter(|t| t.state == TaskState::Running)
                .map(|t| TaskRef { client: t.client.clone(), future: t.future.clone() })
                .collect();
            prop_assert_eq!(&listed, &running);
            prop_assert!(load.task_count() as usize >= running.len());
            if let Some(at) = core.poll_timeout() {
                prop_assert!(at > now, "a timer in the past: {} <= {}", at, now);
            }
        }
        // Everything ends: every slot is free again.
        for t in running.clone() {
            core.task_ended(now, &t, Ok(()));
        }
        // The driver reports every session it was asked to open as closed in the end.
        for s in sessions {
            core.session_closed(now, s);
        }
        now += 60_000;
        core.handle_timeout(now);
        prop_assert_eq!(core.running(), 0);
        prop_assert_eq!(core.free_slots(), slots);
    }
}

#[test]
fn a_future_p2p_client_gets_its_format_a_result_line_and_failures_as_results() {
    let mut config = WorkerConfig::new(me());
    config.native_format = Some(protocols::R_PAYLOAD.to_owned());
    config.time_limit = Some(5_000);
    config.slots = 3;
    let mut core = started(T0, config);
    assert!(core.config().protocols().supports(protocols::R_PAYLOAD));
    // Two requests of future.p2p 0.4.0 (no rpayload-v1), one of ours.
    for (n, protocols) in [
        (1, "wormhole"),
        (2, "wormhole"),
        (3, "wormhole;rpayload-v1"),
    ] {
        core.handle_line(
            T0,
            &request(&client(), &fid(n), T0 / 1000 + 100, 5, protocols),
        );
        drain(&mut core);
        let via = format!("wormhole://1{n}-abcdefabcdef");
        core.handle_line(T0, &accept(&client(), &me(), &fid(n), &via));
        let formats: Vec<PayloadFormat> = drain(&mut core)
            .into_iter()
            .filter_map(|a| match a {
                WorkerAction::Open(assignment) => Some(assignment.format),
                _ => None,
            })
            .collect();
        let expected = if n == 3 {
            PayloadFormat::Native
        } else {
            PayloadFormat::FutureP2p
        };
        assert_eq!(formats, vec![expected], "task {n}");
        assert!(core.payload_received(T0, &task(&client(), n)));
        drain(&mut core);
    }
    let error = RemoteError {
        kind: RemoteErrorKind::Failed,
        message: "cannot read the future".into(),
    };
    // A failed task of the 0.4.0 client: a result line and an answer, no decline.
    assert_eq!(
        core.task_ended(T0 + 1, &task(&client(), 1), Err(&error)),
        Delivery::Drop
    );
    let actions = drain(&mut core);
    assert!(matches!(posted(&actions)[..], [Message::Result(r)] if r.future == fid(1)));
    assert!(actions.iter().any(|a| matches!(a,
        WorkerAction::Answer { task: t, code, error: e }
            if *t == task(&client(), 1) && code.as_str() == "11-abcdefabcdef" && *e == error)));
    // Our own client hears of a failure with a decline line.
    core.task_ended(T0 + 1, &task(&client(), 3), Err(&error));
    assert!(matches!(posted(&drain(&mut core))[..], [Message::Decline(d)] if d.future == fid(3)));
    // The hello that says those tasks ended.
    core.handle_timeout(T0 + LOAD_HELLO_GAP);
    assert!(matches!(posted(&drain(&mut core))[..], [Message::Hello(_)]));
    // The time limit reaches the 0.4.0 client as a result too.
    core.handle_timeout(T0 + 5_000);
    let actions = drain(&mut core);
    assert!(matches!(posted(&actions)[..], [Message::Result(r)] if r.future == fid(2)));
    assert!(actions.iter().any(|a| matches!(a,
        WorkerAction::Answer { task: t, error, .. }
            if *t == task(&client(), 2) && error.kind == RemoteErrorKind::TimeLimit)));
    assert_eq!(core.running(), 0);
}

#[test]
fn an_offer_to_a_future_p2p_client_keeps_its_slot_for_its_whole_life() {
    let mut config = WorkerConfig::new(me());
    config.native_format = Some(protocols::R_PAYLOAD.to_owned());
    let mut core = started(T0, config);
    let carol: PeerId = "carol@box:2".parse().unwrap();
    // 0.4.0 ignores decline lines: its offer holds the one slot past OFFER_HOLD...
    core.handle_line(
        T0,
        &request(&client(), &fid(1), T0 / 1000 + 100, 5, "wormhole"),
    );
    assert!(matches!(posted(&drain(&mut core))[..], [Message::Offer(_)]));
    core.handle_timeout(T0 + OFFER_HOLD + 1);
    core.handle_line(
        T0 + OFFER_HOLD + 1,
        &request(&carol, &fid(2), T0 / 1000 + 100, 5, "wormhole;rpayload-v1"),
    );
    core.handle_timeout(T0 + OFFER_HOLD + 1_000);
    assert!(posted(&drain(&mut core)).is_empty(), "the slot is held");
    // ...so that its late accept still finds it.
    core.handle_line(
        T0 + 10_000,
        &accept(&client(), &me(), &fid(1), "wormhole://1-abcdefabcdef"),
    );
    assert!(
        drain(&mut core)
            .iter()
            .any(|a| matches!(a, WorkerAction::Open(a) if a.format == PayloadFormat::FutureP2p))
    );
}

fn mallory() -> PeerId {
    "mallory@evil:666".parse().unwrap()
}

/// Slot time held by offers to `mallory` over `horizon` ms while she posts (and re-posts
/// every `repost` ms) `fakes` requests she never accepts; `alice_at`: when alice posts a
/// real request, with the time her offer came.
fn fake_requests_run(
    fakes: u32,
    repost: Millis,
    horizon: Millis,
    alice_at: Millis,
) -> (Millis, Option<Millis>) {
    let mut core = started(T0, WorkerConfig::new(me()));
    let mut held = 0;
    let mut alice_offered = None;
    let mut now = T0;
    let mut next_post = T0;
    let mut alice_posted = false;
    while now < T0 + horizon {
        if now >= next_post {
            for n in 0..fakes {
                core.handle_line(
                    now,
                    &request(&mallory(), &fid(n), now / 1000 + 30, 1, "wormhole"),
                );
            }
            next_post = now + repost;
        }
        if !alice_posted && now >= T0 + alice_at {
            alice_posted = true;
            core.handle_line(
                now,
                &request(&client(), &fid(100), now / 1000 + 60, 1, "wormhole"),
            );
        }
        core.handle_timeout(now);
        for message in posted(&drain(&mut core)) {
            if let Message::Offer(offer) = message
                && offer.to == client()
            {
                alice_offered.get_or_insert(now);
            }
        }
        if core.free_slots() == 0 && core.running() == 0 && alice_offered.is_none() {
            held += 100;
        }
        now += 100;
    }
    (held, alice_offered)
}

#[test]
fn fake_requests_hold_the_only_slot_a_few_holds_not_for_as_long_as_they_are_posted() {
    // Ten fake requests, posted again every 10 s for 150 s, never accepted.
    let (held, _) = fake_requests_run(10, 10_000, 150_000, u64::MAX / 2);
    // One hold, then pauses of 3, 6, 12, 24, 48, 60 s between holds: six holds.
    assert!(held <= 6 * OFFER_HOLD, "held {held} ms of 150 s");
    assert!(held >= OFFER_HOLD, "the first offer holds its slot: {held}");
    // A real request that comes meanwhile gets the slot within one hold.
    let (_, alice) = fake_requests_run(10, 10_000, 30_000, 100);
    let alice = alice.expect("alice got an offer");
    assert!(alice <= T0 + 100 + OFFER_HOLD, "{}", alice - T0);
}

#[test]
fn an_accept_ends_the_pause_of_a_client() {
    let mut core = started(T0, WorkerConfig::new(me()));
    core.handle_line(
        T0,
        &request(&client(), &fid(1), T0 / 1000 + 60, 1, "wormhole"),
    );
    assert_eq!(offers(&drain(&mut core)), vec![fid(1)]);
    // Unanswered past the hold: alice is paused, her next request waits.
    core.handle_timeout(T0 + OFFER_HOLD);
    core.handle_line(
        T0 + OFFER_HOLD,
        &request(&client(), &fid(2), T0 / 1000 + 60, 1, "wormhole"),
    );
    assert!(offers(&drain(&mut core)).is_empty());
    assert_eq!(core.poll_timeout(), Some(T0 + 2 * OFFER_HOLD));
    core.handle_timeout(T0 + 2 * OFFER_HOLD);
    assert_eq!(offers(&drain(&mut core)), vec![fid(2)]);
    // She accepts the late offer: no pause any more.
    core.handle_line(
        T0 + 2 * OFFER_HOLD + 10,
        &accept(&client(), &me(), &fid(2), "wormhole://1-abcdefabcdef"),
    );
    drain(&mut core);
    assert!(core.payload_received(T0 + 2 * OFFER_HOLD + 20, &task(&client(), 2)));
    core.task_ended(T0 + 2 * OFFER_HOLD + 30, &task(&client(), 2), Ok(()));
    drain(&mut core);
    core.handle_line(
        T0 + 2 * OFFER_HOLD + 40,
        &request(&client(), &fid(3), T0 / 1000 + 60, 1, "wormhole"),
    );
    assert_eq!(offers(&drain(&mut core)), vec![fid(3)]);
}

#[test]
fn a_flood_of_requests_from_one_client_does_not_push_out_anothers() {
    let mut core = started(T0, WorkerConfig::new(me()));
    // Busy: alice's request waits for a slot.
    core.handle_line(
        T0,
        &request(&dave(), &fid(0), T0 / 1000 + 60, 1, "wormhole"),
    );
    drain(&mut core);
    core.handle_line(
        T0,
        &accept(&dave(), &me(), &fid(0), "wormhole://1-abcdefabcdef"),
    );
    drain(&mut core);
    core.handle_line(
        T0,
        &request(&client(), &fid(1), T0 / 1000 + 60, 1, "wormhole"),
    );
    for n in 0..20_000 {
        let fake = format!("f-m{n}").parse().unwrap();
        core.handle_line(
            T0,
            &request(&mallory(), &fake, T0 / 1000 + 60, 1, "wormhole"),
        );
    }
    assert!(offers(&drain(&mut core)).is_empty());
    // The slot frees: alice, served longest ago with mallory, is still there to be picked.
    assert!(core.payload_received(T0 + 1, &task(&dave(), 0)));
    core.task_ended(T0 + 2, &task(&dave(), 0), Ok(()));
    let mut offered = offers(&drain(&mut core));
    let mut now = T0 + 2;
    while !offered.contains(&fid(1)) && now < T0 + 20_000 {
        now = core.poll_timeout().unwrap();
        core.handle_timeout(now);
        offered.extend(offers(&drain(&mut core)));
    }
    assert!(offered.contains(&fid(1)), "{offered:?}");
}

#[test]
fn idle_workers_offer_about_once_per_request() {
    // Fifty one-slot workers that know each other, a board that takes 3 ms to deliver a
    // line to everyone, a client posting eight requests and accepting the first offer for
    // each a round trip later.
    const WORKERS: u32 = 50;
    const LATENCY: Millis = 3;
    let ids: Vec<PeerId> = (0..WORKERS)
        .map(|n| PeerId::new("w", "box", n).unwrap())
        .collect();
    let mut cores: Vec<WorkerCore> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| {
            let mut config = WorkerConfig::new(id.clone());
            config.seed = n as u64;
            started(T0, config)
        })
        .collect();
    for core in &mut cores {
        for id in &ids {
            core.handle_line(T0, &hello("worker", id));
        }
        drain(core);
    }
    // Lines in flight: (delivered at, line).
    let mut board: Vec<(Millis, BoardLine)> = (0..8)
        .map(|n| {
            (
                T0 + LATENCY,
                request(&client(), &fid(n), T0 / 1000 + 30, 1, "wormhole;session-v1"),
            )
        })
        .collect();
    let mut taken: HashSet<FutureId> = HashSet::new();
    let mut offers_seen = 0;
    for now in T0..T0 + 3_000 {
        let due: Vec<BoardLine> = board
            .iter()
            .filter(|(at, _)| *at == now)
            .map(|(_, l)| l.clone())
            .collect();
        board.retain(|(at, _)| *at > now);
        for l in &due {
            if let Message::Offer(offer) = &l.message {
                offers_seen += 1;
                if taken.insert(offer.future.clone()) {
                    board.push((
                        now + LATENCY,
                        accept(
                            &client(),
                            &offer.from,
                            &offer.future,
                            "wormhole://1-abcdefabcdef",
                        ),
                    ));
                }
            }
            for core in &mut cores {
                core.handle_line(now, l);
            }
        }
        for core in &mut cores {
            if core.poll_timeout().is_some_and(|at| at <= now) {
                core.handle_timeout(now);
            }
            for action in drain(core) {
                if let WorkerAction::Post(l) = action
                    && matches!(l.message, Message::Offer(_))
                {
                    board.push((now + LATENCY, l));
                }
            }
        }
    }
    assert_eq!(taken.len(), 8);
    assert!(offers_seen <= 12, "{offers_seen} offers for 8 requests");
}

#[test]
fn a_reopened_board_frees_the_slots_of_offers_and_pauses_nobody() {
    let mut core = started(T0, WorkerConfig::new(me()));
    core.handle_line(
        T0,
        &request(&client(), &fid(1), T0 / 1000 + 60, 1, "wormhole"),
    );
    assert_eq!(offers(&drain(&mut core)), vec![fid(1)]);
    assert_eq!(core.free_slots(), 0);
    // The hub restarted: alice's accept may be lost. The slot comes back, a hello goes out.
    core.board_reopened(T0 + 500);
    assert_eq!(core.free_slots(), 1);
    assert!(matches!(posted(&drain(&mut core))[..], [Message::Hello(_)]));
    // alice posts her request again: offered on at once, not paused.
    core.handle_line(
        T0 + 600,
        &request(&client(), &fid(2), T0 / 1000 + 60, 1, "wormhole"),
    );
    assert_eq!(offers(&drain(&mut core)), vec![fid(2)]);
}
