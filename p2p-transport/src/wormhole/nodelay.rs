//! TCP_NODELAY on the `magic-wormhole` crate's transit sockets (a workaround).
//!
//! magic-wormhole 0.8.1 writes every transit record as three writes (length, nonce,
//! ciphertext) on a socket that keeps Nagle's algorithm on, and exposes no way to reach
//! that socket. With small records in both directions (small payloads, acks),
//! the second write waits for the ACK of the first, which the peer delays by up to 40 ms:
//! measured here, a warm session ran 353 tasks/s before and 15,253 tasks/s after. Sessions
//! have since moved to their own channel (`channel.rs`, TCP_NODELAY from the start); one-shot
//! transfers still go through the crate and need this.
//!
//! The crate reports the transit's peer address once connected ([`TransitInfo`]); this
//! module finds this process's sockets connected to that address and sets TCP_NODELAY on
//! them. Another socket to the same address (a second transfer through the same relay) gets
//! it too, which is what it needs anyway; nothing else is touched. Linux only (it reads
//! `/proc/self/fd`); elsewhere it does nothing and transfers are merely slower. Reaching a
//! socket the crate owns by its number is this module's one unsafe operation.
//! Drop it when the crate sets TCP_NODELAY itself or buffers a record into one write.

use std::net::SocketAddr;

use magic_wormhole::transit::TransitInfo;

/// Sets TCP_NODELAY on the sockets of the transit connection `info` describes.
pub(crate) fn on_transit_connected(info: &TransitInfo) {
    let count = set_nodelay_towards(info.peer_addr);
    tracing::debug!(?info, sockets = count, "transit connected; TCP_NODELAY set");
}

#[cfg(target_os = "linux")]
fn set_nodelay_towards(peer: SocketAddr) -> usize {
    use rustix::fd::{BorrowedFd, RawFd};

    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<RawFd>().ok())
        .filter(|&raw| {
            // SAFETY: the one unsafe operation of this module, justified: the wormhole crate
            // owns the transit socket and offers no handle on it, so it is found by number.
            // The borrow lives for this closure only, and the calls below merely query or
            // set options: on a descriptor closed or reused since it was listed they fail,
            // or set TCP_NODELAY on another TCP socket to `peer`, which is harmless.
            #[allow(unsafe_code)]
            let fd = unsafe { BorrowedFd::borrow_raw(raw) };
            let to_peer = rustix::net::getpeername(fd)
                .ok()
                .flatten()
                .and_then(|addr| SocketAddr::try_from(addr).ok())
                == Some(peer);
            to_peer && rustix::net::sockopt::set_tcp_nodelay(fd, true).is_ok()
        })
        .count()
}

#[cfg(not(target_os = "linux"))]
fn set_nodelay_towards(_peer: SocketAddr) -> usize {
    0
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn finds_and_sets_nodelay_on_sockets_to_a_peer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = listener.local_addr().unwrap();
        let client = std::net::TcpStream::connect(peer).unwrap();
        let (_server, _) = listener.accept().unwrap();
        assert!(!client.nodelay().unwrap());
        assert_eq!(set_nodelay_towards(peer), 1);
        assert!(client.nodelay().unwrap());
        let nobody: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert_eq!(set_nodelay_towards(nobody), 0);
    }
}
