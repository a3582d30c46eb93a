//! Text codec of board lines, byte-compatible with future.p2p.
//!
//! A line is `key=value` pairs joined by `,`, starting with `when=`. future.p2p reads lines
//! by splitting on `,` and `=` (`pico_receive_message_dataframe()`), so a value holding `,`,
//! `=` or a newline would corrupt the line for every reader: [`BoardLine::encode`] refuses
//! such values rather than write them. Known types are written with their keys in
//! future.p2p's order, so a line read from future.p2p is written back byte for byte (except
//! `size`, which R may write in exponent form, `1e+05`, and which is written as digits).
//!
//! Decoding is strict about structure (duplicate, missing or malformed keys are errors) and
//! lenient about content it does not know (extra keys and types are kept).

use std::collections::HashSet;
use std::fmt;

use thiserror::Error;

use crate::framer::MAX_LINE_LEN;
use crate::id::PeerId;
use crate::message::{
    Accept, BoardLine, Decline, Hello, Message, Offer, Request, ResultReady, Role, Withdraw,
    WorkerKey,
};
use crate::time::BoardTime;

/// Most key=value pairs one line may hold.
pub const MAX_PAIRS: usize = 64;

/// A board line could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LineError {
    /// The line does not start with `when=`: not a board message (future.p2p ignores these
    /// too, e.g. the host's access-list lines).
    #[error("not a board message (does not start with \"when=\")")]
    NotAMessage,
    /// The line is longer than [`MAX_LINE_LEN`].
    #[error("board line of {len} bytes exceeds the maximum of {max}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The line has more than [`MAX_PAIRS`] pairs.
    #[error("board line has more than {MAX_PAIRS} key=value pairs")]
    TooManyPairs,
    /// A pair is not `key=value` (no `=`, several `=`, or an empty or odd key).
    #[error("malformed pair {0:?}: expected key=value")]
    MalformedPair(String),
    /// A key appears twice.
    #[error("duplicate key {0:?}")]
    DuplicateKey(String),
    /// A key the message type requires is absent.
    #[error("{kind} message without the required key {key:?}")]
    MissingKey {
        /// The message type.
        kind: String,
        /// The key it lacks.
        key: &'static str,
    },
    /// A value does not parse as its key requires.
    #[error("bad value for {key:?}: {reason}")]
    BadValue {
        /// The key.
        key: String,
        /// What is wrong with its value.
        reason: String,
    },
    /// A value to be written contains `,`, `=`, CR or LF, which the line format cannot carry.
    #[error("value of {key:?} contains ',', '=' or a line break, which board lines cannot carry")]
    ForbiddenCharacter {
        /// The key whose value it is.
        key: String,
    },
}

fn is_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn bad_value(key: &str, reason: impl ToString) -> LineError {
    LineError::BadValue {
        key: key.to_owned(),
        reason: reason.to_string(),
    }
}

/// Pairs of a line being decoded; known keys are taken out, the rest become `extra`.
struct Pairs<'a> {
    kind: &'a str,
    pairs: Vec<(&'a str, &'a str)>,
}

