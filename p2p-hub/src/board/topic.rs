//! Topic names and access lists (docs/pico-compat.md §5, §6), sans-IO.
//!
//! Every channel key is a full name: `alice/foo` or `public/foo`. A bare `foo` typed by alice
//! means `alice/foo`; `-p foo` means `public/foo`; both mappings are idempotent.
//!
//! Access lists follow the *intended* rules (docs/pico-compat.md §6.1), not the quirks of
//! upstream's code (§6.2):
//! - the namespace owner (the user who created the ACL) is always let in, in every session;
//! - a listed user (by name, or by `SHA256:` key fingerprint) joins `owner/topic`;
//! - an unlisted user on a *public* ACL topic is denied (sub: `access denied`; pub/pipe:
//!   moved to a fresh random public topic, by the caller).
//!
//! Upstream treats almost every caller as the ACL's "creator" (its creator check looks at the
//! caller's own rerouted name), which lets anyone into a private ACL topic. Here the ACL
//! records who created it, and only that user counts as the owner.
//!
//! Where this hub departs from pico.sh on purpose (the trust model, `docs/trust.md`):
//! - **Nobody is routed silently.** Upstream sends an unlisted user who types `alice/p2p`
//!   to a private `dave/alice/p2p` of their own, and a member who comes before the host to
//!   `bob/alice/p2p`: both then wait on a topic nobody else will ever join. Here typing a
//!   topic in another registered user's namespace resolves to that user's channel or to an
//!   error that names the cause: [`Resolution::NotListed`] (an access list without the
//!   caller) or [`Resolution::NotHosted`] (no access list: only the owner uses it). So only
//!   a namespace's owner creates topics in it; a non-host cannot create a cluster's topic.
//! - **Access lists of registered owners outlive their sessions.** Upstream drops an ACL
//!   when the session that made it ends, which is what let members who reconnected first
//!   after a hub restart land on topics of their own. Here an ACL whose owner is a
//!   registered user is kept (and persisted by the server in `STATE/clusters`) until its
//!   owner replaces it; anonymous owners' ACLs still end with their session, since an
//!   anonymous key names nobody the hub could hand the topic back to.
//! - **The owner's latest list is the list.** Upstream keeps the first `-a` on a name and
//!   ignores later ones. Here the owner's later `-a` with another list replaces it
//!   ([`Claim::Replaced`]) and the server ends the sessions of users taken off it at once
//!   (revocation); `-a` from anyone else is still ignored.
//!
//! [`Routing::Reroute`] (the hub's `--pico-routing`) brings back the first departure for
//! testing clients against pico.sh: a caller who names a topic in another user's namespace
//! and has no place on it (no access list, or one that leaves them out) lands silently on
//! `caller/owner/topic`, as pico.sh's intended rules do (pico-pipe-spec §3.3), instead of
//! being refused.

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
    /// The session whose end removes the entry (anonymous owners); `None` for a registered
    /// owner's entry, which stays until the owner replaces it.
    pub session: Option<SessionKey>,
    /// The creator's username.
    pub owner: String,
    /// The creator's key fingerprint (identifies anonymous owners, who share a name).
    pub owner_fingerprint: String,
    /// Allowed usernames and fingerprints (never empty: see [`AccessTable::claim`]).
    pub list: Vec<String>,
}

impl AclEntry {
    fn is_owner(&self, caller: Caller<'_>) -> bool {
        if caller.anonymous {
            self.session.is_some() && self.owner_fingerprint == caller.fingerprint
        } else {
            self.session.is_none() && self.owner == caller.user
        }
    }

    /// Whether `caller` may use the topic: its owner, or named on its list.
    pub fn allows(&self, caller: Caller<'_>) -> bool {
        self.is_owner(caller)
            || self.list.iter().any(|allowed| {
                allowed == caller.fingerprint || (!caller.anonymous && allowed == caller.user)
            })
    }
}

