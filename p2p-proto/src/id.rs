//! Validated identifiers that appear on the board and in frames.
//!
//! Every identifier is parsed once, at the edge, into a type that cannot hold a value the
//! board line format could not carry (`,`, `=`, newline) or that a peer would misread.
//! Constructors return [`IdError`] naming the field and the reason.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {kind} {value:?}: {reason}")]
pub struct IdError {
    /// What was being parsed ("cluster name", "peer id", ...).
    pub kind: &'static str,
    /// The offending input, truncated to 80 characters for the message.
    pub value: String,
    /// What rule it broke.
    pub reason: &'static str,
}

impl IdError {
    fn new(kind: &'static str, value: &str, reason: &'static str) -> Self {
        Self {
            kind,
            value: value.chars().take(80).collect(),
            reason,
        }
    }
}

/// Longest username accepted, as on pico.sh.
pub const MAX_USERNAME_LEN: usize = 50;

/// Validates a pico username: 1 to 50 ASCII letters or digits (pico.sh's own rule).
///
/// Lower-casing is the registry's business; the board carries names as written.
pub fn check_username(value: &str) -> Result<(), IdError> {
    const KIND: &str = "username";
    if value.is_empty() || value.len() > MAX_USERNAME_LEN {
        return Err(IdError::new(KIND, value, "must be 1 to 50 characters"));
    }
    if !value.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(IdError::new(
            KIND,
            value,
            "may contain only letters and digits",
        ));
    }
    Ok(())
}

/// Characters allowed in topic-like names: safe on an SSH command line and on a board line.
fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

/// Which pipe topic carries a cluster's board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TopicStyle {
    /// `OWNER/NAME/future.p2p`, as future.p2p 0.4.0 opens it: one cluster name, one board,
    /// for both implementations.
    #[default]
    FutureP2p,
    /// `OWNER/NAME` itself, the topic of the seed README's era of future.p2p.
    Seed,
}

impl TopicStyle {
    /// What the style is called on command lines and in R options.
    pub fn as_str(self) -> &'static str {
        match self {
            TopicStyle::FutureP2p => "future.p2p",
            TopicStyle::Seed => "seed",
        }
    }
}

impl FromStr for TopicStyle {
    type Err = IdError;

    fn from_str(value: &str) -> Result<Self, IdError> {
        match value {
            "future.p2p" => Ok(TopicStyle::FutureP2p),
            "seed" => Ok(TopicStyle::Seed),
            other => Err(IdError::new(
                "topic style",
                other,
                "expected future.p2p (OWNER/NAME/future.p2p) or seed (OWNER/NAME)",
            )),
        }
    }
}

impl fmt::Display for TopicStyle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A cluster name: `owner/name`, or a bare `name` meaning the caller's own cluster.
///
/// `owner/name/future.p2p`, the topic future.p2p 0.4.0 lists in `ls`, is read as
/// `owner/name`: the suffix belongs to the topic ([`ClusterName::board_topic_for`]), not to
/// the name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClusterName {
    owner: Option<String>,
    name: String,
}

impl ClusterName {
    /// Longest cluster name part accepted.
    pub const MAX_NAME_LEN: usize = 100;

    /// The owner, if the name was qualified.
    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// The cluster's own name, without the owner.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The name qualified with `me` as owner when it was bare.
    pub fn qualified(&self, me: &str) -> Result<ClusterName, IdError> {
        check_username(me)?;
        Ok(ClusterName {
            owner: Some(self.owner.clone().unwrap_or_else(|| me.to_owned())),
            name: self.name.clone(),
        })
    }

    /// The pipe topic of the board as seen by user `me`: `name` for the owner (a topic
    /// without a slash is in the caller's own namespace) and `owner/name` for everyone else,
    /// which is how pico resolves topics (docs/pico-compat.md §5, §6.1) and how the host and
    /// the members open the cluster's topic (docs/ARCHITECTURE.md §5.1).
    pub fn topic_for(&self, me: &str) -> String {
        match &self.owner {
            Some(owner) if owner != me => format!("{owner}/{}", self.name),
            _ => self.name.clone(),
        }
    }

    /// The topic future.p2p 0.4.0 uses for the same cluster: it appends `/future.p2p`.
    pub fn future_p2p_topic_for(&self, me: &str) -> String {
        format!("{}{}", self.topic_for(me), Self::FUTURE_P2P_SUFFIX)
    }

    /// The topic of the cluster's board for user `me`, in `style`.
    pub fn board_topic_for(&self, me: &str, style: TopicStyle) -> String {
        match style {
            TopicStyle::FutureP2p => self.future_p2p_topic_for(me),
            TopicStyle::Seed => self.topic_for(me),
        }
    }

