//! Every board message survives encode -> decode, whatever its fields.

use p2p_proto::id::{FutureId, PeerId, WormholeCode};
use p2p_proto::line;
use p2p_proto::message::{
    Accept, BoardLine, Decline, DeclineReason, Hello, Message, Offer, Request, ResultReady, Role,
    SealedCode, TransferUri, Withdraw, WorkerKey,
};
use p2p_proto::protocols::Protocols;
use p2p_proto::time::{BoardTime, Expiry};
use proptest::prelude::*;

fn peer() -> impl Strategy<Value = PeerId> {
    (
        "[a-zA-Z0-9]{1,20}",
        "[a-z0-9][a-z0-9.-]{0,30}",
        any::<u32>(),
    )
        .prop_map(|(user, host, pid)| PeerId::new(&user, &host, pid).unwrap())
}

fn future() -> impl Strategy<Value = FutureId> {
    "[a-zA-Z0-9_.:-]{1,80}".prop_map(|s| s.parse().unwrap())
}

fn expiry() -> impl Strategy<Value = Expiry> {
    prop_oneof![
        (0i64..4_000_000_000).prop_map(Expiry::Unix),
        (0i64..4_000_000_000).prop_map(|t| Expiry::Civil(BoardTime::from_unix(t))),
    ]
}

fn protocols() -> impl Strategy<Value = Option<Protocols>> {
    proptest::option::of(
        proptest::collection::vec("[a-z0-9.+/_-]{1,20}", 0..5)
            .prop_map(|tokens| Protocols::try_from(tokens).unwrap()),
    )
}

fn via() -> impl Strategy<Value = TransferUri> {
    let code = (1u32..100_000, "[a-z0-9]{4,16}(-[a-z0-9]{1,8}){0,2}")
        .prop_map(|(n, password)| WormholeCode::new(n, &password).unwrap());
    prop_oneof![
        code.clone().prop_map(TransferUri::Wormhole),
        code.prop_map(TransferUri::BareWormhole),
        proptest::collection::vec(any::<u8>(), 1..=SealedCode::MAX_LEN)
            .prop_map(|bytes| TransferUri::Sealed(SealedCode::new(bytes).unwrap())),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    let role = prop_oneof![Just(Role::Worker), Just(Role::Client), Just(Role::Cluster)];
    prop_oneof![
        (
            role,
            peer(),
            expiry(),
            protocols(),
            proptest::option::of(any::<u32>()),
            proptest::option::of(any::<u32>())
        )
            .prop_map(|(role, from, expires, protocols, slots, busy)| {
                Message::Hello(Hello {
                    role,
                    from,
                    expires,
                    protocols,
                    slots,
                    busy,
                })
            }),
        (peer(), expiry(), future(), any::<u64>(), protocols()).prop_map(
            |(from, expires, future, size, protocols)| {
                Message::Request(Request {
                    from,
                    expires,
                    future,
                    size,
                    protocols,
                })
            }
        ),
        (
            peer(),
            expiry(),
            peer(),
            future(),
            protocols(),
            proptest::option::of(any::<[u8; 32]>())
        )
            .prop_map(|(from, expires, to, future, protocols, pk)| {
                Message::Offer(Offer {
                    from,
                    expires,
                    to,
                    future,
                    protocols,
                    pk: pk.map(WorkerKey),
                })
            }),
        (peer(), expiry(), peer(), future(), via()).prop_map(|(from, expires, to, future, via)| {
            Message::Accept(Accept {
                from,
                expires,
                to,
                future,
                via,
            })
        }),
        (peer(), proptest::option::of(peer()), future())
            .prop_map(|(from, to, future)| { Message::Withdraw(Withdraw { from, to, future }) }),
        (peer(), expiry(), peer(), future(), via()).prop_map(|(from, expires, to, future, via)| {
            Message::Result(ResultReady {
                from,
                expires,
                to,
                future,
                via,
            })
        }),
        (
            peer(),
            peer(),
            future(),
            prop_oneof![
                Just(DeclineReason::NotAllowed),
                Just(DeclineReason::TooLarge),
                Just(DeclineReason::Failed),
                Just(DeclineReason::TimeLimit),
                Just(DeclineReason::Busy),
                "x[a-z0-9]{0,9}(-[a-z0-9]{1,10})?".prop_map(DeclineReason::Other),
            ]
        )
            .prop_map(|(from, to, future, reason)| {
                Message::Decline(Decline {
                    from,
                    to,
                    future,
                    reason,
                })
            }),
        "x[a-z]{0,10}".prop_map(|kind| Message::Unknown { kind }),
    ]
}

fn extra() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::btree_map("x[a-z0-9_]{0,8}", "[^,=\r\n]{0,20}", 0..4)
        .prop_map(|map| map.into_iter().collect())
}

proptest! {
    #[test]
    fn every_message_round_trips(when in 0i64..4_000_000_000, message in message(), extra in extra()) {
        let line = BoardLine { when: BoardTime::from_unix(when), message, extra };
        let text = line.encode().unwrap();
        prop_assert!(text.starts_with("when="));
        prop_assert!(!text.contains('\n'));
        prop_assert_eq!(line::decode(&text).unwrap(), line);
    }
}
