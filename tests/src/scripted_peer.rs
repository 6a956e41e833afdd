//! A scripted BGP peer for tests and benchmarks: one eBGP session, built on the
//! project's codec (`bgp-wire`), whose UPDATEs the caller sends one by one, so a test
//! decides exactly what the receiver learns and when.
//!
//! [`ScriptedPeer::connect`] connects from inside a namespace to a speaker that
//! listens, exchanges OPENs (4-octet AS, IPv4 and IPv6 unicast, route refresh, and the
//! [`SessionSpec::capabilities`] given, e.g. graceful restart: without it, when the peer
//! closes, the receiver drops its routes at once) and returns once Established. A
//! connection the receiver refuses, at TCP level or with Cease/Connection Rejected (while
//! it holds the session idle after a failure), is tried again until the timeout.
//! Afterwards a thread sends KEEPALIVEs and another reads and counts what the receiver
//! sends; [`ScriptedPeer::check`] fails once the receiver has sent a NOTIFICATION (kept:
//! [`ScriptedPeer::notification`]) or closed the session. [`ScriptedPeer::close`] closes
//! the TCP connection (FIN, no NOTIFICATION: as when the peer's process dies).
//!
//! Messages can be encoded ahead of time ([`encode_announce`], [`encode_withdraw`]) and
//! sent with [`ScriptedPeer::send`], so a benchmark's timestamp covers only the send.

use std::{
    io::{ErrorKind, Read, Write},
    net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
        mpsc,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use bgp_wire::{
    AsPath, Capability, CeaseSubcode, CodecContext, Family, Message, MpNextHop, Notification,
    NotificationCode, Open, Origin, PathAttributes, encode_updates, encode_withdrawals,
    frame_length,
};
use bytes::BytesMut;
use ipnet::IpNet;

use crate::Netns;

/// The scripted peer's side of the session.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    /// Our AS (4-octet; AS_TRANS goes in the OPEN when it does not fit 16 bits).
    pub asn: u32,
    /// Our BGP identifier.
    pub router_id: Ipv4Addr,
    /// The AS the receiver must announce.
    pub peer_asn: u32,
    /// Hold time we propose.
    pub hold_time: u16,
    /// Capabilities added to the OPEN (graceful restart, ...).
    pub capabilities: Vec<Capability>,
}

/// The codec context of a session with the receiver: 4-octet AS, 4096-octet messages,
/// eBGP.
pub fn context() -> CodecContext {
    CodecContext::new(true, false, true)
}

/// Attributes of an eBGP route from `asn` through `as_path` (after `asn`), with IGP
/// origin.
pub fn attributes(asn: u32, as_path: &[u32]) -> PathAttributes {
    PathAttributes {
        origin: Origin::Igp,
        as_path: AsPath::from_sequence(std::iter::once(asn).chain(as_path.iter().copied())),
        ..PathAttributes::default()
    }
}

/// UPDATEs announcing `prefixes` with `attrs` and `next_hop` (IPv4 prefixes with an
/// IPv4 next hop in NLRI, IPv6 prefixes with an IPv6 next hop in MP_REACH_NLRI).
pub fn encode_announce(
    attrs: &PathAttributes,
    next_hop: IpAddr,
    prefixes: &[IpNet],
) -> Result<Vec<u8>> {
    let mut out = BytesMut::new();
    let (v4, v6) = split(prefixes);
    let ctx = context();
    match next_hop {
        IpAddr::V4(nh) => {
            if !v6.is_empty() {
                bail!("IPv6 prefixes need an IPv6 next hop");
            }
            if !v4.is_empty() {
                encode_updates(
                    attrs,
                    Family::IPV4_UNICAST,
                    Some(MpNextHop::Ipv4(nh)),
                    &v4,
                    &ctx,
                    &mut out,
                )?;
            }
        }
        IpAddr::V6(global) => {
            if !v4.is_empty() {
                bail!("IPv4 prefixes need an IPv4 next hop");
            }
            if !v6.is_empty() {
                let nh = MpNextHop::Ipv6 {
                    global,
                    link_local: None,
                };
                encode_updates(attrs, Family::IPV6_UNICAST, Some(nh), &v6, &ctx, &mut out)?;
            }
        }
    }
    Ok(out.to_vec())
}

