//! The per-topic multicast FIFO, as synchronous bookkeeping with no I/O
//! (docs/pico-compat.md §7).
//!
//! The session layer holds the broker under a mutex and calls it for every chunk; every
//! call is short and never waits, which is what keeps a topic's order total: a chunk is
//! handed to all readers' queues before the next chunk of any publisher is looked at, so
//! every reader sees the same sequence, and each publisher's chunks in their send order.
//!
//! Unlike upstream, where every reader's queue is unbuffered and one reader that stops
//! draining its SSH window stalls the whole topic and then every publisher, each reader has
//! its own queue with a bounded backlog (bytes handed to the reader's queue and not yet
//! written to its SSH channel). A chunk that would take a reader past the bound evicts that
//! reader instead ([`Eviction::TooSlow`]); the other readers and the publishers carry on.
//! The bound is [`DEFAULT_BACKLOG_LIMIT`] unless configured.
//!
//! Before it drops a reader, the broker drops what the reader can afford to lose: a chunk
//! the session layer marked droppable (offers and worker/client hellos, see
//! [`super::gate`]) is not queued for a reader whose backlog is past half the bound. So a
//! reader that lags under a flood of offers keeps the other half of its backlog for
//! requests, accepts and results, and is only cut off when those alone overflow it.
//!
//! A member also leaves when the topic's owner takes it off the access list
//! ([`Broker::revoke`], [`Eviction::Revoked`]).
//!
//! Termination follows upstream before 2026-08-15 (docs/pico-compat.md §7.6),
//! chosen because a cluster host must survive its last worker leaving: a remaining pipe is
//! never disconnected because a peer left. A `sub` without `-k` is evicted
//! ([`Eviction::WritersGone`]) when a writer (pub or pipe) leaves and no writer remains.
//! Upstream ran that check when *any* client left, which let one sub's departure kick
//! another sub that was still waiting for its first pub; here only a writer's departure does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::command::Dispatcher;
use super::ls::ChannelView;
use super::topic::{AccessTable, Caller};

/// Default per-reader backlog bound: 4 MiB. At the 20,000 lines/s target with ~100-byte
/// lines that is two seconds of traffic, far above any healthy reader's lag, and small
/// enough that fifty stuck readers cost at most 200 MiB before they are cut off.
pub const DEFAULT_BACKLOG_LIMIT: usize = 4 * 1024 * 1024;

/// A client's id: unique per session, increasing, so sorting by id is join order.
pub type ClientId = u64;

/// What a client does on its channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Writes only.
    Pub,
    /// Reads only.
    Sub,
    /// Reads and writes.
    Pipe,
}

/// Why a reader was removed by the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Eviction {
    /// Its backlog would have passed the bound.
    TooSlow {
        /// Bytes queued and not yet written.
        backlog: usize,
        /// The bound.
        limit: usize,
    },
    /// The last writer left and the reader is a `sub` without `-k`.
    WritersGone,
    /// The topic's owner replaced its access list with one that leaves this user out.
    Revoked {
        /// The channel.
        topic: String,
        /// Its owner.
        owner: String,
    },
}

impl std::fmt::Display for Eviction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Eviction::TooSlow { backlog, limit } => write!(
                f,
                "reader too slow: {backlog} bytes queued, limit {limit}; disconnected so the topic keeps flowing"
            ),
            Eviction::WritersGone => f.write_str("all writers left"),
            Eviction::Revoked { topic, owner } => write!(
                f,
                "access revoked: {owner} took you off the access list of {topic}"
            ),
        }
    }
}

/// The broker's end of a reader's queue.
#[derive(Debug)]
pub struct Outbox {
    data: mpsc::UnboundedSender<Bytes>,
    backlog: Arc<AtomicUsize>,
}

/// The session's end of a reader's queue.
#[derive(Debug)]
pub struct Inbox {
    /// Chunks to write to the reader, in topic order; ends when the broker drops the reader.
    pub data: mpsc::UnboundedReceiver<Bytes>,
    backlog: Arc<AtomicUsize>,
}

impl Inbox {
    /// Tells the broker that `n` bytes of the backlog reached the reader's channel.
    pub fn written(&self, n: usize) {
        self.backlog.fetch_sub(n, Ordering::AcqRel);
    }
}

