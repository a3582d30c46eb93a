//! Noticing pico.sh's silent reroute, sans-IO (pico-pipe-spec §3.3-3.5, §6).
//!
//! pico.sh does not refuse a member whose cluster topic (`alice/p2p/future.p2p`) has no
//! access list (nobody hosts it) or one that leaves the member out: it moves the member's
//! pipe to `bob/alice/p2p/future.p2p`, a topic of the member's own where nobody else ever
//! comes, and says nothing. `ls` shows a user the channels of their own namespace with the
//! client ids on each (`uuid (user[-key]@addr)`), never another user's channels. So a
//! member takes `ls` before it opens its pipe and again after: a client id that is new on
//! `bob/TOPIC` is its own pipe, moved there ([`RerouteProbe`]).
//!
//! Comparing the two listings, rather than looking for the channel alone, keeps an older
//! session of the same user stuck on that channel (a future.p2p 0.4.0 worker started
//! before the host, say) from failing a member that did reach the cluster.

use std::collections::BTreeSet;

/// The channel a pipe on `typed` lands on when the board moves it into `user`'s own
/// namespace (pico.sh's `toTopic`: `user/typed`, unless `typed` is `user`'s already).
pub fn own_namespace_topic(user: &str, typed: &str) -> String {
    match typed.strip_prefix(user) {
        Some(rest) if rest.starts_with('/') => typed.to_owned(),
        _ => format!("{user}/{typed}"),
    }
}

/// The client ids `ls` lists on `channel`, in the current format (`  - ID` under a
/// section) or the one before 2025-12-25 (`    - ID` under `  Clients:`); live and
/// waiting entries alike. Text that is not a listing gives none.
pub fn clients_on<'a>(listing: &'a str, channel: &str) -> Vec<&'a str> {
    let header = format!("- {channel}:");
    let mut ours = false;
    let mut clients = Vec::new();
    for line in listing.lines() {
        let line = line.trim_end();
        if line.starts_with("- ") {
            // A channel header: ours is exactly `- CHANNEL:`, with an access list or not.
            ours = line
                .strip_prefix(&header)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(" (Access List:"));
        } else if ours && let Some(client) = line.trim_start().strip_prefix("- ") {
            clients.push(client);
        }
    }
    clients
}

/// What a member saw in its own namespace before opening its pipe; see the module notes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RerouteProbe {
    channel: String,
    before: BTreeSet<String>,
}

impl RerouteProbe {
    /// `user` is about to open `typed`; `listing` is its `ls` now.
    pub fn new(user: &str, typed: &str, listing: &str) -> RerouteProbe {
        let channel = own_namespace_topic(user, typed);
        let before = clients_on(listing, &channel)
            .into_iter()
            .map(str::to_owned)
            .collect();
        RerouteProbe { channel, before }
    }

    /// The channel a moved pipe lands on.
    pub fn channel(&self) -> &str {
        &self.channel
    }

    /// Whether `listing`, the `ls` taken after the pipe opened, shows a client on the
    /// member's own channel that was not there before: the pipe was moved.
    pub fn moved(&self, listing: &str) -> bool {
        clients_on(listing, &self.channel)
            .into_iter()
            .any(|client| !self.before.contains(client))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EMPTY: &str = "no pubsub channels found\n";

    #[test]
    fn the_own_namespace_topic_is_idempotent() {
        assert_eq!(
            own_namespace_topic("bob", "alice/p2p/future.p2p"),
            "bob/alice/p2p/future.p2p"
        );
        assert_eq!(own_namespace_topic("bob", "bob/p2p"), "bob/p2p");
        assert_eq!(own_namespace_topic("bob", "bobby/p2p"), "bob/bobby/p2p");
    }

    #[test]
    fn a_pipe_new_on_the_own_channel_was_moved() {
        let probe = RerouteProbe::new("bob", "alice/p2p/future.p2p", EMPTY);
        assert_eq!(probe.channel(), "bob/alice/p2p/future.p2p");
        // pico.sh's format since 2025-12-25, with channels of bob's own around it.
        let after = "Channel Information\r\n\
            - bob/other:\r\n  Pipes:\r\n  - u0 (bob@1.2.3.4:1)\r\n\
            - bob/alice/p2p/future.p2p:\r\n  Pipes:\r\n  - u1 (bob-laptop@1.2.3.4:5)\r\n\
            - bob/zzz: (Access List: carol)\r\n  Pipes:\r\n  - u2 (carol@1.2.3.4:6)\r\n";
        assert_eq!(
            clients_on(after, probe.channel()),
            vec!["u1 (bob-laptop@1.2.3.4:5)"]
        );
        assert!(probe.moved(after));
        // The format before, with `Clients:`.
        let older = "Channel Information\r\n\
            - bob/alice/p2p/future.p2p:\r\n  Clients:\r\n    Pipes:\r\n    - u1 (bob@1.2.3.4:5)\r\n";
        assert!(probe.moved(older));
        // Nothing of ours there: the pipe reached the owner's topic (not in our `ls`).
        assert!(!probe.moved(EMPTY));
        assert!(
            !probe.moved("Channel Information\r\n- bob/other:\r\n  Pipes:\r\n  - u0 (bob@x:1)\r\n")
        );
        // A longer name that starts the same is another channel.
        assert!(!probe.moved(
            "Channel Information\r\n- bob/alice/p2p/future.p2p.x:\r\n  Pipes:\r\n  - u9 (bob@x:1)\r\n"
        ));
    }

    #[test]
    fn an_older_session_stuck_there_is_not_ours() {
        let stuck = "Channel Information\r\n\
            - bob/alice/p2p/future.p2p:\r\n  Pipes:\r\n  - u1 (bob@1.2.3.4:5)\r\n";
        let probe = RerouteProbe::new("bob", "alice/p2p/future.p2p", stuck);
        assert!(!probe.moved(stuck));
        let joined = format!("{stuck}  - u2 (bob@1.2.3.4:5)\r\n");
        assert!(probe.moved(&joined));
    }

    proptest! {
        #[test]
        fn any_text_is_read_without_panic(listing in ".{0,300}", channel in "[a-z/.]{0,20}") {
            let probe = RerouteProbe::new("bob", &channel, &listing);
            // A listing never shows a client that was not in it.
            prop_assert!(!probe.moved(&listing));
            for client in clients_on(&listing, &channel) {
                prop_assert!(listing.contains(client));
            }
        }
    }
}
