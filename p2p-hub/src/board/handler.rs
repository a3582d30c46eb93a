//! russh glue: one [`Connection`] per TCP connection, identifying the key and starting a
//! session task per channel.

use std::net::SocketAddr;
use std::sync::Arc;

use russh::keys::HashAlg;
use russh::server::{Auth, ChannelOpenHandle, Msg, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId};

use super::registry::RegistryError;
use super::session::{self, Peer};
use super::state::{State, lock};
use super::topic::PUBLIC_NAMESPACE;

/// Creates a [`Connection`] per accepted socket.
pub(crate) struct Acceptor {
    pub state: Arc<State>,
}

impl russh::server::Server for Acceptor {
    type Handler = Connection;

    fn new_client(&mut self, peer: Option<SocketAddr>) -> Connection {
        Connection {
            state: Arc::clone(&self.state),
            addr: peer.map_or_else(|| "unknown".to_owned(), |a| a.to_string()),
            peer: None,
        }
    }

    fn handle_session_error(&mut self, error: russh::Error) {
        tracing::debug!(%error, "board connection ended with an error");
    }
}

/// One client connection.
pub(crate) struct Connection {
    state: Arc<State>,
    addr: String,
    peer: Option<Arc<Peer>>,
}

impl Connection {
    /// Maps a verified key to a user: registered, signed up now, or anonymous `public`.
    fn identify(&self, login: &str, key: &russh::keys::PublicKey) -> Peer {
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        let mut registry = lock(&self.state.registry);
        let mut signup_refused = None;
        let identity = match registry.lookup(key) {
            Some(id) => Some(id),
            None if self.state.signup => match registry.register(login, key) {
                Ok(id) => {
                    tracing::info!(user = %id.user, %fingerprint, "signed up a new board user");
                    Some(id)
                }
                Err(error @ (RegistryError::Taken(_) | RegistryError::Username(_))) => {
                    signup_refused = Some(error.to_string());
                    None
                }
                Err(error) => {
                    tracing::warn!(%error, "could not persist a signup");
                    None
                }
            },
            None => None,
        };
        match identity {
            Some(id) => Peer {
                user: id.user,
                anonymous: false,
                key_name: id.key_name,
                fingerprint,
                addr: self.addr.clone(),
                signup_refused: None,
            },
            None => Peer {
                user: PUBLIC_NAMESPACE.to_owned(),
                anonymous: true,
                key_name: String::new(),
                fingerprint,
                addr: self.addr.clone(),
                signup_refused,
            },
        }
    }
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    /// Every key is let in (docs/pico-compat.md §2.1, §8.4): unknown keys are the anonymous
    /// user `public`.
    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let peer = self.identify(user, key.public_key);
        tracing::debug!(user = %peer.user, addr = %peer.addr, "board login");
        self.peer = Some(Arc::new(peer));
        Ok(Auth::Accept)
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(peer) = self.peer.clone() else {
            // Dropping the handle rejects the channel.
            return Ok(());
        };
        reply.accept().await;
        tokio::spawn(session::run(channel, Arc::clone(&self.state), peer));
        Ok(())
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        _data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_success(channel)
    }

    /// No subsystems (no sftp): refuse and close the channel, as upstream does.
    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)?;
        session.close(channel)
    }

    /// Refused (a reply only goes out if the client asked for one; upstream never replies,
    /// which hangs clients that do ask).
    async fn env_request(
        &mut self,
        channel: ChannelId,
        _name: &str,
        _value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single: bool,
        _protocol: &str,
        _cookie: &str,
        _screen: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }
}