/// A connected queue pair for one reader.
pub fn queue() -> (Outbox, Inbox) {
    let (data_tx, data_rx) = mpsc::unbounded_channel();
    let backlog = Arc::new(AtomicUsize::new(0));
    (
        Outbox {
            data: data_tx,
            backlog: Arc::clone(&backlog),
        },
        Inbox {
            data: data_rx,
            backlog,
        },
    )
}

/// How the broker tells a member's session that it was removed.
pub type EvictionNotice = oneshot::Sender<Eviction>;

/// A member's notice pair: the broker keeps the sender, the session awaits the receiver
/// (which fires once, or errors when the member left on its own).
pub fn eviction() -> (EvictionNotice, oneshot::Receiver<Eviction>) {
    oneshot::channel()
}

/// Who a member is, so that a changed access list can be applied to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Username (`public` for anonymous keys).
    pub user: String,
    /// `SHA256:` fingerprint of the session's key.
    pub fingerprint: String,
    /// An unregistered key.
    pub anonymous: bool,
}

impl Identity {
    /// As the access table sees it.
    pub fn caller(&self) -> Caller<'_> {
        Caller {
            user: &self.user,
            fingerprint: &self.fingerprint,
            anonymous: self.anonymous,
        }
    }
}

/// A client joining a channel.
#[derive(Debug)]
pub struct Member {
    /// The `ls` client ID, `uuid (user@addr)`.
    pub label: String,
    /// Role.
    pub role: Role,
    /// `-r`: also receive own chunks.
    pub replay: bool,
    /// `-k`: stay when writers are gone.
    pub keepalive: bool,
    /// Queue for readers (`None` for pubs).
    pub outbox: Option<Outbox>,
    /// Who it is.
    pub identity: Identity,
    /// Fired if the broker removes it.
    pub notice: Option<EvictionNotice>,
}

impl Member {
    fn evict(&mut self, why: Eviction) {
        if let Some(tx) = self.notice.take() {
            let _ = tx.send(why);
        }
    }
}

#[derive(Debug)]
struct Channel {
    members: BTreeMap<ClientId, Member>,
    /// Set by the first writer; `None` (multicast) until one joins.
    dispatcher: Option<Dispatcher>,
    next_rr: usize,
}

impl Channel {
    fn has_writers(&self) -> bool {
        self.members.values().any(|m| m.role != Role::Sub)
    }
}

/// What [`Broker::publish`] did with a chunk.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Published {
    /// Readers the chunk was queued for.
    pub delivered: usize,
    /// Readers evicted as too slow.
    pub evicted: Vec<ClientId>,
    /// Readers that skipped a droppable chunk because they lag.
    pub shed: usize,
}

/// All channels and waiting pubs of one server.
#[derive(Debug)]
pub struct Broker {
    channels: BTreeMap<String, Channel>,
    waiting: BTreeMap<ClientId, (String, String)>,
    backlog_limit: usize,
    next_id: ClientId,
}

impl Broker {
    /// An empty broker whose readers may each lag `backlog_limit` bytes.
    pub fn new(backlog_limit: usize) -> Broker {
        Broker {
            channels: BTreeMap::new(),
            waiting: BTreeMap::new(),
            backlog_limit,
            next_id: 1,
        }
    }

    /// The per-reader backlog bound in bytes.
    pub fn backlog_limit(&self) -> usize {
        self.backlog_limit
    }

    /// A fresh client id.
    pub fn next_client_id(&mut self) -> ClientId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Adds `member` to `topic`, creating the channel if it does not exist. The first writer
    /// (pub or pipe) on a channel fixes its dispatcher. Upstream fixes it when the channel is
    /// created, so subs that arrive before a blocking `pub -d round_robin` (the usual order:
    /// a blocking pub waits outside the channel) silently turn it into multicast; subs never
    /// choose a dispatcher, so here they leave it open.
    pub fn join(&mut self, topic: &str, id: ClientId, member: Member, dispatcher: Dispatcher) {
        self.waiting.remove(&id);
        let channel = self
            .channels
            .entry(topic.to_owned())
            .or_insert_with(|| Channel {
                members: BTreeMap::new(),
                dispatcher: None,
                next_rr: 0,
            });
        if member.role != Role::Sub && channel.dispatcher.is_none() {
            channel.dispatcher = Some(dispatcher);
        }
        channel.members.insert(id, member);
    }

