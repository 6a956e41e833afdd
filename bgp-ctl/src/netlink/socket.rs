//! rtnetlink sockets on tokio: requests with acknowledgements, dumps, and multicast
//! subscriptions that report receive-queue overruns.

use std::{io, os::fd::AsRawFd};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_MULTIPART, NLM_F_REQUEST, NetlinkBuffer,
    NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{AsyncSocket, AsyncSocketExt, SocketAddr, TokioSocket, protocols::NETLINK_ROUTE};
use tracing::{debug, warn};

use super::NetlinkError;

/// Receive buffer for one datagram. The kernel caps a dump datagram at 32 KiB and
/// notifications are one message each, so this never truncates.
const DATAGRAM: usize = 64 * 1024;

/// Requests in flight at once in [`NetlinkSocket::request_batch`]: their acks must fit in
/// the default receive buffer (an ack skb costs well under 1 KiB of it).
const BATCH_WINDOW: usize = 128;

/// How often a dump interrupted by concurrent changes (`NLM_F_DUMP_INTR`) is retried.
const DUMP_ATTEMPTS: u32 = 5;

/// `NLMSGERR_ATTR_MSG`: the extended-ack text attribute of an error message.
const NLMSGERR_ATTR_MSG: u16 = 1;

/// One message received from the kernel: its header flags and its decoded body.
pub(crate) struct Received {
    /// `NLM_F_*` flags of the message (`NLM_F_REPLACE` on a replacing notification).
    pub flags: u16,
    /// The rtnetlink message.
    pub message: RouteNetlinkMessage,
}

/// What a subscription read returns.
pub(crate) enum Notifications {
    /// Messages of one datagram, in kernel order.
    Messages(Vec<Received>),
    /// The kernel dropped notifications because the receive queue was full
    /// (`ENOBUFS`): the subscriber's picture is stale and must be re-dumped.
    Overrun,
}

/// An rtnetlink socket (`NETLINK_ROUTE`) driven by tokio.
pub(crate) struct NetlinkSocket {
    socket: TokioSocket,
    seq: u32,
    buf: Vec<u8>,
}

impl NetlinkSocket {
    /// A socket for requests and dumps: strict dump filtering, extended and capped acks.
    pub fn requests() -> Result<Self, NetlinkError> {
        require_runtime()?;
        let mut socket = TokioSocket::new(NETLINK_ROUTE)
            .map_err(|e| NetlinkError::socket("socket(NETLINK_ROUTE)", e))?;
        let sock = socket.socket_mut();
        sock.bind_auto()
            .map_err(|e| NetlinkError::socket("bind", e))?;
        // Lets the kernel filter dumps by table, protocol and device (ignored before 4.20).
        sock.set_netlink_get_strict_chk(true)
            .map_err(|e| NetlinkError::socket("NETLINK_GET_STRICT_CHK", e))?;
        sock.set_ext_ack(true)
            .map_err(|e| NetlinkError::socket("NETLINK_EXT_ACK", e))?;
        sock.set_cap_ack(true)
            .map_err(|e| NetlinkError::socket("NETLINK_CAP_ACK", e))?;
        Ok(Self {
            socket,
            seq: 0,
            buf: Vec::with_capacity(DATAGRAM),
        })
    }

    /// A socket that receives the notifications of `groups` (`RTNLGRP_*` numbers), with a
    /// receive buffer of `receive_buffer` bytes (forced past `rmem_max` when allowed).
    /// Route notifications of protocol `drop_protocol` are discarded in the kernel.
    pub fn subscribe(
        groups: &[u32],
        receive_buffer: usize,
        drop_protocol: Option<u8>,
    ) -> Result<Self, NetlinkError> {
        require_runtime()?;
        let mut socket = TokioSocket::new(NETLINK_ROUTE)
            .map_err(|e| NetlinkError::socket("socket(NETLINK_ROUTE)", e))?;
        let sock = socket.socket_mut();
        // Before joining any group, so no unfiltered notification is queued.
        if let Some(protocol) = drop_protocol {
            drop_route_protocol(sock.as_raw_fd(), protocol)?;
        }
        sock.bind(&SocketAddr::new(0, 0))
            .map_err(|e| NetlinkError::socket("bind", e))?;
        set_receive_buffer(sock.as_raw_fd(), receive_buffer)?;
        for &group in groups {
            sock.add_membership(group)
                .map_err(|e| NetlinkError::socket("NETLINK_ADD_MEMBERSHIP", e))?;
        }
        Ok(Self {
            socket,
            seq: 0,
            buf: Vec::with_capacity(DATAGRAM),
        })
    }

