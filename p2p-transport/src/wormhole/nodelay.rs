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
//! `/proc/self/fd`); elsewhere it does nothing and transfers are merely slower.
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
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<libc::c_int>().ok())
        .filter(|&fd| peer_of(fd) == Some(peer))
        .filter(|&fd| {
            let one: libc::c_int = 1;
            // SAFETY: setsockopt only reads `one`; on a descriptor closed or reused since
            // it was listed, it fails or sets a harmless option on a TCP socket to `peer`.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_NODELAY,
                    (&one as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                ) == 0
            }
        })
        .count()
}

/// The address a descriptor is connected to, if it is a connected IP socket.
#[cfg(target_os = "linux")]
fn peer_of(fd: libc::c_int) -> Option<SocketAddr> {
    // SAFETY: a zeroed sockaddr_storage is a valid buffer; getpeername writes at most `len`
    // bytes into it and fails harmlessly on descriptors that are not sockets.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    let ok = unsafe {
        libc::getpeername(
            fd,
            (&mut storage as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    } == 0;
    if !ok {
        return None;
    }
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let addr: libc::sockaddr_in =
                unsafe { *(&storage as *const libc::sockaddr_storage).cast() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(addr.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let addr: libc::sockaddr_in6 =
                unsafe { *(&storage as *const libc::sockaddr_storage).cast() };
            let ip = std::net::Ipv6Addr::from(addr.sin6_addr.s6_addr);
            Some(SocketAddr::from((ip, u16::from_be(addr.sin6_port))))
        }
        _ => None,
    }
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
