//! Bad input on the board gives typed errors, never a panic, never a half-read message.

use p2p_proto::framer::MAX_LINE_LEN;
use p2p_proto::line::{self, LineError};
use p2p_proto::message::{BoardLine, Message, Withdraw};
use p2p_proto::time::BoardTime;
use proptest::prelude::*;

const OFFER: &str = "when=2025-10-01T09:00:01,expires=1759309261,type=offer,from=bob@laptop:12345,to=alice@desktop:6789,future=f-1,protocols=wormhole";

/// A line and the check its error must pass.
type Case = (String, fn(&LineError) -> bool);

fn missing(kind: &str, key: &'static str) -> LineError {
    LineError::MissingKey {
        kind: kind.into(),
        key,
    }
}

#[test]
fn corpus_of_malformed_lines() {
    let truncated = &OFFER[..OFFER.len() - 40];
    let cases: Vec<Case> = vec![
        ("".into(), |e| *e == LineError::NotAMessage),
        ("hello world".into(), |e| *e == LineError::NotAMessage),
        (" when=2025-10-01T09:00:01,type=worker".into(), |e| *e == LineError::NotAMessage),
        ("when=".into(), |e| matches!(e, LineError::BadValue { key, .. } if key == "when")),
        ("when=yesterday,type=worker,from=a@b:1,expires=1".into(), |e| matches!(e, LineError::BadValue { key, .. } if key == "when")),
        ("when=2025-10-01T25:00:01,type=worker,from=a@b:1,expires=1".into(), |e| matches!(e, LineError::BadValue { key, .. } if key == "when")),
        ("when=2025-10-01T09:00:01".into(), |e| *e == missing("board", "type")),
        ("when=2025-10-01T09:00:01,type=worker,expires=1".into(), |e| *e == missing("worker", "from")),
        ("when=2025-10-01T09:00:01,type=worker,from=a@b:1".into(), |e| *e == missing("worker", "expires")),
        ("when=2025-10-01T09:00:01,type=request,from=a@b:1,expires=1,size=3".into(), |e| *e == missing("request", "future")),
        ("when=2025-10-01T09:00:01,type=request,from=a@b:1,expires=1,future=f".into(), |e| *e == missing("request", "size")),
        ("when=2025-10-01T09:00:01,type=accept,from=a@b:1,expires=1,to=c@d:2,future=f".into(), |e| *e == missing("accept", "via")),
        ("when=2025-10-01T09:00:01,type=withdraw,from=a@b:1,future=f".into(), |e| *e == missing("withdraw", "to")),
        (truncated.into(), |e| matches!(e, LineError::MissingKey { .. } | LineError::BadValue { .. })),
        ("when=2025-10-01T09:00:01,type=decline,from=a@b:1,to=c@d:2,future=f".into(), |e| *e == missing("decline", "reason")),
        ("when=2025-10-01T09:00:01,type=decline,from=a@b:1,to=c@d:2,future=f,reason=no_way".into(), |e| matches!(e, LineError::BadValue { key, .. } if key == "reason")),
        ("when=2025-10-01T09:00:01,type=worker,type=client,from=a@b:1,expires=1".into(), |e| *e == LineError::DuplicateKey("type".into())),
        ("when=2025-10-01T09:00:01,when=2025-10-01T09:00:01,type=worker".into(), |e| *e == LineError::DuplicateKey("when".into())),
        ("when=2025-10-01T09:00:01,type=worker,from=a@b:1,expires=1,,".into(), |e| matches!(e, LineError::MalformedPair(_))),
        ("when=2025-10-01T09:00:01,type=worker,from,expires=1".into(), |e| matches!(e, LineError::MalformedPair(_))),
        ("when=2025-10-01T09:00:01,type=worker,from=a=b,expires=1".into(), |e| matches!(e, LineError::MalformedPair(_))),
        ("when=2025-10-01T09:00:01,type=worker,=x,expires=1".into(), |e| matches!(e, LineError::MalformedPair(_))),
        ("when=2025-10-01T09:00:01,type=worker,from=nobody,expires=1".into(), |e| matches!(e, LineError::BadValue { key, .. } if key == "from")),
        ("when=2025-10-01T09:00:01,type=worker,from=a@b:1,expires=soon".into(), |e| matches!(e, LineError::BadValue { key, .. } if key == "expires")),
        ("when=2025-10-01T09:00:01,type=request,from=a@b:1,expires=1,future=f,size=-3".into(), |e| matches!(e, LineError::BadValue { key, .. } if key == "size")),
        ("when=2025-10-01T09:00:01,type=request,from=a@b:1,expires=1,future=f,size=NA".into(), |e| matches!(e, LineError::BadValue { key, .. } if key == "size")),
        ("when=2025-10-01T09:00:01,type=accept,from=a@b:1,expires=1,to=c@d:2,future=f,via=ftp://x".into(), |e| matches!(e, LineError::BadValue { key, .. } if key == "via")),
        ("when=2025-10-01T09:00:01,type=offer,from=a@b:1,expires=1,to=c@d:2,future=f,pk=short".into(), |e| matches!(e, LineError::BadValue { key, .. } if key == "pk")),
        ("when=2025-10-01T09:00:01,type=worker,from=a@b:1,expires=1,protocols=a;;b".into(), |e| matches!(e, LineError::BadValue { key, .. } if key == "protocols")),
        ("when=2025-10-01T09:00:01,type=\u{1}bin,from=a@b:1".into(), |e| matches!(e, LineError::BadValue { key, .. } if key == "type")),
        (format!("{OFFER},pad={}", "x".repeat(MAX_LINE_LEN)), |e| matches!(e, LineError::TooLong { .. })),
        (format!("when=2025-10-01T09:00:01,type=x{}", ",k=v".repeat(70)), |e| matches!(e, LineError::DuplicateKey(_) | LineError::TooManyPairs)),
        (format!("when=2025-10-01T09:00:01,type=x{}", (0..70).map(|i| format!(",k{i}=v")).collect::<String>()), |e| *e == LineError::TooManyPairs),
    ];
    for (text, expected) in cases {
        match line::decode(&text) {
            Err(err) => assert!(expected(&err), "{text:?}: unexpected error {err:?}"),
            Ok(line) => panic!("{text:?} decoded as {line:?}"),
        }
    }
}

