//! The native backend: russh over TCP, through `-J` jump hosts with `direct-tcpip` channels
//! (each hop's host key checked and each hop authenticated like the target).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client::{self, Handle};
use russh::keys::PublicKey;
use russh::keys::PublicKeyOrCertificate;

use super::BoardError;
use super::auth::{Credentials, authenticate};
use super::known_hosts::{HostKeyError, HostKeyPolicy};
use super::ssh_args::Hop;

/// Checks the server's host key against the policy and remembers why it refused.
pub(crate) struct HostCheck {
    host: String,
    port: u16,
    policy: Arc<HostKeyPolicy>,
    refusal: Arc<Mutex<Option<HostKeyError>>>,
}

impl client::Handler for HostCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let key = match key {
            PublicKeyOrCertificate::PublicKey { key, .. } => key.clone(),
            PublicKeyOrCertificate::Certificate(cert) => {
                PublicKey::new(cert.public_key().clone(), "")
            }
        };
        match self.policy.check(&self.host, self.port, &key) {
            Ok(()) => Ok(true),
            Err(e) => {
                if let Ok(mut slot) = self.refusal.lock() {
                    *slot = Some(e);
                }
                Ok(false)
            }
        }
    }
}

/// Everything needed to reach the target.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    /// Jump hosts, then the target (whose user is always set).
    pub hops: Vec<Hop>,
    pub policy: Arc<HostKeyPolicy>,
    pub creds: Credentials,
    pub connect_timeout: Duration,
    pub keepalive: Option<Duration>,
    /// Login name for hops without one (the local user, like OpenSSH).
    pub local_user: String,
}

/// An authenticated connection to the target, and the hop connections it runs through.
pub(crate) struct NativeConn {
    pub target: Handle<HostCheck>,
    _hops: Vec<Handle<HostCheck>>,
}

impl NativeConn {
    pub fn is_closed(&self) -> bool {
        self.target.is_closed()
    }
}

fn label(hop: &Hop) -> String {
    format!("{}:{}", hop.host, hop.port)
}

/// russh's defaults with AES-256-GCM ahead of ChaCha20-Poly1305 (the client's order decides
/// the cipher). With the ring backend GCM runs on the CPU's AES and carry-less multiply
/// instructions; in `board_bench`'s 50-reader fan-out the cipher's share of CPU samples fell
/// from 18% (ChaCha20-Poly1305) to 3%. ChaCha20 stays as the fallback for servers without GCM.
fn preferred() -> russh::Preferred {
    const CIPHERS: &[russh::cipher::Name] = &[
        russh::cipher::AES_256_GCM,
        russh::cipher::CHACHA20_POLY1305,
        russh::cipher::AES_256_CTR,
        russh::cipher::AES_192_CTR,
        russh::cipher::AES_128_CTR,
    ];
    russh::Preferred {
        cipher: std::borrow::Cow::Borrowed(CIPHERS),
        ..russh::Preferred::default()
    }
}

/// Connects through every hop to the target.
pub(crate) async fn connect(route: &Route) -> Result<NativeConn, BoardError> {
    let config = Arc::new(client::Config {
        preferred: preferred(),
        keepalive_interval: route.keepalive,
        keepalive_max: 3,
        nodelay: true,
        ..Default::default()
    });
    let mut handles: Vec<Handle<HostCheck>> = Vec::new();
    for hop in &route.hops {
        let refusal = Arc::new(Mutex::new(None));
        let handler = HostCheck {
            host: hop.host.clone(),
            port: hop.port,
            policy: Arc::clone(&route.policy),
            refusal: Arc::clone(&refusal),
        };
        let attempt = async {
            match handles.last() {
                None => {
                    client::connect(Arc::clone(&config), (hop.host.as_str(), hop.port), handler)
                        .await
                }
                Some(previous) => {
                    let channel = previous
                        .channel_open_direct_tcpip(
                            hop.host.clone(),
                            u32::from(hop.port),
                            "127.0.0.1",
                            0,
                        )
                        .await?;
                    client::connect_stream(Arc::clone(&config), channel.into_stream(), handler)
                        .await
                }
            }
        };
        let connected = tokio::time::timeout(route.connect_timeout, attempt)
            .await
            .map_err(|_| BoardError::Timeout { host: label(hop) })?;
        let mut handle = match connected {
            Ok(h) => h,
            Err(e) => {
                let refused = refusal.lock().ok().and_then(|mut r| r.take());
                return Err(match refused {
                    Some(host_key) => BoardError::HostKey(host_key),
                    None => BoardError::Connect {
                        host: label(hop),
                        reason: e.to_string(),
                    },
                });
            }
        };
        let user = hop.user.clone().unwrap_or_else(|| route.local_user.clone());
        authenticate(&mut handle, &user, &label(hop), &route.creds).await?;
        tracing::debug!(host = %label(hop), %user, "ssh hop authenticated");
        handles.push(handle);
    }
    let target = handles.pop().ok_or_else(|| BoardError::Connect {
        host: String::new(),
        reason: "no destination".to_owned(),
    })?;
    Ok(NativeConn {
        target,
        _hops: handles,
    })
}
