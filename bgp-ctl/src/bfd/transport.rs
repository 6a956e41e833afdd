//! UDP for single-hop BFD (RFC 5881): one listening socket per address family on the
//! control port 3784, and one sending socket per session.
//!
//! - Sending (section 4): from a source port in 49152-65535, the same for the whole
//!   session, bound to the session's local address (and interface, when it has one),
//!   with TTL / Hop Limit 255 and the Internet Control precedence (CS6) in the TOS /
//!   Traffic Class.
//! - Receiving (section 5, GTSM): the listeners ask the kernel for each datagram's TTL
//!   or Hop Limit (`IP_RECVTTL`, `IPV6_RECVHOPLIMIT`) and its destination address and
//!   arrival interface (`IP_PKTINFO`, `IPV6_RECVPKTINFO`). [`Datagram::hop_limit`] is
//!   `None` when the kernel gave none, and such a datagram must be discarded like one
//!   with a TTL below 255.

use std::{
    io, mem,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket},
    num::NonZeroU32,
    os::fd::AsRawFd,
    ptr,
};

use socket2::{Domain, Protocol, SockAddr, SockAddrStorage, Socket, Type};
use tokio::io::{Interest, unix::AsyncFd};

/// UDP port of single-hop BFD Control packets (RFC 5881 section 4).
pub const CONTROL_PORT: u16 = 3784;
/// First source port a session may use (RFC 5881 section 4).
pub const SOURCE_PORT_MIN: u16 = 49152;
/// TTL / Hop Limit of every packet we send, and the only one we accept (GTSM).
pub const GTSM_HOP_LIMIT: u8 = 255;
/// TOS / Traffic Class of our packets: precedence 6, Internet Control (CS6).
const TOS_NETWORK_CONTROL: u32 = 0xc0;
/// Receive buffer: a Control packet is at most 255 octets; anything longer is cut,
/// which the decoder handles (its Length field says how much of it counts).
const RECV_BUFFER: usize = 512;

/// IPv4 or IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    /// The family of `addr`.
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// A datagram received on the control port, with what the kernel said about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// The UDP payload (cut at the receive buffer).
    pub payload: Vec<u8>,
    /// Sender's address and port.
    pub source: SocketAddr,
    /// The destination address of the IP header, if the kernel reported it.
    pub destination: Option<IpAddr>,
    /// The interface it arrived on (0 if unknown).
    pub ifindex: u32,
    /// The TTL / Hop Limit it arrived with, if the kernel reported it.
    pub hop_limit: Option<u8>,
}

/// The socket that receives every Control packet of one address family.
pub struct Listener {
    fd: AsyncFd<Socket>,
    family: Family,
}

impl Listener {
    /// Binds the wildcard address of `family` on `port` (normally [`CONTROL_PORT`]).
    /// Needs a tokio runtime.
    pub fn bind(family: Family, port: u16) -> io::Result<Self> {
        let (domain, addr) = match family {
            Family::V4 => (
                Domain::IPV4,
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
            ),
            Family::V6 => (
                Domain::IPV6,
                SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)),
            ),
        };
        let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_nonblocking(true)?;
        match family {
            Family::V4 => {
                set_int(&socket, libc::IPPROTO_IP, libc::IP_RECVTTL, 1)?;
                set_int(&socket, libc::IPPROTO_IP, libc::IP_PKTINFO, 1)?;
            }
            Family::V6 => {
                // IPv4 arrives on its own socket, never as mapped addresses here.
                socket.set_only_v6(true)?;
                set_int(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, 1)?;
                set_int(&socket, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, 1)?;
            }
        }
        socket.bind(&addr.into())?;
        // SAFETY: the AsyncFd owns the socket, so its fd stays open and the same for the
        // AsyncFd's whole life.
        let fd = unsafe { AsyncFd::register_with_interest(socket, Interest::READABLE) }?;
        Ok(Self { fd, family })
    }

    /// The family this listener receives.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Waits for the next datagram.
    pub async fn recv(&self) -> io::Result<Datagram> {
        loop {
            let mut guard = self.fd.readable().await?;
            match guard.try_io(|fd| recv_datagram(fd.get_ref().as_raw_fd())) {
                Ok(result) => return result,
                Err(_would_block) => continue,
            }
        }
    }
}

/// The socket a session sends from.
#[derive(Debug)]
pub struct SessionSocket {
    socket: UdpSocket,
    peer: SocketAddr,
}

