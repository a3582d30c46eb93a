//! Topic names and access lists (docs/pico-compat.md §5, §6), sans-IO.
//!
//! Every channel key is a full name: `alice/foo` or `public/foo`. A bare `foo` typed by alice
//! means `alice/foo`; `-p foo` means `public/foo`; both mappings are idempotent.
//!
//! Access lists follow the *intended* rules (docs/pico-compat.md §6.1), not the quirks of
//! upstream's code (§6.2):
//! - the namespace owner (the user who created the ACL) is always let in, in every session;
//! - a listed user (by name, or by `SHA256:` key fingerprint) joins `owner/topic`;
//! - an unlisted user typing `owner/topic` of a *private* ACL topic is routed, silently, to
//!   their own `user/owner/topic`, so they never reach the owner's channel;
//! - an unlisted user on a *public* ACL topic is denied (sub: `access denied`; pub/pipe:
//!   moved to a fresh random public topic, by the caller).
//!
//! Upstream treats almost every caller as the ACL's "creator" (its creator check looks at the
//! caller's own rerouted name), which lets anyone into a private ACL topic. Here the ACL
//! records who created it, and only that user counts as the owner.

use std::collections::HashMap;

/// Who is asking: the username (`public` for anonymous keys) and the key fingerprint.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    /// Username, or `public` for an unregistered key.
    pub user: &'a str,
    /// `SHA256:<base64>` fingerprint of the session's key.
    pub fingerprint: &'a str,
    /// True for unregistered keys (the shared `public` user).
    pub anonymous: bool,
}

/// The namespace of anonymous users, and of `-p`.
pub const PUBLIC_NAMESPACE: &str = "public";

/// `toTopic`: the caller's private namespace, idempotent.
pub fn to_topic(user: &str, topic: &str) -> String {
    if topic
        .strip_prefix(user)
        .is_some_and(|rest| rest.starts_with('/'))
    {
        topic.to_owned()
    } else {
        format!("{user}/{topic}")
    }
}

/// `toPublicTopic`: the public namespace, idempotent.
pub fn to_public_topic(topic: &str) -> String {
    to_topic(PUBLIC_NAMESPACE, topic)
}

/// Opaque owner of ACL entries: the id of the session that created them.
pub type SessionKey = u64;

/// An access list stored under a full channel name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclEntry {
    /// The creating session (the entry goes when it ends).
    pub session: SessionKey,
    /// The creator's username.
    pub owner: String,
    /// The creator's key fingerprint (identifies anonymous owners, who share a name).
    pub owner_fingerprint: String,
    /// Allowed usernames and fingerprints (never empty: see [`AccessTable::claim`]).
    pub list: Vec<String>,
}

/// Where a topic request lands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Join this full channel name.
    Channel(String),
    /// A public ACL topic the caller is not on.
    Denied,
}

/// All access lists, keyed by full channel name. In memory only, like upstream.
#[derive(Debug, Default)]
pub struct AccessTable {
    entries: HashMap<String, AclEntry>,
}

impl AccessTable {
    /// Resolves `topic` (as typed) for `caller`.
    pub fn resolve(&self, caller: Caller<'_>, topic: &str, public: bool) -> Resolution {
        let initial = if public {
            to_public_topic(topic)
        } else {
            to_topic(caller.user, topic)
        };
        // The ACL is looked up under the typed name (`alice/p2p` typed by bob), then under
        // the resolved one (anonymous `news` is `public/news`, which may carry an ACL).
        let typed = if public {
            initial.clone()
        } else {
            topic.to_owned()
        };
        for key in [&typed, &initial] {
            let Some(entry) = self.entries.get(key.as_str()) else {
                continue;
            };
            if Self::allowed(entry, caller) {
                return Resolution::Channel(key.clone());
            }
            if key.starts_with("public/") {
                return Resolution::Denied;
            }
            return Resolution::Channel(to_topic(caller.user, key));
        }
        Resolution::Channel(initial)
    }

    fn allowed(entry: &AclEntry, caller: Caller<'_>) -> bool {
        let owner = if caller.anonymous {
            entry.owner_fingerprint == caller.fingerprint
        } else {
            entry.owner == caller.user
        };
        owner
            || entry.list.iter().any(|allowed| {
                allowed == caller.fingerprint || (!caller.anonymous && allowed == caller.user)
            })
    }

    /// Stores `list` under `name` unless an entry exists (upstream's `LoadOrStore`): the
    /// first session with `-a` on a name sets its ACL, later `-a` values are ignored.
    /// Returns whether this call created the entry.
    ///
    /// Upstream also stores an empty list, so whoever touches a name first without `-a`
    /// (anyone, on a public topic) keeps the owner from ever restricting it. Here only a
    /// non-empty list is stored.
    pub fn claim(
        &mut self,
        name: &str,
        session: SessionKey,
        caller: Caller<'_>,
        list: &[String],
    ) -> bool {
        if list.is_empty() || self.entries.contains_key(name) {
            return false;
        }
        self.entries.insert(
            name.to_owned(),
            AclEntry {
                session,
                owner: caller.user.to_owned(),
                owner_fingerprint: caller.fingerprint.to_owned(),
                list: list.to_vec(),
            },
        );
        true
    }