/// UPDATEs withdrawing `prefixes` (of either family).
pub fn encode_withdraw(prefixes: &[IpNet]) -> Result<Vec<u8>> {
    let mut out = BytesMut::new();
    let (v4, v6) = split(prefixes);
    for (family, list) in [(Family::IPV4_UNICAST, v4), (Family::IPV6_UNICAST, v6)] {
        if !list.is_empty() {
            encode_withdrawals(family, &list, &context(), &mut out)?;
        }
    }
    Ok(out.to_vec())
}

fn split(prefixes: &[IpNet]) -> (Vec<IpNet>, Vec<IpNet>) {
    prefixes.iter().partition(|p| matches!(p, IpNet::V4(_)))
}

/// State shared by the session's threads and its owner.
#[derive(Default)]
struct Shared {
    /// Set before the owner closes the socket: errors after it are expected.
    dying: AtomicBool,
    /// UPDATEs received from the receiver.
    updates_received: AtomicU64,
    /// What went wrong, first problem only.
    error: Mutex<Option<String>>,
    /// The NOTIFICATION the receiver sent, if it did.
    notification: Mutex<Option<Notification>>,
}

impl Shared {
    fn fail(&self, why: String) {
        if !self.dying.load(Ordering::SeqCst)
            && let Ok(mut e) = self.error.lock()
        {
            e.get_or_insert(why);
        }
    }
}

/// A running scripted session; see the module documentation. Dropping it closes the
/// session like [`ScriptedPeer::close`].
pub struct ScriptedPeer {
    writer: Arc<Mutex<TcpStream>>,
    stream: TcpStream,
    established_at: Instant,
    shared: Arc<Shared>,
    stop: Option<mpsc::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl ScriptedPeer {
    /// Connects from inside `ns` to `peer` (retrying while refused, until `timeout`) and
    /// brings the session up.
    pub fn connect(
        ns: &Netns,
        peer: SocketAddr,
        session: &SessionSpec,
        timeout: Duration,
    ) -> Result<ScriptedPeer> {
        let deadline = Instant::now() + timeout;
        loop {
            let stream = ns.enter(|| connect(peer, deadline))?.with_context(|| {
                format!("scripted peer: connecting to {peer} from {}", ns.name())
            })?;
            match Self::run(stream, session, deadline) {
                Err(e)
                    if e.downcast_ref::<Rejected>().is_some()
                        && deadline.saturating_duration_since(Instant::now()) > REJECTED_RETRY =>
                {
                    std::thread::sleep(REJECTED_RETRY);
                }
                other => return other,
            }
        }
    }

    /// Brings the session up on a connected `stream`.
    pub fn run(
        mut stream: TcpStream,
        session: &SessionSpec,
        deadline: Instant,
    ) -> Result<ScriptedPeer> {
        stream.set_nodelay(true)?;
        let mut reader = FrameReader::default();
        let keepalive = handshake(&mut stream, session, deadline, &mut reader)?;
        let established_at = Instant::now();
        stream.set_read_timeout(None)?;
        let shared = Arc::new(Shared::default());
        let writer = Arc::new(Mutex::new(stream.try_clone()?));
        let (stop, stopped) = mpsc::channel::<()>();
        let read_thread = {
            let stream = stream.try_clone()?;
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("peer-read".into())
                .spawn(move || read_until_closed(stream, reader, &shared))?
        };
        let keepalive_thread = {
            let writer = writer.clone();
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("peer-keepalive".into())
                .spawn(move || send_keepalives(&writer, keepalive, &stopped, &shared))?
        };
        Ok(ScriptedPeer {
            writer,
            stream,
            established_at,
            shared,
            stop: Some(stop),
            threads: vec![read_thread, keepalive_thread],
        })
    }

    /// When the session became Established (the receiver's KEEPALIVE was read).
    pub fn established_at(&self) -> Instant {
        self.established_at
    }

    /// UPDATEs the receiver has sent so far.
    pub fn updates_received(&self) -> u64 {
        self.shared.updates_received.load(Ordering::Relaxed)
    }

    /// Writes encoded messages (whole ones) to the session.
    pub fn send(&self, bytes: &[u8]) -> Result<()> {
        self.check()?;
        let mut w = self
            .writer
            .lock()
            .map_err(|_| anyhow!("scripted peer: writer poisoned"))?;
        w.write_all(bytes).context("scripted peer: sending")
    }

    /// Announces `prefixes` with `attrs` through `next_hop`.
    pub fn announce(
        &self,
        attrs: &PathAttributes,
        next_hop: IpAddr,
        prefixes: &[IpNet],
    ) -> Result<()> {
        self.send(&encode_announce(attrs, next_hop, prefixes)?)
    }

    /// Withdraws `prefixes`.
    pub fn withdraw(&self, prefixes: &[IpNet]) -> Result<()> {
        self.send(&encode_withdraw(prefixes)?)
    }

    /// The NOTIFICATION the receiver sent, if it did.
    pub fn notification(&self) -> Option<Notification> {
        self.shared.notification.lock().ok().and_then(|n| n.clone())
    }

    /// Fails if the receiver sent a NOTIFICATION, closed the session, or a send failed.
    pub fn check(&self) -> Result<()> {
        match self.shared.error.lock().ok().and_then(|e| e.clone()) {
            Some(why) => Err(anyhow!(why)),
            None => Ok(()),
        }
    }

    /// Closes the session (FIN, no NOTIFICATION) and returns the instant it did; waits
    /// for the session's threads to end.
    pub fn close(mut self) -> Result<Instant> {
        self.check()?;
        Ok(self.shut())
    }

    fn shut(&mut self) -> Instant {
        self.shared.dying.store(true, Ordering::SeqCst);
        let at = Instant::now();
        let _ = self.stream.shutdown(Shutdown::Both);
        self.stop.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        at
    }
}

impl Drop for ScriptedPeer {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.shut();
        }
    }
}

