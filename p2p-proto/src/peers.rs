//! A bounded table of peers seen on the board, each until its hello lapses.
//!
//! Any member can post hellos under as many made-up peer ids as it likes. Clients and
//! workers keep what they learn from hellos here, so that a flood of them costs a bounded
//! amount of memory and a logarithmic amount of work per line:
//! - an entry lives until its hello's expiry, at most [`PeerTable::max_life`] from when it
//!   was heard (a hello claiming a year does not pin an entry for a year);
//! - a user has at most [`PeerTable::per_user`] entries (the peer id's user part, which our
//!   hub proves): one member's flood pushes out only that member's own oldest entries;
//! - the whole table has at most [`PeerTable::capacity`] entries: past it, the user with the
//!   most entries loses its oldest one;
//! - entries the owner marks as kept (e.g. a worker we have a session with) are never
//!   pushed out.
//!
//! Expired entries leave when [`PeerTable::expire`] is called with the time, in order of
//! expiry; nothing here scans the whole table.

use std::collections::{BTreeMap, BTreeSet};

use crate::id::PeerId;
use crate::time::Millis;

/// One peer's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry<V> {
    expires: Millis,
    value: V,
}

/// Peers until their hellos lapse, bounded per user and in all (see the module doc).
#[derive(Debug, Clone)]
pub struct PeerTable<V> {
    entries: BTreeMap<PeerId, Entry<V>>,
    /// Every entry by its expiry.
    by_expiry: BTreeSet<(Millis, PeerId)>,
    /// Each user's entries by expiry (the oldest go first when the user is over its share).
    by_user: BTreeMap<String, BTreeSet<(Millis, PeerId)>>,
    /// Users by how many entries they hold, for the biggest one when the table is full.
    user_sizes: BTreeSet<(usize, String)>,
    capacity: usize,
    per_user: usize,
    max_life: Millis,
}

/// What [`PeerTable::heard`] did with a hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heard {
    /// The peer was not in the table (or its entry had lapsed): it is now.
    New,
    /// The peer was in the table: its expiry was moved.
    Known,
    /// The table had no room the peer could take (every entry it could push out is kept).
    Refused,
}

impl<V> PeerTable<V> {
    /// A table of at most `capacity` entries, `per_user` of them per user, each living at
    /// most `max_life` from its last hello. Bounds of 0 are taken as 1.
    pub fn new(capacity: usize, per_user: usize, max_life: Millis) -> Self {
        PeerTable {
            entries: BTreeMap::new(),
            by_expiry: BTreeSet::new(),
            by_user: BTreeMap::new(),
            user_sizes: BTreeSet::new(),
            capacity: capacity.max(1),
            per_user: per_user.max(1),
            max_life,
        }
    }

    /// Most entries in all.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Most entries per user.
    pub fn per_user(&self) -> usize {
        self.per_user
    }

    /// Longest an entry lives after its last hello.
    pub fn max_life(&self) -> Millis {
        self.max_life
    }

    /// Entries now (call [`PeerTable::expire`] first for the live ones only).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The peer's value, if it is in the table.
    pub fn get(&self, peer: &PeerId) -> Option<&V> {
        self.entries.get(peer).map(|e| &e.value)
    }

    /// The peer's value, to change it.
    pub fn get_mut(&mut self, peer: &PeerId) -> Option<&mut V> {
        self.entries.get_mut(peer).map(|e| &mut e.value)
    }

    /// When the peer's entry lapses.
    pub fn expires(&self, peer: &PeerId) -> Option<Millis> {
        self.entries.get(peer).map(|e| e.expires)
    }

    /// Whether the peer is in the table.
    pub fn contains(&self, peer: &PeerId) -> bool {
        self.entries.contains_key(peer)
    }

    /// Every entry, in peer order.
    pub fn iter(&self) -> impl Iterator<Item = (&PeerId, &V)> {
        self.entries.iter().map(|(peer, e)| (peer, &e.value))
    }

    /// When the next entry lapses.
    pub fn next_expiry(&self) -> Option<Millis> {
        self.by_expiry.first().map(|(at, _)| *at)
    }

