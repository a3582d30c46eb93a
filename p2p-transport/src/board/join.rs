//! Joining a cluster: its topic opened as this board user, handed over as a [`LineChannel`],
//! with the peer id `user@host:pid` this process uses on it.

use p2p_proto::id::{ClusterName, IdError, PeerId};

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

/// A peer id `user@host:pid` for this process, as future.p2p's `p2p_client_id()` forms it.
///
/// Each call is a new peer: the first of each user in a process gets `user@host:pid`, the
/// next ones `user@host.2:pid`, `user@host.3:pid`, ... A program that runs two workers, or
/// restarts one, is two peers to every client: each keeps its own sessions and its own
/// pinned key (a restarted worker under its old id would be refused as an impostor).
pub fn local_peer_id(user: &str) -> Result<PeerId, JoinError> {
    static ISSUED: std::sync::Mutex<Vec<(String, u32)>> = std::sync::Mutex::new(Vec::new());
    let nth = {
        let mut issued = ISSUED.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match issued.iter_mut().find(|(name, _)| name == user) {
            Some((_, count)) => {
                *count += 1;
                *count
            }
            None => {
                issued.push((user.to_owned(), 1));
                1
            }
        }
    };
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
    let host = if nth == 1 {
        host
    } else {
        format!("{host}.{nth}")
    };
    PeerId::new(user, &host, std::process::id()).map_err(JoinError::Identity)
}

/// Opens `cluster`'s topic on `board` as the board's user, and returns that user's peer id
/// and the topic as a [`LineChannel`] (see [`Topic::into_lines`](super::Topic::into_lines)).
///
/// The username comes from the board's `user` command (the hub, and pico.sh's main host);
/// `user` overrides it for boards without that command (pipe.pico.sh).
pub async fn join_cluster(
    board: &Board,
    cluster: &ClusterName,
    user: Option<&str>,
) -> Result<(PeerId, LineChannel), JoinError> {
    let user = match user {
        Some(user) => user.to_owned(),
        None => board.user().await?.name,
    };
    let me = local_peer_id(&user)?;
    let topic = board
        .open(&cluster.topic_for(&user), &PipeOptions::default())
        .await?;
    Ok((me, topic.into_lines(TOPIC_LINES)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_peer_of_a_process_gets_its_own_id() {
        let first = local_peer_id("idtester").unwrap();
        let second = local_peer_id("idtester").unwrap();
        assert_ne!(first, second);
        assert_eq!(first.user(), "idtester");
        assert_eq!(second.user(), "idtester");
        let (first, second) = (first.to_string(), second.to_string());
        let pid = format!(":{}", std::process::id());
        assert!(first.ends_with(&pid) && second.ends_with(&pid));
        let host = first.split_once('@').unwrap().1.strip_suffix(&pid).unwrap();
        assert_eq!(second, format!("idtester@{host}.2{pid}"));
    }
}