/// The receiver answered our OPEN with Cease/Connection Rejected (RFC 4486): it does not
/// take a connection now, e.g. while it holds the session idle after a failure.
#[derive(Debug)]
struct Rejected;

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the receiver answered with Cease/Connection Rejected")
    }
}

impl std::error::Error for Rejected {}

/// How long to wait before connecting again after a [`Rejected`].
const REJECTED_RETRY: Duration = Duration::from_millis(200);

/// Connects to `peer`, retrying every 100 ms while nobody listens yet.
fn connect(peer: SocketAddr, deadline: Instant) -> Result<TcpStream> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match TcpStream::connect_timeout(&peer, left.max(Duration::from_millis(1))) {
            Ok(s) => return Ok(s),
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::ConnectionRefused | ErrorKind::ConnectionReset
                ) && left > Duration::from_millis(100) =>
            {
                std::thread::sleep(Duration::from_millis(100));
            }
            Err(e) => return Err(e).context("connect"),
        }
    }
}

/// OPEN, OPEN, KEEPALIVE, KEEPALIVE; returns the KEEPALIVE interval (a third of the
/// negotiated hold time, `None` for hold time 0).
fn handshake(
    stream: &mut TcpStream,
    session: &SessionSpec,
    deadline: Instant,
    reader: &mut FrameReader,
) -> Result<Option<Duration>> {
    let ctx = CodecContext::default();
    let mut capabilities = vec![
        Capability::MultiProtocol(Family::IPV4_UNICAST),
        Capability::MultiProtocol(Family::IPV6_UNICAST),
        Capability::RouteRefresh,
        Capability::FourOctetAs(session.asn),
    ];
    capabilities.extend(session.capabilities.iter().cloned());
    let open = Open::new(
        session.asn,
        session.hold_time,
        session.router_id,
        capabilities,
    );
    let mut out = BytesMut::new();
    Message::Open(open).encode(&ctx, &mut out)?;
    stream.write_all(&out).context("sending OPEN")?;
    let theirs = match reader.next(stream, &ctx, deadline)? {
        Message::Open(o) => o,
        Message::Notification(n)
            if n.code == NotificationCode::Cease(CeaseSubcode::ConnectionRejected) =>
        {
            return Err(Rejected.into());
        }
        other => bail!("expected the receiver's OPEN, got {}", describe(&other)),
    };
    if theirs.asn() != session.peer_asn {
        bail!(
            "the receiver announced AS {}, expected {}",
            theirs.asn(),
            session.peer_asn
        );
    }
    if !theirs.four_octet_as() {
        bail!("the receiver did not announce 4-octet AS support");
    }
    let mut out = BytesMut::new();
    Message::Keepalive.encode(&ctx, &mut out)?;
    stream.write_all(&out).context("sending KEEPALIVE")?;
    match reader.next(stream, &ctx, deadline)? {
        Message::Keepalive => {}
        other => bail!(
            "expected the receiver's KEEPALIVE, got {}",
            describe(&other)
        ),
    }
    let hold = session.hold_time.min(theirs.hold_time);
    Ok((hold > 0).then(|| Duration::from_secs(u64::from(hold / 3).max(1))))
}