    /// What future.p2p 0.4.0 appends to a cluster's name to form its topic.
    pub const FUTURE_P2P_SUFFIX: &'static str = "/future.p2p";
}

impl FromStr for ClusterName {
    type Err = IdError;

    fn from_str(value: &str) -> Result<Self, IdError> {
        const KIND: &str = "cluster name";
        let full = value;
        // `owner/name/future.p2p`: the board topic of `owner/name`, as 0.4.0 lists it.
        let value = match value.strip_suffix(Self::FUTURE_P2P_SUFFIX) {
            Some(qualified) if qualified.contains('/') => qualified,
            _ => value,
        };
        let (owner, name) = match value.split_once('/') {
            Some((owner, name)) => {
                check_username(owner)
                    .map_err(|_| IdError::new(KIND, full, "owner must be a pico username"))?;
                (Some(owner.to_owned()), name)
            }
            None => (None, value),
        };
        if name.is_empty() || name.len() > Self::MAX_NAME_LEN {
            return Err(IdError::new(
                KIND,
                value,
                "name must be 1 to 100 characters",
            ));
        }
        if !name.bytes().all(is_name_byte) {
            return Err(IdError::new(
                KIND,
                value,
                "expected owner/name or name, with letters, digits, '-', '_' or '.'",
            ));
        }
        Ok(ClusterName {
            owner,
            name: name.to_owned(),
        })
    }
}

impl fmt::Display for ClusterName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.owner {
            Some(owner) => write!(f, "{owner}/{}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A peer on the board: `user@host:pid`, as future.p2p's `p2p_client_id()` writes it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PeerId {
    text: String,
    at: usize,
    colon: usize,
}

impl PeerId {
    /// Longest peer id accepted.
    pub const MAX_LEN: usize = 200;

    /// Builds a peer id from its parts.
    pub fn new(user: &str, host: &str, pid: u32) -> Result<Self, IdError> {
        format!("{user}@{host}:{pid}").parse()
    }

    /// The pico username.
    pub fn user(&self) -> &str {
        &self.text[..self.at]
    }

    /// The host name the peer runs on.
    pub fn host(&self) -> &str {
        &self.text[self.at + 1..self.colon]
    }

    /// The process id, as text (R writes it as an integer).
    pub fn pid(&self) -> u32 {
        // Validated at parse time.
        self.text[self.colon + 1..].parse().unwrap_or_default()
    }

    /// The id as it appears on the board.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for PeerId {
    type Err = IdError;

    fn from_str(value: &str) -> Result<Self, IdError> {
        const KIND: &str = "peer id";
        if value.len() > Self::MAX_LEN {
            return Err(IdError::new(KIND, value, "longer than 200 characters"));
        }
        let at = value
            .find('@')
            .ok_or_else(|| IdError::new(KIND, value, "expected user@host:pid"))?;
        let colon = value
            .rfind(':')
            .filter(|&colon| colon > at)
            .ok_or_else(|| IdError::new(KIND, value, "expected user@host:pid"))?;
        check_username(&value[..at])
            .map_err(|_| IdError::new(KIND, value, "user must be a pico username"))?;
        let host = &value[at + 1..colon];
        if host.is_empty() || !host.bytes().all(is_name_byte) {
            return Err(IdError::new(
                KIND,
                value,
                "host must be letters, digits, '-', '_' or '.'",
            ));
        }
        let pid = &value[colon + 1..];
        if pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) || pid.parse::<u32>().is_err()
        {
            return Err(IdError::new(KIND, value, "pid must be a number"));
        }
        Ok(PeerId {
            text: value.to_owned(),
            at,
            colon,
        })
    }
}

impl TryFrom<String> for PeerId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        value.parse()
    }
}

impl From<PeerId> for String {
    fn from(id: PeerId) -> String {
        id.text
    }
}

impl fmt::Display for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A future's id as future.p2p writes it: the future's `uuid` elements pasted with `-`
/// (e.g. `3c1e9a0b2f4d5e6a7b8c9d0e1f2a3b4c-17`). Rust embedders may use any id of the same
/// alphabet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FutureId(String);

impl FutureId {
    /// Longest future id accepted.
    pub const MAX_LEN: usize = 128;

    /// The id as it appears on the board.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for FutureId {
    type Err = IdError;

    fn from_str(value: &str) -> Result<Self, IdError> {
        const KIND: &str = "future id";
        if value.is_empty() || value.len() > Self::MAX_LEN {
            return Err(IdError::new(KIND, value, "must be 1 to 128 characters"));
        }
        if !value.bytes().all(|b| is_name_byte(b) || b == b':') {
            return Err(IdError::new(
                KIND,
                value,
                "may contain only letters, digits, '-', '_', '.' or ':'",
            ));
        }
        Ok(FutureId(value.to_owned()))
    }
}

