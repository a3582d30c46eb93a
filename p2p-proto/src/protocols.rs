//! The `protocols` key: what a peer can do, `;`-separated (`wormhole;sealed-v1;session-v1`).
//!
//! future.p2p 0.4.0 advertises `wormhole`. Everything this project adds beyond it is a
//! further token here, and is used only when both sides list it: negotiated, never assumed
//! (docs/ARCHITECTURE.md §5.5).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::id::IdError;

/// future.p2p's transfer protocol: the payload moves by magic-wormhole file transfer.
pub const WORMHOLE: &str = "wormhole";
/// The accept's wormhole code is sealed to the offering worker's `pk`.
pub const SEALED: &str = "sealed-v1";
/// Client and worker keep the transit connection and exchange frames over it.
pub const SESSION: &str = "session-v1";
/// On a session, the worker runs the client's tasks in its slots and says when each one
/// starts ([`crate::frame::Frame::Started`]), so the client knows which of its tasks run
/// and which wait (those it may take back and give to an idle worker). Workers that list it
/// also count their slots on their hellos.
pub const SLOTS: &str = "slots-v1";

/// A board feature, not a line's protocol: the board's `features` command prints it when
/// the board delivers a line only if the user in its `from=` is the SSH user who wrote it
/// (future-p2p's hub does; pipe.pico.sh has no such check, nor the command).
pub const SENDERS_VERIFIED: &str = "senders-verified";

/// Longest single protocol token.
pub const MAX_TOKEN_LEN: usize = 64;
/// Most tokens one message may list.
pub const MAX_TOKENS: usize = 32;

/// A set of protocol tokens, in the order the peer listed them.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Protocols(Vec<String>);

impl Protocols {
    /// The protocols this build of future-p2p speaks, best first.
    pub fn ours() -> Self {
        Protocols(vec![
            WORMHOLE.into(),
            SEALED.into(),
            SESSION.into(),
            SLOTS.into(),
        ])
    }

    /// Only future.p2p's own protocol: what a future.p2p-compatible peer offers.
    pub fn future_p2p() -> Self {
        Protocols(vec![WORMHOLE.into()])
    }

    /// Whether `token` is listed.
    pub fn supports(&self, token: &str) -> bool {
        self.0.iter().any(|t| t == token)
    }

    /// The tokens both sides list, in our order.
    pub fn common(&self, theirs: &Protocols) -> Protocols {
        Protocols(
            self.0
                .iter()
                .filter(|t| theirs.supports(t))
                .cloned()
                .collect(),
        )
    }

    /// The tokens, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

fn check_token(token: &str) -> Result<(), IdError> {
    let ok = !token.is_empty()
        && token.len() <= MAX_TOKEN_LEN
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'+' | b'/'));
    if ok {
        Ok(())
    } else {
        Err(IdError {
            kind: "protocol",
            value: token.chars().take(80).collect(),
            reason: "must be 1 to 64 letters, digits or '-_.+/'",
        })
    }
}

impl TryFrom<Vec<String>> for Protocols {
    type Error = IdError;

    fn try_from(tokens: Vec<String>) -> Result<Self, IdError> {
        if tokens.len() > MAX_TOKENS {
            return Err(IdError {
                kind: "protocols",
                value: tokens.join(";").chars().take(80).collect(),
                reason: "more than 32 protocols",
            });
        }
        for token in &tokens {
            check_token(token)?;
        }
        Ok(Protocols(tokens))
    }
}

impl From<Protocols> for Vec<String> {
    fn from(protocols: Protocols) -> Vec<String> {
        protocols.0
    }
}

impl FromStr for Protocols {
    type Err = IdError;

    /// Parses `a;b;c`. The empty string is the empty set.
    fn from_str(value: &str) -> Result<Self, IdError> {
        if value.is_empty() {
            return Ok(Protocols::default());
        }
        value
            .split(';')
            .map(str::to_owned)
            .collect::<Vec<_>>()
            .try_into()
    }
}

impl fmt::Display for Protocols {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(";"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_negotiate_display() {
        let theirs: Protocols = "wormhole".parse().unwrap();
        assert_eq!(Protocols::ours().common(&theirs), Protocols::future_p2p());
        assert!(Protocols::ours().supports(SESSION));
        assert_eq!(
            Protocols::ours().to_string(),
            "wormhole;sealed-v1;session-v1;slots-v1"
        );
        assert_eq!("".parse::<Protocols>().unwrap(), Protocols::default());
        for bad in ["a;;b", ";", "a b", "a,b", "a=b"] {
            assert!(bad.parse::<Protocols>().is_err(), "{bad:?} accepted");
        }
        assert!(
            vec!["x".to_owned(); 33]
                .join(";")
                .parse::<Protocols>()
                .is_err()
        );
    }
}
