//! [`BoardError`]: everything that can go wrong on the client side of the board.

use thiserror::Error;

use super::auth::AuthError;
use super::known_hosts::HostKeyError;
use super::ssh_args::SshArgsError;

/// Everything that can go wrong on the client side.
#[derive(Debug, Error)]
pub enum BoardError {
    /// `ssh_args` could not be used natively.
    #[error(transparent)]
    SshArgs(#[from] SshArgsError),
    /// The host key was unknown or changed.
    #[error(transparent)]
    HostKey(#[from] HostKeyError),
    /// Login failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// TCP or SSH connection failure.
    #[error("cannot connect to {host}: {reason}")]
    Connect {
        /// `host:port`.
        host: String,
        /// Why.
        reason: String,
    },
    /// Connecting took too long.
    #[error("timed out connecting to {host}")]
    Timeout {
        /// `host:port`.
        host: String,
    },
    /// The SSH session failed.
    #[error("ssh: {0}")]
    Ssh(#[from] russh::Error),
    /// The system ssh could not be started.
    #[error("cannot run {program}: {reason}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        reason: String,
    },
    /// The remote command failed (its stderr says why, e.g. `access denied`).
    #[error("`{command}` failed (exit status {status:?}): {stderr}")]
    Command {
        /// The command.
        command: String,
        /// Exit status, if one was sent.
        status: Option<u32>,
        /// Its stderr, trimmed.
        stderr: String,
    },
    /// A topic name the server would split or misread.
    #[error("invalid topic {0:?}: use letters, digits and . _ - / only")]
    InvalidTopic(String),
    /// An access-list entry the server would split or misread.
    #[error("invalid access list entry {0:?}")]
    InvalidAccess(String),
    /// A line to send contains a line break.
    #[error("a board line cannot contain a line break")]
    LineBreak,
    /// A line to send is too long for the framer at the other end.
    #[error("board line of {len} bytes is longer than {max}")]
    LineTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The topic is closed, or disconnected while reconnecting.
    #[error("the topic is {0}")]
    NotConnected(&'static str),
    /// `user` printed something unexpected.
    #[error("unexpected `user` output: {0:?}")]
    UserOutput(String),
    /// The account host could not say who we are (see [`super::Board::account`]).
    #[error(
        "cannot learn your username from `ssh {host} user`: {source}. Register your SSH key there \
         (`ssh {host}` signs you up on pico.sh), or give your username (future-p2p --user, \
         R option future.p2p.user)"
    )]
    Account {
        /// The host asked.
        host: String,
        /// Why it failed (kept whole, so callers can still tell a refused key from an
        /// unknown host key).
        source: Box<BoardError>,
    },
}