/// Where a topic request lands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// Join this full channel name.
    Channel(String),
    /// A public ACL topic the caller is not on.
    Denied,
    /// A topic of `owner`'s with an access list that does not name the caller.
    NotListed {
        /// The full channel name.
        topic: String,
        /// Who may change the list.
        owner: String,
    },
    /// A topic in another registered user's namespace that has no access list: only its
    /// owner may use it (for a cluster: its host has not hosted it yet).
    NotHosted {
        /// The full channel name.
        topic: String,
        /// The namespace's owner.
        owner: String,
    },
}

/// What happens to a caller who names a topic of another user's they have no place on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Routing {
    /// Refused, saying why ([`Resolution::NotHosted`], [`Resolution::NotListed`]).
    #[default]
    Refuse,
    /// Moved silently to a topic in the caller's own namespace (`bob/alice/p2p`), as
    /// pico.sh does: for testing clients that must notice it.
    Reroute,
}

/// What [`AccessTable::claim`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Nothing changed (no list given, or the caller is not the owner, or the same list).
    Unchanged,
    /// A new entry.
    Created,
    /// The owner replaced the list; sessions the new list no longer allows must end.
    Replaced {
        /// The list before.
        before: Vec<String>,
    },
}

impl Claim {
    /// Whether the persisted state changed.
    pub fn changed(&self) -> bool {
        !matches!(self, Claim::Unchanged)
    }
}

/// A registered owner's access list as it is persisted: `(channel, owner, list)`.
pub type PersistedAcl = (String, String, Vec<String>);

/// All access lists, keyed by full channel name.
#[derive(Debug, Default)]
pub struct AccessTable {
    entries: HashMap<String, AclEntry>,
    routing: Routing,
}

impl AccessTable {
    /// A table holding the persisted lists of registered owners.
    pub fn with_persisted(persisted: impl IntoIterator<Item = PersistedAcl>) -> AccessTable {
        let entries = persisted
            .into_iter()
            .map(|(name, owner, list)| {
                (
                    name,
                    AclEntry {
                        session: None,
                        owner,
                        owner_fingerprint: String::new(),
                        list,
                    },
                )
            })
            .collect();
        AccessTable {
            entries,
            routing: Routing::default(),
        }
    }

    /// The same table, routing callers without a place as `routing` says.
    pub fn with_routing(self, routing: Routing) -> AccessTable {
        AccessTable { routing, ..self }
    }

    /// How callers without a place are routed.
    pub fn routing(&self) -> Routing {
        self.routing
    }

    /// Resolves `topic` (as typed) for `caller`; `is_user` tells registered usernames.
    pub fn resolve(
        &self,
        caller: Caller<'_>,
        topic: &str,
        public: bool,
        is_user: impl Fn(&str) -> bool,
    ) -> Resolution {
        let resolution = self.resolve_refusing(caller, topic, public, is_user);
        match (self.routing, resolution) {
            (Routing::Reroute, Resolution::NotHosted { .. } | Resolution::NotListed { .. }) => {
                Resolution::Channel(to_topic(caller.user, topic))
            }
            (_, resolution) => resolution,
        }
    }

