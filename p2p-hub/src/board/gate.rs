//! The hub's check of who wrote a board line, sans-IO: one [`LineGate`] per writing session.
//!
//! A board message (a line starting with `when=`, the mark both future.p2p's parser and
//! `p2p_proto::line` look for) names its sender in `from=user@host:pid`. On this hub the SSH
//! key of the session proves the user, so a line whose `from` user is not the session's
//! user is an impersonation and never reaches anyone ([`Refusal::Impersonation`]).
//!
//! Board lines that readers could parse differently from the gate are refused too
//! ([`Refusal::Malformed`]): future.p2p splits a line on `,` and then *all* pieces on `=`
//! and pairs them up by position, so a pair with no `=`, two `=` or an empty side shifts
//! every later key onto the next value, and `a=,b=from,bob@h:1=z` reads as `from=bob@h:1`
//! there while it has no `from` key here. Only lines made of non-empty `key=value` pairs
//! with distinct keys pass, which every future-p2p and future.p2p peer writes.
//!
//! Everything else (lines not starting with `when=`: other uses of a topic, binary data)
//! passes through unchanged and is streamed rather than held. A board line is held until
//! its newline, up to [`MAX_BOARD_LINE`] bytes; a longer one is dropped
//! ([`Refusal::TooLong`]).
//!
//! The gate also sorts what passes into runs that a slow reader can afford to lose
//! (offers and worker/client hellos: the next request gets new offers, hellos repeat) and
//! runs it cannot (everything else), for the broker's backlog policy.

use bytes::Bytes;

/// Longest board line held while waiting for its newline.
pub const MAX_BOARD_LINE: usize = 64 * 1024;

const MESSAGE_MARK: &[u8] = b"when=";
/// More pairs than this in one line is not a board message anyone writes.
const MAX_PAIRS: usize = 256;

/// A stretch of bytes to publish, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The bytes (whole lines, except for pass-through data).
    pub data: Bytes,
    /// Only offers and worker/client hellos: a reader that lags may skip them.
    pub droppable: bool,
}

/// Why a board line was not published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// Its `from` names another user than the session's.
    Impersonation {
        /// The `from` value as written.
        claimed: String,
    },
    /// Not a sequence of distinct, non-empty `key=value` pairs.
    Malformed,
    /// Longer than [`MAX_BOARD_LINE`].
    TooLong,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Impersonation { claimed } => {
                write!(f, "from={claimed} names another user than this session's")
            }
            Refusal::Malformed => f.write_str("not distinct, non-empty key=value pairs"),
            Refusal::TooLong => write!(f, "board line longer than {MAX_BOARD_LINE} bytes"),
        }
    }
}

/// What one [`LineGate::push`] lets through and refuses.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Gated {
    /// Bytes to publish, in order.
    pub runs: Vec<Run>,
    /// Lines dropped.
    pub refused: Vec<Refusal>,
}

impl Gated {
    fn emit(&mut self, bytes: &[u8], droppable: bool, current: &mut Vec<u8>, flag: &mut bool) {
        if !current.is_empty() && *flag != droppable {
            self.runs.push(Run {
                data: Bytes::from(std::mem::take(current)),
                droppable: *flag,
            });
        }
        *flag = droppable;
        current.extend_from_slice(bytes);
    }

