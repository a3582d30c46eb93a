//! Lines as real future.p2p peers write them, both generations, read and written back.
//!
//! The seed version (2025-07) writes `expires` in the `when` format, no `protocols`, and a
//! bare wormhole code in `via`; 0.4.0 writes `expires` as Unix seconds, `protocols`, and
//! `via=wormhole://CODE`. Both come from `pico_send_message_dataframe()`: the columns of a
//! data.frame in order, `key=value` joined by `,`.

use p2p_proto::line::{self, LineError};
use p2p_proto::message::{Message, Role, TransferUri};
use p2p_proto::time::Expiry;

const FUTURE: &str = "4f0b61a2-7c3e-95d1-0a1b-2c3d4e5f6a7b-3";

fn seed_lines() -> Vec<String> {
    vec![
        "when=2025-07-20T14:03:11,expires=2025-07-20T15:03:11,type=worker,from=bob@laptop:12345"
            .into(),
        "when=2025-07-20T14:03:12,expires=2025-07-20T15:03:12,type=client,from=alice@desktop:6789"
            .into(),
        format!(
            "when=2025-07-20T14:03:13,expires=2025-07-20T14:04:13,type=request,from=alice@desktop:6789,future={FUTURE},size=2371"
        ),
        format!(
            "when=2025-07-20T14:03:13,expires=2025-07-20T14:04:13,type=offer,from=bob@laptop:12345,to=alice@desktop:6789,future={FUTURE}"
        ),
        format!(
            "when=2025-07-20T14:03:14,expires=2025-07-20T14:04:14,type=accept,from=alice@desktop:6789,to=bob@laptop:12345,future={FUTURE},via=0419-a3f09c1b2e4d"
        ),
    ]
}

fn v04_lines() -> Vec<String> {
    vec![
        "when=2025-10-01T09:00:00,expires=1759312800,type=worker,from=bob@laptop:12345,protocols=wormhole".into(),
        "when=2025-10-01T09:00:00,expires=1760518800,type=cluster,from=alice@server.example.org:555,protocols=wormhole".into(),
        format!("when=2025-10-01T09:00:01,expires=1759309211,type=request,from=alice@desktop:6789,future={FUTURE},size=2371,protocols=wormhole"),
        format!("when=2025-10-01T09:00:01,expires=1759309261,type=offer,from=bob@laptop:12345,to=alice@desktop:6789,future={FUTURE},protocols=wormhole"),
        format!("when=2025-10-01T09:00:02,expires=1759309262,type=accept,from=alice@desktop:6789,to=bob@laptop:12345,future={FUTURE},via=wormhole://3141-0a3f9c1b2e4d"),
    ]
}

#[test]
fn seed_and_v04_lines_round_trip_byte_for_byte() {
    for text in seed_lines().into_iter().chain(v04_lines()) {
        let line = line::decode(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert!(
            line.extra.is_empty(),
            "{text}: unexpected extra keys {:?}",
            line.extra
        );
        assert_eq!(line.encode().unwrap(), text);
    }
}

#[test]
fn seed_lines_have_the_seed_shapes() {
    let lines: Vec<_> = seed_lines()
        .iter()
        .map(|l| line::decode(l).unwrap())
        .collect();
    match &lines[0].message {
        Message::Hello(hello) => {
            assert_eq!(hello.role, Role::Worker);
            assert_eq!(hello.from.user(), "bob");
            assert!(matches!(hello.expires, Expiry::Civil(_)));
            assert_eq!(hello.protocols, None);
        }
        other => panic!("expected hello, got {other:?}"),
    }
    match &lines[2].message {
        Message::Request(request) => {
            assert_eq!(request.size, 2371);
            assert_eq!(request.future.as_str(), FUTURE);
        }
        other => panic!("expected request, got {other:?}"),
    }
    match &lines[4].message {
        Message::Accept(accept) => {
            assert!(
                matches!(&accept.via, TransferUri::BareWormhole(code) if code.future_code().as_str() == "0419-a3f09c1b2e4d-f")
            );
            assert_eq!(accept.to.as_str(), "bob@laptop:12345");
        }
        other => panic!("expected accept, got {other:?}"),
    }
}

#[test]
fn v04_lines_have_the_v04_shapes() {
    let lines: Vec<_> = v04_lines()
        .iter()
        .map(|l| line::decode(l).unwrap())
        .collect();
    match &lines[1].message {
        Message::Hello(hello) => {
            assert_eq!(hello.role, Role::Cluster);
            assert_eq!(hello.expires, Expiry::Unix(1_760_518_800));
            assert!(hello.protocols.as_ref().unwrap().supports("wormhole"));
        }
        other => panic!("expected cluster hello, got {other:?}"),
    }
    match &lines[4].message {
        Message::Accept(accept) => {
            assert!(
                matches!(&accept.via, TransferUri::Wormhole(code) if code.result_code().as_str() == "3141-0a3f9c1b2e4d-r")
            );
        }
        other => panic!("expected accept, got {other:?}"),
    }
}

/// Lines future.p2p 0.4.0 wrote on this project's hub (an original host_cluster(), worker()
/// and client, captured from the host's replayed topic), plus its withdraw of a request no
/// worker was chosen for (`pico_p2p_withdraw_future(to = "<none>")`: no `expires`).
fn v04_captured_lines() -> Vec<&'static str> {
    vec![
        "when=2026-11-26T09:34:07,expires=1795689247,type=client,from=carol@vm:10494,protocols=wormhole",
        "when=2026-11-26T09:34:07,expires=1795685657,type=request,from=carol@vm:10494,future=5ab993dde27a063eaf13377923661938-4,size=837,protocols=wormhole",
        "when=2026-11-26T09:34:07,expires=1795685662,type=offer,from=bob@vm:10374,to=carol@vm:10494,future=5ab993dde27a063eaf13377923661938-4,protocols=wormhole",
        "when=2026-11-26T09:34:08,expires=1795685708,type=accept,from=carol@vm:10494,to=bob@vm:10374,future=5ab993dde27a063eaf13377923661938-4,via=wormhole://6425-6df56f34c80f",
        "when=2026-11-26T09:34:08,expires=1795685708,type=result,from=bob@vm:10374,to=carol@vm:10494,future=5ab993dde27a063eaf13377923661938-4,via=wormhole://6425-6df56f34c80f",
        "when=2026-11-26T09:34:09,type=withdraw,from=carol@vm:10494,to=<none>,future=5ab993dde27a063eaf13377923661938-5",
    ]
}

