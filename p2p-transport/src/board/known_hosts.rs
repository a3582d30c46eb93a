//! Host key checking against OpenSSH `known_hosts` files.
//!
//! A host is looked up as `host` on port 22 and `[host]:port` otherwise; hashed entries
//! (`|1|…`) work. Unknown hosts are refused unless trust on first use is asked for, in which
//! case the key is appended to the first file. A key that differs from the recorded one is
//! always refused: that is what a man in the middle looks like.

use std::path::{Path, PathBuf};

use russh::keys::{HashAlg, PublicKey};
use thiserror::Error;

/// Why a host key was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HostKeyError {
    /// Not in any known_hosts file, and trust on first use is off.
    #[error(
        "host key for {host} is unknown ({fingerprint}); add it to {known_hosts} or allow trust on first use (StrictHostKeyChecking=accept-new)"
    )]
    Unknown {
        /// `host` or `[host]:port`.
        host: String,
        /// SHA256 fingerprint of the offered key.
        fingerprint: String,
        /// Where it was looked up.
        known_hosts: String,
    },
    /// Recorded with a different key.
    #[error(
        "HOST KEY FOR {host} HAS CHANGED ({fingerprint}, {file} line {line} records another key); refusing to connect"
    )]
    Changed {
        /// `host` or `[host]:port`.
        host: String,
        /// SHA256 fingerprint of the offered key.
        fingerprint: String,
        /// The file with the old key.
        file: String,
        /// Its line.
        line: usize,
    },
    /// A known_hosts file could not be read or written.
    #[error("known_hosts {file}: {reason}")]
    File {
        /// The file.
        file: String,
        /// What went wrong.
        reason: String,
    },
}

/// Where keys are checked and whether unknown ones are learned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostKeyPolicy {
    /// Files to check, in order; new keys are appended to the first.
    pub files: Vec<PathBuf>,
    /// Trust on first use.
    pub accept_new: bool,
}

fn host_label(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

impl HostKeyPolicy {
    /// Accepts `key` for `host:port` or says why not.
    pub fn check(&self, host: &str, port: u16, key: &PublicKey) -> Result<(), HostKeyError> {
        let fingerprint = key.fingerprint(HashAlg::Sha256).to_string();
        for file in &self.files {
            match russh::keys::check_known_hosts_path(host, port, key, file) {
                Ok(true) => return Ok(()),
                Ok(false) => {}
                Err(russh::keys::Error::KeyChanged { line }) => {
                    return Err(HostKeyError::Changed {
                        host: host_label(host, port),
                        fingerprint,
                        file: file.display().to_string(),
                        line,
                    });
                }
                Err(e) => {
                    return Err(HostKeyError::File {
                        file: file.display().to_string(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        let known_hosts = self
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect::<Vec<_>>()
            .join(", ");
        if !self.accept_new {
            return Err(HostKeyError::Unknown {
                host: host_label(host, port),
                fingerprint,
                known_hosts,
            });
        }
        if let Some(first) = self.files.first().filter(|f| !is_null(f)) {
            learn(first, &host_label(host, port), key).map_err(|reason| HostKeyError::File {
                file: first.display().to_string(),
                reason,
            })?;
            tracing::info!(host = %host_label(host, port), %fingerprint, file = %first.display(), "learned new host key");
        }
        Ok(())
    }
}

/// Appends `label key` to `file`, creating it (and its directory) if needed.
fn learn(file: &Path, label: &str, key: &PublicKey) -> Result<(), String> {
    use std::io::Write;
    let key = key.to_openssh().map_err(|e| e.to_string())?;
    let existing = match std::fs::read(file) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e.to_string()),
    };
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    }
    let separator = if existing.is_empty() || existing.ends_with(b"\n") {
        ""
    } else {
        "\n"
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map_err(|e| e.to_string())?;
    f.write_all(format!("{separator}{label} {key}\n").as_bytes())
        .map_err(|e| e.to_string())
}

fn is_null(path: &Path) -> bool {
    path == Path::new("/dev/null")
}

#[cfg(test)]
mod tests {
    use super::*;
    use russh::keys::PrivateKey;
    use russh::keys::ssh_key::private::Ed25519Keypair;

    fn key(seed: u8) -> PublicKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
            .public_key()
            .clone()
    }

    #[test]
    fn unknown_learned_changed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("known_hosts");
        let strict = HostKeyPolicy {
            files: vec![file.clone()],
            accept_new: false,
        };
        let tofu = HostKeyPolicy {
            files: vec![file.clone()],
            accept_new: true,
        };
        assert!(matches!(
            strict.check("h", 2222, &key(1)),
            Err(HostKeyError::Unknown { .. })
        ));
        tofu.check("h", 2222, &key(1)).unwrap();
        strict.check("h", 2222, &key(1)).unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(text.starts_with("[h]:2222 ssh-ed25519 "), "{text}");
        assert!(matches!(
            tofu.check("h", 2222, &key(2)),
            Err(HostKeyError::Changed { line: 1, .. })
        ));
        // Another port is another host.
        assert!(matches!(
            strict.check("h", 22, &key(2)),
            Err(HostKeyError::Unknown { .. })
        ));
    }
}