    /// [`AccessTable::resolve`] under [`Routing::Refuse`].
    fn resolve_refusing(
        &self,
        caller: Caller<'_>,
        topic: &str,
        public: bool,
        is_user: impl Fn(&str) -> bool,
    ) -> Resolution {
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
            if entry.allows(caller) {
                return Resolution::Channel(key.clone());
            }
            if key.starts_with("public/") {
                return Resolution::Denied;
            }
            return Resolution::NotListed {
                topic: key.clone(),
                owner: entry.owner.clone(),
            };
        }
        if typed != initial
            && let Some((namespace, _)) = typed.split_once('/')
            && namespace != caller.user
            && is_user(namespace)
        {
            let owner = namespace.to_owned();
            return Resolution::NotHosted {
                topic: typed,
                owner,
            };
        }
        Resolution::Channel(initial)
    }

    /// Stores `list` under `name` for `caller`, a session of `session`.
    ///
    /// A new name gets an entry (kept past the session for a registered caller, see the
    /// module notes). An existing entry changes only when its owner gives another list.
    /// An empty list is never stored: upstream stores it, so whoever touches a name first
    /// without `-a` (anyone, on a public topic) keeps the owner from ever restricting it.
    pub fn claim(
        &mut self,
        name: &str,
        session: SessionKey,
        caller: Caller<'_>,
        list: &[String],
    ) -> Claim {
        if list.is_empty() {
            return Claim::Unchanged;
        }
        match self.entries.get_mut(name) {
            None => {
                self.entries.insert(
                    name.to_owned(),
                    AclEntry {
                        session: caller.anonymous.then_some(session),
                        owner: caller.user.to_owned(),
                        owner_fingerprint: caller.fingerprint.to_owned(),
                        list: list.to_vec(),
                    },
                );
                Claim::Created
            }
            Some(entry) if entry.is_owner(caller) && entry.list != list => {
                let before = std::mem::replace(&mut entry.list, list.to_vec());
                Claim::Replaced { before }
            }
            Some(_) => Claim::Unchanged,
        }
    }

    /// Drops the entries that end with `session` (anonymous owners'; upstream drops every
    /// entry with its session, `defer Access.Delete(name)`).
    pub fn release(&mut self, session: SessionKey) {
        self.entries.retain(|_, e| e.session != Some(session));
    }

    /// The entry stored under exactly `name`.
    pub fn entry(&self, name: &str) -> Option<&AclEntry> {
        self.entries.get(name)
    }

    /// Whether `caller` may be on channel `name` now: no list, or one that allows them.
    pub fn permits(&self, name: &str, caller: Caller<'_>) -> bool {
        self.entries.get(name).is_none_or(|e| e.allows(caller))
    }

    /// The access list stored under exactly `name`, for `ls`.
    pub fn list(&self, name: &str) -> Option<&[String]> {
        self.entries.get(name).map(|e| e.list.as_slice())
    }

    /// Registered owners' entries, sorted by name, as they are persisted.
    pub fn persisted(&self) -> Vec<PersistedAcl> {
        let mut out: Vec<PersistedAcl> = self
            .entries
            .iter()
            .filter(|(_, e)| e.session.is_none())
            .map(|(name, e)| (name.clone(), e.owner.clone(), e.list.clone()))
            .collect();
        out.sort();
        out
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

    fn registered(name: &str) -> bool {
        ["alice", "bob", "carol", "dave"].contains(&name)
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
        // Before alice hosts, bob is told so instead of landing on `bob/alice/p2p`.
        assert_eq!(
            t.resolve(user("bob"), "alice/p2p", false, registered),
            Resolution::NotHosted {
                topic: "alice/p2p".into(),
                owner: "alice".into()
            }
        );
        // A namespace that is nobody's stays the caller's own, as upstream.
        assert_eq!(
            t.resolve(user("bob"), "zed/p2p", false, registered),
            chan("bob/zed/p2p")
        );
        assert_eq!(
            t.resolve(alice, "p2p", false, registered),
            chan("alice/p2p")
        );
        assert_eq!(
            t.claim("alice/p2p", 1, alice, &strings(&["bob", "carol", "diana"])),
            Claim::Created
        );
        assert_eq!(
            t.resolve(user("bob"), "alice/p2p", false, registered),
            chan("alice/p2p")
        );
        assert_eq!(
            t.resolve(user("dave"), "alice/p2p", false, registered),
            Resolution::NotListed {
                topic: "alice/p2p".into(),
                owner: "alice".into()
            }
        );
        // The owner's second session, bare or full name.
        assert_eq!(
            t.resolve(alice, "p2p", false, registered),
            chan("alice/p2p")
        );
        assert_eq!(
            t.resolve(alice, "alice/p2p", false, registered),
            chan("alice/p2p")
        );
        // Bob's bare name is his own namespace.
        assert_eq!(
            t.resolve(user("bob"), "p2p", false, registered),
            chan("bob/p2p")
        );
        // A session without -a stores nothing; someone else's -a changes nothing.
        assert_eq!(t.claim("alice/other", 3, alice, &[]), Claim::Unchanged);
        assert_eq!(
            t.claim("alice/p2p", 2, user("bob"), &strings(&["dave"])),
            Claim::Unchanged
        );
        // A registered owner's list outlives the session that made it.
        t.release(1);
        assert_eq!(
            t.list("alice/p2p"),
            Some(&strings(&["bob", "carol", "diana"])[..])
        );
        // The owner's new list replaces it.
        assert_eq!(
            t.claim("alice/p2p", 4, alice, &strings(&["carol"])),
            Claim::Replaced {
                before: strings(&["bob", "carol", "diana"])
            }
        );
        assert!(!t.permits("alice/p2p", user("bob")));
        assert!(t.permits("alice/p2p", user("carol")));
        assert!(t.permits("alice/p2p", alice));
        assert_eq!(
            t.claim("alice/p2p", 5, alice, &strings(&["carol"])),
            Claim::Unchanged
        );
        assert_eq!(
            t.persisted(),
            vec![("alice/p2p".into(), "alice".into(), strings(&["carol"]))]
        );
    }

    #[test]
    fn pico_routing_moves_callers_without_a_place_to_their_own_namespace() {
        let mut t = AccessTable::default().with_routing(Routing::Reroute);
        let alice = user("alice");
        // Nobody hosts alice/p2p: bob lands on a topic of his own, as on pico.sh.
        assert_eq!(
            t.resolve(user("bob"), "alice/p2p/future.p2p", false, registered),
            chan("bob/alice/p2p/future.p2p")
        );
        t.claim("alice/p2p", 1, alice, &strings(&["bob"]));
        // Listed: the owner's channel; the owner, bare or full.
        assert_eq!(
            t.resolve(user("bob"), "alice/p2p", false, registered),
            chan("alice/p2p")
        );
        assert_eq!(
            t.resolve(alice, "p2p", false, registered),
            chan("alice/p2p")
        );
        // Left off the list: moved, not refused (pico-pipe-spec §3.3, intended rules).
        assert_eq!(
            t.resolve(user("dave"), "alice/p2p", false, registered),
            chan("dave/alice/p2p")
        );
        // A public list still denies.
        t.claim("public/news", 2, alice, &strings(&["bob"]));
        assert_eq!(
            t.resolve(user("eve"), "news", true, registered),
            Resolution::Denied
        );
    }

    #[test]
    fn persisted_lists_come_back() {
        let t = AccessTable::with_persisted([(
            "alice/p2p".to_owned(),
            "alice".to_owned(),
            strings(&["bob"]),
        )]);
        assert_eq!(
            t.resolve(user("bob"), "alice/p2p", false, registered),
            chan("alice/p2p")
        );
        assert_eq!(
            t.resolve(user("alice"), "p2p", false, registered),
            chan("alice/p2p")
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
        assert_eq!(
            t.claim("public/news", 1, alice, &strings(&["bob", "SHA256:anon"])),
            Claim::Created
        );
        assert_eq!(
            t.resolve(user("bob"), "news", true, registered),
            chan("public/news")
        );
        assert_eq!(
            t.resolve(alice, "news", true, registered),
            chan("public/news")
        );
        assert_eq!(
            t.resolve(anon, "news", false, registered),
            chan("public/news")
        );
        assert_eq!(
            t.resolve(user("eve"), "news", true, registered),
            Resolution::Denied
        );
        // No bypass through the anonymous namespace or typing the full public name.
        assert_eq!(
            t.resolve(other_anon, "news", false, registered),
            Resolution::Denied
        );
        assert_eq!(
            t.resolve(user("eve"), "public/news", false, registered),
            Resolution::Denied
        );
        // An anonymous user named in nobody's list cannot claim to be "public"; their
        // lists end with their session.
        assert_eq!(
            t.claim("public/x", 2, anon, &strings(&["bob"])),
            Claim::Created
        );
        assert_eq!(
            t.resolve(other_anon, "x", false, registered),
            Resolution::Denied
        );
        assert_eq!(t.resolve(anon, "x", false, registered), chan("public/x"));
        assert_eq!(
            t.claim("public/x", 3, anon, &strings(&["carol"])),
            Claim::Replaced {
                before: strings(&["bob"])
            }
        );
        assert_eq!(
            t.claim("public/x", 3, other_anon, &strings(&["dave"])),
            Claim::Unchanged
        );
        t.release(2);
        assert_eq!(t.list("public/x"), None);
        // Anonymous callers are not routed into a user's namespace either.
        assert_eq!(
            t.resolve(anon, "alice/p2p", false, registered),
            Resolution::NotHosted {
                topic: "alice/p2p".into(),
                owner: "alice".into()
            }
        );
    }

    proptest! {
        /// Under either routing a caller reaches an owner's channel only with a place on
        /// it; without one, pico routing gives a channel of the caller's own, and refusing
        /// routing gives the same answers except where it refuses.
        #[test]
        fn pico_routing_only_turns_refusals_into_the_callers_own_topic(
            owner in "[a-z]{1,4}", caller in "[a-z]{1,4}", topic in "[a-z/.]{0,10}",
            listed in any::<bool>(), hosted in any::<bool>(), public in any::<bool>()
        ) {
            prop_assume!(owner != caller && owner != PUBLIC_NAMESPACE && caller != PUBLIC_NAMESPACE);
            let users = |name: &str| name == owner || name == caller;
            let typed = format!("{owner}/{topic}");
            let mut refusing = AccessTable::default();
            let mut rerouting = AccessTable::default().with_routing(Routing::Reroute);
            if hosted {
                let o = Caller { user: &owner, fingerprint: "SHA256:o", anonymous: false };
                let list = vec![if listed { caller.clone() } else { "someone".to_owned() }];
                refusing.claim(&typed, 1, o, &list);
                rerouting.claim(&typed, 1, o, &list);
            }
            let c = Caller { user: &caller, fingerprint: "SHA256:c", anonymous: false };
            let refused = refusing.resolve(c, &typed, public, users);
            let moved = rerouting.resolve(c, &typed, public, users);
            match refused {
                Resolution::NotHosted { .. } | Resolution::NotListed { .. } => {
                    prop_assert_eq!(moved, Resolution::Channel(to_topic(&caller, &typed)));
                }
                other => prop_assert_eq!(moved, other),
            }
            if !(hosted && listed) {
                prop_assert_ne!(rerouting.resolve(c, &typed, public, users), Resolution::Channel(typed.clone()));
            }
        }

        #[test]
        fn unlisted_users_never_reach_a_private_acl_channel(
            owner in "[a-z]{1,6}", intruder in "[a-z]{1,6}", topic in "[a-z/]{1,10}"
        ) {
            prop_assume!(owner != intruder && owner != PUBLIC_NAMESPACE);
            let mut t = AccessTable::default();
            let o = Caller { user: &owner, fingerprint: "SHA256:o", anonymous: false };
            let users = |name: &str| name == owner || name == intruder;
            // A topic under another user's name (e.g. `intruder/x`) is not the owner's to
            // open on our hub: nothing to check then.
            let Resolution::Channel(name) = t.resolve(o, &topic, false, users) else {
                return Ok(());
            };
            t.claim(&name, 1, o, &["someone-else".to_owned()]);
            let i = Caller { user: &intruder, fingerprint: "SHA256:i", anonymous: false };
            prop_assert_ne!(t.resolve(i, &name, false, users), Resolution::Channel(name.clone()));
            prop_assert_ne!(t.resolve(i, &topic, false, users), Resolution::Channel(name.clone()));
            // Nor does the intruder reach it after the owner's session ended.
            t.release(1);
            prop_assert_ne!(t.resolve(i, &name, false, users), Resolution::Channel(name.clone()));
        }
    }
}
