//! [`BoardConfig`]: how to reach the board (destination, `ssh_args`, backend, reconnect
//! policy), and the native route it resolves to.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::auth::Credentials;
use super::known_hosts::HostKeyPolicy;
use super::native::Route;
use super::ssh_args::{Hop, SshArgs, SshArgsError, Strictness, parse_ssh_args};

/// Which program carries the SSH connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// russh, arguments parsed natively.
    Native,
    /// The system `ssh`, arguments passed verbatim.
    SystemSsh {
        /// Usually `ssh`.
        program: PathBuf,
    },
}

/// Reconnect policy: delays double from `initial` up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// First delay.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Give up after this many failed attempts in a row (`None`: never).
    pub max_attempts: Option<u32>,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(30),
            max_attempts: None,
        }
    }
}

impl Backoff {
    /// Delay before attempt `n` (0-based).
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// How to reach the board.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoardConfig {
    /// `host` or `user@host`.
    pub destination: String,
    /// Settings parsed from `ssh_args` (native backend).
    pub ssh: SshArgs,
    /// `ssh_args` as given (system-ssh backend).
    pub raw_ssh_args: Vec<String>,
    /// Backend.
    pub backend: Backend,
    /// The ssh-agent socket asked for keys first (native backend); from `SSH_AUTH_SOCK` by
    /// default, `None` to use key files only.
    pub agent: Option<PathBuf>,
    /// Reconnect policy for topics.
    pub backoff: Backoff,
}

impl BoardConfig {
    /// The native backend with `ssh_args` parsed like OpenSSH would.
    pub fn from_ssh_args<S: AsRef<str>>(
        destination: &str,
        ssh_args: &[S],
    ) -> Result<BoardConfig, SshArgsError> {
        Ok(BoardConfig {
            destination: destination.to_owned(),
            ssh: parse_ssh_args(ssh_args)?,
            raw_ssh_args: ssh_args.iter().map(|s| s.as_ref().to_owned()).collect(),
            backend: Backend::Native,
            agent: std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from),
            backoff: Backoff::default(),
        })
    }

    /// The system-ssh backend: `ssh [ssh_args…] -T destination command`.
    pub fn system_ssh<S: AsRef<str>>(destination: &str, ssh_args: &[S]) -> BoardConfig {
        BoardConfig {
            destination: destination.to_owned(),
            ssh: SshArgs::default(),
            raw_ssh_args: ssh_args.iter().map(|s| s.as_ref().to_owned()).collect(),
            backend: Backend::SystemSsh {
                program: PathBuf::from("ssh"),
            },
            agent: std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from),
            backoff: Backoff::default(),
        }
    }

    /// The native route: jump hosts and target, keys, host-key policy.
    pub(super) fn route(&self) -> Route {
        let (dest_user, host) = match self.destination.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_owned()), h.to_owned()),
            None => (None, self.destination.clone()),
        };
        let local_user = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "root".to_owned());
        let user = dest_user
            .or_else(|| self.ssh.user.clone())
            .unwrap_or_else(|| local_user.clone());
        let mut hops = self.ssh.jump.clone();
        hops.push(Hop {
            user: Some(user),
            host,
            port: self.ssh.port.unwrap_or(22),
        });
        let files = if self.ssh.known_hosts.is_empty() {
            std::env::home_dir()
                .map(|h| vec![h.join(".ssh").join("known_hosts")])
                .unwrap_or_default()
        } else {
            self.ssh
                .known_hosts
                .iter()
                .map(|p| expand_tilde(p))
                .collect()
        };
        Route {
            hops,
            policy: Arc::new(HostKeyPolicy {
                files,
                accept_new: self.ssh.strict == Some(Strictness::AcceptNew),
            }),
            creds: Credentials {
                identity_files: self
                    .ssh
                    .identity_files
                    .iter()
                    .map(|p| expand_tilde(p))
                    .collect(),
                agent: self.agent.clone(),
            },
            connect_timeout: self.ssh.connect_timeout.unwrap_or(Duration::from_secs(30)),
            keepalive: match self.ssh.alive_interval {
                Some(d) if d.is_zero() => None,
                Some(d) => Some(d),
                None => Some(Duration::from_secs(15)),
            },
            local_user,
        }
    }
}

fn expand_tilde(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), std::env::home_dir()) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_max() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
            max_attempts: None,
        };
        assert_eq!(b.delay(0), Duration::from_millis(100));
        assert_eq!(b.delay(3), Duration::from_millis(800));
        assert_eq!(b.delay(40), Duration::from_secs(1));
    }

    #[test]
    fn route_from_ssh_args() {
        let c = BoardConfig::from_ssh_args(
            "bob@hub",
            &[
                "-p",
                "2222",
                "-J",
                "j1,j2:23",
                "-o",
                "StrictHostKeyChecking=accept-new",
            ],
        )
        .unwrap();
        let r = c.route();
        assert_eq!(r.hops.len(), 3);
        assert_eq!(
            r.hops[2],
            Hop {
                user: Some("bob".into()),
                host: "hub".into(),
                port: 2222
            }
        );
        assert_eq!(r.hops[1].port, 23);
        assert!(r.policy.accept_new);
    }
}
