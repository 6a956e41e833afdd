//! The eBGP session plumbing shared by the lab's scripted BGP speakers (the benchmark
//! feeder and the scripted test peer): connecting from inside a namespace, the OPEN
//! handshake, a thread that reads what the receiver sends until the session ends, the
//! KEEPALIVE loop, and closing (FIN, no NOTIFICATION).

use std::{
    io::{ErrorKind, Write},
    net::{Ipv4Addr, Shutdown, SocketAddr, TcpStream},
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
    Capability, CeaseSubcode, CodecContext, Family, Message, Notification, NotificationCode, Open,
};
use bytes::BytesMut;

use crate::{
    Netns,
    bgp_stream::{FrameReader, describe},
};

/// Our side of the session.
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

/// What differs between the speakers that use a [`Session`].
pub(crate) struct Kind {
    /// Names the speaker in error texts ("feeder").
    pub who: &'static str,
    /// Name of its reading thread.
    pub read_thread: &'static str,
    /// Families of the multiprotocol capabilities in our OPEN.
    pub families: &'static [Family],
    /// Families the receiver's OPEN must announce.
    pub required: &'static [Family],
}

/// The receiver answered our OPEN with Cease/Connection Rejected (RFC 4486): it does not
/// take a connection now, e.g. while it holds the session idle after a failure.
#[derive(Debug)]
pub(crate) struct Rejected;

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the receiver answered with Cease/Connection Rejected")
    }
}

impl std::error::Error for Rejected {}

/// State shared by a session's threads and its owner.
#[derive(Default)]
pub(crate) struct State {
    /// Set before the owner closes the socket: errors after it are expected.
    dying: AtomicBool,
    /// UPDATEs received from the receiver.
    updates_received: AtomicU64,
    /// What went wrong, first problem only.
    error: Mutex<Option<String>>,
    /// The NOTIFICATION the receiver sent, if it did.
    notification: Mutex<Option<Notification>>,
}

impl State {
    /// Records the first problem, unless the owner is closing the session.
    pub(crate) fn fail(&self, why: String) {
        if !self.dying.load(Ordering::SeqCst)
            && let Ok(mut e) = self.error.lock()
        {
            e.get_or_insert(why);
        }
    }

    /// Fails with the first problem recorded.
    pub(crate) fn check(&self) -> Result<()> {
        match self.error.lock().ok().and_then(|e| e.clone()) {
            Some(why) => Err(anyhow!(why)),
            None => Ok(()),
        }
    }

    /// UPDATEs the receiver has sent so far.
    pub(crate) fn updates_received(&self) -> u64 {
        self.updates_received.load(Ordering::Relaxed)
    }

    /// The NOTIFICATION the receiver sent, if it did.
    pub(crate) fn notification(&self) -> Option<Notification> {
        self.notification.lock().ok().and_then(|n| n.clone())
    }
}

/// An Established session: the socket, the thread reading it, and the threads its owner
/// added. Dropping it closes the session like [`Session::shut`].
pub(crate) struct Session {
    stream: TcpStream,
    established_at: Instant,
    keepalive: Option<Duration>,
    state: Arc<State>,
    stop: Option<mpsc::Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl Session {
    /// Connects from inside `ns` to `peer`, retrying every 100 ms while nobody listens
    /// yet, until `deadline`.
    pub(crate) fn connect(
        ns: &Netns,
        peer: SocketAddr,
        deadline: Instant,
        kind: &Kind,
    ) -> Result<TcpStream> {
        ns.enter(|| connect(peer, deadline))?
            .with_context(|| format!("{}: connecting to {peer} from {}", kind.who, ns.name()))
    }

    /// Brings the session up on a connected `stream` and starts the reading thread.
    /// Returns the session and the receiving end of its stop channel, which is
    /// disconnected when the session is shut: the owner's threads end on it.
    pub(crate) fn establish(
        mut stream: TcpStream,
        spec: &SessionSpec,
        kind: &'static Kind,
        deadline: Instant,
    ) -> Result<(Session, mpsc::Receiver<()>)> {
        stream.set_nodelay(true)?;
        let mut reader = FrameReader::default();
        let keepalive = handshake(&mut stream, spec, kind, deadline, &mut reader)?;
        let established_at = Instant::now();
        stream.set_read_timeout(None)?;
        let state = Arc::new(State::default());
        let (stop, stopped) = mpsc::channel();
        let mut session = Session {
            stream,
            established_at,
            keepalive,
            state,
            stop: Some(stop),
            threads: Vec::new(),
        };
        let stream = session.stream.try_clone()?;
        let state = session.state.clone();
        session.spawn(kind.read_thread, move || {
            read_until_closed(stream, reader, &state, kind.who)
        })?;
        Ok((session, stopped))
    }

    /// Runs `f` on a thread named `name` that [`Session::shut`] waits for.
    pub(crate) fn spawn(&mut self, name: &str, f: impl FnOnce() + Send + 'static) -> Result<()> {
        let t = std::thread::Builder::new().name(name.into()).spawn(f)?;
        self.threads.push(t);
        Ok(())
    }

    /// The socket.
    pub(crate) fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// When the session became Established (the receiver's KEEPALIVE was read).
    pub(crate) fn established_at(&self) -> Instant {
        self.established_at
    }

    /// The KEEPALIVE interval: a third of the negotiated hold time, `None` for hold
    /// time 0.
    pub(crate) fn keepalive(&self) -> Option<Duration> {
        self.keepalive
    }

    /// The state the session's threads share.
    pub(crate) fn state(&self) -> &Arc<State> {
        &self.state
    }

    /// Closes the session (FIN, no NOTIFICATION: as when the speaker's process dies) and
    /// returns the instant it did; waits for the session's threads to end.
    pub(crate) fn shut(&mut self) -> Instant {
        self.state.dying.store(true, Ordering::SeqCst);
        let at = Instant::now();
        let _ = self.stream.shutdown(Shutdown::Both);
        self.stop.take();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        at
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.shut();
        }
    }
}

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