impl<'a> Pairs<'a> {
    fn take(&mut self, key: &'static str) -> Option<&'a str> {
        let at = self.pairs.iter().position(|(k, _)| *k == key)?;
        Some(self.pairs.remove(at).1)
    }

    fn required<T: std::str::FromStr>(&mut self, key: &'static str) -> Result<T, LineError>
    where
        T::Err: ToString,
    {
        let value = self.take(key).ok_or_else(|| LineError::MissingKey {
            kind: self.kind.to_owned(),
            key,
        })?;
        value.parse().map_err(|err| bad_value(key, err))
    }

    fn optional<T: std::str::FromStr>(&mut self, key: &'static str) -> Result<Option<T>, LineError>
    where
        T::Err: ToString,
    {
        self.take(key)
            .map(|value| value.parse().map_err(|err| bad_value(key, err)))
            .transpose()
    }

    /// A withdraw's `to`: a peer, or `<none>` (future.p2p 0.4.0, before any worker was
    /// chosen).
    fn withdrawn_from(&mut self) -> Result<Option<PeerId>, LineError> {
        match self.take("to") {
            None => Err(LineError::MissingKey {
                kind: self.kind.to_owned(),
                key: "to",
            }),
            Some(Withdraw::NO_WORKER) => Ok(None),
            Some(value) => value.parse().map(Some).map_err(|err| bad_value("to", err)),
        }
    }

    fn size(&mut self) -> Result<u64, LineError> {
        let value = self.take("size").ok_or_else(|| LineError::MissingKey {
            kind: self.kind.to_owned(),
            key: "size",
        })?;
        parse_size(value).ok_or_else(|| bad_value("size", "expected a byte count"))
    }
}

/// Reads a byte count as R writes numbers: `2371`, or `1e+05` for round doubles.
fn parse_size(value: &str) -> Option<u64> {
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return value.parse().ok();
    }
    let (mantissa, exponent) = value.split_once(['e', 'E'])?;
    let exponent: u32 = exponent
        .strip_prefix('+')
        .unwrap_or(exponent)
        .parse()
        .ok()?;
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    if int.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let shift = exponent.checked_sub(frac.len() as u32)?;
    digits
        .parse::<u64>()
        .ok()?
        .checked_mul(10u64.checked_pow(shift)?)
}

/// Reads one board line (without its newline).
pub fn decode(line: &str) -> Result<BoardLine, LineError> {
    if line.len() > MAX_LINE_LEN {
        return Err(LineError::TooLong {
            len: line.len(),
            max: MAX_LINE_LEN,
        });
    }
    if !line.starts_with("when=") {
        return Err(LineError::NotAMessage);
    }
    let mut pairs = Vec::new();
    let mut seen = HashSet::new();
    for pair in line.split(',') {
        if pairs.len() == MAX_PAIRS {
            return Err(LineError::TooManyPairs);
        }
        let (key, value) = pair
            .split_once('=')
            .filter(|(key, value)| is_key(key) && !value.contains('='))
            .ok_or_else(|| LineError::MalformedPair(pair.chars().take(80).collect()))?;
        if !seen.insert(key) {
            return Err(LineError::DuplicateKey(key.to_owned()));
        }
        pairs.push((key, value));
    }
    let when: BoardTime = pairs[0].1.parse().map_err(|err| bad_value("when", err))?;
    pairs.remove(0);
    let mut pairs = Pairs { kind: "", pairs };
    let kind = pairs.take("type").ok_or(LineError::MissingKey {
        kind: "board".to_owned(),
        key: "type",
    })?;
    pairs.kind = kind;
    let message = match kind {
        "worker" | "client" | "cluster" => Message::Hello(Hello {
            role: match kind {
                "worker" => Role::Worker,
                "client" => Role::Client,
                _ => Role::Cluster,
            },
            from: pairs.required("from")?,
            expires: pairs.required("expires")?,
            protocols: pairs.optional("protocols")?,
            slots: pairs.optional("slots")?,
            busy: pairs.optional("busy")?,
        }),
        "request" => Message::Request(Request {
            from: pairs.required("from")?,
            expires: pairs.required("expires")?,
            future: pairs.required("future")?,
            size: pairs.size()?,
            protocols: pairs.optional("protocols")?,
        }),
        "offer" => Message::Offer(Offer {
            from: pairs.required("from")?,
            expires: pairs.required("expires")?,
            to: pairs.required("to")?,
            future: pairs.required("future")?,
            protocols: pairs.optional("protocols")?,
            pk: pairs.optional::<WorkerKey>("pk")?,
        }),
        "accept" => Message::Accept(Accept {
            from: pairs.required("from")?,
            expires: pairs.required("expires")?,
            to: pairs.required("to")?,
            future: pairs.required("future")?,
            via: pairs.required("via")?,
        }),
        "withdraw" => Message::Withdraw(Withdraw {
            from: pairs.required("from")?,
            to: pairs.withdrawn_from()?,
            future: pairs.required("future")?,
        }),
        "result" => Message::Result(ResultReady {
            from: pairs.required("from")?,
            expires: pairs.required("expires")?,
            to: pairs.required("to")?,
            future: pairs.required("future")?,
            via: pairs.required("via")?,
        }),
        "decline" => Message::Decline(Decline {
            from: pairs.required("from")?,
            to: pairs.required("to")?,
            future: pairs.required("future")?,
            reason: pairs.required("reason")?,
        }),
        other => {
            if !is_key(other) {
                return Err(bad_value("type", "expected a word"));
            }
            Message::Unknown {
                kind: other.to_owned(),
            }
        }
    };
    let extra = pairs
        .pairs
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Ok(BoardLine {
        when,
        message,
        extra,
    })
}

/// Builds a line, checking every key and value as it is appended.
struct Writer {
    line: String,
    keys: Vec<String>,
}

impl Writer {
    fn push(&mut self, key: &str, value: &dyn fmt::Display) -> Result<(), LineError> {
        if !is_key(key) {
            return Err(LineError::MalformedPair(key.chars().take(80).collect()));
        }
        if self.keys.iter().any(|k| k == key) {
            return Err(LineError::DuplicateKey(key.to_owned()));
        }
        self.keys.push(key.to_owned());
        if !self.line.is_empty() {
            self.line.push(',');
        }
        self.line.push_str(key);
        self.line.push('=');
        let value_start = self.line.len();
        use std::fmt::Write as _;
        // Writing to a String cannot fail.
        let _ = write!(self.line, "{value}");
        if self.line[value_start..].contains([',', '=', '\n', '\r']) {
            return Err(LineError::ForbiddenCharacter {
                key: key.to_owned(),
            });
        }
        Ok(())
    }
}

/// An optional value as a pair value.
fn shown<T: fmt::Display>(value: &Option<T>) -> Option<&dyn fmt::Display> {
    value.as_ref().map(|value| value as _)
}

impl BoardLine {
    /// Writes the line (without newline) in future.p2p's key order, extra keys last.
    pub fn encode(&self) -> Result<String, LineError> {
        let mut w = Writer {
            line: String::with_capacity(160),
            keys: Vec::with_capacity(8 + self.extra.len()),
        };
        w.push("when", &self.when)?;
        let kind = self.message.kind();
        // Keys in future.p2p's order; `None` is an optional key that is absent.
        type Pairs<'a> = Vec<(&'static str, Option<&'a dyn fmt::Display>)>;
        let pairs: Pairs = match &self.message {
            Message::Hello(m) => vec![
                ("expires", Some(&m.expires)),
                ("type", Some(&kind)),
                ("from", Some(&m.from)),
                ("protocols", shown(&m.protocols)),
                ("slots", shown(&m.slots)),
                ("busy", shown(&m.busy)),
            ],
            Message::Request(m) => vec![
                ("expires", Some(&m.expires)),
                ("type", Some(&kind)),
                ("from", Some(&m.from)),
                ("future", Some(&m.future)),
                ("size", Some(&m.size)),
                ("protocols", shown(&m.protocols)),
            ],
            Message::Offer(m) => vec![
                ("expires", Some(&m.expires)),
                ("type", Some(&kind)),
                ("from", Some(&m.from)),
                ("to", Some(&m.to)),
                ("future", Some(&m.future)),
                ("protocols", shown(&m.protocols)),
                ("pk", shown(&m.pk)),
            ],
            Message::Accept(m) => vec![
                ("expires", Some(&m.expires)),
                ("type", Some(&kind)),
                ("from", Some(&m.from)),
                ("to", Some(&m.to)),
                ("future", Some(&m.future)),
                ("via", Some(&m.via)),
            ],
            Message::Withdraw(m) => vec![
                ("type", Some(&kind)),
                ("from", Some(&m.from)),
                (
                    "to",
                    Some(match &m.to {
                        Some(worker) => worker,
                        None => &Withdraw::NO_WORKER,
                    }),
                ),
                ("future", Some(&m.future)),
            ],
            Message::Result(m) => vec![
                ("expires", Some(&m.expires)),
                ("type", Some(&kind)),
                ("from", Some(&m.from)),
                ("to", Some(&m.to)),
                ("future", Some(&m.future)),
                ("via", Some(&m.via)),
            ],
            Message::Decline(m) => vec![
                ("type", Some(&kind)),
                ("from", Some(&m.from)),
                ("to", Some(&m.to)),
                ("future", Some(&m.future)),
                ("reason", Some(&m.reason)),
            ],
            Message::Unknown { .. } => {
                if !is_key(kind) {
                    return Err(bad_value("type", "expected a word"));
                }
                vec![("type", Some(&kind))]
            }
        };
        for (key, value) in pairs {
            if let Some(value) = value {
                w.push(key, value)?;
            }
        }
        for (key, value) in &self.extra {
            w.push(key, value)?;
        }
        if w.line.len() > MAX_LINE_LEN {
            return Err(LineError::TooLong {
                len: w.line.len(),
                max: MAX_LINE_LEN,
            });
        }
        Ok(w.line)
    }
}
