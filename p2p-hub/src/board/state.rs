//! State shared by every connection of one server: broker, access lists, user registry,
//! the per-user session count, and where the access lists are persisted.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::broker::{Broker, ClientId};
use super::clusters;
use super::ls::{ChannelView, format_ls};
use super::registry::Registry;
use super::topic::AccessTable;

/// Shared server state. Lock order, where several are needed: `access`, then `registry`,
/// then `broker`; `sessions` and `persisting` are taken alone.
#[derive(Debug)]
pub(crate) struct State {
    pub broker: Mutex<Broker>,
    pub access: Mutex<AccessTable>,
    pub registry: Mutex<Registry>,
    /// Bumped on every membership change, so blocking pubs wake when a reader arrives.
    pub members_changed: watch::Sender<u64>,
    /// Signup mode: register the SSH login name for an unknown key when it is free.
    pub signup: bool,
    /// How hints spell the server, e.g. `ssh -p 2222 localhost`.
    pub ssh_cmd: String,
    /// Holds `clusters` (the persisted access lists).
    pub state_dir: PathBuf,
    /// Serialises rewrites of `clusters`, so an older snapshot never lands last.
    pub persisting: Mutex<()>,
    /// Most pub/sub/pipe sessions one user may hold at once (anonymous keys share one
    /// count under `public`).
    pub max_sessions_per_user: usize,
    /// Live pub/sub/pipe sessions per user.
    pub sessions: Mutex<HashMap<String, usize>>,
}

/// Locks a mutex, recovering the data if a panicking thread poisoned it: the broker's
/// invariants hold between calls, so a panic elsewhere must not take the server down.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl State {
    pub fn notify_members(&self) {
        self.members_changed.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// The `ls` text for `user`.
    pub fn ls(&self, user: &str) -> String {
        let views: Vec<ChannelView> = {
            let access = lock(&self.access);
            lock(&self.broker).views(&access)
        };
        format_ls(user, &views)
    }

    /// Whether `name` is a registered user.
    pub fn is_user(&self, name: &str) -> bool {
        lock(&self.registry).account(name).is_some()
    }

    /// Rewrites `clusters` from the access table. A failure is logged: the lists stay in
    /// force in memory, only a restart would lose the change.
    pub fn persist_access(&self) {
        let _serial = lock(&self.persisting);
        let entries = lock(&self.access).persisted();
        if let Err(error) = clusters::save(&self.state_dir, &entries) {
            tracing::error!(%error, "could not persist the access lists");
        }
    }

    /// Counts a new session of `user`, unless the user is at the limit.
    pub fn open_session(self: &Arc<Self>, user: &str) -> Result<SessionSlot, usize> {
        let mut sessions = lock(&self.sessions);
        let count = sessions.entry(user.to_owned()).or_insert(0);
        if *count >= self.max_sessions_per_user {
            return Err(*count);
        }
        *count += 1;
        Ok(SessionSlot {
            state: Arc::clone(self),
            user: user.to_owned(),
        })
    }
}

/// One counted pub/sub/pipe session; the count drops with it.
pub(crate) struct SessionSlot {
    state: Arc<State>,
    user: String,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut sessions = lock(&self.state.sessions);
        if let Some(count) = sessions.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                sessions.remove(&self.user);
            }
        }
    }
}

/// Removes a client from the broker and its ACLs when the session ends, however it ends
/// (normal return, error, or the task being dropped with its connection).
pub(crate) struct Membership {
    pub state: Arc<State>,
    pub id: ClientId,
    pub topic: String,
}

impl Drop for Membership {
    fn drop(&mut self) {
        lock(&self.state.access).release(self.id);
        let evicted = lock(&self.state.broker).leave(&self.topic, self.id);
        if !evicted.is_empty() {
            tracing::debug!(topic = %self.topic, ?evicted, "subs left with the last writer");
        }
        self.state.notify_members();
    }
}