    /// A hello from `peer` standing until `expires`, heard at `now`. A new peer gets
    /// `make()`; to make room, an entry for which `kept` is false is pushed out (the
    /// user's own oldest when the user is at its share, else the oldest of the user with
    /// the most entries). Returns what happened and, if the peer is in the table now, its
    /// value.
    pub fn heard(
        &mut self,
        now: Millis,
        peer: &PeerId,
        expires: Millis,
        make: impl FnOnce() -> V,
        kept: impl Fn(&PeerId, &V) -> bool,
    ) -> (Heard, Option<&mut V>) {
        let expires = expires.min(now.saturating_add(self.max_life));
        if let Some(old) = self.entries.get(peer).map(|e| e.expires) {
            self.unindex(old, peer);
            self.index(expires, peer);
            let entry = self.entries.get_mut(peer);
            return match entry {
                Some(entry) => {
                    entry.expires = expires;
                    (Heard::Known, Some(&mut entry.value))
                }
                None => (Heard::Known, None),
            };
        }
        if expires <= now {
            return (Heard::Refused, None);
        }
        let user = peer.user().to_owned();
        let mine = self.by_user.get(&user).map_or(0, BTreeSet::len);
        if mine >= self.per_user {
            if !self.push_out(&user, &kept) {
                return (Heard::Refused, None);
            }
        } else if self.entries.len() >= self.capacity {
            let biggest = self.user_sizes.last().map(|(_, user)| user.clone());
            if !biggest.is_some_and(|biggest| self.push_out(&biggest, &kept)) {
                return (Heard::Refused, None);
            }
        }
        self.index(expires, peer);
        let entry = self.entries.entry(peer.clone()).or_insert(Entry {
            expires,
            value: make(),
        });
        (Heard::New, Some(&mut entry.value))
    }

    /// Removes the entries lapsed at `now`, soonest first, and returns them.
    pub fn expire(&mut self, now: Millis) -> Vec<(PeerId, V)> {
        let mut gone = Vec::new();
        while let Some((at, peer)) = self.by_expiry.first().cloned() {
            if at > now {
                break;
            }
            if let Some(value) = self.remove(&peer) {
                gone.push((peer, value));
            }
        }
        gone
    }

    /// Removes the peer's entry.
    pub fn remove(&mut self, peer: &PeerId) -> Option<V> {
        let entry = self.entries.remove(peer)?;
        self.unindex(entry.expires, peer);
        Some(entry.value)
    }

    /// Pushes out `user`'s entry that lapses soonest and is not kept; false if all are.
    fn push_out(&mut self, user: &str, kept: &impl Fn(&PeerId, &V) -> bool) -> bool {
        let victim = self.by_user.get(user).and_then(|mine| {
            mine.iter()
                .find(|(_, peer)| {
                    self.entries
                        .get(peer)
                        .is_some_and(|e| !kept(peer, &e.value))
                })
                .map(|(_, peer)| peer.clone())
        });
        match victim {
            Some(peer) => {
                self.remove(&peer);
                true
            }
            None => false,
        }
    }

    fn index(&mut self, expires: Millis, peer: &PeerId) {
        self.by_expiry.insert((expires, peer.clone()));
        let user = peer.user();
        let mine = self.by_user.entry(user.to_owned()).or_default();
        let before = mine.len();
        mine.insert((expires, peer.clone()));
        self.user_sizes.remove(&(before, user.to_owned()));
        self.user_sizes.insert((before + 1, user.to_owned()));
    }