    /// Reads the next datagram of notifications. Cancel-safe: a datagram is either
    /// consumed and returned, or left in the socket.
    pub async fn notifications(&mut self) -> Result<Notifications, NetlinkError> {
        match self.recv().await {
            Ok(()) => Ok(Notifications::Messages(
                decode(&self.buf)
                    .into_iter()
                    .filter_map(|(header, payload)| match payload {
                        NetlinkPayload::InnerMessage(message) => Some(Received {
                            flags: header.flags,
                            message,
                        }),
                        _ => None,
                    })
                    .collect(),
            )),
            Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => Ok(Notifications::Overrun),
            Err(e) => Err(NetlinkError::socket("recv", e)),
        }
    }

    /// Dumps what `request` selects (`NLM_F_DUMP` is added). A dump that the kernel marks
    /// inconsistent (`NLM_F_DUMP_INTR`: the table changed under it) is retried.
    pub async fn dump(
        &mut self,
        what: &'static str,
        request: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        for attempt in 1..=DUMP_ATTEMPTS {
            let seq = self.send(request.clone(), NLM_F_DUMP).await?;
            let mut out = Vec::new();
            let mut interrupted = false;
            'datagrams: loop {
                self.recv()
                    .await
                    .map_err(|e| NetlinkError::socket("recv", e))?;
                for (header, payload) in decode(&self.buf) {
                    if header.sequence_number != seq {
                        continue;
                    }
                    interrupted |= header.flags & NLM_F_DUMP_INTR != 0;
                    match payload {
                        NetlinkPayload::InnerMessage(m) => out.push(m),
                        // A dump that fails part-way ends with the errno in its DONE.
                        NetlinkPayload::Done(done) if done.code < 0 => {
                            return Err(NetlinkError::Kernel {
                                request: format!("{what} dump"),
                                source: io::Error::from_raw_os_error(done.code.saturating_neg()),
                                detail: None,
                            });
                        }
                        NetlinkPayload::Done(_) => break 'datagrams,
                        NetlinkPayload::Error(e) => {
                            return Err(kernel_error(format!("{what} dump"), &e));
                        }
                        NetlinkPayload::Noop | NetlinkPayload::Overrun(_) => {}
                        _ => {}
                    }
                    if header.flags & NLM_F_MULTIPART == 0 {
                        break 'datagrams;
                    }
                }
            }
            if !interrupted {
                debug!(what, entries = out.len(), "dump complete");
                return Ok(out);
            }
            debug!(
                what,
                attempt, "dump interrupted by concurrent changes, retrying"
            );
        }
        Err(NetlinkError::DumpInterrupted {
            what,
            attempts: DUMP_ATTEMPTS,
        })
    }

    /// Sends one request with `flags` (plus `NLM_F_REQUEST | NLM_F_ACK`) and waits for
    /// its acknowledgement. `describe` names it in errors.
    pub async fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
        describe: impl FnOnce() -> String,
    ) -> Result<(), NetlinkError> {
        let seq = self.send(message, flags | NLM_F_ACK).await?;
        loop {
            self.recv()
                .await
                .map_err(|e| NetlinkError::socket("recv", e))?;
            for (header, payload) in decode(&self.buf) {
                if header.sequence_number != seq {
                    continue;
                }
                return match payload {
                    NetlinkPayload::Error(e) if e.code.is_none() => Ok(()),
                    NetlinkPayload::Error(e) => Err(kernel_error(describe(), &e)),
                    other => Err(NetlinkError::Protocol {
                        request: describe(),
                        what: format!("message type {}", other.message_type()),
                    }),
                };
            }
        }
    }

    /// Sends many requests, keeping up to [`BATCH_WINDOW`] in flight, and returns each
    /// one's outcome in order. `describe(i)` names request `i` in errors.
    pub async fn request_batch(
        &mut self,
        messages: Vec<(RouteNetlinkMessage, u16)>,
        describe: impl Fn(usize) -> String,
    ) -> Result<Vec<Result<(), NetlinkError>>, NetlinkError> {
        let total = messages.len();
        let mut results: Vec<Option<Result<(), NetlinkError>>> = (0..total).map(|_| None).collect();
        let mut pending = messages.into_iter();
        // Requests get consecutive sequence numbers from `first` on.
        let first = self.seq.wrapping_add(1);
        let (mut sent, mut done) = (0usize, 0usize);
        while done < total {
            while sent - done < BATCH_WINDOW {
                let Some((message, flags)) = pending.next() else {
                    break;
                };
                self.send(message, flags | NLM_F_ACK).await?;
                sent += 1;
            }
            self.recv()
                .await
                .map_err(|e| NetlinkError::socket("recv", e))?;
            for (header, payload) in decode(&self.buf) {
                let index = header.sequence_number.wrapping_sub(first) as usize;
                let Some(slot) = results.get_mut(index).filter(|_| index < sent) else {
                    continue;
                };
                if slot.is_some() {
                    continue;
                }
                *slot = Some(match payload {
                    NetlinkPayload::Error(e) if e.code.is_none() => Ok(()),
                    NetlinkPayload::Error(e) => Err(kernel_error(describe(index), &e)),
                    other => Err(NetlinkError::Protocol {
                        request: describe(index),
                        what: format!("message type {}", other.message_type()),
                    }),
                });
                done += 1;
            }
        }
        Ok(results
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                r.unwrap_or_else(|| {
                    Err(NetlinkError::Protocol {
                        request: describe(i),
                        what: "no acknowledgement".to_owned(),
                    })
                })
            })
            .collect())
    }

    /// Sends one get request (no dump) and returns the kernel's single answer.
    pub async fn get(
        &mut self,
        message: RouteNetlinkMessage,
        describe: impl FnOnce() -> String,
    ) -> Result<RouteNetlinkMessage, NetlinkError> {
        let seq = self.send(message, 0).await?;
        loop {
            self.recv()
                .await
                .map_err(|e| NetlinkError::socket("recv", e))?;
            for (header, payload) in decode(&self.buf) {
                if header.sequence_number != seq {
                    continue;
                }
                return match payload {
                    NetlinkPayload::InnerMessage(m) => Ok(m),
                    NetlinkPayload::Error(e) if e.code.is_some() => {
                        Err(kernel_error(describe(), &e))
                    }
                    other => Err(NetlinkError::Protocol {
                        request: describe(),
                        what: format!("message type {}", other.message_type()),
                    }),
                };
            }
        }
    }

    async fn send(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> Result<u32, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut bytes = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut bytes);
        let kernel = SocketAddr::new(0, 0);
        self.socket
            .send_to(&bytes, &kernel)
            .await
            .map_err(|e| NetlinkError::socket("send", e))?;
        Ok(self.seq)
    }

    async fn recv(&mut self) -> io::Result<()> {
        self.buf.clear();
        self.buf.reserve(DATAGRAM);
        self.socket.recv(&mut self.buf).await
    }
}

