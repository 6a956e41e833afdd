//! TCP sockets of BGP sessions: TCP MD5 signatures (RFC 2385), GTSM (RFC 5082), TTL,
//! source address. What socket2 does not offer is set with `setsockopt` directly.
//!
//! MD5 keys live on the socket that receives the SYN: the connecting socket for our own
//! connections, the listening socket (one key per peer address, or per prefix for
//! dynamic neighbors) for the peer's; accepted sockets inherit them. GTSM on the passive
//! side: the listener is shared by peers with different settings, so it saves each SYN
//! (`TCP_SAVE_SYN`) and the session checks the SYN's TTL before using the connection;
//! `IP_MINTTL` on the accepted socket then guards the rest of it.

use std::{
    io,
    mem::{size_of, zeroed},
    net::{IpAddr, SocketAddr},
    os::fd::{AsFd, AsRawFd},
};

use ipnet::IpNet;
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use super::peer_config::{LocalInfo, MD5_MAX_KEY_LEN, PeerConfig};

/// Listen backlog: connections the kernel queues before we accept them.
const LISTEN_BACKLOG: i32 = 128;

/// `TCP_MD5SIG_FLAG_PREFIX` (linux/tcp.h): the key applies to a prefix.
const TCP_MD5SIG_FLAG_PREFIX: u8 = 1;

/// `struct tcp_md5sig` (linux/tcp.h), which the libc crate does not define for Linux.
#[repr(C)]
struct TcpMd5Sig {
    addr: libc::sockaddr_storage,
    flags: u8,
    prefixlen: u8,
    keylen: u16,
    ifindex: libc::c_int,
    key: [u8; MD5_MAX_KEY_LEN],
}

fn setsockopt<T>(fd: &impl AsFd, level: i32, name: i32, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live `T` of the given size for the duration of the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_fd().as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether the socket is IPv6 (`SO_DOMAIN`).
fn is_v6(fd: &impl AsFd) -> io::Result<bool> {
    let mut domain: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `domain` and `len` are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&mut domain as *mut libc::c_int).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(domain == libc::AF_INET6)
}

/// Installs (`Some`) or removes (`None`) the TCP MD5 key for segments from `peer` (a host
/// or, with `TCP_MD5SIG_EXT`, a prefix) on a socket. On an IPv6 socket an IPv4 peer is
/// given as a v4-mapped address.
pub fn set_md5(fd: &impl AsFd, peer: IpNet, key: Option<&[u8]>) -> io::Result<()> {
    let key = key.unwrap_or_default();
    if key.len() > MD5_MAX_KEY_LEN {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("TCP MD5 key of {} octets (at most 80)", key.len()),
        ));
    }
    let v6_socket = is_v6(fd)?;
    // SAFETY: all-zero is a valid value of this plain C struct.
    let mut sig: TcpMd5Sig = unsafe { zeroed() };
    let (addr, prefixlen) = match (peer.addr(), v6_socket) {
        (IpAddr::V4(a), false) => {
            // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in.
            let sin = unsafe { &mut *(&mut sig.addr as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from(a).to_be();
            (IpAddr::V4(a), peer.prefix_len())
        }
        // The kernel takes a v4-mapped address with the IPv4 prefix length.
        (IpAddr::V4(a), true) => (IpAddr::V6(a.to_ipv6_mapped()), peer.prefix_len()),
        (IpAddr::V6(a), true) => (IpAddr::V6(a), peer.prefix_len()),
        (IpAddr::V6(a), false) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("IPv6 peer {a} on an IPv4 socket"),
            ));
        }
    };
    if let IpAddr::V6(a) = addr {
        // SAFETY: sockaddr_storage is large and aligned enough for sockaddr_in6.
        let sin6 = unsafe { &mut *(&mut sig.addr as *mut _ as *mut libc::sockaddr_in6) };
        sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        sin6.sin6_addr.s6_addr = a.octets();
    }
    let host = peer.prefix_len() == peer.max_prefix_len();
    let option = if host {
        libc::TCP_MD5SIG
    } else {
        sig.flags = TCP_MD5SIG_FLAG_PREFIX;
        sig.prefixlen = prefixlen;
        libc::TCP_MD5SIG_EXT
    };
    sig.keylen = key.len() as u16;
    sig.key[..key.len()].copy_from_slice(key);
    setsockopt(fd, libc::IPPROTO_TCP, option, &sig)
}

/// Sets the TTL (hop limit) of the socket's packets.
pub fn set_ttl(fd: &impl AsFd, ttl: u8) -> io::Result<()> {
    let sock = SockRef::from(fd);
    if is_v6(fd)? {
        sock.set_unicast_hops_v6(u32::from(ttl))
    } else {
        sock.set_ttl_v4(u32::from(ttl))
    }
}

/// GTSM: the kernel drops this socket's segments that arrive with a lower TTL (hop limit).
pub fn set_min_ttl(fd: &impl AsFd, min: u8) -> io::Result<()> {
    let value = libc::c_int::from(min);
    if is_v6(fd)? {
        setsockopt(fd, libc::IPPROTO_IPV6, libc::IPV6_MINHOPCOUNT, &value)
    } else {
        setsockopt(fd, libc::IPPROTO_IP, libc::IP_MINTTL, &value)
    }
}