impl TryFrom<String> for FutureId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        value.parse()
    }
}

impl From<FutureId> for String {
    fn from(id: FutureId) -> String {
        id.0
    }
}

impl fmt::Display for FutureId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A magic-wormhole code, `NAMEPLATE-PASSWORD`: a numeric nameplate (what the mailbox server
/// sees) and a password of letters, digits and `-` (the whole code is the PAKE password).
///
/// Entropy is not judged here: future.p2p's codes (`1234-0a3f9c1b2e4d`) must be usable as
/// they are; codes this project makes come from [`WormholeCode::from_random`]. `Debug`
/// shows only the nameplate: the code is a secret until its transfer is done.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct WormholeCode {
    text: String,
    dash: usize,
}

impl WormholeCode {
    /// Longest code accepted.
    pub const MAX_LEN: usize = 128;

    /// Builds a code from a nameplate number and a password.
    pub fn new(nameplate: u32, password: &str) -> Result<Self, IdError> {
        format!("{nameplate}-{password}").parse()
    }

    /// A fresh code from random numbers (the caller draws them from a CSPRNG): a nameplate
    /// of 4 or 5 digits and 64 random bits of password as 16 hex digits, a shape every
    /// wormhole client accepts.
    pub fn from_random(nameplate: u32, password: u64) -> Self {
        let nameplate = 1000 + nameplate % 99_000;
        let text = format!("{nameplate}-{password:016x}");
        let dash = text.find('-').unwrap_or(text.len());
        WormholeCode { text, dash }
    }

    /// The nameplate, the digits before the first `-`.
    pub fn nameplate(&self) -> &str {
        &self.text[..self.dash]
    }

    /// The password part, after the first `-`.
    pub fn password(&self) -> &str {
        &self.text[self.dash + 1..]
    }

    /// The whole code.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The code the client sends the future under (`CODE-f`, as future.p2p does).
    pub fn future_code(&self) -> WormholeCode {
        self.with_suffix('f')
    }

    /// The code the worker sends the result under (`CODE-r`, as future.p2p does).
    pub fn result_code(&self) -> WormholeCode {
        self.with_suffix('r')
    }

    fn with_suffix(&self, suffix: char) -> WormholeCode {
        WormholeCode {
            text: format!("{}-{suffix}", self.text),
            dash: self.dash,
        }
    }
}

impl FromStr for WormholeCode {
    type Err = IdError;

    fn from_str(value: &str) -> Result<Self, IdError> {
        const KIND: &str = "wormhole code";
        // Room for the `-f`/`-r` suffixes.
        if value.len() > Self::MAX_LEN - 2 {
            return Err(IdError::new(KIND, value, "longer than 126 characters"));
        }
        let dash = value
            .find('-')
            .ok_or_else(|| IdError::new(KIND, value, "expected NAMEPLATE-PASSWORD"))?;
        let nameplate = &value[..dash];
        if nameplate.is_empty()
            || nameplate.len() > 9
            || !nameplate.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(IdError::new(KIND, value, "nameplate must be 1 to 9 digits"));
        }
        let password = &value[dash + 1..];
        if password.is_empty()
            || !password
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(IdError::new(
                KIND,
                value,
                "password must be letters, digits and '-'",
            ));
        }
        Ok(WormholeCode {
            text: value.to_owned(),
            dash,
        })
    }
}

