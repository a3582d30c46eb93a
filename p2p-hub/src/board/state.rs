//! State shared by every connection of one server: broker, access lists, user registry.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::watch;

use super::broker::{Broker, ClientId};
use super::ls::{ChannelView, format_ls};
use super::registry::Registry;
use super::topic::AccessTable;

/// Shared server state. Lock order, where two are needed: `access` before `broker`.
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