    /// Drops the entries `session` created (upstream: `defer Access.Delete(name)`).
    pub fn release(&mut self, session: SessionKey) {
        self.entries.retain(|_, e| e.session != session);
    }

    /// The access list stored under exactly `name`, for `ls`.
    pub fn list(&self, name: &str) -> Option<&[String]> {
        self.entries.get(name).map(|e| e.list.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn user(name: &'static str) -> Caller<'static> {
        Caller {
            user: name,
            fingerprint: "SHA256:x",
            anonymous: false,
        }
    }

    fn chan(s: &str) -> Resolution {
        Resolution::Channel(s.to_owned())
    }

    fn strings(s: &[&str]) -> Vec<String> {
        s.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn namespaces_are_idempotent() {
        assert_eq!(to_topic("alice", "p2p"), "alice/p2p");
        assert_eq!(to_topic("alice", "alice/p2p"), "alice/p2p");
        assert_eq!(to_topic("alice", "bob/p2p"), "alice/bob/p2p");
        assert_eq!(to_topic("alice", "alicex/p2p"), "alice/alicex/p2p");
        assert_eq!(to_public_topic("public/x"), "public/x");
    }

    #[test]
    fn seed_scenario_and_unlisted_user() {
        let mut t = AccessTable::default();
        let alice = user("alice");
        let r = t.resolve(alice, "p2p", false);
        assert_eq!(r, chan("alice/p2p"));
        assert!(t.claim("alice/p2p", 1, alice, &strings(&["bob", "carol", "diana"])));
        assert_eq!(
            t.resolve(user("bob"), "alice/p2p", false),
            chan("alice/p2p")
        );
        assert_eq!(
            t.resolve(user("dave"), "alice/p2p", false),
            chan("dave/alice/p2p")
        );
        // The owner's second session, bare or full name.
        assert_eq!(t.resolve(alice, "p2p", false), chan("alice/p2p"));
        assert_eq!(t.resolve(alice, "alice/p2p", false), chan("alice/p2p"));
        // Bob's bare name is his own namespace.
        assert_eq!(t.resolve(user("bob"), "p2p", false), chan("bob/p2p"));
        // A session without -a stores nothing; a later -a does not replace the first ACL.
        assert!(!t.claim("alice/other", 3, alice, &[]));
        assert!(t.claim("alice/other", 4, alice, &strings(&["carol"])));
        assert!(!t.claim("alice/p2p", 2, user("bob"), &strings(&["dave"])));
        assert_eq!(
            t.list("alice/p2p"),
            Some(&strings(&["bob", "carol", "diana"])[..])
        );
        t.release(1);
        assert_eq!(t.list("alice/p2p"), None);
        assert_eq!(
            t.resolve(user("bob"), "alice/p2p", false),
            chan("bob/alice/p2p")
        );
    }

    #[test]
    fn fingerprints_and_public_topics() {
        let mut t = AccessTable::default();
        let alice = user("alice");
        let anon = Caller {
            user: "public",
            fingerprint: "SHA256:anon",
            anonymous: true,
        };
        let other_anon = Caller {
            user: "public",
            fingerprint: "SHA256:other",
            anonymous: true,
        };
        assert!(t.claim("public/news", 1, alice, &strings(&["bob", "SHA256:anon"])));
        assert_eq!(t.resolve(user("bob"), "news", true), chan("public/news"));
        assert_eq!(t.resolve(alice, "news", true), chan("public/news"));
        assert_eq!(t.resolve(anon, "news", false), chan("public/news"));
        assert_eq!(t.resolve(user("eve"), "news", true), Resolution::Denied);
        // No bypass through the anonymous namespace or typing the full public name.
        assert_eq!(t.resolve(other_anon, "news", false), Resolution::Denied);
        assert_eq!(
            t.resolve(user("eve"), "public/news", false),
            Resolution::Denied
        );
        // An anonymous user named in nobody's list cannot claim to be "public".
        assert!(t.claim("public/x", 2, anon, &strings(&["bob"])));
        assert_eq!(t.resolve(other_anon, "x", false), Resolution::Denied);
        assert_eq!(t.resolve(anon, "x", false), chan("public/x"));
    }

    proptest! {
        #[test]
        fn unlisted_users_never_reach_a_private_acl_channel(
            owner in "[a-z]{1,6}", intruder in "[a-z]{1,6}", topic in "[a-z/]{1,10}"
        ) {
            prop_assume!(owner != intruder && owner != PUBLIC_NAMESPACE);
            let mut t = AccessTable::default();
            let o = Caller { user: &owner, fingerprint: "SHA256:o", anonymous: false };
            let Resolution::Channel(name) = t.resolve(o, &topic, false) else {
                panic!("owner denied");
            };
            t.claim(&name, 1, o, &["someone-else".to_owned()]);
            let i = Caller { user: &intruder, fingerprint: "SHA256:i", anonymous: false };
            prop_assert_ne!(t.resolve(i, &name, false), Resolution::Channel(name.clone()));
            prop_assert_ne!(t.resolve(i, &topic, false), Resolution::Channel(name.clone()));
        }
    }
}
