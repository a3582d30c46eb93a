//! [`ClusterError`]: every way connecting, submitting or serving can fail, each saying
//! what to do next.

use std::time::Duration;

use p2p_proto::id::IdError;
use p2p_scheduler::SubmitError;
use p2p_transport::board::ssh_args::SshArgsError;
use p2p_transport::board::{BoardError, JoinError};
use thiserror::Error;

/// Why a cluster operation failed.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// The SSH options could not be parsed.
    #[error("bad SSH options (--ssh-args, FUTURE_P2P_SSH_ARGS): {0}")]
    SshArgs(#[from] SshArgsError),
    /// Reaching or talking to the board failed.
    #[error(transparent)]
    Board(#[from] BoardError),
    /// Joining the cluster's topic failed.
    #[error(transparent)]
    Join(#[from] JoinError),
    /// The cluster's name, or our username, is not valid.
    #[error("bad cluster name: {0}")]
    Name(#[from] IdError),
    /// The board ended our pipe on the cluster's topic before it carried a line, and said
    /// why (on a future-p2p hub: nobody hosts that cluster, or we are not on its list).
    #[error(
        "the board refused cluster {cluster}: {said}. Check the cluster's name (its owner sees the clusters they host with `future-p2p ls`) and that its owner listed you ({user}) in `future-p2p host --users`"
    )]
    Refused {
        /// The cluster, `OWNER/NAME`.
        cluster: String,
        /// We, as the board knows us.
        user: String,
        /// What the board said.
        said: String,
    },
    /// No worker said hello within the wait.
    #[error(
        "no worker showed up on cluster {cluster} within {} s{}: start one with `future-p2p worker --cluster {cluster}`, and check that its user is on the cluster's access list",
        waited.as_secs_f64(),
        if *host_seen { "" } else { ", nor its host (is the cluster hosted, and are you on its access list?)" }
    )]
    NoWorkers {
        /// The cluster, `OWNER/NAME`.
        cluster: String,
        /// How long we waited.
        waited: Duration,
        /// Whether the cluster's host said hello meanwhile.
        host_seen: bool,
    },
    /// The task could not be submitted.
    #[error(transparent)]
    Submit(#[from] SubmitError),
}
