//! What to do next, for the mistakes a user makes on the README's paths (sans-IO: an error
//! in, a sentence out). The error itself names the cause; [`next_step`] adds the fix where
//! the cause alone does not say it, and `main_with_args` prints it under the error.

use p2p_cluster::ClusterError;
use p2p_transport::board::auth::AuthError;
use p2p_transport::board::{BoardError, JoinError};

use crate::CliError;

/// The board error inside `err`, if that is what it is.
fn board_error(err: &CliError) -> Option<&BoardError> {
    match err {
        CliError::Board(board)
        | CliError::Join(JoinError::Board(board))
        | CliError::Member(ClusterError::Board(board))
        | CliError::Member(ClusterError::Join(JoinError::Board(board))) => Some(board),
        _ => None,
    }
}

/// How to fix `err`, when its message alone does not say.
pub fn next_step(err: &CliError) -> Option<String> {
    let board = board_error(err)?;
    match board {
        BoardError::Connect { host, reason } if reason.contains("Host key verification failed") => {
            Some(format!(
                "OpenSSH does not know the board's host key: trust it on first use with \
                 `-o StrictHostKeyChecking=accept-new` in --ssh-args (FUTURE_P2P_SSH_ARGS), or add \
                 it to ~/.ssh/known_hosts first (`ssh-keyscan -p PORT HOST >> ~/.ssh/known_hosts`; {host})"
            ))
        }
        BoardError::Connect { reason, .. }
            if reason.contains("Permission denied") || reason.contains("permission denied") =>
        {
            Some(REGISTER.to_owned())
        }
        BoardError::Connect { host, reason }
            if reason.contains("refused") || reason.contains("os error 111") =>
        {
            Some(format!(
                "nothing answers at {host}: start the hub (`future-p2p hub` prints its board address \
                 when ready), or fix the board's address: --host (FUTURE_P2P_HOST) and the port, \
                 `-p PORT` in --ssh-args (FUTURE_P2P_SSH_ARGS)"
            ))
        }
        BoardError::Connect { .. } | BoardError::Timeout { .. } => Some(
            "check the board's address (--host, FUTURE_P2P_HOST; `-p PORT` in --ssh-args, \
             FUTURE_P2P_SSH_ARGS) and that the network lets SSH through to it"
                .to_owned(),
        ),
        BoardError::Auth(AuthError::Refused { .. }) => Some(REGISTER.to_owned()),
        BoardError::Command { stderr, .. }
            if stderr.contains("no account is registered")
                || stderr.contains("create an account") =>
        {
            Some(REGISTER.to_owned())
        }
        _ => None,
    }
}

/// How a key gets onto a board.
const REGISTER: &str = "the board knows no account for your key: on a future-p2p hub, its owner \
     adds the line `NAME KEY-TYPE BASE64` (your public key, e.g. ~/.ssh/id_ed25519.pub) to the \
     hub's STATE/users file, or runs the hub with --signup and you log in once with `-l NAME` \
     in --ssh-args; on pico.sh, create an account with `ssh pico.sh`. Use the registered key \
     with `-i KEY` in --ssh-args";

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(reason: &str) -> CliError {
        CliError::Board(BoardError::Connect {
            host: "127.0.0.1:2222".into(),
            reason: reason.into(),
        })
    }

    #[test]
    fn each_board_mistake_has_its_fix() {
        let down = next_step(&connect("Connection refused (os error 111)")).unwrap();
        assert!(down.contains("start the hub") && down.contains("127.0.0.1:2222"));
        let key = next_step(&connect("Host key verification failed.")).unwrap();
        assert!(key.contains("StrictHostKeyChecking=accept-new"));
        let unregistered = CliError::Member(ClusterError::Board(BoardError::Command {
            command: "user".into(),
            status: Some(1),
            stderr: "ERROR: you need to create an account before using the remote cli: no account is registered for this key".into(),
        }));
        assert!(next_step(&unregistered).unwrap().contains("--signup"));
        assert!(next_step(&CliError::PayloadTooLarge { limit: 1 }).is_none());
    }
}