fn describe(m: &Message) -> String {
    match m {
        Message::Notification(n) => {
            let (code, sub) = n.code.code();
            format!("NOTIFICATION {code}/{sub} ({:?})", n.code)
        }
        other => format!("{:?}", other.kind()),
    }
}

/// Reads whole messages from a blocking stream.
#[derive(Default)]
struct FrameReader {
    buf: Vec<u8>,
}

impl FrameReader {
    /// The next message; fails on EOF, a malformed message, or at `deadline`.
    fn next(
        &mut self,
        stream: &mut TcpStream,
        ctx: &CodecContext,
        deadline: Instant,
    ) -> Result<Message> {
        loop {
            if let Some(len) =
                frame_length(&self.buf, ctx).map_err(|e| anyhow!("from the receiver: {e}"))?
                && self.buf.len() >= len
            {
                let frame: Vec<u8> = self.buf.drain(..len).collect();
                return Message::decode(&frame, ctx)
                    .map_err(|e| anyhow!("malformed message from the receiver: {e}"));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("timed out waiting for the receiver's message");
            }
            stream.set_read_timeout(Some(left))?;
            let mut tmp = [0u8; 16384];
            match stream.read(&mut tmp) {
                Ok(0) => bail!("the receiver closed the connection"),
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e).context("reading from the receiver"),
            }
        }
    }
}

/// Reads what the receiver sends, counting UPDATEs; records a NOTIFICATION or a close.
fn read_until_closed(mut stream: TcpStream, mut reader: FrameReader, shared: &Shared) {
    let ctx = context();
    // Far enough to mean "never": the session ends by a close, not a timeout.
    let forever = Instant::now() + Duration::from_secs(365 * 24 * 3600);
    loop {
        match reader.next(&mut stream, &ctx, forever) {
            Ok(Message::Notification(n)) => {
                let m = Message::Notification(n.clone());
                if let Ok(mut kept) = shared.notification.lock() {
                    *kept = Some(n);
                }
                shared.fail(format!("scripted peer: the receiver sent {}", describe(&m)));
                return;
            }
            Ok(Message::Update(_)) => {
                shared.updates_received.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) => {
                shared.fail(format!("scripted peer: {e:#}"));
                return;
            }
        }
    }
}