#[test]
fn encoding_refuses_values_that_would_corrupt_the_line() {
    let mut line = line::decode(OFFER).unwrap();
    for bad in ["a,b", "a=b", "a\nb", "a\rb"] {
        line.extra = vec![("note".into(), bad.into())];
        assert_eq!(
            line.encode(),
            Err(LineError::ForbiddenCharacter { key: "note".into() }),
            "{bad:?}"
        );
    }
    line.extra = vec![("to".into(), "x".into())];
    assert_eq!(line.encode(), Err(LineError::DuplicateKey("to".into())));
    line.extra = vec![("bad key".into(), "x".into())];
    assert!(matches!(line.encode(), Err(LineError::MalformedPair(_))));
    line.extra = vec![("pad".into(), "x".repeat(MAX_LINE_LEN))];
    assert!(matches!(line.encode(), Err(LineError::TooLong { .. })));
    let unknown = BoardLine::new(
        BoardTime::from_unix(0),
        Message::Unknown { kind: "a,b".into() },
    );
    assert!(unknown.encode().is_err());
}

#[test]
fn a_withdraw_has_no_expiry() {
    let line = BoardLine::new(
        BoardTime::from_unix(1_759_309_262),
        Message::Withdraw(Withdraw {
            from: "alice@d:1".parse().unwrap(),
            to: Some("bob@l:2".parse().unwrap()),
            future: "f-1".parse().unwrap(),
        }),
    );
    let text = line.encode().unwrap();
    assert_eq!(
        text,
        "when=2025-10-01T09:01:02,type=withdraw,from=alice@d:1,to=bob@l:2,future=f-1"
    );
    assert_eq!(line::decode(&text).unwrap(), line);
}

#[test]
fn a_withdraw_before_any_worker_names_none() {
    // future.p2p 0.4.0 withdraws a request nobody was accepted for with `to=<none>`.
    let text = "when=2025-10-01T09:01:02,type=withdraw,from=alice@d:1,to=<none>,future=f-1";
    let line = line::decode(text).unwrap();
    assert!(matches!(&line.message, Message::Withdraw(w) if w.to.is_none()));
    assert_eq!(line.encode().unwrap(), text);
    // Anything else in `to` must still be a peer.
    assert!(matches!(
        line::decode(&text.replace("<none>", "<nobody>")),
        Err(LineError::BadValue { key, .. }) if key == "to"
    ));
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        let _ = line::decode(&text);
    }

    #[test]
    fn arbitrary_lines_starting_with_when_never_panic(rest in "[a-z=,;:@./0-9T-]{0,200}") {
        let _ = line::decode(&format!("when={rest}"));
    }

    #[test]
    fn mutated_real_lines_never_panic(at in 0usize..OFFER.len(), byte in 0x20u8..0x7f) {
        let mut bytes = OFFER.as_bytes().to_vec();
        bytes[at] = byte;
        let text = String::from_utf8(bytes).unwrap();
        if let Ok(line) = line::decode(&text) {
            // Whatever still decodes must encode to something that decodes the same.
            let again = line.encode().unwrap();
            prop_assert_eq!(line::decode(&again).unwrap(), line);
        }
    }
}