    /// Removes `id` from `topic`, applies the termination rule and drops empty channels.
    /// Returns the readers evicted because no writer remains.
    pub fn leave(&mut self, topic: &str, id: ClientId) -> Vec<ClientId> {
        self.waiting.remove(&id);
        let Some(channel) = self.channels.get_mut(topic) else {
            return Vec::new();
        };
        let Some(left) = channel.members.remove(&id) else {
            return Vec::new();
        };
        let mut evicted = Vec::new();
        if left.role != Role::Sub && !channel.has_writers() {
            let gone: Vec<ClientId> = channel
                .members
                .iter()
                .filter(|(_, m)| m.role == Role::Sub && !m.keepalive)
                .map(|(id, _)| *id)
                .collect();
            for reader in gone {
                if let Some(mut m) = channel.members.remove(&reader) {
                    m.evict(Eviction::WritersGone);
                }
                evicted.push(reader);
            }
        }
        if channel.members.is_empty() {
            self.channels.remove(topic);
        }
        evicted
    }

    /// Whether `topic` has a reader (sub or pipe) a pub could block on.
    pub fn has_readers(&self, topic: &str) -> bool {
        self.channels
            .get(topic)
            .is_some_and(|c| c.members.values().any(|m| m.role != Role::Pub))
    }

    /// Records a blocking pub that waits for a reader (listed as "Waiting Pubs").
    pub fn wait(&mut self, id: ClientId, topic: &str, label: &str) {
        self.waiting
            .insert(id, (topic.to_owned(), label.to_owned()));
    }

    /// Forgets a waiting pub (gave up or joined).
    pub fn unwait(&mut self, id: ClientId) {
        self.waiting.remove(&id);
    }

    /// Removes the members of `topic` that `still_allowed` refuses, telling each it was
    /// revoked by `owner`. Returns them.
    pub fn revoke(
        &mut self,
        topic: &str,
        owner: &str,
        still_allowed: impl Fn(Caller<'_>) -> bool,
    ) -> Vec<ClientId> {
        let Some(channel) = self.channels.get_mut(topic) else {
            return Vec::new();
        };
        let gone: Vec<ClientId> = channel
            .members
            .iter()
            .filter(|(_, m)| !still_allowed(m.identity.caller()))
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            if let Some(mut m) = channel.members.remove(id) {
                m.evict(Eviction::Revoked {
                    topic: topic.to_owned(),
                    owner: owner.to_owned(),
                });
            }
        }
        if channel.members.is_empty() {
            self.channels.remove(topic);
        }
        gone
    }

    /// Hands `data` from `from` to the readers of `topic` (multicast: all; round robin: the
    /// next one in join order). Never blocks: a reader whose backlog would pass the bound is
    /// evicted instead, and a `droppable` chunk skips readers past half the bound.
    pub fn publish(
        &mut self,
        topic: &str,
        from: ClientId,
        data: Bytes,
        droppable: bool,
    ) -> Published {
        let mut out = Published::default();
        if data.is_empty() {
            return out;
        }
        let limit = self.backlog_limit;
        let shed_above = limit / 2;
        let Some(channel) = self.channels.get_mut(topic) else {
            return out;
        };
        let eligible: Vec<ClientId> = channel
            .members
            .iter()
            .filter(|(id, m)| m.role != Role::Pub && (**id != from || m.replay))
            .map(|(id, _)| *id)
            .collect();
        if eligible.is_empty() {
            return out;
        }
        let round_robin = channel.dispatcher == Some(Dispatcher::RoundRobin);
        let targets: Vec<ClientId> = if round_robin {
            // Start at the next reader in turn; the others are fallbacks if it is evicted.
            let start = channel.next_rr % eligible.len();
            channel.next_rr = channel.next_rr.wrapping_add(1);
            eligible[start..]
                .iter()
                .chain(&eligible[..start])
                .copied()
                .collect()
        } else {
            eligible
        };
        for id in targets {
            let Some(member) = channel.members.get_mut(&id) else {
                continue;
            };
            let Some(outbox) = member.outbox.as_mut() else {
                continue;
            };
            let queued = outbox.backlog.load(Ordering::Acquire);
            if droppable && queued.saturating_add(data.len()) > shed_above {
                out.shed += 1;
                continue;
            }
            if queued.saturating_add(data.len()) > limit {
                member.evict(Eviction::TooSlow {
                    backlog: queued,
                    limit,
                });
                channel.members.remove(&id);
                out.evicted.push(id);
                continue;
            }
            if outbox.data.send(data.clone()).is_ok() {
                outbox.backlog.fetch_add(data.len(), Ordering::AcqRel);
                out.delivered += 1;
                if round_robin {
                    break;
                }
            }
        }
        if channel.members.is_empty() {
            self.channels.remove(topic);
        }
        out
    }

