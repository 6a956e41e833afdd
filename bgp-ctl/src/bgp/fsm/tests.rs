//! The FSM driven by events alone: every state's main transitions, timers, collisions,
//! hold negotiation, refused OPENs, admin actions, damping.

use std::net::Ipv4Addr;

use bgp_wire::{Capability, GracefulRestart, OpenSubcode};

use super::*;
use crate::bgp::peer_config::{MaxPrefix, RemoteAs};

const LOCAL_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 5);

fn local() -> LocalInfo {
    LocalInfo {
        asn: 65000,
        router_id: LOCAL_ID,
    }
}

fn config() -> PeerConfig {
    PeerConfig::new("10.0.0.2".parse().unwrap(), RemoteAs::Exact(65001))
}

fn fsm_with(config: PeerConfig) -> Fsm {
    Fsm::new(Arc::new(config), local())
}

fn peer_open(asn: u32, id: Ipv4Addr, hold: u16) -> Open {
    Open::new(
        asn,
        hold,
        id,
        vec![
            Capability::MultiProtocol(Family::IPV4_UNICAST),
            Capability::RouteRefresh,
        ],
    )
}

fn open_ev(conn: ConnId) -> Event {
    Event::Open {
        conn,
        open: peer_open(65001, Ipv4Addr::new(10, 0, 0, 2), 90),
    }
}