/// tokio's socket registration panics outside a runtime: say so as an error instead.
fn require_runtime() -> Result<(), NetlinkError> {
    tokio::runtime::Handle::try_current()
        .map(|_| ())
        .map_err(|_| NetlinkError::NoRuntime)
}

/// Splits a datagram into messages. A message that does not decode is logged and
/// skipped; a malformed length ends the datagram (nothing after it can be framed).
fn decode(datagram: &[u8]) -> Vec<(NetlinkHeader, NetlinkPayload<RouteNetlinkMessage>)> {
    let mut out = Vec::new();
    let mut offset = 0usize;
    while let Some(rest) = datagram.get(offset..) {
        if rest.is_empty() {
            break;
        }
        let len = match NetlinkBuffer::new_checked(rest) {
            Ok(buffer) => buffer.length() as usize,
            Err(e) => {
                warn!(error = %e, "malformed netlink datagram, rest ignored");
                break;
            }
        };
        let Some(bytes) = rest.get(..len) else {
            break;
        };
        match NetlinkMessage::<RouteNetlinkMessage>::deserialize(bytes) {
            Ok(message) => out.push(message.into_parts()),
            Err(e) => warn!(error = %e, "undecodable netlink message skipped"),
        }
        // Messages are 4-byte aligned; `new_checked` guarantees len >= header length.
        offset = offset.saturating_add((len + 3) & !3);
    }
    out
}

fn kernel_error(request: String, error: &netlink_packet_core::ErrorMessage) -> NetlinkError {
    NetlinkError::Kernel {
        request,
        source: io::Error::from_raw_os_error(error.raw_code().saturating_neg()),
        detail: extended_ack_message(&error.header),
    }
}