impl fmt::Display for WormholeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for WormholeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WormholeCode({}-…)", self.nameplate())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cluster_names() {
        let qualified: ClusterName = "alice/p2p".parse().unwrap();
        assert_eq!(qualified.owner(), Some("alice"));
        assert_eq!(qualified.name(), "p2p");
        assert_eq!(qualified.topic_for("bob"), "alice/p2p");
        assert_eq!(qualified.topic_for("alice"), "p2p");
        assert_eq!(
            qualified.future_p2p_topic_for("bob"),
            "alice/p2p/future.p2p"
        );
        assert_eq!(
            qualified.board_topic_for("bob", TopicStyle::FutureP2p),
            "alice/p2p/future.p2p"
        );
        assert_eq!(
            qualified.board_topic_for("alice", TopicStyle::FutureP2p),
            "p2p/future.p2p"
        );
        assert_eq!(
            qualified.board_topic_for("bob", TopicStyle::Seed),
            "alice/p2p"
        );
        // The 0.4.0 topic names the same cluster.
        let topic: ClusterName = "alice/p2p/future.p2p".parse().unwrap();
        assert_eq!(topic, qualified);
        // Only a qualified name loses the suffix: `p2p/future.p2p` is p2p's cluster
        // future.p2p.
        let owned: ClusterName = "p2p/future.p2p".parse().unwrap();
        assert_eq!((owned.owner(), owned.name()), (Some("p2p"), "future.p2p"));
        assert_eq!("seed".parse::<TopicStyle>(), Ok(TopicStyle::Seed));
        assert_eq!(
            TopicStyle::default().to_string().parse::<TopicStyle>(),
            Ok(TopicStyle::FutureP2p)
        );
        assert!("pico".parse::<TopicStyle>().is_err());
        let bare: ClusterName = "p2p".parse().unwrap();
        assert_eq!(bare.owner(), None);
        assert_eq!(bare.qualified("carol").unwrap().to_string(), "carol/p2p");
        for bad in [
            "",
            "/",
            "alice/",
            "/p2p",
            "a/b/c",
            "alice/p2p/future.p2p/future.p2p",
            "al ice/p2p",
            "alice/p 2p",
            "alice/p,2p",
            "x=y",
        ] {
            assert!(bad.parse::<ClusterName>().is_err(), "{bad:?} accepted");
        }
        assert!(bare.qualified("not valid").is_err());
    }

    #[test]
    fn peer_ids() {
        let id: PeerId = "alice@my-host.example.org:12345".parse().unwrap();
        assert_eq!(id.user(), "alice");
        assert_eq!(id.host(), "my-host.example.org");
        assert_eq!(id.pid(), 12345);
        assert_eq!(PeerId::new("bob", "h", 1).unwrap().as_str(), "bob@h:1");
        for bad in [
            "",
            "alice",
            "alice@host",
            "alice@:1",
            "@host:1",
            "alice@host:",
            "alice@host:x",
            "alice@host:99999999999",
            "al-ice@host:1",
            "alice@ho st:1",
            "alice@h,x:1",
            "alice@h=x:1",
        ] {
            let err = bad.parse::<PeerId>().unwrap_err();
            assert_eq!(err.kind, "peer id", "{bad:?}");
        }
    }

    #[test]
    fn future_ids() {
        assert!(
            "3c1e9a0b2f4d5e6a7b8c9d0e1f2a3b4c-17"
                .parse::<FutureId>()
                .is_ok()
        );
        for bad in ["", "a,b", "a=b", "a b", "a\nb", &"x".repeat(129)] {
            assert!(bad.parse::<FutureId>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn wormhole_codes() {
        let code: WormholeCode = "1234-0a3f9c1b2e4d".parse().unwrap();
        assert_eq!(code.nameplate(), "1234");
        assert_eq!(code.password(), "0a3f9c1b2e4d");
        assert_eq!(code.future_code().as_str(), "1234-0a3f9c1b2e4d-f");
        assert_eq!(code.result_code().as_str(), "1234-0a3f9c1b2e4d-r");
        assert_eq!(code.result_code().nameplate(), "1234");
        assert_eq!(
            WormholeCode::new(4, "purple-sausages").unwrap().as_str(),
            "4-purple-sausages"
        );
        assert_eq!(format!("{code:?}"), "WormholeCode(1234-…)");
        let fresh = WormholeCode::from_random(u32::MAX, 0xabc);
        assert_eq!(
            fresh.as_str(),
            format!("{}-0000000000000abc", 1000 + u32::MAX % 99_000)
        );
        assert_eq!(fresh.as_str().parse::<WormholeCode>().unwrap(), fresh);
        for bad in [
            "",
            "1234",
            "-abc",
            "abc-def",
            "1234-",
            "12 4-abc",
            "1234-ab,c",
            "1234567890-abc",
        ] {
            assert!(bad.parse::<WormholeCode>().is_err(), "{bad:?} accepted");
        }
    }

    proptest! {
        #[test]
        fn peer_id_round_trips(user in "[a-zA-Z0-9]{1,50}", host in "[a-z0-9.-]{1,60}", pid: u32) {
            let id = PeerId::new(&user, &host, pid).unwrap();
            prop_assert_eq!(id.user(), user.as_str());
            prop_assert_eq!(id.host(), host.as_str());
            prop_assert_eq!(id.pid(), pid);
            prop_assert_eq!(id.to_string().parse::<PeerId>().unwrap(), id);
        }

        #[test]
        fn parsers_never_panic(input in "\\PC{0,200}") {
            let _ = input.parse::<ClusterName>();
            let _ = input.parse::<PeerId>();
            let _ = input.parse::<FutureId>();
            let _ = input.parse::<WormholeCode>();
        }
    }
}
