//! Where a wormhole client meets its peer: the mailbox server and the transit relays.

use magic_wormhole::transit::{Abilities, RelayHint};

/// The public mailbox (rendezvous) server, as in future.p2p.
pub const DEFAULT_MAILBOX_URL: &str = "ws://relay.magic-wormhole.io:4000/v1";
/// The public transit relay, as in future.p2p.
pub const DEFAULT_RELAY_URL: &str = "tcp://transit.magic-wormhole.io:4001";

/// Which transit paths a client may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TransitMode {
    /// Direct TCP and relays, whichever connects first (the default).
    #[default]
    Any,
    /// Only through a transit relay (predictable on hosts with only a loopback interface).
    RelayOnly,
    /// Only direct TCP connections.
    DirectOnly,
}

impl TransitMode {
    pub(crate) fn abilities(self) -> Abilities {
        match self {
            TransitMode::Any => Abilities::ALL,
            TransitMode::RelayOnly => Abilities::FORCE_RELAY,
            TransitMode::DirectOnly => Abilities::FORCE_DIRECT,
        }
    }
}

/// A relay URL that is not of the form `tcp://HOST:PORT` (or `ws://`, `wss://`).
#[derive(Debug, thiserror::Error)]
#[error("invalid transit relay URL {url:?}: {reason}")]
pub struct RelayUrlError {
    /// The URL as given.
    pub url: String,
    /// Why it was refused.
    pub reason: String,
}

/// Mailbox URL and transit relays for transfers and sessions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WormholeConfig {
    /// The mailbox server, `ws://HOST:PORT/v1`.
    pub mailbox_url: String,
    /// Transit relay URLs, `tcp://HOST:PORT`, offered to the peer as relay hints.
    pub relay_urls: Vec<String>,
    /// Which transit paths may be used.
    pub transit: TransitMode,
}

impl Default for WormholeConfig {
    fn default() -> Self {
        WormholeConfig {
            mailbox_url: DEFAULT_MAILBOX_URL.to_owned(),
            relay_urls: vec![DEFAULT_RELAY_URL.to_owned()],
            transit: TransitMode::Any,
        }
    }
}

impl WormholeConfig {
    /// A configuration for a self-hosted hub: its mailbox and its relay.
    pub fn new(mailbox_url: impl Into<String>, relay_url: impl Into<String>) -> Self {
        WormholeConfig {
            mailbox_url: mailbox_url.into(),
            relay_urls: vec![relay_url.into()],
            transit: TransitMode::Any,
        }
    }

    /// The relay URLs as the crate's relay hints.
    pub(crate) fn relay_hints(&self) -> Result<Vec<RelayHint>, RelayUrlError> {
        self.relay_urls
            .iter()
            .map(|text| {
                let url: url::Url = text.parse().map_err(|err: url::ParseError| RelayUrlError {
                    url: text.clone(),
                    reason: err.to_string(),
                })?;
                RelayHint::from_urls(None, [url]).map_err(|err| RelayUrlError {
                    url: text.clone(),
                    reason: err.to_string(),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_points_at_the_public_servers() {
        let config = WormholeConfig::default();
        assert_eq!(config.mailbox_url, DEFAULT_MAILBOX_URL);
        assert_eq!(config.relay_hints().expect("valid").len(), 1);
    }

    #[test]
    fn bad_relay_url_is_a_typed_error() {
        let config = WormholeConfig::new("ws://127.0.0.1:1/v1", "tcp:127.0.0.1:4001");
        assert!(config.relay_hints().is_err());
        let config = WormholeConfig::new("ws://127.0.0.1:1/v1", "not a url");
        assert!(config.relay_hints().is_err());
    }
}
