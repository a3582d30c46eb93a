use super::*;
use p2p_proto::line;
use p2p_proto::seal;
use proptest::prelude::*;
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;

const T0: Millis = 1_760_000_000_000;

fn me() -> PeerId {
    "bob@laptop:100".parse().unwrap()
}

fn client() -> PeerId {
    "alice@desktop:200".parse().unwrap()
}

fn fid(n: u32) -> FutureId {
    format!("f-{n}").parse().unwrap()
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

#[test]
fn future_p2p_flow_offer_accept_run() {
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

    // The only slot is taken by the offer: a second request waits.
    core.handle_line(
        T0,
        &request(&client(), &fid(2), T0 / 1000 + 10, 1, "wormhole"),
    );
    assert!(drain(&mut core).is_empty());

    core.handle_line(
        T0 + 1,
        &accept(&client(), &me(), &fid(1), "wormhole://3141-0a3f9c1b2e4d"),
    );
    let actions = drain(&mut core);
    assert_eq!(
        actions,
        vec![WorkerAction::Run(Assignment {
            client: client(),
            future: fid(1),
            code: "3141-0a3f9c1b2e4d".parse().unwrap(),
            mode: TransferMode::Files,
        })]
    );
    assert_eq!(core.running(), 1);
    core.task_finished(T0 + 2, &fid(1));
    // The slot is free again: the waiting request gets its offer.
    let actions = drain(&mut core);
    assert!(
        matches!(posted(&actions)[..], [Message::Offer(Offer { future, .. })] if *future == fid(2))
    );
}

#[test]
fn seed_version_bare_code_is_accepted() {
    let mut core = started(T0, WorkerConfig::new(me()));
    let seed_request = line(&format!(
        "when=2025-07-20T14:03:13,expires=2025-07-20T14:04:13,type=request,from={},future=f-1,size=10",
        client()
    ));
    // The seed writes civil expiry; pretend it is that time.
    let now = 1_753_020_193_000;
    let mut core2 = started(now, WorkerConfig::new(me()));
    core2.handle_line(now, &seed_request);
    assert_eq!(posted(&drain(&mut core2)).len(), 1);
    core2.handle_line(now, &accept(&client(), &me(), &fid(1), "0419-a3f09c1b2e4d"));
    assert!(
        matches!(&drain(&mut core2)[..], [WorkerAction::Run(a)] if a.code.as_str() == "0419-a3f09c1b2e4d")
    );
    // An expired request is not offered.
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
    assert!(
        offer
            .protocols
            .as_ref()
            .unwrap()
            .supports(protocols::SESSION)
    );

    let code: WormholeCode = "77-ab12cd34ef56ab78".parse().unwrap();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
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
        vec![WorkerAction::Run(Assignment {
            client: client(),
            future: fid(1),
            code,
            mode: TransferMode::Session
        })]
    );
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
    assert!(
        matches!(posted(&drain(&mut core))[..], [Message::Offer(Offer { future, .. })] if *future == fid(2))
    );
    // Nobody accepts: the offer expires at the deadline poll_timeout names.
    let deadline = core.poll_timeout().unwrap();
    assert_eq!(deadline, T0 + OFFER_TTL);
    core.handle_timeout(deadline);
    // A late accept for the expired offer is ignored.
    core.handle_line(
        deadline,
        &accept(&client(), &me(), &fid(2), "wormhole://1-abcdefabcdef"),
    );
    assert!(
        drain(&mut core)
            .iter()
            .all(|a| !matches!(a, WorkerAction::Run(_)))
    );
}

#[test]
fn withdraw_interrupts_a_running_task_and_forged_withdraws_do_not() {
    let mut core = started(T0, WorkerConfig::new(me()));
    core.handle_line(
        T0,
        &request(&client(), &fid(1), T0 / 1000 + 100, 5, "wormhole"),
    );
    core.handle_line(
        T0,
        &accept(&client(), &me(), &fid(1), "wormhole://1-abcdefabcdef"),
    );
    drain(&mut core);
    let mallory: PeerId = "mallory@x:1".parse().unwrap();
    let withdraw = |from: &PeerId| {
        line(&format!(
            "when=2025-10-01T09:00:00,type=withdraw,from={from},to={},future=f-1",
            me()
        ))
    };
    core.handle_line(T0, &withdraw(&mallory));
    assert!(drain(&mut core).is_empty());
    core.handle_line(T0, &withdraw(&client()));
    assert_eq!(
        drain(&mut core),
        vec![WorkerAction::Interrupt {
            client: client(),
            future: fid(1)
        }]
    );
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
    drain(&mut core);
    core.handle_timeout(T0 + 60_000);
    assert!(
        drain(&mut core).is_empty(),
        "a running task is finished first"
    );
    core.handle_line(
        T0 + 60_001,
        &request(&client(), &fid(2), T0 / 1000 + 100, 5, "wormhole"),
    );
    assert!(drain(&mut core).is_empty(), "no offers after the duration");
    core.task_finished(T0 + 60_002, &fid(1));
    assert_eq!(drain(&mut core), vec![WorkerAction::Stop]);
    assert_eq!(core.poll_timeout(), None);
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

proptest! {
    /// Whatever arrives on the board, in whatever order, the worker never runs more tasks
    /// than it has slots, never runs a task twice, and never panics.
    #[test]
    fn slots_are_never_oversubscribed(
        slots in 1usize..4,
        events in proptest::collection::vec((0u8..5, 0u32..6, 0u64..40_000), 0..80),
    ) {
        let mut config = WorkerConfig::new(me());
        config.slots = slots;
        let mut core = started(T0, config);
        let mut runs = HashSet::new();
        let mut running: HashSet<FutureId> = HashSet::new();
        let mut now = T0;
        for (kind, n, dt) in events {
            now += dt % 5_000;
            let future = fid(n);
            match kind {
                0 => core.handle_line(now, &request(&client(), &future, now / 1000 + 20, 1, "wormhole")),
                1 => core.handle_line(now, &accept(&client(), &me(), &future, "wormhole://1-abcdefabcdef")),
                2 => core.handle_timeout(now),
                3 => if running.remove(&future) { core.task_finished(now, &future) },
                _ => core.handle_line(now, &line(&format!("when=2025-10-01T09:00:00,type=withdraw,from={},to={},future={future}", client(), me()))),
            }
            for action in drain(&mut core) {
                if let WorkerAction::Run(assignment) = action {
                    prop_assert!(running.insert(assignment.future.clone()), "ran {} twice at once", assignment.future);
                    runs.insert(assignment.future);
                }
            }
            prop_assert!(running.len() <= slots);
            prop_assert_eq!(core.running(), running.len());
        }
    }
}

#[test]
fn a_failed_task_is_declined_to_its_client_and_frees_the_slot() {
    let mut core = started(T0, WorkerConfig::new(me()));
    core.handle_line(
        T0,
        &request(&client(), &fid(1), T0 / 1000 + 100, 5, "wormhole"),
    );
    core.handle_line(
        T0,
        &accept(&client(), &me(), &fid(1), "wormhole://1-abcdefabcdef"),
    );
    drain(&mut core);
    core.task_failed(T0 + 1, &fid(1), DeclineReason::TimeLimit);
    let actions = drain(&mut core);
    assert!(
        matches!(posted(&actions)[..], [Message::Decline(d)] if d.reason == DeclineReason::TimeLimit && d.to == client() && d.future == fid(1))
    );
    assert_eq!(core.running(), 0);
}