fn connected(conn: ConnId, direction: Direction) -> Event {
    let (local, remote) = match direction {
        Direction::Outgoing => ("10.0.0.1:40000", "10.0.0.2:179"),
        Direction::Incoming => ("10.0.0.1:179", "10.0.0.2:40001"),
    };
    Event::Connected {
        conn,
        direction,
        local: local.parse().unwrap(),
        remote: remote.parse().unwrap(),
    }
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn cease(sub: CeaseSubcode) -> NotificationCode {
    NotificationCode::Cease(sub)
}

/// The CONNECT action's id, asserting there is exactly one.
fn connect_id(actions: &[Action]) -> ConnId {
    let ids: Vec<ConnId> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Connect(id) => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(ids.len(), 1, "one Connect expected in {actions:#?}");
    ids[0]
}

/// The NOTIFICATION sent when closing `conn`: `None` if it is not closed,
/// `Some(None)` if closed without one.
fn closed_with(actions: &[Action], conn: ConnId) -> Option<Option<NotificationCode>> {
    actions.iter().find_map(|a| match a {
        Action::Close {
            conn: c,
            notification,
        } if *c == conn => Some(notification.as_ref().map(|n| n.code)),
        _ => None,
    })
}

fn down(actions: &[Action]) -> Option<&DownInfo> {
    actions.iter().find_map(|a| match a {
        Action::Down(d) => Some(d),
        _ => None,
    })
}

fn started(actions: &[Action], timer: Timer) -> Option<Duration> {
    actions.iter().rev().find_map(|a| match a {
        Action::StartTimer(t, d) if *t == timer => Some(*d),
        _ => None,
    })
}

/// Enables an active FSM and brings its outgoing connection to Established.
fn established(fsm: &mut Fsm) -> ConnId {
    let c = connect_id(&fsm.handle(Event::Enable));
    fsm.handle(connected(c, Direction::Outgoing));
    fsm.handle(open_ev(c));
    let a = fsm.handle(Event::Keepalive { conn: c });
    assert!(matches!(a.last(), Some(Action::Established(id, _)) if *id == c));
    assert_eq!(fsm.state(), State::Established);
    c
}

#[test]
fn idle_until_enabled_then_connect() {
    let mut fsm = fsm_with(config());
    assert_eq!(fsm.state(), State::Idle);
    let a = fsm.handle(Event::Enable);
    let c = connect_id(&a);
    assert_eq!(started(&a, Timer::ConnectRetry), Some(secs(5)));
    assert_eq!(fsm.state(), State::Connect);
    assert!(fsm.handle(Event::Enable).is_empty(), "enable is idempotent");
    assert!(fsm.has_conn(c));
}

#[test]
fn a_passive_peer_waits_in_active_and_never_connects() {
    let mut cfg = config();
    cfg.passive = true;
    let mut fsm = fsm_with(cfg);
    let a = fsm.handle(Event::Enable);
    assert!(!a.iter().any(|a| matches!(a, Action::Connect(_))));
    assert_eq!(fsm.state(), State::Active);
    assert!(
        fsm.handle(Event::TimerExpired(Timer::ConnectRetry))
            .is_empty()
    );
    let c = fsm.allocate_conn();
    let a = fsm.handle(connected(c, Direction::Incoming));
    assert!(matches!(&a[0], Action::SendOpen(id, open) if *id == c && open.asn() == 65000));
    assert_eq!(started(&a, Timer::Hold(c)), Some(secs(240)));
    assert_eq!(fsm.state(), State::OpenSent);
}

#[test]
fn a_failed_connection_waits_in_active_for_connect_retry() {
    let mut fsm = fsm_with(config());
    let c1 = connect_id(&fsm.handle(Event::Enable));
    assert!(fsm.handle(Event::ConnectFailed { conn: c1 }).is_empty());
    assert_eq!(fsm.state(), State::Active);
    let a = fsm.handle(Event::TimerExpired(Timer::ConnectRetry));
    let c2 = connect_id(&a);
    assert_ne!(c1, c2);
    assert_eq!(started(&a, Timer::ConnectRetry), Some(secs(5)));
    assert_eq!(fsm.state(), State::Connect);
    // A late success of the abandoned attempt is closed.
    let a = fsm.handle(connected(c1, Direction::Outgoing));
    assert_eq!(closed_with(&a, c1), Some(None));
    assert_eq!(fsm.state(), State::Connect);
}

#[test]
fn connect_retry_in_connect_abandons_the_attempt_and_starts_another() {
    let mut fsm = fsm_with(config());
    let c1 = connect_id(&fsm.handle(Event::Enable));
    let a = fsm.handle(Event::TimerExpired(Timer::ConnectRetry));
    assert_eq!(closed_with(&a, c1), Some(None));
    let c2 = connect_id(&a);
    assert!(fsm.has_conn(c2) && !fsm.has_conn(c1));
}

#[test]
fn open_keepalive_exchange_reaches_established_with_negotiated_timers() {
    let mut fsm = fsm_with(config());
    let c = connect_id(&fsm.handle(Event::Enable));
    let a = fsm.handle(connected(c, Direction::Outgoing));
    assert!(a.contains(&Action::StopTimer(Timer::ConnectRetry)));
    let Some(Action::SendOpen(_, open)) = a.iter().find(|a| matches!(a, Action::SendOpen(..)))
    else {
        panic!("no OPEN sent: {a:?}");
    };
    assert_eq!((open.hold_time, open.bgp_id), (9, LOCAL_ID));
    assert_eq!(started(&a, Timer::Hold(c)), Some(secs(240)));
    assert_eq!(fsm.state(), State::OpenSent);

    let a = fsm.handle(open_ev(c));
    assert!(matches!(&a[0], Action::UseCodec(id, n) if *id == c && n.four_octet_as));
    assert!(a.contains(&Action::SendKeepalive(c)));
    assert_eq!(started(&a, Timer::Hold(c)), Some(secs(9)));
    assert_eq!(started(&a, Timer::Keepalive(c)), Some(secs(3)));
    assert_eq!(fsm.state(), State::OpenConfirm);

    let a = fsm.handle(Event::Keepalive { conn: c });
    assert_eq!(started(&a, Timer::Hold(c)), Some(secs(9)));
    assert_eq!(started(&a, Timer::Stable), Some(secs(60)));
    let Some(Action::Established(id, n)) = a.last() else {
        panic!("not established: {a:?}");
    };
    assert_eq!(*id, c);
    assert_eq!((n.peer_as, n.hold_time, n.keepalive), (65001, 9, 3));
    assert_eq!(n.families, vec![Family::IPV4_UNICAST]);
    assert_eq!(n.remote_addr, "10.0.0.2:179".parse().unwrap());
    assert_eq!(fsm.established().map(|(id, _)| id), Some(c));

    // Established: messages restart the hold timer, the keepalive timer sends.
    for ev in [
        Event::Keepalive { conn: c },
        Event::Update { conn: c },
        Event::RouteRefresh { conn: c },
    ] {
        assert_eq!(started(&fsm.handle(ev), Timer::Hold(c)), Some(secs(9)));
    }
    let a = fsm.handle(Event::TimerExpired(Timer::Keepalive(c)));
    assert_eq!(
        a,
        vec![
            Action::SendKeepalive(c),
            Action::StartTimer(Timer::Keepalive(c), secs(3))
        ]
    );
    assert_eq!(
        fsm.handle(Event::UpdateSent { conn: c }),
        vec![Action::StartTimer(Timer::Keepalive(c), secs(3))]
    );
}

#[test]
fn hold_time_zero_runs_neither_hold_nor_keepalive_timers() {
    let mut fsm = fsm_with(config());
    let c = connect_id(&fsm.handle(Event::Enable));
    fsm.handle(connected(c, Direction::Outgoing));
    let a = fsm.handle(Event::Open {
        conn: c,
        open: peer_open(65001, Ipv4Addr::new(10, 0, 0, 2), 0),
    });
    assert_eq!(started(&a, Timer::Hold(c)), None);
    assert!(a.contains(&Action::StopTimer(Timer::Hold(c))));
    assert_eq!(started(&a, Timer::Keepalive(c)), None);
    let a = fsm.handle(Event::Keepalive { conn: c });
    assert_eq!(started(&a, Timer::Hold(c)), None);
    assert!(
        fsm.handle(Event::TimerExpired(Timer::Keepalive(c)))
            .is_empty()
    );
    assert_eq!(fsm.state(), State::Established);
}

#[test]
fn a_smaller_peer_hold_time_wins() {
    let mut fsm = fsm_with(config());
    let c = connect_id(&fsm.handle(Event::Enable));
    fsm.handle(connected(c, Direction::Outgoing));
    let a = fsm.handle(Event::Open {
        conn: c,
        open: peer_open(65001, Ipv4Addr::new(10, 0, 0, 2), 3),
    });
    assert_eq!(started(&a, Timer::Hold(c)), Some(secs(3)));
    assert_eq!(started(&a, Timer::Keepalive(c)), Some(secs(1)));
}

#[test]
fn hold_timer_expiry_sends_the_notification_and_damps() {
    let mut fsm = fsm_with(config());
    let c = established(&mut fsm);
    let a = fsm.handle(Event::TimerExpired(Timer::Hold(c)));
    assert_eq!(
        closed_with(&a, c),
        Some(Some(NotificationCode::HoldTimerExpired))
    );
    let d = down(&a).expect("Down");
    assert!(d.was_established);
    assert!(
        matches!(&d.reason, DownReason::Sent(n) if n.code == NotificationCode::HoldTimerExpired)
    );
    assert_eq!(d.negotiated.as_ref().map(|n| n.peer_as), Some(65001));
    assert!(!d.retain_routes(), "no graceful restart negotiated");
    assert_eq!(started(&a, Timer::IdleHold), Some(secs(1)));
    assert!(a.contains(&Action::StopTimer(Timer::Stable)));
    assert_eq!(fsm.state(), State::Idle);
    assert!(!fsm.has_conn(c));

    // Idle hold: the peer's connections are refused, stale timers do nothing.
    let inc = fsm.allocate_conn();
    let a = fsm.handle(connected(inc, Direction::Incoming));
    assert_eq!(
        closed_with(&a, inc),
        Some(Some(cease(CeaseSubcode::ConnectionRejected)))
    );
    assert!(fsm.handle(Event::TimerExpired(Timer::Hold(c))).is_empty());
    assert!(
        fsm.handle(Event::TimerExpired(Timer::ConnectRetry))
            .is_empty()
    );
    assert_eq!(fsm.state(), State::Idle);

    let a = fsm.handle(Event::TimerExpired(Timer::IdleHold));
    connect_id(&a);
    assert_eq!(fsm.state(), State::Connect);
}

#[test]
fn consecutive_failures_double_the_idle_hold_until_the_session_is_stable() {
    let mut fsm = fsm_with(config());
    let mut holds = Vec::new();
    let mut c = established(&mut fsm);
    for _ in 0..4 {
        let a = fsm.handle(Event::TimerExpired(Timer::Hold(c)));
        holds.push(started(&a, Timer::IdleHold).unwrap().as_secs());
        let a = fsm.handle(Event::TimerExpired(Timer::IdleHold));
        c = connect_id(&a);
        fsm.handle(connected(c, Direction::Outgoing));
        fsm.handle(open_ev(c));
        fsm.handle(Event::Keepalive { conn: c });
    }
    assert_eq!(holds, [1, 2, 4, 8]);
    assert_eq!(fsm.failures(), 4);
    fsm.handle(Event::TimerExpired(Timer::Stable));
    assert_eq!(fsm.failures(), 0);
    let a = fsm.handle(Event::TimerExpired(Timer::Hold(c)));
    assert_eq!(started(&a, Timer::IdleHold), Some(secs(1)));
}

#[test]
fn refused_opens_send_the_right_notification_and_go_idle() {
    let cases: Vec<(Open, NotificationCode)> = vec![
        (
            peer_open(65099, Ipv4Addr::new(10, 0, 0, 2), 9),
            NotificationCode::OpenMessage(OpenSubcode::BadPeerAs),
        ),
        (
            peer_open(65001, Ipv4Addr::new(10, 0, 0, 2), 2),
            NotificationCode::OpenMessage(OpenSubcode::UnacceptableHoldTime),
        ),
        (
            peer_open(65001, Ipv4Addr::UNSPECIFIED, 9),
            NotificationCode::OpenMessage(OpenSubcode::BadBgpIdentifier),
        ),
        (
            Open {
                version: 3,
                ..peer_open(65001, Ipv4Addr::new(10, 0, 0, 2), 9)
            },
            NotificationCode::OpenMessage(OpenSubcode::UnsupportedVersionNumber),
        ),
    ];
    for (open, code) in cases {
        let mut fsm = fsm_with(config());
        let c = connect_id(&fsm.handle(Event::Enable));
        fsm.handle(connected(c, Direction::Outgoing));
        let a = fsm.handle(Event::Open { conn: c, open });
        assert_eq!(closed_with(&a, c), Some(Some(code)), "{a:#?}");
        let d = down(&a).expect("Down after the OPEN exchange");
        assert!(!d.was_established && d.negotiated.is_none());
        assert_eq!(started(&a, Timer::IdleHold), Some(secs(1)));
        assert_eq!(fsm.state(), State::Idle);
    }
}

#[test]
fn messages_out_of_order_are_fsm_errors_with_the_state_subcode() {
    // OpenSent: KEEPALIVE (RFC 6608 subcode 1).
    let mut fsm = fsm_with(config());
    let c = connect_id(&fsm.handle(Event::Enable));
    fsm.handle(connected(c, Direction::Outgoing));
    let a = fsm.handle(Event::Keepalive { conn: c });
    assert_eq!(
        closed_with(&a, c),
        Some(Some(NotificationCode::FsmError(1)))
    );
    // OpenConfirm: UPDATE (subcode 2).
    let mut fsm = fsm_with(config());
    let c = connect_id(&fsm.handle(Event::Enable));
    fsm.handle(connected(c, Direction::Outgoing));
    fsm.handle(open_ev(c));
    let a = fsm.handle(Event::Update { conn: c });
    assert_eq!(
        closed_with(&a, c),
        Some(Some(NotificationCode::FsmError(2)))
    );
    // Established: a second OPEN (subcode 3).
    let mut fsm = fsm_with(config());
    let c = established(&mut fsm);
    let a = fsm.handle(open_ev(c));
    assert_eq!(
        closed_with(&a, c),
        Some(Some(NotificationCode::FsmError(3)))
    );
    assert!(down(&a).is_some_and(|d| d.was_established));
}

#[test]
fn decode_errors_send_their_notification() {
    let mut fsm = fsm_with(config());
    let c = established(&mut fsm);
    let n = Notification::new(NotificationCode::UpdateMessage(
        bgp_wire::UpdateSubcode::MalformedAttributeList,
    ));
    let a = fsm.handle(Event::MessageError {
        conn: c,
        notification: n.clone(),
    });
    assert_eq!(closed_with(&a, c), Some(Some(n.code)));
    assert_eq!(down(&a).map(|d| &d.reason), Some(&DownReason::Sent(n)));
}

/// Outgoing and incoming connections both in OpenSent; the OPEN arrives on `first`,
/// then on the other. Returns the actions of the second OPEN.
fn collide(
    local_id: Ipv4Addr,
    local_as: u32,
    peer_id: Ipv4Addr,
    first: Direction,
) -> (Fsm, ConnId, ConnId, Vec<Action>) {
    let mut fsm = Fsm::new(
        Arc::new(config()),
        LocalInfo {
            asn: local_as,
            router_id: local_id,
        },
    );
    let out = connect_id(&fsm.handle(Event::Enable));
    fsm.handle(connected(out, Direction::Outgoing));
    let inc = fsm.allocate_conn();
    fsm.handle(connected(inc, Direction::Incoming));
    assert_eq!(fsm.state(), State::OpenSent);
    let (a, b) = match first {
        Direction::Outgoing => (out, inc),
        Direction::Incoming => (inc, out),
    };
    let open = |conn| Event::Open {
        conn,
        open: peer_open(65001, peer_id, 9),
    };
    let first_actions = fsm.handle(open(a));
    assert_eq!(closed_with(&first_actions, b), None, "no collision yet");
    assert_eq!(fsm.state(), State::OpenConfirm);
    let actions = fsm.handle(open(b));
    (fsm, out, inc, actions)
}

#[test]
fn collision_keeps_the_connection_opened_by_the_higher_identifier() {
    let collision = Some(Some(cease(CeaseSubcode::ConnectionCollisionResolution)));
    for first in [Direction::Outgoing, Direction::Incoming] {
        // The peer's id is higher: its connection (incoming for us) wins.
        let (fsm, out, inc, a) = collide(
            Ipv4Addr::new(10, 0, 0, 1),
            65000,
            Ipv4Addr::new(10, 0, 0, 2),
            first,
        );
        assert_eq!(closed_with(&a, out), collision, "{first:?}");
        assert_eq!(closed_with(&a, inc), None);
        assert!(fsm.has_conn(inc) && !fsm.has_conn(out));
        assert!(down(&a).is_none(), "a collision is not a failure");
        // Ours is higher: our outgoing connection wins.
        let (fsm, out, inc, a) = collide(
            Ipv4Addr::new(10, 0, 0, 9),
            65000,
            Ipv4Addr::new(10, 0, 0, 2),
            first,
        );
        assert_eq!(closed_with(&a, inc), collision, "{first:?}");
        assert!(fsm.has_conn(out) && !fsm.has_conn(inc));
        assert_eq!(fsm.state(), State::OpenConfirm);
    }
}

#[test]
fn collision_with_equal_identifiers_keeps_the_higher_as_connection() {
    let id = Ipv4Addr::new(10, 0, 0, 7);
    // eBGP may share identifiers (RFC 6286); then the larger AS dominates.
    let (fsm, out, inc, _) = collide(id, 65000, id, Direction::Outgoing);
    assert!(
        fsm.has_conn(inc) && !fsm.has_conn(out),
        "peer AS 65001 > 65000"
    );
    let (fsm, out, inc, _) = collide(id, 65002, id, Direction::Outgoing);
    assert!(
        fsm.has_conn(out) && !fsm.has_conn(inc),
        "our AS 65002 > 65001"
    );
}

#[test]
fn an_open_stops_a_pending_outgoing_attempt() {
    let mut fsm = fsm_with(config());
    let out = connect_id(&fsm.handle(Event::Enable));
    let inc = fsm.allocate_conn();
    fsm.handle(connected(inc, Direction::Incoming));
    let a = fsm.handle(open_ev(inc));
    assert_eq!(closed_with(&a, out), Some(None));
    assert!(a.contains(&Action::StopTimer(Timer::ConnectRetry)));
    assert_eq!(fsm.state(), State::OpenConfirm);
}

#[test]
fn a_second_connection_while_established_is_closed_on_its_open() {
    let mut fsm = fsm_with(config());
    let c = established(&mut fsm);
    let inc = fsm.allocate_conn();
    fsm.handle(connected(inc, Direction::Incoming));
    assert_eq!(fsm.state(), State::Established);
    let a = fsm.handle(open_ev(inc));
    assert_eq!(
        closed_with(&a, inc),
        Some(Some(cease(CeaseSubcode::ConnectionCollisionResolution)))
    );
    assert_eq!(closed_with(&a, c), None);
    assert!(down(&a).is_none());
    assert_eq!(fsm.established().map(|(id, _)| id), Some(c));
    // A broken second connection does not take the session down either.
    let inc2 = fsm.allocate_conn();
    fsm.handle(connected(inc2, Direction::Incoming));
    let a = fsm.handle(Event::Keepalive { conn: inc2 });
    assert_eq!(
        closed_with(&a, inc2),
        Some(Some(NotificationCode::FsmError(1)))
    );
    assert!(down(&a).is_none());
    assert_eq!(fsm.state(), State::Established);
}

fn gr(notification: bool) -> GracefulRestart {
    GracefulRestart {
        restarting: false,
        notification,
        restart_time: 120,
        families: vec![
            bgp_wire::GracefulRestartFamily {
                family: Family::IPV4_UNICAST,
                forwarding_preserved: true,
            },
            // Listed but not negotiated (the peer's OPEN offers IPv4 only): not kept.
            bgp_wire::GracefulRestartFamily {
                family: Family::IPV6_UNICAST,
                forwarding_preserved: true,
            },
        ],
    }
}

fn gr_open(notification: bool) -> Open {
    let mut open = peer_open(65001, Ipv4Addr::new(10, 0, 0, 2), 9);
    open.capabilities
        .push(Capability::GracefulRestart(gr(notification)));
    open
}

fn established_gr(local_n: bool, peer_n: bool) -> (Fsm, ConnId) {
    let mut cfg = config();
    cfg.graceful_restart = Some(gr(local_n));
    let mut fsm = fsm_with(cfg);
    let c = connect_id(&fsm.handle(Event::Enable));
    fsm.handle(connected(c, Direction::Outgoing));
    fsm.handle(Event::Open {
        conn: c,
        open: gr_open(peer_n),
    });
    fsm.handle(Event::Keepalive { conn: c });
    assert_eq!(fsm.state(), State::Established);
    (fsm, c)
}

#[test]
fn a_new_connection_from_a_graceful_restart_peer_is_its_restart() {
    let (mut fsm, old) = established_gr(false, false);
    let inc = fsm.allocate_conn();
    fsm.handle(connected(inc, Direction::Incoming));
    let a = fsm.handle(Event::Open {
        conn: inc,
        open: gr_open(false),
    });
    assert_eq!(
        closed_with(&a, old),
        Some(None),
        "no NOTIFICATION (RFC 4724)"
    );
    let d = down(&a).expect("Down for the old session");
    assert_eq!(d.reason, DownReason::PeerRestarted);
    assert!(d.retain_routes());
    assert_eq!(
        d.negotiated
            .as_ref()
            .and_then(|n| n.peer_graceful_restart.as_ref())
            .map(|g| g.restart_time),
        Some(120)
    );
    assert_eq!(d.retained_families(), vec![Family::IPV4_UNICAST]);
    assert_eq!(fsm.state(), State::OpenConfirm);
    let a = fsm.handle(Event::Keepalive { conn: inc });
    assert!(matches!(a.last(), Some(Action::Established(id, _)) if *id == inc));
}

/// The Restart State bit of the OPEN an action list sends, if it sends one.
fn sent_restart_bit(actions: &[Action]) -> Option<bool> {
    actions.iter().find_map(|a| match a {
        Action::SendOpen(_, open) => open.graceful_restart().map(|g| g.restarting),
        _ => None,
    })
}

#[test]
fn the_restart_state_bit_is_sent_only_until_the_first_session() {
    let mut cfg = config();
    cfg.graceful_restart = Some(GracefulRestart {
        restarting: true,
        ..gr(true)
    });
    let mut fsm = fsm_with(cfg);
    let c = connect_id(&fsm.handle(Event::Enable));
    let a = fsm.handle(connected(c, Direction::Outgoing));
    assert_eq!(sent_restart_bit(&a), Some(true), "{a:#?}");
    fsm.handle(Event::Open {
        conn: c,
        open: gr_open(true),
    });
    fsm.handle(Event::Keepalive { conn: c });
    assert_eq!(fsm.state(), State::Established);
    // The session drops; the next OPEN no longer claims a restart.
    fsm.handle(Event::Closed {
        conn: c,
        reason: "reset by peer".into(),
    });
    let a = fsm.handle(Event::TimerExpired(Timer::IdleHold));
    let c = connect_id(&a);
    let a = fsm.handle(connected(c, Direction::Outgoing));
    assert_eq!(sent_restart_bit(&a), Some(false), "{a:#?}");
}

#[test]
fn graceful_restart_retains_routes_per_rfc_4724_and_8538() {
    // Without the N bit, a NOTIFICATION ends graceful restart; a lost connection does not.
    let (mut fsm, c) = established_gr(false, false);
    let a = fsm.handle(Event::TimerExpired(Timer::Hold(c)));
    assert!(!down(&a).unwrap().retain_routes());
    assert!(down(&a).unwrap().retained_families().is_empty());
    let (mut fsm, c) = established_gr(false, false);
    let a = fsm.handle(Event::Closed {
        conn: c,
        reason: "reset by peer".into(),
    });
    let d = down(&a).unwrap();
    assert!(matches!(d.reason, DownReason::ConnectionLost(_)));
    assert!(d.retain_routes());
    // With both N bits, the hold timer keeps them, a Hard Reset does not.
    let (mut fsm, c) = established_gr(true, true);
    let a = fsm.handle(Event::TimerExpired(Timer::Hold(c)));
    assert!(down(&a).unwrap().retain_routes());
    let (mut fsm, c) = established_gr(true, true);
    let a = fsm.handle(Event::Notification {
        conn: c,
        notification: Notification::new(cease(CeaseSubcode::HardReset)),
    });
    assert!(!down(&a).unwrap().retain_routes());
}

#[test]
fn bfd_down_closes_with_cease_bfd_down_and_keeps_no_routes() {
    // Without the N bit: Cease/BFD Down (RFC 9384); the peer's routes go.
    let (mut fsm, c) = established_gr(false, false);
    let a = fsm.handle(Event::BfdDown);
    assert_eq!(closed_with(&a, c), Some(Some(cease(CeaseSubcode::BfdDown))));
    let d = down(&a).expect("down");
    assert!(!d.retain_routes(), "{d:?}");
    assert!(started(&a, Timer::IdleHold).is_some());
    assert_eq!(fsm.state(), State::Idle);
    // With both N bits: as a Hard Reset carrying BFD Down, so neither side keeps routes.
    let (mut fsm, c) = established_gr(true, true);
    let a = fsm.handle(Event::BfdDown);
    assert_eq!(
        closed_with(&a, c),
        Some(Some(cease(CeaseSubcode::HardReset)))
    );
    assert!(!down(&a).expect("down").retain_routes());
    // Not Established: nothing to tear down.
    let mut fsm = fsm_with(config());
    fsm.handle(Event::Enable);
    assert!(fsm.handle(Event::BfdDown).is_empty());
}

#[test]
fn admin_shutdown_with_n_bit_is_sent_as_a_hard_reset() {
    let (mut fsm, c) = established_gr(true, true);
    let cease_msg =
        Notification::cease_with_communication(CeaseSubcode::AdministrativeShutdown, "bye");
    let a = fsm.handle(Event::Disable { cease: cease_msg });
    let Some(Action::Close {
        notification: Some(n),
        ..
    }) = a
        .iter()
        .find(|a| matches!(a, Action::Close { conn, .. } if *conn == c))
    else {
        panic!("no close: {a:?}");
    };
    assert_eq!(n.code, cease(CeaseSubcode::HardReset));
    assert_eq!(&n.data[..], &[6, 2, 3, b'b', b'y', b'e']);
    assert!(!down(&a).unwrap().retain_routes());
}

#[test]
fn admin_shutdown_sends_the_communication_and_stays_idle_until_enabled() {
    let mut fsm = fsm_with(config());
    let c = established(&mut fsm);
    let msg = Notification::cease_with_communication(
        CeaseSubcode::AdministrativeShutdown,
        "maintenance until 14:00",
    );
    let a = fsm.handle(Event::Disable { cease: msg.clone() });
    assert!(a.contains(&Action::Close {
        conn: c,
        notification: Some(msg.clone())
    }));
    assert_eq!(down(&a).map(|d| &d.reason), Some(&DownReason::Sent(msg)));
    assert_eq!(started(&a, Timer::IdleHold), None);
    assert_eq!(fsm.state(), State::Idle);
    assert!(!fsm.enabled());
    assert!(fsm.handle(Event::TimerExpired(Timer::IdleHold)).is_empty());
    let inc = fsm.allocate_conn();
    let a = fsm.handle(connected(inc, Direction::Incoming));
    assert_eq!(
        closed_with(&a, inc),
        Some(Some(cease(CeaseSubcode::ConnectionRejected)))
    );
    connect_id(&fsm.handle(Event::Enable));
    assert_eq!(fsm.failures(), 0, "an admin stop is not a failure");
}

#[test]
fn admin_shutdown_of_a_peer_that_is_not_up_closes_every_attempt() {
    let mut fsm = fsm_with(config());
    let out = connect_id(&fsm.handle(Event::Enable));
    let inc = fsm.allocate_conn();
    fsm.handle(connected(inc, Direction::Incoming));
    let msg = Notification::new(cease(CeaseSubcode::AdministrativeShutdown));
    let a = fsm.handle(Event::Disable { cease: msg.clone() });
    assert_eq!(
        closed_with(&a, out),
        Some(None),
        "still connecting: no message"
    );
    assert_eq!(closed_with(&a, inc), Some(Some(msg.code)));
    assert!(a.contains(&Action::StopTimer(Timer::ConnectRetry)));
    assert!(down(&a).is_some_and(|d| !d.was_established));
}

#[test]
fn admin_reset_restarts_after_the_initial_idle_hold_and_forgets_failures() {
    let mut fsm = fsm_with(config());
    let c = established(&mut fsm);
    fsm.handle(Event::TimerExpired(Timer::Hold(c)));
    fsm.handle(Event::TimerExpired(Timer::IdleHold));
    assert_eq!(fsm.failures(), 1);
    let c = fsm.conns.first().map(|c| c.id).expect("connecting again");
    fsm.handle(connected(c, Direction::Outgoing));
    fsm.handle(open_ev(c));
    fsm.handle(Event::Keepalive { conn: c });
    let msg = Notification::cease_with_communication(CeaseSubcode::AdministrativeReset, "clear");
    let a = fsm.handle(Event::Reset {
        cease: msg.clone(),
        hard: false,
    });
    assert_eq!(closed_with(&a, c), Some(Some(msg.code)));
    assert_eq!(started(&a, Timer::IdleHold), Some(secs(1)));
    assert_eq!(fsm.failures(), 0);
    assert!(fsm.enabled());
    connect_id(&fsm.handle(Event::TimerExpired(Timer::IdleHold)));
}

#[test]
fn max_prefix_sends_afi_safi_limit_and_restarts_only_if_configured() {
    let family = Family::IPV6_UNICAST;
    let mut fsm = fsm_with(config());
    let c = established(&mut fsm);
    let a = fsm.handle(Event::MaxPrefixExceeded { family, limit: 100 });
    let n = a
        .iter()
        .find_map(|a| match a {
            Action::Close {
                conn,
                notification: Some(n),
            } if *conn == c => Some(n.clone()),
            _ => None,
        })
        .expect("Cease sent");
    assert_eq!(n.code, cease(CeaseSubcode::MaximumPrefixesReached));
    assert_eq!(&n.data[..], &[0, 2, 1, 0, 0, 0, 100]);
    assert!(!fsm.enabled(), "no restart configured: stays down");

    let mut cfg = config();
    cfg.max_prefix = Some(MaxPrefix {
        limit: 100,
        warning_threshold_pct: 90,
        restart_after: Some(secs(30)),
    });
    let mut fsm = fsm_with(cfg);
    established(&mut fsm);
    let a = fsm.handle(Event::MaxPrefixExceeded { family, limit: 100 });
    assert_eq!(started(&a, Timer::IdleHold), Some(secs(30)));
    assert!(fsm.enabled());
    assert_eq!(fsm.state(), State::Idle);
    // Not Established: nothing to tear down.
    let mut fsm = fsm_with(config());
    fsm.handle(Event::Enable);
    assert!(
        fsm.handle(Event::MaxPrefixExceeded { family, limit: 1 })
            .is_empty()
    );
}

#[test]
fn connection_loss_in_open_sent_retries_but_in_established_damps() {
    let mut fsm = fsm_with(config());
    let c = connect_id(&fsm.handle(Event::Enable));
    fsm.handle(connected(c, Direction::Outgoing));
    let a = fsm.handle(Event::Closed {
        conn: c,
        reason: "eof".into(),
    });
    assert_eq!(started(&a, Timer::ConnectRetry), Some(secs(5)));
    assert!(down(&a).is_none());
    assert_eq!(fsm.state(), State::Active);
    assert_eq!(fsm.failures(), 0);

    let mut fsm = fsm_with(config());
    let c = established(&mut fsm);
    let a = fsm.handle(Event::Closed {
        conn: c,
        reason: "connection reset by peer".into(),
    });
    assert_eq!(closed_with(&a, c), Some(None));
    assert_eq!(
        down(&a).map(|d| &d.reason),
        Some(&DownReason::ConnectionLost(
            "connection reset by peer".into()
        ))
    );
    assert_eq!(started(&a, Timer::IdleHold), Some(secs(1)));
    assert_eq!(fsm.state(), State::Idle);
}

#[test]
fn the_peers_notifications_end_the_session_and_only_errors_are_damped() {
    let mut fsm = fsm_with(config());
    let c = established(&mut fsm);
    let shut = Notification::cease_with_communication(CeaseSubcode::AdministrativeShutdown, "x");
    let a = fsm.handle(Event::Notification {
        conn: c,
        notification: shut.clone(),
    });
    assert_eq!(
        closed_with(&a, c),
        Some(None),
        "never answer a NOTIFICATION"
    );
    assert_eq!(
        down(&a).map(|d| &d.reason),
        Some(&DownReason::Received(shut))
    );
    assert_eq!(fsm.failures(), 0);

    let mut fsm = fsm_with(config());
    let c = established(&mut fsm);
    let err = Notification::new(NotificationCode::UpdateMessage(
        bgp_wire::UpdateSubcode::MalformedAsPath,
    ));
    fsm.handle(Event::Notification {
        conn: c,
        notification: err,
    });
    assert_eq!(fsm.failures(), 1);
}

#[test]
fn a_collision_notification_closes_only_that_connection() {
    let mut fsm = fsm_with(config());
    let out = connect_id(&fsm.handle(Event::Enable));
    fsm.handle(connected(out, Direction::Outgoing));
    let inc = fsm.allocate_conn();
    fsm.handle(connected(inc, Direction::Incoming));
    fsm.handle(open_ev(inc));
    let a = fsm.handle(Event::Notification {
        conn: out,
        notification: Notification::new(cease(CeaseSubcode::ConnectionCollisionResolution)),
    });
    assert_eq!(closed_with(&a, out), Some(None));
    assert!(down(&a).is_none());
    assert!(fsm.has_conn(inc));
    assert_eq!(fsm.state(), State::OpenConfirm);
}

#[test]
fn a_new_incoming_connection_replaces_one_still_opening() {
    let mut cfg = config();
    cfg.passive = true;
    let mut fsm = fsm_with(cfg);
    fsm.handle(Event::Enable);
    let first = fsm.allocate_conn();
    fsm.handle(connected(first, Direction::Incoming));
    let second = fsm.allocate_conn();
    let a = fsm.handle(connected(second, Direction::Incoming));
    assert_eq!(
        closed_with(&a, first),
        Some(Some(cease(CeaseSubcode::ConnectionCollisionResolution)))
    );
    assert!(fsm.has_conn(second) && !fsm.has_conn(first));
    assert_eq!(fsm.state(), State::OpenSent);
}

#[test]
fn events_for_unknown_connections_are_ignored() {
    let mut fsm = fsm_with(config());
    let c = established(&mut fsm);
    let ghost = ConnId(999);
    for ev in [
        open_ev(ghost),
        Event::Keepalive { conn: ghost },
        Event::Update { conn: ghost },
        Event::Closed {
            conn: ghost,
            reason: String::new(),
        },
        Event::TimerExpired(Timer::Hold(ghost)),
        Event::TimerExpired(Timer::Keepalive(ghost)),
    ] {
        assert!(fsm.handle(ev).is_empty());
    }
    assert_eq!(fsm.established().map(|(id, _)| id), Some(c));
}
