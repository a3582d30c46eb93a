//! Joining a cluster: its board topic (OWNER/NAME/future.p2p, or a seed-era OWNER/NAME) opened as this board user, handed over as a [`LineChannel`],
//! with the peer id `user@host:pid` this process uses on it.

use p2p_proto::id::{ClusterName, IdError, PeerId, TopicStyle};

use crate::lines::{LineChannel, TOPIC_LINES};

use super::{Board, BoardError, PipeOptions};

/// Why a peer could not join a cluster's board.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    #[error(transparent)]
    Board(#[from] BoardError),
    /// The board could not tell who we are, or our identity does not fit the protocol.
    #[error("cannot form this peer's id: {0}")]
    Identity(#[source] IdError),
}

/// The peer id `user@host:pid` for this process, as future.p2p's `p2p_client_id()` forms it.
pub fn local_peer_id(user: &str) -> Result<PeerId, JoinError> {
    let host: String = gethostname::gethostname()
        .to_string_lossy()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let host = if host.is_empty() {
        "localhost".to_owned()
    } else {
        host
    };
    PeerId::new(user, &host, std::process::id()).map_err(JoinError::Identity)
}

/// Opens `cluster`'s board topic in `style` on `board` as the board's user, and returns
/// that user's peer id and the topic as a [`LineChannel`] (see
/// [`Topic::into_lines`](super::Topic::into_lines)).
///
/// The username comes from the account host's `user` command
/// ([`Board::account`]: pico.sh for pipe.pico.sh, the hub itself); `user` overrides it.
pub async fn join_cluster(
    board: &Board,
    cluster: &ClusterName,
    user: Option<&str>,
    style: TopicStyle,
) -> Result<(PeerId, LineChannel), JoinError> {
    let user = match user {
        Some(user) => user.to_owned(),
        None => board.account().await?.name,
    };
    let me = local_peer_id(&user)?;
    let topic = board
        .open(
            &cluster.board_topic_for(&user, style),
            &PipeOptions::default(),
        )
        .await?;
    Ok((me, topic.into_lines(TOPIC_LINES)))
}