    fn unindex(&mut self, expires: Millis, peer: &PeerId) {
        self.by_expiry.remove(&(expires, peer.clone()));
        let user = peer.user();
        if let Some(mine) = self.by_user.get_mut(user) {
            let before = mine.len();
            mine.remove(&(expires, peer.clone()));
            self.user_sizes.remove(&(before, user.to_owned()));
            if mine.is_empty() {
                self.by_user.remove(user);
            } else {
                self.user_sizes.insert((before - 1, user.to_owned()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn peer(user: &str, pid: u32) -> PeerId {
        PeerId::new(user, "host", pid).unwrap()
    }

    #[test]
    fn a_flood_of_one_user_pushes_out_only_its_own_entries() {
        let mut table: PeerTable<()> = PeerTable::new(100, 10, 60_000);
        table.heard(0, &peer("bob", 1), 60_000, || (), |_, _| false);
        for pid in 0..20_000 {
            table.heard(1, &peer("mallory", pid), 60_000, || (), |_, _| false);
        }
        assert!(table.contains(&peer("bob", 1)));
        assert_eq!(table.len(), 11);
    }

    #[test]
    fn kept_entries_stay_and_a_full_share_of_kept_ones_refuses_newcomers() {
        let mut table: PeerTable<bool> = PeerTable::new(100, 2, 60_000);
        table.heard(0, &peer("bob", 1), 10, || true, |_, kept| *kept);
        table.heard(0, &peer("bob", 2), 20, || false, |_, kept| *kept);
        let (heard, _) = table.heard(0, &peer("bob", 3), 30, || false, |_, kept| *kept);
        assert_eq!(heard, Heard::New);
        assert!(table.contains(&peer("bob", 1)) && !table.contains(&peer("bob", 2)));
        *table.get_mut(&peer("bob", 3)).unwrap() = true;
        let (heard, _) = table.heard(0, &peer("bob", 4), 40, || false, |_, kept| *kept);
        assert_eq!(heard, Heard::Refused);
    }

    #[test]
    fn a_long_hello_lives_at_most_max_life() {
        let mut table: PeerTable<()> = PeerTable::new(10, 10, 1_000);
        table.heard(5, &peer("bob", 1), u64::MAX, || (), |_, _| false);
        assert_eq!(table.expires(&peer("bob", 1)), Some(1_005));
        assert_eq!(table.expire(1_005).len(), 1);
        assert!(table.is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Hello { user: u8, pid: u8, life: u16 },
        Keep { user: u8, pid: u8 },
        Remove { user: u8, pid: u8 },
        Advance(u16),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..4, 0u8..12, 0u16..2_000)
                .prop_map(|(user, pid, life)| Op::Hello { user, pid, life }),
            1 => (0u8..4, 0u8..12).prop_map(|(user, pid)| Op::Keep { user, pid }),
            1 => (0u8..4, 0u8..12).prop_map(|(user, pid)| Op::Remove { user, pid }),
            1 => (0u16..1_500).prop_map(Op::Advance),
        ]
    }

    const USERS: [&str; 4] = ["alice", "bob", "carol", "mallory"];

    proptest! {
        /// Against a plain model: the bounds always hold, indexes agree with the entries,
        /// kept entries are only removed by expiry or by hand, a known peer is refreshed,
        /// and expire() removes exactly the lapsed entries.
        #[test]
        fn bounds_hold_and_indexes_agree(ops in proptest::collection::vec(op(), 0..200)) {
            let mut table: PeerTable<bool> = PeerTable::new(12, 5, 1_000);
            let mut now: Millis = 0;
            for op in ops {
                match op {
                    Op::Hello { user, pid, life } => {
                        let p = peer(USERS[user as usize], pid as u32);
                        let kept_before: Vec<PeerId> = table
                            .iter()
                            .filter(|(_, k)| **k)
                            .map(|(p, _)| p.clone())
                            .collect();
                        let known = table.contains(&p);
                        let (heard, _) =
                            table.heard(now, &p, now + life as Millis, || false, |_, k| *k);
                        if known {
                            prop_assert_eq!(heard, Heard::Known);
                            prop_assert_eq!(
                                table.expires(&p),
                                Some(now + (life as Millis).min(1_000))
                            );
                        }
                        if heard == Heard::New {
                            prop_assert!(table.contains(&p));
                        }
                        for k in kept_before {
                            prop_assert!(table.contains(&k), "kept entry pushed out");
                        }
                    }
                    Op::Keep { user, pid } => {
                        if let Some(k) = table.get_mut(&peer(USERS[user as usize], pid as u32)) {
                            *k = true;
                        }
                    }
                    Op::Remove { user, pid } => {
                        table.remove(&peer(USERS[user as usize], pid as u32));
                    }
                    Op::Advance(by) => {
                        now += by as Millis;
                        let lapsed: Vec<PeerId> = table
                            .entries
                            .iter()
                            .filter(|(_, e)| e.expires <= now)
                            .map(|(p, _)| p.clone())
                            .collect();
                        let gone: Vec<PeerId> =
                            table.expire(now).into_iter().map(|(p, _)| p).collect();
                        let mut sorted = gone.clone();
                        sorted.sort();
                        prop_assert_eq!(sorted, lapsed);
                    }
                }
                prop_assert!(table.len() <= 12);
                prop_assert_eq!(table.by_expiry.len(), table.len());
                let mut sizes = 0;
                for (user, mine) in &table.by_user {
                    prop_assert!(mine.len() <= 5);
                    prop_assert!(table.user_sizes.contains(&(mine.len(), user.clone())));
                    sizes += mine.len();
                }
                prop_assert_eq!(sizes, table.len());
                prop_assert_eq!(table.user_sizes.len(), table.by_user.len());
                for (p, e) in &table.entries {
                    prop_assert!(table.by_expiry.contains(&(e.expires, p.clone())));
                }
            }
        }
    }
}
