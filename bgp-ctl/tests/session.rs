//! Sessions over loopback against a scripted peer: a small helper that speaks raw BGP
//! through bgp-wire on a TcpStream. It checks our FSM and session layer, not interop
//! (real FRR and BIRD peers run in the namespace tests).
//!
//! We are 127.0.0.1 (AS 65000, id 10.0.0.1); the scripted peer is 127.0.0.2 (AS 65001).

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    time::Duration,
};

use bgp_ctl::bgp::{
    DownReason, Listener, LocalInfo, PeerConfig, RemoteAs, Session, SessionEvent, SessionHandle,
    State, TimerConfig,
};
use bgp_wire::{
    AsPath, Capability, CeaseSubcode, CodecContext, Family, HeaderSubcode, Message, Notification,
    NotificationCode, Open, OpenSubcode, Origin, PathAttributes, RawAttribute, RouteRefresh,
    RouteRefreshSubtype, Update, frame_length,
};
use bytes::{Bytes, BytesMut};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpSocket, TcpStream},
    sync::mpsc,
    time::timeout,
};

const US: &str = "127.0.0.1";
const PEER: &str = "127.0.0.2";
const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const WAIT: Duration = Duration::from_secs(10);

fn local() -> LocalInfo {
    LocalInfo {
        asn: 65000,
        router_id: LOCAL_ID,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Hold 3 s, keepalive 1 s, retries and idle hold 1 s: fast tests.
fn fast_timers() -> TimerConfig {
    TimerConfig {
        hold_time: 3,
        keepalive: 1,
        connect_retry: Duration::from_secs(1),
        idle_hold: Duration::from_secs(1),
        ..TimerConfig::default()
    }
}

fn peer_config(port: u16) -> PeerConfig {
    let mut c = PeerConfig::new(ip(PEER), RemoteAs::Exact(65001));
    c.port = port;
    c.local_addr = Some(ip(US));
    c.timers = fast_timers();
    c
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// The scripted peer's end of one connection.
struct TestPeer {
    stream: TcpStream,
    buf: BytesMut,
    ctx: CodecContext,
}

impl TestPeer {
    fn new(stream: TcpStream) -> Self {
        TestPeer {
            stream,
            buf: BytesMut::new(),
            ctx: CodecContext::default(),
        }
    }

    /// Connects to our listener from the peer's address.
    async fn connect(to: SocketAddr) -> Self {
        let s = TcpSocket::new_v4().unwrap();
        s.bind(SocketAddr::new(ip(PEER), 0)).unwrap();
        TestPeer::new(timeout(WAIT, s.connect(to)).await.unwrap().unwrap())
    }

    async fn send(&mut self, m: Message) {
        let mut out = BytesMut::new();
        m.encode(&self.ctx, &mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    /// The next message; `None` when we closed the connection.
    async fn recv(&mut self) -> Option<Message> {
        timeout(WAIT, async {
            loop {
                if let Some(n) = frame_length(&self.buf, &self.ctx).unwrap()
                    && n <= self.buf.len()
                {
                    let frame = self.buf.split_to(n);
                    return Some(Message::decode(&frame, &self.ctx).unwrap());
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("no message from the session in time")
    }

    /// The next message that is not a KEEPALIVE.
    async fn recv_skipping_keepalives(&mut self) -> Option<Message> {
        loop {
            match self.recv().await {
                Some(Message::Keepalive) => continue,
                other => return other,
            }
        }
    }

    async fn expect_notification(&mut self) -> Notification {
        match self.recv_skipping_keepalives().await {
            Some(Message::Notification(n)) => n,
            other => panic!("expected a NOTIFICATION, got {other:?}"),
        }
    }

    async fn expect_open(&mut self) -> Open {
        match self.recv().await {
            Some(Message::Open(o)) => o,
            other => panic!("expected an OPEN, got {other:?}"),
        }
    }

    /// Sends the peer's OPEN (4-octet AS, both families, route refresh, extended
    /// message) and adopts the resulting codec settings.
    async fn send_open(&mut self, id: Ipv4Addr, hold: u16) {
        let caps = vec![
            Capability::MultiProtocol(Family::IPV4_UNICAST),
            Capability::MultiProtocol(Family::IPV6_UNICAST),
            Capability::RouteRefresh,
            Capability::EnhancedRouteRefresh,
            Capability::ExtendedMessage,
        ];
        self.send(Message::Open(Open::new(65001, hold, id, caps)))
            .await;
        self.ctx = CodecContext::new(true, true, true);
    }

    /// OPEN and KEEPALIVE both ways; returns our OPEN.
    async fn handshake(&mut self, id: Ipv4Addr) -> Open {
        let ours = self.expect_open().await;
        self.send_open(id, 90).await;
        self.send(Message::Keepalive).await;
        assert_eq!(self.recv().await, Some(Message::Keepalive));
        ours
    }
}

/// Our side: the session, its events, the scripted peer's listener.
struct Rig {
    handle: SessionHandle,
    events: mpsc::Receiver<SessionEvent>,
    peer_listener: TcpListener,
}

impl Rig {
    async fn new(config: impl FnOnce(&mut PeerConfig), events_capacity: usize) -> Rig {
        init_tracing();
        let peer_listener = TcpListener::bind((ip(PEER), 0)).await.unwrap();
        let mut c = peer_config(peer_listener.local_addr().unwrap().port());
        config(&mut c);
        let (tx, events) = mpsc::channel(events_capacity);
        let handle = Session::spawn(c, local(), tx, true).unwrap();
        Rig {
            handle,
            events,
            peer_listener,
        }
    }

    /// The connection our session opens to the scripted peer.
    async fn accept(&self) -> TestPeer {
        let (s, from) = timeout(WAIT, self.peer_listener.accept())
            .await
            .expect("the session did not connect")
            .unwrap();
        assert_eq!(from.ip(), ip(US), "source address binding");
        TestPeer::new(s)
    }

    async fn event(&mut self) -> SessionEvent {
        timeout(WAIT, self.events.recv())
            .await
            .expect("no session event in time")
            .expect("session gone")
    }

    async fn established(&mut self) -> (TestPeer, SessionEvent) {
        let mut p = self.accept().await;
        p.handshake(Ipv4Addr::new(10, 0, 0, 2)).await;
        let e = self.event().await;
        assert!(
            matches!(e, SessionEvent::Established { .. }),
            "expected Established, got {e:?}"
        );
        (p, e)
    }
}

fn update(prefix: &str) -> Update {
    Update {
        attributes: Some(PathAttributes {
            origin: Origin::Igp,
            as_path: AsPath::from_sequence([65001]),
            next_hop: Some(Ipv4Addr::new(127, 0, 0, 2)),
            ..PathAttributes::default()
        }),
        nlri: vec![prefix.parse().unwrap()],
        ..Update::default()
    }
}

#[tokio::test]
async fn establishes_and_keepalives_flow_both_ways() {
    let mut rig = Rig::new(|_| {}, 16).await;
    let mut p = rig.accept().await;
    let ours = p.expect_open().await;
    assert_eq!(
        (ours.asn(), ours.hold_time, ours.bgp_id),
        (65000, 3, LOCAL_ID)
    );
    assert_eq!(
        ours.families(),
        vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]
    );
    assert!(ours.has(&Capability::RouteRefresh) && ours.has(&Capability::ExtendedMessage));
    p.send_open(Ipv4Addr::new(10, 0, 0, 2), 90).await;
    p.send(Message::Keepalive).await;
    assert_eq!(p.recv().await, Some(Message::Keepalive));
    let SessionEvent::Established {
        peer, negotiated, ..
    } = rig.event().await
    else {
        panic!("not established");
    };
    assert_eq!(peer, ip(PEER));
    assert_eq!((negotiated.hold_time, negotiated.keepalive), (3, 1));
    assert!(negotiated.four_octet_as && negotiated.extended_message && negotiated.ebgp);
    assert_eq!(negotiated.local_addr.ip(), ip(US));
    assert_eq!(negotiated.remote_addr.ip(), ip(PEER));
    assert_eq!(rig.handle.stats().state, State::Established);

    // Keepalives every second from us; ours keep the session up past the hold time.
    let start = tokio::time::Instant::now();
    let mut keepalives = 0;
    while start.elapsed() < Duration::from_millis(4500) {
        assert_eq!(p.recv().await, Some(Message::Keepalive));
        keepalives += 1;
        p.send(Message::Keepalive).await;
    }
    assert!(keepalives >= 3, "{keepalives} keepalives in 4.5 s");
    let stats = rig.handle.stats();
    assert_eq!(stats.state, State::Established);
    assert!(stats.established_since.is_some());
    assert!(stats.sent.keepalive >= 4 && stats.received.keepalive >= 4);
    assert_eq!((stats.sent.open, stats.received.open), (1, 1));
}

#[tokio::test]
async fn establishes_over_ipv6() {
    init_tracing();
    let peer_listener = TcpListener::bind("[::1]:0").await.unwrap();
    let mut c = PeerConfig::new(ip("::1"), RemoteAs::Exact(65001));
    c.port = peer_listener.local_addr().unwrap().port();
    c.timers = fast_timers();
    let (tx, mut events) = mpsc::channel(16);
    let _handle = Session::spawn(c, local(), tx, true).unwrap();
    let (s, _) = timeout(WAIT, peer_listener.accept())
        .await
        .unwrap()
        .unwrap();
    let mut p = TestPeer::new(s);
    p.handshake(Ipv4Addr::new(10, 0, 0, 2)).await;
    match timeout(WAIT, events.recv()).await.unwrap().unwrap() {
        SessionEvent::Established { negotiated, .. } => {
            assert_eq!(negotiated.remote_addr.ip(), ip("::1"));
            assert!(negotiated.has_family(Family::IPV6_UNICAST));
        }
        other => panic!("expected Established, got {other:?}"),
    }
}

#[tokio::test]
async fn updates_and_route_refresh_flow_both_ways() {
    let mut rig = Rig::new(|_| {}, 16).await;
    let (mut p, e) = rig.established().await;
    let SessionEvent::Established { sender, .. } = e else {
        unreachable!()
    };
    let sent: Vec<Update> = (0..10).map(|i| update(&format!("10.1.{i}.0/24"))).collect();
    for u in &sent {
        p.send(Message::Update(Box::new(u.clone()))).await;
    }
    let mut got = Vec::new();
    while got.len() < sent.len() {
        match rig.event().await {
            SessionEvent::Updates { updates, .. } => got.extend(updates),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, sent);

    let ours = update("10.200.0.0/16");
    sender
        .send_updates(std::slice::from_ref(&ours))
        .await
        .unwrap();
    match p.recv_skipping_keepalives().await {
        Some(Message::Update(u)) => assert_eq!(u.nlri, ours.nlri),
        other => panic!("expected our UPDATE, got {other:?}"),
    }

    let rr = RouteRefresh {
        family: Family::IPV6_UNICAST,
        subtype: RouteRefreshSubtype::Request,
    };
    p.send(Message::RouteRefresh(rr)).await;
    match rig.event().await {
        SessionEvent::RouteRefresh { refresh, .. } => assert_eq!(refresh, rr),
        other => panic!("expected RouteRefresh, got {other:?}"),
    }
    sender.send_route_refresh(rr).await.unwrap();
    assert_eq!(
        p.recv_skipping_keepalives().await,
        Some(Message::RouteRefresh(rr))
    );
    let stats = rig.handle.stats();
    assert_eq!(stats.received.update, 10);
    assert_eq!(stats.sent.update, 1);
    assert_eq!(
        (stats.received.route_refresh, stats.sent.route_refresh),
        (1, 1)
    );
}

#[tokio::test]
async fn a_silent_peer_gets_hold_timer_expired_and_is_retried_after_idle_hold() {
    let mut rig = Rig::new(|_| {}, 16).await;
    let (mut p, _) = rig.established().await;
    // Say nothing: our hold timer (3 s) expires.
    let n = p.expect_notification().await;
    assert_eq!(n.code, NotificationCode::HoldTimerExpired);
    assert_eq!(p.recv().await, None, "closed after the NOTIFICATION");
    match rig.event().await {
        SessionEvent::Down { info, .. } => {
            assert!(info.was_established);
            assert_eq!(
                info.reason,
                DownReason::Sent(Notification::new(NotificationCode::HoldTimerExpired))
            );
        }
        other => panic!("expected Down, got {other:?}"),
    }
    let stats = rig.handle.stats();
    assert_eq!(stats.flaps, 1);
    assert_eq!(
        stats.last_error.and_then(|e| e.code),
        Some(NotificationCode::HoldTimerExpired)
    );
    // After the idle hold, the session connects again.
    let mut again = rig.accept().await;
    again.expect_open().await;
}

#[tokio::test]
async fn a_broken_header_gets_connection_not_synchronized() {
    let mut rig = Rig::new(|_| {}, 16).await;
    let (mut p, _) = rig.established().await;
    let mut bad = vec![0xFFu8; 16];
    bad[3] = 0;
    bad.extend_from_slice(&[0, 19, 4]);
    p.stream.write_all(&bad).await.unwrap();
    let n = p.expect_notification().await;
    assert_eq!(
        n.code,
        NotificationCode::MessageHeader(HeaderSubcode::ConnectionNotSynchronized)
    );
    match rig.event().await {
        SessionEvent::Down { info, .. } => {
            assert!(matches!(info.reason, DownReason::Sent(ref s) if s.code == n.code))
        }
        other => panic!("expected Down, got {other:?}"),
    }
}

#[tokio::test]
async fn a_wrong_peer_as_gets_bad_peer_as() {
    let rig = Rig::new(|_| {}, 16).await;
    let mut p = rig.accept().await;
    p.expect_open().await;
    p.send(Message::Open(Open::new(
        65099,
        90,
        Ipv4Addr::new(10, 0, 0, 2),
        vec![],
    )))
    .await;
    let n = p.expect_notification().await;
    assert_eq!(
        n.code,
        NotificationCode::OpenMessage(OpenSubcode::BadPeerAs)
    );
    assert_eq!(p.recv().await, None);
}

#[tokio::test]
async fn an_update_before_keepalive_is_an_fsm_error() {
    let rig = Rig::new(|_| {}, 16).await;
    let mut p = rig.accept().await;
    p.expect_open().await;
    p.send_open(Ipv4Addr::new(10, 0, 0, 2), 90).await;
    assert_eq!(p.recv().await, Some(Message::Keepalive));
    p.send(Message::Update(Box::new(update("10.9.0.0/16"))))
        .await;
    let n = p.expect_notification().await;
    assert_eq!(n.code, NotificationCode::FsmError(2));
}

#[tokio::test]
async fn admin_shutdown_sends_the_communication_and_refuses_reconnection() {
    let mut rig = Rig::new(|_| {}, 16).await;
    let (mut p, _) = rig.established().await;
    rig.handle.disable("maintenance until 14:00").await.unwrap();
    let n = p.expect_notification().await;
    assert_eq!(
        n.code,
        NotificationCode::Cease(CeaseSubcode::AdministrativeShutdown)
    );
    assert_eq!(n.shutdown_communication(), Some("maintenance until 14:00"));
    assert!(matches!(rig.event().await, SessionEvent::Down { .. }));
    let stats = rig.handle.stats();
    assert_eq!((stats.state, stats.enabled), (State::Idle, false));
    // No new connection from us while disabled.
    assert!(
        timeout(Duration::from_secs(2), rig.peer_listener.accept())
            .await
            .is_err()
    );
    rig.handle.enable().await.unwrap();
    rig.accept().await.expect_open().await;
}

#[tokio::test]
async fn admin_reset_sends_its_communication_and_reconnects() {
    let mut rig = Rig::new(|_| {}, 16).await;
    let (mut p, _) = rig.established().await;
    rig.handle.reset("policy change", false).await.unwrap();
    let n = p.expect_notification().await;
    assert_eq!(
        n.code,
        NotificationCode::Cease(CeaseSubcode::AdministrativeReset)
    );
    assert_eq!(n.shutdown_communication(), Some("policy change"));
    assert!(matches!(rig.event().await, SessionEvent::Down { .. }));
    assert!(rig.handle.stats().enabled);
    // Back after the initial idle hold.
    let (_p, _) = rig.established().await;
    assert_eq!(rig.handle.stats().flaps, 1);
}

#[tokio::test]
async fn max_prefix_teardown_carries_afi_safi_and_limit() {
    let mut rig = Rig::new(|_| {}, 16).await;
    let (mut p, _) = rig.established().await;
    rig.handle
        .max_prefix_exceeded(Family::IPV4_UNICAST, 10)
        .await
        .unwrap();
    let n = p.expect_notification().await;
    assert_eq!(
        n.code,
        NotificationCode::Cease(CeaseSubcode::MaximumPrefixesReached)
    );
    assert_eq!(&n.data[..], &[0, 1, 1, 0, 0, 0, 10]);
    assert!(matches!(rig.event().await, SessionEvent::Down { .. }));
    assert!(!rig.handle.stats().enabled, "no restart configured");
}

/// Our session connects to the scripted peer while the peer connects to our listener;
/// OPENs arrive on both. Returns which of the peer's connections got the collision
/// Cease: `true` for the one we opened.
async fn collision(peer_id: Ipv4Addr) -> bool {
    let mut rig = Rig::new(|_| {}, 16).await;
    let listener = Listener::bind(&[SocketAddr::new(ip(US), 0)]).unwrap();
    let ours_addr = listener.local_addrs().unwrap()[0];
    listener
        .add_peer(ip(PEER), None, rig.handle.incoming())
        .unwrap();

    let mut a = rig.accept().await; // the connection we opened
    a.expect_open().await;
    let mut b = TestPeer::connect(ours_addr).await; // the one the peer opened
    b.expect_open().await;
    a.send_open(peer_id, 90).await;
    assert_eq!(
        a.recv().await,
        Some(Message::Keepalive),
        "OpenConfirm on ours"
    );
    b.send_open(peer_id, 90).await;
    let cease = Some(NotificationCode::Cease(
        CeaseSubcode::ConnectionCollisionResolution,
    ));
    // One connection is closed with the collision Cease, the other goes on.
    let (loser, winner, ours_lost) = match b.recv().await {
        Some(Message::Notification(n)) => {
            assert_eq!(Some(n.code), cease);
            (b, a, false)
        }
        Some(Message::Keepalive) => {
            let n = a.expect_notification().await;
            assert_eq!(Some(n.code), cease);
            (a, b, true)
        }
        other => panic!("unexpected {other:?}"),
    };
    let mut loser = loser;
    assert_eq!(loser.recv().await, None);
    let mut winner = winner;
    winner.send(Message::Keepalive).await;
    let SessionEvent::Established { negotiated, .. } = rig.event().await else {
        panic!("not established");
    };
    let winner_peer_port = winner.stream.local_addr().unwrap().port();
    assert_eq!(negotiated.remote_addr.port(), winner_peer_port);
    assert_eq!(rig.handle.stats().state, State::Established);
    ours_lost
}

#[tokio::test]
async fn collision_keeps_the_connection_of_the_higher_identifier() {
    // The peer's id is higher: its connection wins, ours gets the Cease.
    assert!(collision(Ipv4Addr::new(10, 0, 0, 9)).await);
    // Ours is higher: the connection we opened wins.
    assert!(!collision(Ipv4Addr::new(9, 0, 0, 9)).await);
}

#[tokio::test]
async fn a_dynamic_neighbor_is_accepted_from_its_range() {
    init_tracing();
    let (tx, mut events) = mpsc::channel(16);
    let listener = Listener::bind(&[SocketAddr::new(ip(US), 0)]).unwrap();
    let addr = listener.local_addrs().unwrap()[0];
    let (range_tx, mut range_rx) = mpsc::channel(4);
    listener
        .add_range("127.0.0.0/24".parse().unwrap(), None, range_tx)
        .unwrap();
    let mut p = TestPeer::connect(addr).await;
    // What the speaker does for a new dynamic neighbor: a passive session for it,
    // handed the connection.
    let accepted = timeout(WAIT, range_rx.recv()).await.unwrap().unwrap();
    let mut c = PeerConfig::new(
        accepted.remote.ip(),
        RemoteAs::Range {
            min: 65001,
            max: 65010,
        },
    );
    c.passive = true;
    c.timers = fast_timers();
    let handle = Session::spawn(c, local(), tx, true).unwrap();
    handle.incoming().send(accepted).await.unwrap();
    p.handshake(Ipv4Addr::new(10, 0, 0, 2)).await;
    match timeout(WAIT, events.recv()).await.unwrap().unwrap() {
        SessionEvent::Established {
            peer, negotiated, ..
        } => {
            assert_eq!(peer, ip(PEER));
            assert_eq!(negotiated.peer_as, 65001);
        }
        other => panic!("expected Established, got {other:?}"),
    }
    handle.shutdown().await;
    let n = p.expect_notification().await;
    assert_eq!(
        n.code,
        NotificationCode::Cease(CeaseSubcode::PeerDeconfigured)
    );
    assert_eq!(p.recv().await, None);
}

/// A large UPDATE (one prefix, a 3000-octet unknown optional transitive attribute) that
/// costs little to decode.
fn bulky_update(i: u32) -> Bytes {
    let mut u = update(&format!("10.{}.{}.0/24", (i >> 8) & 0xFF, i & 0xFF));
    if let Some(a) = u.attributes.as_mut() {
        a.unknown.push(RawAttribute {
            flags: bgp_wire::AttributeFlags(0xC0 | 0x10),
            type_code: 250,
            value: Bytes::from(vec![7u8; 3000]),
        });
    }
    let mut out = BytesMut::new();
    Message::Update(Box::new(u))
        .encode(&CodecContext::new(true, true, true), &mut out)
        .unwrap();
    out.freeze()
}

#[tokio::test]
async fn a_slow_speaker_pushes_back_on_the_peer_without_losing_the_session() {
    // The speaker's event channel holds one event and nobody reads it for a while.
    let mut rig = Rig::new(|_| {}, 1).await;
    let (p, _) = rig.established().await;
    const N: u32 = 20_000; // 60 MB of UPDATEs
    let (mut rd, mut wr) = p.stream.into_split();
    let writer = tokio::spawn(async move {
        for i in 0..N {
            wr.write_all(&bulky_update(i)).await.unwrap();
        }
        wr
    });
    // Longer than the hold time (3 s), during which the peer sends nothing but the
    // UPDATEs we do not read.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        rig.handle.stats().state,
        State::Established,
        "the hold timer must not blame the peer for messages we did not read"
    );
    assert!(
        !writer.is_finished(),
        "60 MB went in while nobody consumed: the session buffers without bound"
    );
    // Our keepalives kept flowing meanwhile.
    let mut buf = BytesMut::new();
    timeout(Duration::from_millis(100), rd.read_buf(&mut buf))
        .await
        .ok();
    let mut keepalives = 0;
    while let Ok(Some(n)) = frame_length(&buf, &CodecContext::default()) {
        if n > buf.len() {
            break;
        }
        let frame = buf.split_to(n);
        if Message::decode(&frame, &CodecContext::default()) == Ok(Message::Keepalive) {
            keepalives += 1;
        }
    }
    assert!(keepalives >= 3, "{keepalives} keepalives while stalled");
    // Consume now: every UPDATE arrives, in order, and the session stays up.
    let mut seen = 0u32;
    while seen < N {
        match rig.event().await {
            SessionEvent::Updates { updates, .. } => {
                for u in updates {
                    let want = format!("10.{}.{}.0/24", (seen >> 8) & 0xFF, seen & 0xFF);
                    assert_eq!(u.nlri[0].to_string(), want);
                    seen += 1;
                }
            }
            other => panic!("after {seen} UPDATEs: {other:?}"),
        }
    }
    timeout(WAIT, writer).await.unwrap().unwrap();
    assert_eq!(rig.handle.stats().state, State::Established);
    assert_eq!(rig.handle.stats().received.update, u64::from(N));
}