    fn close(&mut self, current: Vec<u8>, flag: bool) {
        if !current.is_empty() {
            self.runs.push(Run {
                data: Bytes::from(current),
                droppable: flag,
            });
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// At a line start; `held` is a proper prefix of `when=`.
    LineStart,
    /// Inside a board line; `held` is it so far.
    Board,
    /// Inside another line: bytes go straight out.
    Passthrough,
    /// Inside a board line that grew too long: bytes are dropped up to its newline.
    Discard,
}

/// Checks the lines of one writing session; see the module notes.
#[derive(Debug)]
pub struct LineGate {
    user: Vec<u8>,
    mode: Mode,
    held: Vec<u8>,
}

impl LineGate {
    /// A gate for a session of `user` (the SSH user, `public` for anonymous keys).
    pub fn new(user: &str) -> LineGate {
        LineGate {
            user: user.as_bytes().to_vec(),
            mode: Mode::LineStart,
            held: Vec::new(),
        }
    }

    /// Feeds the session's next bytes.
    pub fn push(&mut self, mut data: &[u8]) -> Gated {
        let mut gated = Gated::default();
        let mut current = Vec::with_capacity(data.len());
        let mut flag = false;
        while !data.is_empty() {
            match self.mode {
                Mode::Passthrough => match memchr(data) {
                    Some(i) => {
                        gated.emit(&data[..=i], false, &mut current, &mut flag);
                        data = &data[i + 1..];
                        self.mode = Mode::LineStart;
                    }
                    None => {
                        gated.emit(data, false, &mut current, &mut flag);
                        data = &[];
                    }
                },
                Mode::Discard => match memchr(data) {
                    Some(i) => {
                        data = &data[i + 1..];
                        self.mode = Mode::LineStart;
                    }
                    None => data = &[],
                },
                Mode::LineStart => {
                    let byte = data[0];
                    data = &data[1..];
                    if byte == b'\n' {
                        self.held.push(byte);
                        gated.emit(&self.held, false, &mut current, &mut flag);
                        self.held.clear();
                        continue;
                    }
                    self.held.push(byte);
                    if !MESSAGE_MARK.starts_with(&self.held) {
                        gated.emit(&self.held, false, &mut current, &mut flag);
                        self.held.clear();
                        self.mode = Mode::Passthrough;
                    } else if self.held.len() == MESSAGE_MARK.len() {
                        self.mode = Mode::Board;
                    }
                }
                Mode::Board => match memchr(data) {
                    Some(i) => {
                        if self.held.len() + i > MAX_BOARD_LINE {
                            gated.refused.push(Refusal::TooLong);
                        } else {
                            self.held.extend_from_slice(&data[..i]);
                            match self.check(&self.held) {
                                Ok(droppable) => {
                                    self.held.push(b'\n');
                                    gated.emit(&self.held, droppable, &mut current, &mut flag);
                                }
                                Err(refusal) => gated.refused.push(refusal),
                            }
                        }
                        self.held.clear();
                        data = &data[i + 1..];
                        self.mode = Mode::LineStart;
                    }
                    None => {
                        if self.held.len() + data.len() > MAX_BOARD_LINE {
                            gated.refused.push(Refusal::TooLong);
                            self.held.clear();
                            self.mode = Mode::Discard;
                        } else {
                            self.held.extend_from_slice(data);
                        }
                        data = &[];
                    }
                },
            }
        }
        gated.close(current, flag);
        gated
    }

    /// The session's input ended: what is held goes out (a last board line without a
    /// newline is checked like any other; readers see it as the stream's last line).
    pub fn finish(&mut self) -> Gated {
        let mut gated = Gated::default();
        let held = std::mem::take(&mut self.held);
        let mode = std::mem::replace(&mut self.mode, Mode::LineStart);
        match mode {
            Mode::LineStart if !held.is_empty() => gated.runs.push(Run {
                data: Bytes::from(held),
                droppable: false,
            }),
            Mode::Board => match self.check(&held) {
                Ok(droppable) => gated.runs.push(Run {
                    data: Bytes::from(held),
                    droppable,
                }),
                Err(refusal) => gated.refused.push(refusal),
            },
            _ => {}
        }
        gated
    }

    /// Checks one board line (without its newline); `Ok(droppable)` if it may go out.
    fn check(&self, line: &[u8]) -> Result<bool, Refusal> {
        let mut keys: Vec<&[u8]> = Vec::new();
        let mut kind: &[u8] = b"";
        for pair in line.split(|&b| b == b',') {
            if keys.len() == MAX_PAIRS {
                return Err(Refusal::Malformed);
            }
            let mut parts = pair.split(|&b| b == b'=');
            let (Some(key), Some(value), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(Refusal::Malformed);
            };
            if key.is_empty() || value.is_empty() || keys.contains(&key) {
                return Err(Refusal::Malformed);
            }
            keys.push(key);
            match key {
                b"from" => {
                    let user = value.split(|&b| b == b'@').next().unwrap_or(value);
                    if user != self.user.as_slice() {
                        return Err(Refusal::Impersonation {
                            claimed: String::from_utf8_lossy(value).into_owned(),
                        });
                    }
                }
                b"type" => kind = value,
                _ => {}
            }
        }
        Ok(matches!(kind, b"offer" | b"worker" | b"client"))
    }
}

fn memchr(data: &[u8]) -> Option<usize> {
    data.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn passed(gated: &Gated) -> Vec<u8> {
        gated.runs.iter().flat_map(|r| r.data.to_vec()).collect()
    }

    const OWN: &str = "when=2026-01-01T00:00:00,type=request,from=bob@h:1,future=f,size=1";

    #[test]
    fn own_lines_pass_forged_ones_do_not() {
        let mut gate = LineGate::new("bob");
        let forged = "when=2026-01-01T00:00:00,type=offer,from=alice@h:2,to=x@y:1,future=f";
        let input = format!("{OWN}\n{forged}\n{OWN}\n");
        let gated = gate.push(input.as_bytes());
        assert_eq!(passed(&gated), format!("{OWN}\n{OWN}\n").as_bytes());
        assert_eq!(
            gated.refused,
            [Refusal::Impersonation {
                claimed: "alice@h:2".into()
            }]
        );
        // A user name that only starts like bob's is another user.
        let gated = gate.push(b"when=t,type=worker,from=bobby@h:1\n");
        assert!(gated.runs.is_empty());
    }

    #[test]
    fn shifted_pairs_are_refused() {
        let mut gate = LineGate::new("mallory");
        for line in [
            "when=t,type=offer,a=,b=from,bob@h:1=z",
            "when=t,type=offer,from=mallory@h:1,from=bob@h:1",
            "when=t,type=offer,from,bob@h:1",
            "when=t,type=offer,from=mallory@h:1,x=a=b",
            "when=t,,type=offer",
        ] {
            let gated = gate.push(format!("{line}\n").as_bytes());
            assert!(gated.runs.is_empty(), "{line}");
            assert_eq!(gated.refused, [Refusal::Malformed], "{line}");
        }
    }

    #[test]
    fn other_data_streams_through_and_lines_may_be_split() {
        let mut gate = LineGate::new("bob");
        let mut out = Vec::new();
        for piece in [
            &b"hello wor"[..],
            b"ld\nwh",
            b"en=t,type=wor",
            b"ker,from=bob@h:1\nwhe",
        ] {
            out.extend(passed(&gate.push(piece)));
        }
        assert_eq!(out, b"hello world\nwhen=t,type=worker,from=bob@h:1\n");
        // "whe" then a newline: not a board line after all.
        assert_eq!(passed(&gate.push(b"\n")), b"whe\n");
        assert_eq!(passed(&gate.push(b"\x00\x01")), b"\x00\x01");
        assert_eq!(passed(&gate.finish()), b"");
        gate.push(b"\n");
        gate.push(b"when=t,type=client,from=bob@h:1");
        let last = gate.finish();
        assert_eq!(passed(&last), b"when=t,type=client,from=bob@h:1");
        assert!(last.runs[0].droppable);
    }

    #[test]
    fn runs_mark_what_a_slow_reader_may_lose() {
        let mut gate = LineGate::new("bob");
        let input = "when=t,type=offer,from=bob@h:1\nwhen=t,type=worker,from=bob@h:1\nwhen=t,type=result,from=bob@h:1\nplain\n";
        let gated = gate.push(input.as_bytes());
        let flags: Vec<bool> = gated.runs.iter().map(|r| r.droppable).collect();
        assert_eq!(flags, [true, false]);
        assert_eq!(passed(&gated), input.as_bytes());
    }

    #[test]
    fn overlong_board_lines_are_dropped_whole() {
        let mut gate = LineGate::new("bob");
        let long = format!("when=t,from=bob@h:1,x={}", "a".repeat(MAX_BOARD_LINE));
        let gated = gate.push(long.as_bytes());
        assert_eq!(gated.refused, [Refusal::TooLong]);
        let gated = gate.push(b"tail\nnext\n");
        assert_eq!(passed(&gated), b"next\n");
    }

    proptest! {
        /// Whatever the chunking, the gate passes the same bytes, and every board line it
        /// passes decodes (when it decodes at all) to a sender who is the session's user.
        #[test]
        fn chunking_does_not_matter_and_nothing_forged_passes(
            lines in proptest::collection::vec(
                prop_oneof![
                    Just("when=t,type=offer,from=bob@h:1".to_owned()),
                    Just("when=t,type=offer,from=eve@h:1".to_owned()),
                    "[a-z=,@]{0,30}",
                    "when=[a-z=,@:]{0,30}",
                ],
                0..20,
            ),
            cut in proptest::collection::vec(1usize..40, 1..10),
        ) {
            let input = lines.join("\n");
            let mut whole = LineGate::new("bob");
            let mut expected = passed(&whole.push(input.as_bytes()));
            expected.extend(passed(&whole.finish()));
            let mut pieces = LineGate::new("bob");
            let mut got = Vec::new();
            let mut rest = input.as_bytes();
            let mut i = 0;
            while !rest.is_empty() {
                let n = cut[i % cut.len()].min(rest.len());
                got.extend(passed(&pieces.push(&rest[..n])));
                rest = &rest[n..];
                i += 1;
            }
            got.extend(passed(&pieces.finish()));
            prop_assert_eq!(&got, &expected);
            for line in String::from_utf8_lossy(&got).lines() {
                if let Ok(decoded) = p2p_proto::line::decode(line)
                    && let Some(from) = decoded.message.from()
                {
                    prop_assert_eq!(from.user(), "bob");
                }
            }
        }
    }
}
