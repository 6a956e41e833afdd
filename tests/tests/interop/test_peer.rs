//! A scripted BGP peer for what no real daemon sends: malformed UPDATEs. It speaks OPEN,
//! KEEPALIVE and NOTIFICATION through bgp-wire and writes UPDATEs as raw bytes built
//! here. It proposes hold time 0 (RFC 4271 4.2), so neither side sends keepalives and
//! the script needs no timer; what we send is read on a thread and queued.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context, Result, bail};
use bgp_wire::{Capability, CodecContext, Family, Message, Notification, Open, frame_length};
use bytes::BytesMut;
use lab::Netns;

/// How long the peer waits for one message.
const WAIT: Duration = Duration::from_secs(30);

/// What the reader thread saw: a message, the end of the connection, or garbage.
type Received = Result<Option<Message>, String>;

/// The scripted peer's end of an Established session.
pub struct TestPeer {
    stream: TcpStream,
    received: mpsc::Receiver<Received>,
}

impl TestPeer {
    /// Connects from namespace `ns` to `to` as `asn` (4-octet AS, IPv4 unicast, route
    /// refresh, and `extra` capabilities) with identifier `id`, and completes the
    /// OPEN/KEEPALIVE exchange. A connection refused while the daemon holds the session
    /// idle (after a failure) is tried again, within [`WAIT`].
    pub fn establish(
        ns: &Netns,
        to: SocketAddr,
        asn: u32,
        id: Ipv4Addr,
        extra: &[Capability],
    ) -> Result<Self> {
        let start = std::time::Instant::now();
        loop {
            match Self::try_establish(ns, to, asn, id, extra) {
                Ok(peer) => return Ok(peer),
                Err(e) if start.elapsed() < WAIT => {
                    eprintln!("test peer: {e:#}; trying again");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn try_establish(
        ns: &Netns,
        to: SocketAddr,
        asn: u32,
        id: Ipv4Addr,
        extra: &[Capability],
    ) -> Result<Self> {
        // The socket lives in the namespace it was created in, whichever thread uses it.
        let stream = ns
            .enter(|| TcpStream::connect_timeout(&to, WAIT))?
            .with_context(|| format!("connecting to {to}"))?;
        stream.set_nodelay(true)?;
        let reader = stream.try_clone()?;
        let (tx, received) = mpsc::channel();
        std::thread::spawn(move || read_messages(reader, tx));
        let mut peer = TestPeer { stream, received };
        let mut caps = vec![
            Capability::MultiProtocol(Family::IPV4_UNICAST),
            Capability::RouteRefresh,
        ];
        caps.extend_from_slice(extra);
        peer.send(&Message::Open(Open::new(asn, 0, id, caps)))?;
        match peer.recv()? {
            Some(Message::Open(o)) => {
                if !o.four_octet_as() {
                    bail!("the daemon's OPEN has no 4-octet AS capability: {o:?}");
                }
            }
            other => bail!("expected the daemon's OPEN, got {other:?}"),
        }
        peer.send(&Message::Keepalive)?;
        match peer.recv()? {
            Some(Message::Keepalive) => Ok(peer),
            other => bail!("expected a KEEPALIVE, got {other:?}"),
        }
    }

    /// Closes the connection without a NOTIFICATION, as a crashing speaker's kernel does.
    pub fn close(self) -> Result<()> {
        self.stream
            .shutdown(std::net::Shutdown::Both)
            .context("closing the test peer's connection")
    }

    /// Sends a message encoded by bgp-wire.
    pub fn send(&mut self, m: &Message) -> Result<()> {
        let mut out = BytesMut::new();
        m.encode(&ctx(), &mut out)?;
        self.send_raw(&out)
    }

    /// Sends bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream
            .write_all(bytes)
            .context("sending to the daemon")
    }

    /// The next message from the daemon; `None` when it closed the connection.
    pub fn recv(&mut self) -> Result<Option<Message>> {
        match self.received.recv_timeout(WAIT) {
            Ok(Ok(m)) => Ok(m),
            Ok(Err(e)) => bail!("from the daemon: {e}"),
            Err(_) => bail!("nothing from the daemon within {WAIT:?}"),
        }
    }

    /// Skips UPDATEs and KEEPALIVEs until a NOTIFICATION; fails if the connection closes
    /// first.
    pub fn expect_notification(&mut self) -> Result<Notification> {
        loop {
            match self.recv()? {
                Some(Message::Notification(n)) => return Ok(n),
                Some(_) => continue,
                None => bail!("the daemon closed the connection without a NOTIFICATION"),
            }
        }
    }
}

/// What the session negotiates: 4-octet ASNs, no extended messages, eBGP.
fn ctx() -> CodecContext {
    CodecContext::new(true, false, true)
}

/// Frames and decodes what the daemon sends until the connection ends.
fn read_messages(mut stream: TcpStream, tx: mpsc::Sender<Received>) {
    let mut buf = BytesMut::new();
    let mut chunk = [0u8; 4096];
    loop {
        match frame_length(&buf, &ctx()) {
            Err(e) => {
                let _ = tx.send(Err(format!("bad header: {e}")));
                return;
            }
            Ok(Some(n)) if n <= buf.len() => {
                let frame = buf.split_to(n);
                let m = Message::decode(&frame, &ctx()).map_err(|e| format!("{e}"));
                if tx.send(m.map(Some)).is_err() {
                    return;
                }
                continue;
            }
            Ok(_) => {}
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => {
                let _ = tx.send(Ok(None));
                return;
            }
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    }
}

/// Raw UPDATEs and path attributes (RFC 4271 4.3), for crafting malformed ones.
pub mod raw {
    use std::net::Ipv4Addr;

    /// An UPDATE message: header, withdrawn routes, path attributes, NLRI.
    pub fn update(withdrawn: &[u8], attrs: &[u8], nlri: &[u8]) -> Vec<u8> {
        let len = 19 + 2 + withdrawn.len() + 2 + attrs.len() + nlri.len();
        let mut m = vec![0xff; 16];
        m.extend_from_slice(&(len as u16).to_be_bytes());
        m.push(2);
        m.extend_from_slice(&(withdrawn.len() as u16).to_be_bytes());
        m.extend_from_slice(withdrawn);
        m.extend_from_slice(&(attrs.len() as u16).to_be_bytes());
        m.extend_from_slice(attrs);
        m.extend_from_slice(nlri);
        m
    }

    /// One path attribute with a one-octet length.
    pub fn attr(flags: u8, kind: u8, value: &[u8]) -> Vec<u8> {
        let mut a = vec![flags, kind, value.len() as u8];
        a.extend_from_slice(value);
        a
    }

    /// Well-known transitive.
    const WELL_KNOWN: u8 = 0x40;
    /// Optional non-transitive.
    const OPTIONAL: u8 = 0x80;
    /// Optional transitive.
    const OPTIONAL_TRANSITIVE: u8 = 0xc0;

    /// ORIGIN with any value (0 IGP .. 2 INCOMPLETE are the valid ones).
    pub fn origin(value: u8) -> Vec<u8> {
        attr(WELL_KNOWN, 1, &[value])
    }

    /// AS_PATH of one AS_SEQUENCE of 4-octet ASNs.
    pub fn as_path(asns: &[u32]) -> Vec<u8> {
        let mut v = vec![2, asns.len() as u8];
        for a in asns {
            v.extend_from_slice(&a.to_be_bytes());
        }
        attr(WELL_KNOWN, 2, &v)
    }

    /// NEXT_HOP.
    pub fn next_hop(addr: Ipv4Addr) -> Vec<u8> {
        attr(WELL_KNOWN, 3, &addr.octets())
    }

    /// MULTI_EXIT_DISC.
    pub fn med(value: u32) -> Vec<u8> {
        attr(OPTIONAL, 4, &value.to_be_bytes())
    }

    /// AGGREGATOR with any value bytes (8 on a 4-octet AS session).
    pub fn aggregator(value: &[u8]) -> Vec<u8> {
        attr(OPTIONAL_TRANSITIVE, 7, value)
    }

    /// COMMUNITIES with any value bytes (a non-zero multiple of 4 is well-formed).
    pub fn communities(value: &[u8]) -> Vec<u8> {
        attr(OPTIONAL_TRANSITIVE, 8, value)
    }

    /// An IPv4 prefix in NLRI encoding: length, then the significant octets.
    pub fn prefix(addr: Ipv4Addr, len: u8) -> Vec<u8> {
        let octets = usize::from(len).div_ceil(8);
        let mut p = vec![len];
        p.extend_from_slice(&addr.octets()[..octets]);
        p
    }

    /// A well-formed UPDATE from `asn` announcing the /24s at `prefixes` via `next_hop`.
    pub fn announce(asn: u32, next_hop_addr: Ipv4Addr, prefixes: &[Ipv4Addr]) -> Vec<u8> {
        let attrs = [origin(0), as_path(&[asn]), next_hop(next_hop_addr)].concat();
        let nlri: Vec<u8> = prefixes.iter().flat_map(|p| prefix(*p, 24)).collect();
        update(&[], &attrs, &nlri)
    }

    /// The IPv4 unicast End-of-RIB marker: an UPDATE with nothing in it (RFC 4724 2).
    pub fn end_of_rib() -> Vec<u8> {
        update(&[], &[], &[])
    }
}