/// The `NLMSGERR_ATTR_MSG` text of an error whose payload is the request's header
/// (acks are capped) followed by extended-ack attributes.
fn extended_ack_message(payload: &[u8]) -> Option<String> {
    // The echoed request: its header only (NETLINK_CAP_ACK).
    let mut attrs = payload.get(16..)?;
    while attrs.len() >= 4 {
        let len = u16::from_ne_bytes([*attrs.first()?, *attrs.get(1)?]) as usize;
        let kind = u16::from_ne_bytes([*attrs.get(2)?, *attrs.get(3)?]) & 0x3fff;
        if len < 4 {
            return None;
        }
        let value = attrs.get(4..len)?;
        if kind == NLMSGERR_ATTR_MSG {
            let text = value.split(|&b| b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        attrs = attrs.get((len + 3) & !3..).unwrap_or_default();
    }
    None
}

/// Attaches a socket filter that drops `RTM_NEWROUTE`/`RTM_DELROUTE` notifications of
/// route protocol `protocol` (ours: a large kernel FIB of our own would otherwise flood
/// and overrun the pod-route watcher with routes it ignores). One notification is one
/// datagram, so the filter sees exactly one message.
fn drop_route_protocol(fd: i32, protocol: u8) -> Result<(), NetlinkError> {
    use libc::{BPF_ABS, BPF_B, BPF_H, BPF_JEQ, BPF_JMP, BPF_K, BPF_LD, BPF_RET, sock_filter};
    const RTM_NEWROUTE: u16 = 24;
    const RTM_DELROUTE: u16 = 25;
    // `nlmsg_type` is in host order; BPF half-word loads read network order.
    let as_loaded = |t: u16| u32::from(u16::from_be_bytes(t.to_ne_bytes()));
    let op = |code: u32, jt: u8, jf: u8, k: u32| sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let mut program = [
        op(BPF_LD | BPF_H | BPF_ABS, 0, 0, 4),
        op(BPF_JMP | BPF_JEQ | BPF_K, 2, 0, as_loaded(RTM_NEWROUTE)),
        op(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, as_loaded(RTM_DELROUTE)),
        op(BPF_RET | BPF_K, 0, 0, u32::MAX),
        // rtm_protocol: nlmsghdr (16 bytes) + family, dst_len, src_len, tos, table.
        op(BPF_LD | BPF_B | BPF_ABS, 0, 0, 21),
        op(BPF_JMP | BPF_JEQ | BPF_K, 0, 1, u32::from(protocol)),
        op(BPF_RET | BPF_K, 0, 0, 0),
        op(BPF_RET | BPF_K, 0, 0, u32::MAX),
    ];
    let fprog = libc::sock_fprog {
        len: program.len() as u16,
        filter: program.as_mut_ptr(),
    };
    // SAFETY: a valid fd; the kernel copies the program during the call.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(NetlinkError::socket(
            "SO_ATTACH_FILTER",
            io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Sets the receive buffer: `SO_RCVBUFFORCE` (root) goes past `net.core.rmem_max`;
/// otherwise `SO_RCVBUF`, which the kernel clamps.
fn set_receive_buffer(fd: i32, bytes: usize) -> Result<(), NetlinkError> {
    let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
    for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: a valid fd and a c_int option value of the right size.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&value as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return Ok(());
        }
    }
    Err(NetlinkError::socket(
        "SO_RCVBUF",
        io::Error::last_os_error(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extended_ack_text_is_found_after_the_echoed_header() {
        let mut payload = vec![0u8; 16];
        let text = b"Nexthop device is not up\0";
        let len = (4 + text.len()) as u16;
        payload.extend_from_slice(&len.to_ne_bytes());
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        payload.extend_from_slice(text);
        assert_eq!(
            extended_ack_message(&payload).as_deref(),
            Some("Nexthop device is not up")
        );
    }

    #[test]
    fn truncated_extended_ack_is_ignored_without_panic() {
        let mut payload = vec![0u8; 16];
        payload.extend_from_slice(&200u16.to_ne_bytes());
        payload.extend_from_slice(&NLMSGERR_ATTR_MSG.to_ne_bytes());
        payload.extend_from_slice(b"short");
        assert_eq!(extended_ack_message(&payload), None);
        assert_eq!(extended_ack_message(&[1, 2, 3]), None);
    }

    #[test]
    fn sockets_outside_a_runtime_are_an_error_not_a_panic() {
        assert!(matches!(
            NetlinkSocket::requests(),
            Err(NetlinkError::NoRuntime)
        ));
    }

    #[test]
    fn garbage_datagrams_decode_to_nothing() {
        assert!(decode(&[]).is_empty());
        assert!(decode(&[0xff; 7]).is_empty());
        // A header claiming more bytes than there are.
        let mut bytes = vec![0u8; 16];
        bytes[..4].copy_from_slice(&1000u32.to_ne_bytes());
        assert!(decode(&bytes).is_empty());
    }
}