/// An encoded KEEPALIVE.
pub(crate) fn keepalive_message() -> Vec<u8> {
    let mut out = BytesMut::new();
    Message::Keepalive
        .encode(&CodecContext::default(), &mut out)
        .expect("a KEEPALIVE always encodes");
    out.to_vec()
}

/// OPEN, OPEN, KEEPALIVE, KEEPALIVE; returns the KEEPALIVE interval (a third of the
/// negotiated hold time, `None` for hold time 0). A Cease/Connection Rejected instead of
/// the receiver's OPEN fails with [`Rejected`].
fn handshake(
    stream: &mut TcpStream,
    spec: &SessionSpec,
    kind: &Kind,
    deadline: Instant,
    reader: &mut FrameReader,
) -> Result<Option<Duration>> {
    let ctx = CodecContext::default();
    let mut capabilities: Vec<Capability> = kind
        .families
        .iter()
        .map(|f| Capability::MultiProtocol(*f))
        .collect();
    capabilities.extend([Capability::RouteRefresh, Capability::FourOctetAs(spec.asn)]);
    capabilities.extend(spec.capabilities.iter().cloned());
    let open = Open::new(spec.asn, spec.hold_time, spec.router_id, capabilities);
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
    if theirs.asn() != spec.peer_asn {
        bail!(
            "the receiver announced AS {}, expected {}",
            theirs.asn(),
            spec.peer_asn
        );
    }
    if !theirs.four_octet_as() {
        bail!("the receiver did not announce 4-octet AS support (our UPDATEs need it)");
    }
    if let Some(f) = kind
        .required
        .iter()
        .find(|f| !theirs.families().contains(f))
    {
        bail!("the receiver did not announce {f}");
    }
    stream
        .write_all(&keepalive_message())
        .context("sending KEEPALIVE")?;
    match reader.next(stream, &ctx, deadline)? {
        Message::Keepalive => {}
        other => bail!(
            "expected the receiver's KEEPALIVE, got {}",
            describe(&other)
        ),
    }
    let hold = spec.hold_time.min(theirs.hold_time);
    Ok((hold > 0).then(|| Duration::from_secs(u64::from(hold / 3).max(1))))
}

/// Reads what the receiver sends, counting UPDATEs; records a NOTIFICATION or a close.
fn read_until_closed(mut stream: TcpStream, mut reader: FrameReader, state: &State, who: &str) {
    let ctx = context();
    // Far enough to mean "never": the session ends by a close, not a timeout.
    let forever = Instant::now() + Duration::from_secs(365 * 24 * 3600);
    loop {
        match reader.next(&mut stream, &ctx, forever) {
            Ok(Message::Notification(n)) => {
                let m = Message::Notification(n.clone());
                if let Ok(mut kept) = state.notification.lock() {
                    *kept = Some(n);
                }
                state.fail(format!("{who}: the receiver sent {}", describe(&m)));
                return;
            }
            Ok(Message::Update(_)) => {
                state.updates_received.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) => {
                state.fail(format!("{who}: {e:#}"));
                return;
            }
        }
    }
}

/// Writes a KEEPALIVE with `write` every `interval` (never for `None`) until `stop` is
/// disconnected; fails when a write does.
pub(crate) fn send_keepalives(
    mut write: impl FnMut(&[u8]) -> std::io::Result<()>,
    interval: Option<Duration>,
    stop: &mpsc::Receiver<()>,
) -> std::io::Result<()> {
    let ka = keepalive_message();
    let wait = interval.unwrap_or(Duration::from_secs(3600));
    loop {
        match stop.recv_timeout(wait) {
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if interval.is_some() {
                    write(&ka)?;
                }
            }
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
        }
    }
}

/// A receiver good enough for the lab's own tests: accepts one connection on
/// `listener`, sends an OPEN of AS `asn` (IPv4 unicast, hold time 90) and a KEEPALIVE,
/// then hands every UPDATE to `update` until the speaker closes the connection.
#[cfg(test)]
pub(crate) fn fake_receiver(
    listener: std::net::TcpListener,
    asn: u32,
    mut update: impl FnMut(&bgp_wire::Update),
) {
    let (mut s, _) = listener.accept().unwrap();
    let ctx = CodecContext::default();
    let mut out = BytesMut::new();
    Message::Open(Open::new(
        asn,
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
    loop {
        match reader.next(&mut s, &context(), deadline) {
            Ok(Message::Update(u)) => update(&u),
            Ok(_) => {}
            Err(e) => {
                assert!(e.to_string().contains("closed"), "{e:#}");
                return;
            }
        }
    }
}
