//! Public-key authentication the way OpenSSH users expect: keys in the ssh-agent
//! (`SSH_AUTH_SOCK`) first, then `-i` files, or the default `~/.ssh/id_ed25519`, `id_ecdsa`,
//! `id_rsa`. A passphrase-protected file is never prompted for (the client runs unattended);
//! if it is the only key, the error says to load it into the agent.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use russh::client::{Handle, Handler};
use russh::keys::agent::client::AgentClient;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey};
use thiserror::Error;

/// Why authentication failed.
#[derive(Debug, Error)]
pub enum AuthError {
    /// The only usable key file is encrypted and no agent offered it.
    #[error(
        "{path}: the key is encrypted and no ssh-agent offered it; run `ssh-add {path}` (with SSH_AUTH_SOCK set) or use an unencrypted key"
    )]
    EncryptedKey {
        /// The key file.
        path: String,
    },
    /// An explicitly named key file could not be loaded.
    #[error("identity file {path}: {reason}")]
    KeyFile {
        /// The key file.
        path: String,
        /// Why.
        reason: String,
    },
    /// No agent key and no key file.
    #[error("no SSH key to log in with: no ssh-agent keys and none of {tried} exists")]
    NoKey {
        /// Files looked for.
        tried: String,
    },
    /// The server refused every key.
    #[error("{user}@{host}: permission denied for every key tried ({tried})")]
    Refused {
        /// Login name.
        user: String,
        /// `host:port`.
        host: String,
        /// Keys tried.
        tried: String,
    },
    /// The connection failed during authentication.
    #[error("ssh error during authentication: {0}")]
    Ssh(#[from] russh::Error),
}

/// Which keys to offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// `-i` files; if empty, the OpenSSH defaults that exist.
    pub identity_files: Vec<PathBuf>,
    /// The ssh-agent socket to ask first (usually `$SSH_AUTH_SOCK`); `None`: no agent.
    pub agent: Option<PathBuf>,
}

/// `~/.ssh/id_ed25519`, `id_ecdsa`, `id_rsa`.
pub fn default_identity_files() -> Vec<PathBuf> {
    let Some(home) = std::env::home_dir() else {
        return Vec::new();
    };
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|n| home.join(".ssh").join(n))
        .collect()
}

async fn rsa_hash<H: Handler>(handle: &Handle<H>, key: &PublicKey) -> Option<HashAlg> {
    if !key.algorithm().is_rsa() {
        return None;
    }
    handle
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten()
}

/// Logs in as `user`, trying the agent's keys and then key files.
pub(crate) async fn authenticate<H: Handler>(
    handle: &mut Handle<H>,
    user: &str,
    host: &str,
    creds: &Credentials,
) -> Result<(), AuthError> {
    let mut tried = Vec::new();
    let mut agent_keys = 0usize;
    if let Some(socket) = &creds.agent {
        match AgentClient::connect_uds(socket).await {
            Ok(mut agent) => {
                let identities = agent.request_identities().await.unwrap_or_default();
                for identity in identities {
                    let key = identity.public_key().into_owned();
                    agent_keys += 1;
                    tried.push(format!("agent:{}", key.fingerprint(HashAlg::Sha256)));
                    let hash = rsa_hash(handle, &key).await;
                    match handle
                        .authenticate_publickey_with(user, key, hash, &mut agent)
                        .await
                    {
                        Ok(r) if r.success() => return Ok(()),
                        Ok(_) => {}
                        Err(e) => tracing::debug!(error = %e, "agent could not sign"),
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "no usable ssh-agent"),
        }
    }
    let explicit = !creds.identity_files.is_empty();
    let files = if explicit {
        creds.identity_files.clone()
    } else {
        default_identity_files()
    };
    let mut encrypted: Option<String> = None;
    let mut loaded = 0usize;
    for path in &files {
        let shown = path.display().to_string();
        let key = match load_key(path) {
            Ok(Some(key)) => key,
            Ok(None) if !explicit => continue,
            Ok(None) => {
                return Err(AuthError::KeyFile {
                    path: shown,
                    reason: "no such file".to_owned(),
                });
            }
            Err(russh::keys::Error::KeyIsEncrypted) => {
                encrypted.get_or_insert(shown);
                continue;
            }
            Err(e) => {
                return Err(AuthError::KeyFile {
                    path: shown,
                    reason: e.to_string(),
                });
            }
        };
        loaded += 1;
        tried.push(shown);
        let hash = rsa_hash(handle, key.public_key()).await;
        let result = handle
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), hash))
            .await?;
        if result.success() {
            return Ok(());
        }
    }
    if let Some(path) = encrypted
        && loaded == 0
        && agent_keys == 0
    {
        return Err(AuthError::EncryptedKey { path });
    }
    if tried.is_empty() {
        return Err(AuthError::NoKey {
            tried: files
                .iter()
                .map(|f| f.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
        });
    }
    Err(AuthError::Refused {
        user: user.to_owned(),
        host: host.to_owned(),
        tried: tried.join(", "),
    })
}

/// Loads an unencrypted private key; `Ok(None)` if the file does not exist.
fn load_key(path: &Path) -> Result<Option<russh::keys::PrivateKey>, russh::keys::Error> {
    match russh::keys::load_secret_key(path, None) {
        Ok(k) => Ok(Some(k)),
        Err(russh::keys::Error::IO(e)) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}