/// The TTL (hop limit) of the SYN that opened an accepted connection, if its listener
/// saved it (`TCP_SAVE_SYN`). Reading consumes the saved SYN.
pub fn saved_syn_ttl(fd: &impl AsFd) -> io::Result<Option<u8>> {
    let mut buf = [0u8; 512];
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: `buf` and `len` are valid for writes of the sizes given.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_fd().as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_SAVED_SYN,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        let e = io::Error::last_os_error();
        // ENOENT: nothing saved (the listener did not ask, or it was read already).
        return if e.raw_os_error() == Some(libc::ENOENT) {
            Ok(None)
        } else {
            Err(e)
        };
    }
    let headers = buf.get(..len as usize).unwrap_or_default();
    Ok(match headers.first().map(|b| b >> 4) {
        Some(4) => headers.get(8).copied(),
        Some(6) => headers.get(7).copied(),
        _ => None,
    })
}

/// A listening socket for BGP: address reuse, IPv6 only on an IPv6 address (IPv4 has its
/// own listener, so each family has its own MD5 keys), SYN-ACKs with TTL 255 so that
/// GTSM peers accept them, SYNs saved for the GTSM check.
pub fn listen(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    set_ttl(&socket, 255)?;
    setsockopt(&socket, libc::IPPROTO_TCP, libc::TCP_SAVE_SYN, &1i32)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Opens our connection to the peer: TTL and GTSM, MD5 key, source address, no Nagle.
pub async fn connect(peer: &PeerConfig, local: &LocalInfo) -> io::Result<TcpStream> {
    let remote = SocketAddr::new(peer.remote_addr, peer.port);
    let socket = Socket::new(
        Domain::for_address(remote),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    set_ttl(&socket, peer.send_ttl(local))?;
    if let Some(min) = peer.min_ttl() {
        set_min_ttl(&socket, min)?;
    }
    if let Some(key) = &peer.md5_password {
        set_md5(&socket, IpNet::from(peer.remote_addr), Some(key.as_bytes()))?;
    }
    if let Some(src) = peer.local_addr {
        socket.bind(&SocketAddr::new(src, 0).into())?;
    }
    let socket = TcpSocket::from_std_stream(socket.into());
    socket.connect(remote).await
}

/// Applies the peer's TTL settings to a connection it opened (the MD5 key came with the
/// listener).
pub fn configure_accepted(
    stream: &TcpStream,
    peer: &PeerConfig,
    local: &LocalInfo,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    set_ttl(stream, peer.send_ttl(local))?;
    if let Some(min) = peer.min_ttl() {
        set_min_ttl(stream, min)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn md5_keys_for_hosts_and_prefixes_install_and_remove() {
        for addr in ["127.0.0.1:0", "[::1]:0"] {
            let l = listen(addr.parse().unwrap()).unwrap();
            for peer in [
                "192.0.2.7/32",
                "192.0.2.0/24",
                "2001:db8::7/128",
                "2001:db8::/64",
            ] {
                let peer: IpNet = peer.parse().unwrap();
                if addr.starts_with("127") && peer.addr().is_ipv6() {
                    assert!(set_md5(&l, peer, Some(b"secret")).is_err());
                    continue;
                }
                set_md5(&l, peer, Some(b"secret")).unwrap_or_else(|e| panic!("{peer}: {e}"));
                set_md5(&l, peer, None).unwrap_or_else(|e| panic!("del {peer}: {e}"));
            }
            // Removing a key that is not there is an error from the kernel.
            assert!(set_md5(&l, "192.0.2.99/32".parse().unwrap(), None).is_err());
            assert!(set_md5(&l, "192.0.2.1/32".parse().unwrap(), Some(&[0; 81])).is_err());
        }
    }

    #[tokio::test]
    async fn the_saved_syn_gives_the_ttl_the_peer_sent() {
        for (addr, ttl) in [("127.0.0.1:0", 7u8), ("127.0.0.1:0", 255), ("[::1]:0", 9)] {
            let l = listen(addr.parse().unwrap()).unwrap();
            let target = l.local_addr().unwrap();
            let socket = Socket::new(
                Domain::for_address(target),
                Type::STREAM,
                Some(Protocol::TCP),
            )
            .unwrap();
            set_ttl(&socket, ttl).unwrap();
            socket.set_nonblocking(true).unwrap();
            let client = TcpSocket::from_std_stream(socket.into());
            let (c, a) = tokio::join!(client.connect(target), l.accept());
            let (_c, (accepted, _)) = (c.unwrap(), a.unwrap());
            assert_eq!(saved_syn_ttl(&accepted).unwrap(), Some(ttl), "{addr}");
            assert_eq!(saved_syn_ttl(&accepted).unwrap(), None, "read once");
        }
    }

    #[tokio::test]
    async fn min_ttl_makes_the_kernel_drop_segments_with_a_lower_ttl() {
        for addr in ["127.0.0.1:0", "[::1]:0"] {
            let l = listen(addr.parse().unwrap()).unwrap();
            set_min_ttl(&l, 254).unwrap();
            let target = l.local_addr().unwrap();
            for (ttl, reaches) in [(253u8, false), (254, true)] {
                let socket = Socket::new(
                    Domain::for_address(target),
                    Type::STREAM,
                    Some(Protocol::TCP),
                )
                .unwrap();
                set_ttl(&socket, ttl).unwrap();
                socket.set_nonblocking(true).unwrap();
                let client = TcpSocket::from_std_stream(socket.into());
                let r = tokio::time::timeout(
                    std::time::Duration::from_millis(500),
                    client.connect(target),
                )
                .await;
                assert_eq!(r.is_ok_and(|c| c.is_ok()), reaches, "{addr} TTL {ttl}");
            }
        }
    }
}