#[test]
fn captured_v04_lines_are_read_and_written_back() {
    for text in v04_captured_lines() {
        let line = line::decode(text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert!(line.extra.is_empty(), "{text}: extra keys {:?}", line.extra);
        assert_eq!(line.encode().unwrap(), text);
    }
    let lines: Vec<_> = v04_captured_lines()
        .into_iter()
        .map(|l| line::decode(l).unwrap().message)
        .collect();
    assert!(matches!(&lines[4], Message::Result(r) if r.to.as_str() == "carol@vm:10494"));
    assert!(matches!(&lines[5], Message::Withdraw(w) if w.to.is_none()));
}

#[test]
fn r_exponent_sizes_are_read() {
    // R's as.character(100000) is "1e+05": that is what a 100 kB future's request says.
    let text = format!(
        "when=2025-10-01T09:00:01,expires=1759309211,type=request,from=alice@d:1,future={FUTURE},size=1e+05,protocols=wormhole"
    );
    match line::decode(&text).unwrap().message {
        Message::Request(request) => assert_eq!(request.size, 100_000),
        other => panic!("expected request, got {other:?}"),
    }
    for (size, expected) in [
        ("1.5e+06", Some(1_500_000)),
        ("2.25e+02", Some(225)),
        ("2.255e+02", None),
        ("1e+30", None),
        ("-1", None),
        ("1.e+1", Some(10)),
    ] {
        let text = format!(
            "when=2025-10-01T09:00:01,expires=1,type=request,from=a@d:1,future=f,size={size}"
        );
        let got = line::decode(&text).ok().map(|l| match l.message {
            Message::Request(r) => r.size,
            _ => unreachable!(),
        });
        assert_eq!(got, expected, "size={size}");
    }
}

#[test]
fn host_access_list_lines_are_not_messages() {
    // host_cluster() also sends its access list, without `when=`; every reader skips it.
    let text = "owner=alice@server:555,nusers=4,users=alice;bob;carol;diana,expires=1760518800";
    assert_eq!(line::decode(text), Err(LineError::NotAMessage));
}

#[test]
fn unknown_keys_and_types_are_kept() {
    let text = "when=2025-10-01T09:00:00,expires=1759312800,type=worker,from=bob@laptop:1,protocols=wormhole;session-v1,slots=4,gpu=none,cpu=arm";
    let line = line::decode(text).unwrap();
    assert_eq!(
        line.extra,
        vec![("gpu".into(), "none".into()), ("cpu".into(), "arm".into())]
    );
    assert_eq!(line.encode().unwrap(), text);

    let text = "when=2025-10-01T09:00:00,type=stats,from=anyone,load=0.5";
    let line = line::decode(text).unwrap();
    assert_eq!(
        line.message,
        Message::Unknown {
            kind: "stats".into()
        }
    );
    assert_eq!(line.encode().unwrap(), text);
}

#[test]
fn our_worker_hellos_keep_the_v04_keys_and_add_slots_and_busy_last() {
    // future.p2p 0.4.0 reads a line into a one-row data.frame by key and looks at `type`,
    // `from` and `expires`: a trailing key of ours is one more column it never reads.
    let v04 = &v04_lines()[0];
    let mut line = line::decode(v04).unwrap();
    let Message::Hello(hello) = &mut line.message else {
        panic!("expected a hello")
    };
    hello.slots = Some(3);
    hello.busy = Some(1);
    let ours = line.encode().unwrap();
    assert_eq!(ours, format!("{v04},slots=3,busy=1"));
    assert!(matches!(
        line::decode(&ours).unwrap().message,
        Message::Hello(hello) if hello.slots == Some(3) && hello.busy == Some(1)
    ));
}