/// Sends a KEEPALIVE every `interval` until `stop` is dropped.
fn send_keepalives(
    writer: &Mutex<TcpStream>,
    interval: Option<Duration>,
    stop: &mpsc::Receiver<()>,
    shared: &Shared,
) {
    let mut ka = BytesMut::new();
    if Message::Keepalive
        .encode(&CodecContext::default(), &mut ka)
        .is_err()
    {
        return;
    }
    let wait = interval.unwrap_or(Duration::from_secs(3600));
    loop {
        match stop.recv_timeout(wait) {
            Err(mpsc::RecvTimeoutError::Timeout) if interval.is_some() => {
                let sent = writer.lock().map(|mut w| w.write_all(&ka));
                if let Ok(Err(e)) = sent {
                    shared.fail(format!("scripted peer: sending KEEPALIVE: {e}"));
                    return;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{collections::HashSet, net::TcpListener};

    use super::*;

    fn decode_all(bytes: &[u8]) -> Vec<Message> {
        let ctx = context();
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let len = frame_length(&bytes[at..], &ctx).unwrap().unwrap();
            out.push(Message::decode(&bytes[at..at + len], &ctx).unwrap());
            at += len;
        }
        out
    }

    #[test]
    fn announcements_and_withdrawals_carry_every_prefix_of_both_families() {
        let v4: Vec<IpNet> = (0..3000u32)
            .map(|i| IpNet::V4(ipnet::Ipv4Net::from(Ipv4Addr::from(0x0a00_0000 + i))))
            .collect();
        let bytes = encode_announce(
            &attributes(65001, &[65002]),
            "192.0.2.1".parse().unwrap(),
            &v4,
        )
        .unwrap();
        let mut seen = HashSet::new();
        for m in decode_all(&bytes) {
            let Message::Update(u) = m else { panic!() };
            assert_eq!(
                u.attributes.as_ref().unwrap().next_hop,
                Some(Ipv4Addr::new(192, 0, 2, 1))
            );
            seen.extend(u.nlri.iter().map(|n| IpNet::V4(*n)));
        }
        assert_eq!(seen.len(), 3000);
        assert!(
            encode_announce(
                &attributes(1, &[]),
                "192.0.2.1".parse().unwrap(),
                &["fd00::/64".parse().unwrap()]
            )
            .is_err()
        );

        let v6: IpNet = "fd00:1::5/128".parse().unwrap();
        let mixed = [v4[0], v6];
        let w = decode_all(&encode_withdraw(&mixed).unwrap());
        assert_eq!(w.len(), 2);
        let Message::Update(u4) = &w[0] else { panic!() };
        assert_eq!(u4.withdrawn.len(), 1);
        let Message::Update(u6) = &w[1] else { panic!() };
        assert_eq!(u6.mp_unreach.as_ref().unwrap().withdrawn, vec![v6]);
    }

    /// A receiver good enough for the test: OPEN, KEEPALIVE, then counts routes until
    /// the peer closes.
    fn fake_receiver(listener: TcpListener) -> usize {
        let (mut s, _) = listener.accept().unwrap();
        let ctx = CodecContext::default();
        let mut out = BytesMut::new();
        Message::Open(Open::new(
            65000,
            90,
            Ipv4Addr::new(10, 255, 0, 2),
            vec![Capability::MultiProtocol(Family::IPV4_UNICAST)],
        ))
        .encode(&ctx, &mut out)
        .unwrap();
        Message::Keepalive.encode(&ctx, &mut out).unwrap();
        s.write_all(&out).unwrap();
        let mut reader = FrameReader::default();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut routes = 0;
        loop {
            match reader.next(&mut s, &context(), deadline) {
                Ok(Message::Update(u)) => {
                    routes += u.nlri.len();
                    routes -= u.withdrawn.len();
                }
                Ok(_) => {}
                Err(e) => {
                    assert!(e.to_string().contains("closed"), "{e:#}");
                    return routes;
                }
            }
        }
    }

    #[test]
    fn a_session_sends_what_it_is_told_and_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let receiver = std::thread::spawn(move || fake_receiver(listener));
        let session = SessionSpec {
            asn: 4_200_000_100,
            router_id: Ipv4Addr::new(10, 255, 0, 1),
            peer_asn: 65000,
            hold_time: 90,
            capabilities: Vec::new(),
        };
        let peer = ScriptedPeer::run(
            TcpStream::connect(addr).unwrap(),
            &session,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
        let prefixes: Vec<IpNet> = (0..10u32)
            .map(|i| IpNet::V4(ipnet::Ipv4Net::from(Ipv4Addr::from(0x0a00_0000 + i))))
            .collect();
        let nh: IpAddr = "10.255.0.1".parse().unwrap();
        peer.announce(&attributes(session.asn, &[]), nh, &prefixes)
            .unwrap();
        peer.withdraw(&prefixes[..3]).unwrap();
        peer.close().unwrap();
        assert_eq!(receiver.join().unwrap(), 7);
    }
}