    /// A snapshot of every channel and waiting pub for `ls`.
    pub fn views(&self, access: &AccessTable) -> Vec<ChannelView> {
        let mut views: BTreeMap<&str, ChannelView> = BTreeMap::new();
        let view = |name: &str| ChannelView {
            name: name.to_owned(),
            access: access
                .list(name)
                .map(<[String]>::to_vec)
                .unwrap_or_default(),
            ..ChannelView::default()
        };
        for (name, channel) in &self.channels {
            let v = views.entry(name).or_insert_with(|| view(name));
            for m in channel.members.values() {
                match m.role {
                    Role::Pub => v.pubs.push(m.label.clone()),
                    Role::Sub => v.subs.push(m.label.clone()),
                    Role::Pipe => v.pipes.push(m.label.clone()),
                }
            }
        }
        for (topic, label) in self.waiting.values() {
            views
                .entry(topic)
                .or_insert_with(|| view(topic))
                .waiting
                .push(label.clone());
        }
        views.into_values().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn member(role: Role, outbox: Option<Outbox>) -> Member {
        noticed(role, outbox, "u").0
    }

    /// A member of `user` and the receiver of its eviction notice.
    fn noticed(
        role: Role,
        outbox: Option<Outbox>,
        user: &str,
    ) -> (Member, oneshot::Receiver<Eviction>) {
        let (notice, evicted) = eviction();
        let member = Member {
            label: format!("{role:?}"),
            role,
            replay: false,
            keepalive: false,
            outbox,
            identity: Identity {
                user: user.to_owned(),
                fingerprint: format!("SHA256:{user}"),
                anonymous: false,
            },
            notice: Some(notice),
        };
        (member, evicted)
    }

    fn drain(inbox: &mut Inbox) -> Vec<u8> {
        let mut out = Vec::new();
        while let Ok(chunk) = inbox.data.try_recv() {
            inbox.written(chunk.len());
            out.extend_from_slice(&chunk);
        }
        out
    }

    #[test]
    fn multicast_skips_sender_and_pubs_unless_replay() {
        let mut b = Broker::new(1024);
        let (o1, mut i1) = queue();
        let (o2, mut i2) = queue();
        let mut replayer = member(Role::Pipe, Some(o2));
        replayer.replay = true;
        b.join(
            "a/t",
            1,
            member(Role::Pipe, Some(o1)),
            Dispatcher::Multicast,
        );
        b.join("a/t", 2, replayer, Dispatcher::Multicast);
        b.join("a/t", 3, member(Role::Pub, None), Dispatcher::Multicast);
        assert_eq!(
            b.publish("a/t", 1, Bytes::from_static(b"x"), false)
                .delivered,
            1
        );
        assert_eq!(
            b.publish("a/t", 2, Bytes::from_static(b"y"), false)
                .delivered,
            2
        );
        assert_eq!(
            b.publish("a/t", 3, Bytes::from_static(b"z"), false)
                .delivered,
            2
        );
        assert_eq!(drain(&mut i1), b"yz");
        assert_eq!(drain(&mut i2), b"xyz");
    }

    #[test]
    fn round_robin_takes_turns() {
        let mut b = Broker::new(1024);
        let (o1, mut i1) = queue();
        let (o2, mut i2) = queue();
        // Subs first, as when a blocking pub waits for them: the pub still decides.
        b.join("a/t", 2, member(Role::Sub, Some(o1)), Dispatcher::Multicast);
        b.join("a/t", 3, member(Role::Sub, Some(o2)), Dispatcher::Multicast);
        b.join("a/t", 1, member(Role::Pub, None), Dispatcher::RoundRobin);
        // A later writer does not change it.
        b.join("a/t", 4, member(Role::Pub, None), Dispatcher::Multicast);
        for c in [b"a", b"b", b"c", b"d"] {
            assert_eq!(
                b.publish("a/t", 1, Bytes::copy_from_slice(c), false)
                    .delivered,
                1
            );
        }
        assert_eq!(drain(&mut i1), b"ac");
        assert_eq!(drain(&mut i2), b"bd");
    }

    #[test]
    fn slow_reader_is_evicted_others_continue() {
        let mut b = Broker::new(10);
        let (slow, _slow_in) = queue();
        let (fast, mut fast_in) = queue();
        let (slow, mut slow_evicted) = noticed(Role::Sub, Some(slow), "u");
        b.join("a/t", 1, member(Role::Pub, None), Dispatcher::Multicast);
        b.join("a/t", 2, slow, Dispatcher::Multicast);
        b.join(
            "a/t",
            3,
            member(Role::Sub, Some(fast)),
            Dispatcher::Multicast,
        );
        for _ in 0..3 {
            let p = b.publish("a/t", 1, Bytes::from_static(b"1234"), false);
            drain(&mut fast_in);
            if !p.evicted.is_empty() {
                assert_eq!(p.evicted, [2]);
            }
        }
        assert_eq!(
            slow_evicted.try_recv(),
            Ok(Eviction::TooSlow {
                backlog: 8,
                limit: 10
            })
        );
        assert_eq!(
            b.publish("a/t", 1, Bytes::from_static(b"5"), false)
                .delivered,
            1
        );
        assert_eq!(drain(&mut fast_in), b"5");
    }

    #[test]
    fn subs_leave_with_last_writer_unless_keepalive() {
        let mut b = Broker::new(1024);
        let (o1, _i1) = queue();
        let (o2, _i2) = queue();
        let (o3, _i3) = queue();
        let (first, mut e1) = noticed(Role::Sub, Some(o1), "u");
        let (mut keep, mut e2) = noticed(Role::Sub, Some(o2), "u");
        keep.keepalive = true;
        b.join("a/t", 1, first, Dispatcher::Multicast);
        b.join("a/t", 2, keep, Dispatcher::Multicast);
        // A sub leaving does not kick the others.
        b.join("a/t", 3, member(Role::Sub, Some(o3)), Dispatcher::Multicast);
        assert!(b.leave("a/t", 3).is_empty());
        b.join("a/t", 4, member(Role::Pub, None), Dispatcher::Multicast);
        assert_eq!(b.leave("a/t", 4), vec![1]);
        assert_eq!(e1.try_recv(), Ok(Eviction::WritersGone));
        assert!(e2.try_recv().is_err());
        assert!(b.has_readers("a/t"));
    }

    #[test]
    fn a_lagging_reader_sheds_droppable_chunks_before_it_is_evicted() {
        let mut b = Broker::new(10);
        let (lagging, mut lagging_in) = queue();
        let (lagging, mut evicted) = noticed(Role::Sub, Some(lagging), "u");
        b.join("a/t", 1, member(Role::Pub, None), Dispatcher::Multicast);
        b.join("a/t", 2, lagging, Dispatcher::Multicast);
        // Up to half the bound, offers are queued like anything else.
        assert_eq!(
            b.publish("a/t", 1, Bytes::from_static(b"ooo"), true)
                .delivered,
            1
        );
        // Past it they are skipped for this reader; essential chunks still fit.
        let p = b.publish("a/t", 1, Bytes::from_static(b"ooo"), true);
        assert_eq!((p.delivered, p.shed), (0, 1));
        assert_eq!(
            b.publish("a/t", 1, Bytes::from_static(b"rrrr"), false)
                .delivered,
            1
        );
        assert!(evicted.try_recv().is_err());
        // Only when essential chunks alone overflow it is the reader cut off.
        let p = b.publish("a/t", 1, Bytes::from_static(b"rrrr"), false);
        assert_eq!(p.evicted, [2]);
        assert!(matches!(evicted.try_recv(), Ok(Eviction::TooSlow { .. })));
        assert_eq!(drain(&mut lagging_in), b"ooorrrr");
    }

    #[test]
    fn revoked_members_leave_at_once_whatever_their_role() {
        let mut b = Broker::new(1024);
        let (o1, _i1) = queue();
        let (o2, _i2) = queue();
        let (bob_pipe, mut bob_pipe_evicted) = noticed(Role::Pipe, Some(o1), "bob");
        let (bob_pub, mut bob_pub_evicted) = noticed(Role::Pub, None, "bob");
        let (carol, mut carol_evicted) = noticed(Role::Pipe, Some(o2), "carol");
        b.join("alice/p2p", 1, bob_pipe, Dispatcher::Multicast);
        b.join("alice/p2p", 2, bob_pub, Dispatcher::Multicast);
        b.join("alice/p2p", 3, carol, Dispatcher::Multicast);
        let gone = b.revoke("alice/p2p", "alice", |c| c.user != "bob");
        assert_eq!(gone, [1, 2]);
        let revoked = Eviction::Revoked {
            topic: "alice/p2p".into(),
            owner: "alice".into(),
        };
        assert_eq!(bob_pipe_evicted.try_recv(), Ok(revoked.clone()));
        assert_eq!(bob_pub_evicted.try_recv(), Ok(revoked));
        assert!(carol_evicted.try_recv().is_err());
        // Carol still gets what another writer sends.
        assert_eq!(
            b.publish("alice/p2p", 9, Bytes::from_static(b"x"), false)
                .delivered,
            1
        );
    }

    #[test]
    fn remaining_pipe_is_not_disconnected() {
        let mut b = Broker::new(1024);
        let (o1, _i1) = queue();
        let (o2, _i2) = queue();
        b.join(
            "alice/p2p",
            1,
            member(Role::Pipe, Some(o1)),
            Dispatcher::Multicast,
        );
        b.join(
            "alice/p2p",
            2,
            member(Role::Pipe, Some(o2)),
            Dispatcher::Multicast,
        );
        assert!(b.leave("alice/p2p", 2).is_empty());
        assert!(b.has_readers("alice/p2p"));
        b.leave("alice/p2p", 1);
        assert!(b.views(&AccessTable::default()).is_empty());
    }

    #[test]
    fn views_list_members_and_waiting() {
        let mut b = Broker::new(1024);
        let (o1, _i1) = queue();
        b.join(
            "a/t",
            1,
            member(Role::Pipe, Some(o1)),
            Dispatcher::Multicast,
        );
        b.wait(2, "a/w", "waiter");
        let v = b.views(&AccessTable::default());
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].pipes, ["Pipe"]);
        assert_eq!(v[1].waiting, ["waiter"]);
        b.unwait(2);
        assert_eq!(b.views(&AccessTable::default()).len(), 1);
    }

    proptest! {
        /// Every reader sees every chunk in the same total order, whatever the interleaving
        /// of publishers, as long as it keeps up.
        #[test]
        fn total_order_is_shared(ops in proptest::collection::vec((0u64..3, 1usize..5), 1..60)) {
            let mut b = Broker::new(usize::MAX);
            let mut inboxes = Vec::new();
            for id in 10..13 {
                let (o, i) = queue();
                b.join("a/t", id, member(Role::Sub, Some(o)), Dispatcher::Multicast);
                inboxes.push(i);
            }
            for w in 0..3 { b.join("a/t", w, member(Role::Pub, None), Dispatcher::Multicast); }
            let mut expected = Vec::new();
            for (n, (writer, len)) in ops.iter().enumerate() {
                let chunk = vec![(n % 251) as u8; *len];
                expected.extend_from_slice(&chunk);
                b.publish("a/t", *writer, Bytes::from(chunk), false);
            }
            for inbox in &mut inboxes {
                prop_assert_eq!(drain(inbox), expected.clone());
            }
        }
    }
}