impl SessionSocket {
    /// A socket bound to `local` (on interface `ifindex`, if given) and a free source
    /// port in 49152-65535 (trying from `port_hint` on), sending to `peer` on `port`
    /// (normally [`CONTROL_PORT`]). IPv6 link-local addresses take `ifindex` as scope.
    pub fn open(
        local: IpAddr,
        ifindex: Option<NonZeroU32>,
        peer: IpAddr,
        port: u16,
        port_hint: u16,
    ) -> io::Result<Self> {
        let scope = ifindex.map_or(0, NonZeroU32::get);
        let (domain, family) = match local {
            IpAddr::V4(_) => (Domain::IPV4, Family::V4),
            IpAddr::V6(_) => (Domain::IPV6, Family::V6),
        };
        if Family::of(peer) != family {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("peer {peer} and local address {local} are of different families"),
            ));
        }
        let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
        match family {
            Family::V4 => {
                socket.set_ttl_v4(u32::from(GTSM_HOP_LIMIT))?;
                socket.set_tos_v4(TOS_NETWORK_CONTROL)?;
                if ifindex.is_some() {
                    socket.bind_device_by_index_v4(ifindex)?;
                }
            }
            Family::V6 => {
                socket.set_only_v6(true)?;
                socket.set_unicast_hops_v6(u32::from(GTSM_HOP_LIMIT))?;
                socket.set_tclass_v6(TOS_NETWORK_CONTROL)?;
                if ifindex.is_some() {
                    socket.bind_device_by_index_v6(ifindex)?;
                }
            }
        }
        let span = u32::from(u16::MAX - SOURCE_PORT_MIN) + 1;
        let first = u32::from(port_hint.max(SOURCE_PORT_MIN) - SOURCE_PORT_MIN);
        let mut last_error = None;
        // Every port of the range at most once, from the hint on.
        for i in 0..span {
            let offset = u16::try_from((first + i) % span).unwrap_or(0);
            let source = SOURCE_PORT_MIN + offset;
            match socket.bind(&with_scope(local, source, scope).into()) {
                Ok(()) => {
                    last_error = None;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => last_error = Some(e),
                Err(e) => return Err(e),
            }
        }
        if let Some(e) = last_error {
            return Err(e);
        }
        socket.set_nonblocking(true)?;
        // Nothing is ever read from this socket (peers send to the control port): the
        // smallest receive buffer bounds what stray datagrams to the source port can hold.
        socket.set_recv_buffer_size(0)?;
        Ok(Self {
            socket: socket.into(),
            peer: with_scope(peer, port, scope),
        })
    }

    /// The local address and source port.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Sends one packet without waiting: a full socket buffer drops it (BFD tolerates
    /// loss up to the multiplier; the caller counts the error).
    pub fn send(&self, packet: &[u8]) -> io::Result<()> {
        self.socket.send_to(packet, self.peer).map(drop)
    }
}

fn with_scope(addr: IpAddr, port: u16, scope: u32) -> SocketAddr {
    match addr {
        IpAddr::V4(a) => SocketAddr::V4(SocketAddrV4::new(a, port)),
        IpAddr::V6(a) => SocketAddr::V6(SocketAddrV6::new(a, port, 0, scope)),
    }
}

fn set_int(
    socket: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: a valid socket fd, and a pointer/length pair describing a live c_int.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            name,
            ptr::from_ref(&value).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One `recvmsg` with its control messages.
fn recv_datagram(fd: libc::c_int) -> io::Result<Datagram> {
    let mut buf = [0u8; RECV_BUFFER];
    // u64 elements keep the control buffer aligned for cmsghdr.
    let mut control = [0u64; 32];
    let mut name = SockAddrStorage::zeroed();
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { mem::zeroed() };
    // SAFETY: sockaddr_storage is a sockaddr type of this platform.
    msg.msg_name = ptr::from_mut(unsafe { name.view_as::<libc::sockaddr_storage>() }).cast();
    msg.msg_namelen = name.size_of();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = mem::size_of_val(&control);
    // SAFETY: every pointer in msg refers to a live buffer of the stated length.
    let n = unsafe { libc::recvmsg(fd, &mut msg, 0) };
    let Ok(len) = usize::try_from(n) else {
        return Err(io::Error::last_os_error());
    };
    let payload = buf.get(..len.min(buf.len())).unwrap_or_default().to_vec();
    // SAFETY: the kernel wrote a socket address of msg_namelen octets into `name`.
    let source = unsafe { SockAddr::new(name, msg.msg_namelen) }
        .as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "datagram without a source"))?;
    let mut datagram = Datagram {
        payload,
        source,
        destination: None,
        ifindex: 0,
        hop_limit: None,
    };
    // SAFETY: msg describes the control buffer the kernel filled; CMSG_FIRSTHDR and
    // CMSG_NXTHDR stay within msg_controllen and return null at its end.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    while !cmsg.is_null() {
        // SAFETY: non-null cmsg pointers from CMSG_*HDR point at a complete header.
        let header = unsafe { ptr::read_unaligned(cmsg) };
        match (header.cmsg_level, header.cmsg_type) {
            (libc::IPPROTO_IP, libc::IP_TTL) | (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT) => {
                if let Some(v) = cmsg_data::<libc::c_int>(cmsg, &header) {
                    datagram.hop_limit = u8::try_from(v).ok();
                }
            }
            (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                if let Some(info) = cmsg_data::<libc::in_pktinfo>(cmsg, &header) {
                    datagram.destination = Some(IpAddr::V4(Ipv4Addr::from(u32::from_be(
                        info.ipi_addr.s_addr,
                    ))));
                    datagram.ifindex = u32::try_from(info.ipi_ifindex).unwrap_or(0);
                }
            }
            (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                if let Some(info) = cmsg_data::<libc::in6_pktinfo>(cmsg, &header) {
                    datagram.destination = Some(IpAddr::V6(Ipv6Addr::from(info.ipi6_addr.s6_addr)));
                    datagram.ifindex = info.ipi6_ifindex;
                }
            }
            _ => {}
        }
        // SAFETY: as for CMSG_FIRSTHDR.
        cmsg = unsafe { libc::CMSG_NXTHDR(&msg, cmsg) };
    }
    Ok(datagram)
}

/// The payload of a control message, if it is long enough to hold a `T`.
fn cmsg_data<T: Copy>(cmsg: *const libc::cmsghdr, header: &libc::cmsghdr) -> Option<T> {
    // SAFETY: CMSG_LEN is arithmetic.
    let need = unsafe { libc::CMSG_LEN(mem::size_of::<T>() as libc::c_uint) } as usize;
    if header.cmsg_len < need {
        return None;
    }
    // SAFETY: cmsg_len says the data holds at least a T; read_unaligned needs no
    // alignment.
    Some(unsafe { ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<T>()) })
}
