//! The server's Ed25519 host key: generated on first start, then loaded from the state
//! directory, so a restart does not change the hub's identity (clients' known_hosts stay
//! valid).

use std::path::{Path, PathBuf};

use russh::keys::PrivateKey;
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::Ed25519Keypair;
use thiserror::Error;

/// File name of the host key inside the state directory.
pub const HOST_KEY_FILE: &str = "ssh_host_ed25519_key";

/// Why the host key could not be loaded or created.
#[derive(Debug, Error)]
pub enum HostKeyError {
    /// Reading or writing the key file failed.
    #[error("host key {path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file exists but is not an unencrypted OpenSSH private key.
    #[error("host key {path}: {reason}")]
    Invalid {
        /// The key file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
}

/// Loads `dir/ssh_host_ed25519_key`, or generates and saves it (mode 0600) if missing.
pub fn load_or_generate(dir: &Path) -> Result<PrivateKey, HostKeyError> {
    let path = dir.join(HOST_KEY_FILE);
    let io = |source| HostKeyError::Io {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            crate::statedir::tighten(&path, crate::statedir::FILE_MODE).map_err(io)?;
            let key =
                PrivateKey::from_openssh(text.as_bytes()).map_err(|e| HostKeyError::Invalid {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            if key.is_encrypted() {
                return Err(HostKeyError::Invalid {
                    path,
                    reason: "the key is encrypted".to_owned(),
                });
            }
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = generate_key_file(&path)?;
            tracing::info!(path = %path.display(), "generated board host key");
            Ok(key)
        }
        Err(e) => Err(io(e)),
    }
}

/// Generates an Ed25519 key and writes it to `path` in OpenSSH format, readable by its owner
/// only (the same format `ssh-keygen -t ed25519 -N ''` writes). Refuses to overwrite.
pub fn generate_key_file(path: &Path) -> Result<PrivateKey, HostKeyError> {
    let io = |source| HostKeyError::Io {
        path: path.to_owned(),
        source,
    };
    let seed: [u8; 32] = rand::random();
    let key = PrivateKey::from(Ed25519Keypair::from_seed(&seed));
    let text = key
        .to_openssh(LineEnding::LF)
        .map_err(|e| HostKeyError::Invalid {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    crate::statedir::create_private(path, text.as_bytes()).map_err(io)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_once_then_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_generate(dir.path()).unwrap();
        let b = load_or_generate(dir.path()).unwrap();
        assert_eq!(a.public_key(), b.public_key());
        std::fs::write(dir.path().join(HOST_KEY_FILE), "garbage").unwrap();
        assert!(matches!(
            load_or_generate(dir.path()),
            Err(HostKeyError::Invalid { .. })
        ));
    }
}
