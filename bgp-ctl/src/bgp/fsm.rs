//! The BGP finite state machine of one peer (RFC 4271 8), without I/O: events in, actions
//! out. Timers are actions (start, stop) and events (expired); connections are ids.
//!
//! One FSM serves a peer and all its TCP connections, like BIRD: while the outgoing and an
//! incoming connection race, each has its own state (OpenSent, OpenConfirm, ...), and
//! connection collision detection (RFC 4271 6.8, RFC 6286 2.3) closes the loser with
//! Cease/Connection Collision Resolution. The peer's state is its most advanced
//! connection's, or Connect (an outgoing connection in progress), Active (waiting for one)
//! or Idle (disabled, or held down after an error).
//!
//! What the RFC leaves optional, chosen here:
//! - DampPeerOscillations: after a failure the peer stays Idle for a growing time (see
//!   [`super::timers::TimerConfig`]); in Idle, incoming connections are refused with
//!   Cease/Connection Rejected (RFC 4486).
//! - A failed outgoing connection leaves the peer in Active until the ConnectRetry timer
//!   fires (no damping: a peer that is not up yet refuses connections).
//! - No DelayOpen, no SendNOTIFICATIONwithoutOPEN (except Connection Rejected).
//! - A new connection from an Established peer whose session has graceful restart (both
//!   sides advertised it) is the peer restarting (RFC 4724 4.2): the old connection is
//!   closed without NOTIFICATION and the new one proceeds.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bgp_wire::{CeaseSubcode, Family, Notification, NotificationCode, Open};

use super::negotiation::{Negotiated, local_open, negotiate};
use super::peer_config::{LocalInfo, PeerConfig};
use super::timers::Damping;

/// Identifies one TCP connection of a peer, never reused by an FSM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Who opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// We connected to the peer.
    Outgoing,
    /// The peer connected to us.
    Incoming,
}

/// RFC 4271 states.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    /// Disabled, or held down after an error.
    Idle,
    /// An outgoing connection is in progress.
    Connect,
    /// Waiting for a connection (incoming, or the next outgoing attempt).
    Active,
    /// OPEN sent, waiting for the peer's.
    OpenSent,
    /// OPENs exchanged, waiting for the peer's KEEPALIVE.
    OpenConfirm,
    /// Routes can flow.
    Established,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        })
    }
}

/// The FSM's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Timer {
    /// Next outgoing connection attempt.
    ConnectRetry,
    /// End of the Idle period after a failure (RFC 4271's IdleHoldTimer).
    IdleHold,
    /// The session has been Established long enough to forget earlier failures.
    Stable,
    /// Hold timer of a connection.
    Hold(ConnId),
    /// Keepalive timer of a connection.
    Keepalive(ConnId),
}

/// What happens to the FSM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Administrative start (RFC 4271 event 1): leave Idle and open.
    Enable,
    /// Administrative stop (event 2): send `cease` (Administrative Shutdown or Peer
    /// De-configured, usually with an RFC 9003 communication) on every open connection,
    /// close, stay Idle until [`Event::Enable`].
    Disable {
        /// The Cease to send.
        cease: Notification,
    },
    /// Administrative reset: send `cease` (Administrative Reset), close, start again after
    /// the initial idle hold, forgetting earlier failures.
    Reset {
        /// The Cease to send.
        cease: Notification,
        /// Send it as a Hard Reset (RFC 8538) so the peer does not keep our routes.
        hard: bool,
    },
    /// The speaker counted more prefixes than allowed: Cease/Maximum Number of Prefixes
    /// Reached (RFC 4486) and stay down, or restart after the configured time.
    MaxPrefixExceeded {
        /// The family over its limit.
        family: Family,
        /// The configured limit.
        limit: u32,
    },
    /// BFD declared the path to the peer down (RFC 9384): Cease/BFD Down, sent as a
    /// Hard Reset when both sides set the N bit (RFC 8538), since the forwarding path is
    /// gone and neither side should keep the other's routes; then start again after the
    /// idle hold, counted as a failure.
    BfdDown,
    /// A connection is up: the outgoing one we asked for, or one the peer opened (its id
    /// from [`Fsm::allocate_conn`]).
    Connected {
        /// The connection.
        conn: ConnId,
        /// Who opened it.
        direction: Direction,
        /// Our address.
        local: SocketAddr,
        /// The peer's address.
        remote: SocketAddr,
    },
    /// An outgoing connection attempt failed.
    ConnectFailed {
        /// The connection.
        conn: ConnId,
    },
    /// A connection closed or failed without a NOTIFICATION.
    Closed {
        /// The connection.
        conn: ConnId,
        /// Why, for the log.
        reason: String,
    },
    /// The peer's OPEN.
    Open {
        /// The connection.
        conn: ConnId,
        /// The message.
        open: Open,
    },
    /// A KEEPALIVE.
    Keepalive {
        /// The connection.
        conn: ConnId,
    },
    /// One or more UPDATEs.
    Update {
        /// The connection.
        conn: ConnId,
    },
    /// A ROUTE-REFRESH.
    RouteRefresh {
        /// The connection.
        conn: ConnId,
    },
    /// The peer's NOTIFICATION.
    Notification {
        /// The connection.
        conn: ConnId,
        /// The message.
        notification: Notification,
    },
    /// A message could not be framed or decoded: `notification` says why to the peer.
    MessageError {
        /// The connection.
        conn: ConnId,
        /// What to send.
        notification: Notification,
    },
    /// We sent UPDATEs (they count as keepalives, RFC 4271 8.2.2 Established).
    UpdateSent {
        /// The connection.
        conn: ConnId,
    },
    /// A timer fired.
    TimerExpired(Timer),
}

/// What the session layer must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open an outgoing TCP connection with this id.
    Connect(ConnId),
    /// Send our OPEN.
    SendOpen(ConnId, Box<Open>),
    /// Send a KEEPALIVE.
    SendKeepalive(ConnId),
    /// Decode this connection's messages with the negotiated settings from now on.
    UseCodec(ConnId, Arc<Negotiated>),
    /// Close the connection (abort it if still connecting), after sending the
    /// NOTIFICATION if there is one.
    Close {
        /// The connection.
        conn: ConnId,
        /// Sent first.
        notification: Option<Notification>,
    },
    /// Start (or restart) a timer.
    StartTimer(Timer, Duration),
    /// Stop a timer.
    StopTimer(Timer),
    /// The session is Established on this connection.
    Established(ConnId, Arc<Negotiated>),
    /// The peer went down after OPENs were exchanged.
    Down(DownInfo),
}

/// Why a peer went down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownReason {
    /// We sent this NOTIFICATION (an error we found, the hold timer, an admin action).
    Sent(Notification),
    /// The peer sent this NOTIFICATION.
    Received(Notification),
    /// The connection closed or failed without a NOTIFICATION.
    ConnectionLost(String),
    /// The peer opened a new connection while Established with graceful restart: it
    /// restarted (RFC 4724 4.2).
    PeerRestarted,
}

impl std::fmt::Display for DownReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DownReason::Sent(n) => write!(f, "sent NOTIFICATION {n}"),
            DownReason::Received(n) => write!(f, "received NOTIFICATION {n}"),
            DownReason::ConnectionLost(why) => write!(f, "connection lost: {why}"),
            DownReason::PeerRestarted => f.write_str("the peer restarted (graceful restart)"),
        }
    }
}

/// A peer that went down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownInfo {
    /// Why.
    pub reason: DownReason,
    /// It was Established (otherwise it failed during the OPEN exchange).
    pub was_established: bool,
    /// What the session had negotiated (with the peer's graceful restart capability),
    /// if it was Established.
    pub negotiated: Option<Arc<Negotiated>>,
}

impl DownInfo {
    /// Whether the helper should keep the peer's routes as stale (RFC 4724 4.2, RFC 8538):
    /// graceful restart negotiated, and the session ended without a NOTIFICATION, or with
    /// one other than Hard Reset when both sides set the N bit.
    pub fn retain_routes(&self) -> bool {
        let Some(n) = self.negotiated.as_deref().filter(|n| n.graceful_restart()) else {
            return false;
        };
        match &self.reason {
            DownReason::ConnectionLost(_) | DownReason::PeerRestarted => true,
            DownReason::Sent(m) | DownReason::Received(m) => {
                n.graceful_notification
                    && m.code != NotificationCode::Cease(CeaseSubcode::HardReset)
            }
        }
    }

    /// The families whose routes the helper keeps as stale: when
    /// [`DownInfo::retain_routes`], those negotiated and listed in the peer's graceful
    /// restart capability (RFC 4724 4.2; the F bits of the peer's next OPEN then say which
    /// survive); otherwise none.
    pub fn retained_families(&self) -> Vec<Family> {
        let Some(n) = self.negotiated.as_deref().filter(|_| self.retain_routes()) else {
            return Vec::new();
        };
        let Some(gr) = &n.peer_graceful_restart else {
            return Vec::new();
        };
        gr.families
            .iter()
            .map(|f| f.family)
            .filter(|f| n.has_family(*f))
            .collect()
    }
}

/// State of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum ConnState {
    Connecting,
    OpenSent,
    OpenConfirm,
    Established,
}

#[derive(Debug, Clone)]
struct Conn {
    id: ConnId,
    direction: Direction,
    state: ConnState,
    addrs: Option<(SocketAddr, SocketAddr)>,
    negotiated: Option<Arc<Negotiated>>,
}

/// What follows a peer going down.
#[derive(Debug, Clone, Copy)]
enum After {
    /// Idle until enabled again.
    Disabled,
    /// Idle for a damped, growing time.
    Damped,
    /// Idle for this long, without counting a failure.
    Hold(Duration),
}

/// The FSM of one peer.
#[derive(Debug)]
pub struct Fsm {
    config: Arc<PeerConfig>,
    local: LocalInfo,
    enabled: bool,
    idle_hold: bool,
    conns: Vec<Conn>,
    damping: Damping,
    next_conn: u64,
}

impl Fsm {
    /// A disabled FSM (Idle): send [`Event::Enable`] to start.
    pub fn new(config: Arc<PeerConfig>, local: LocalInfo) -> Self {
        Fsm {
            config,
            local,
            enabled: false,
            idle_hold: false,
            conns: Vec::new(),
            damping: Damping::default(),
            next_conn: 1,
        }
    }

    /// The peer's configuration.
    pub fn config(&self) -> &Arc<PeerConfig> {
        &self.config
    }

    /// Replaces the configuration (a reload): timers, capabilities and addresses apply
    /// from the next connection; reset the session with [`Event::Reset`] to apply them
    /// now.
    pub fn set_config(&mut self, config: Arc<PeerConfig>) {
        self.config = config;
    }

    /// The peer's state: its most advanced connection's.
    pub fn state(&self) -> State {
        match self.conns.iter().map(|c| c.state).max() {
            Some(ConnState::Established) => State::Established,
            Some(ConnState::OpenConfirm) => State::OpenConfirm,
            Some(ConnState::OpenSent) => State::OpenSent,
            Some(ConnState::Connecting) => State::Connect,
            None if self.enabled && !self.idle_hold => State::Active,
            None => State::Idle,
        }
    }

    /// Whether the peer is administratively enabled.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The Established connection and what it negotiated.
    pub fn established(&self) -> Option<(ConnId, &Arc<Negotiated>)> {
        self.conns
            .iter()
            .filter(|c| c.state == ConnState::Established)
            .find_map(|c| Some((c.id, c.negotiated.as_ref()?)))
    }

    /// Whether `conn` is one of the peer's current connections.
    pub fn has_conn(&self, conn: ConnId) -> bool {
        self.conns.iter().any(|c| c.id == conn)
    }

    /// Consecutive failures counted by damping.
    pub fn failures(&self) -> u32 {
        self.damping.failures()
    }

    /// A fresh id for a connection the peer opened, to pass in [`Event::Connected`].
    pub fn allocate_conn(&mut self) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        id
    }

    /// Processes one event and returns what to do, in order.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Enable => {
                if !self.enabled {
                    self.enabled = true;
                    self.start(&mut out);
                }
            }
            Event::Disable { cease } => {
                if self.enabled {
                    let cease = self.hard_reset(cease);
                    self.down(&mut out, None, cease.clone(), cease, After::Disabled);
                }
            }
            Event::Reset { cease, hard } => {
                if self.enabled {
                    let cease = if hard { self.hard_reset(cease) } else { cease };
                    self.damping.reset();
                    let idle = self.config.timers.idle_hold;
                    self.down(&mut out, None, cease.clone(), cease, After::Hold(idle));
                }
            }
            Event::MaxPrefixExceeded { family, limit } => {
                if self.established().is_some() {
                    let mut data = Vec::with_capacity(7);
                    data.extend_from_slice(&family.afi.code().to_be_bytes());
                    data.push(family.safi.code());
                    data.extend_from_slice(&limit.to_be_bytes());
                    let cease = self.hard_reset(Notification::with_data(
                        NotificationCode::Cease(CeaseSubcode::MaximumPrefixesReached),
                        data,
                    ));
                    let after = match self.config.max_prefix.and_then(|m| m.restart_after) {
                        Some(d) => After::Hold(d),
                        None => After::Disabled,
                    };
                    self.down(&mut out, None, cease.clone(), cease, after);
                }
            }
            Event::BfdDown => {
                if self.established().is_some() {
                    let cease = self.hard_reset(Notification::new(NotificationCode::Cease(
                        CeaseSubcode::BfdDown,
                    )));
                    let idle = self.damping.fail(&self.config.timers);
                    self.down(&mut out, None, cease.clone(), cease, After::Hold(idle));
                }
            }
            Event::Connected {
                conn,
                direction,
                local,
                remote,
            } => self.connected(&mut out, conn, direction, local, remote),
            Event::ConnectFailed { conn } => {
                if self.conn_state(conn) == Some(ConnState::Connecting) {
                    self.remove(conn);
                }
            }
            Event::Closed { conn, reason } => self.closed(&mut out, conn, reason),
            Event::Open { conn, open } => self.open(&mut out, conn, &open),
            Event::Keepalive { conn } => self.keepalive(&mut out, conn),
            Event::Update { conn } | Event::RouteRefresh { conn } => match self.conn_state(conn) {
                Some(ConnState::Established) => self.restart_hold(&mut out, conn),
                Some(s @ (ConnState::OpenSent | ConnState::OpenConfirm)) => {
                    self.unexpected(&mut out, conn, s)
                }
                _ => {}
            },
            Event::Notification { conn, notification } => {
                self.notification(&mut out, conn, notification)
            }
            Event::MessageError { conn, notification } => {
                if self.has_conn(conn) {
                    self.conn_error(&mut out, conn, notification);
                }
            }
            Event::UpdateSent { conn } => {
                if let Some(n) = self.conn_negotiated(conn)
                    && self.conn_state(conn) == Some(ConnState::Established)
                    && n.keepalive > 0
                {
                    out.push(Action::StartTimer(
                        Timer::Keepalive(conn),
                        secs(n.keepalive),
                    ));
                }
            }
            Event::TimerExpired(timer) => self.timer(&mut out, timer),
        }
        out
    }

    fn conn(&self, id: ConnId) -> Option<&Conn> {
        self.conns.iter().find(|c| c.id == id)
    }

    fn conn_state(&self, id: ConnId) -> Option<ConnState> {
        self.conn(id).map(|c| c.state)
    }

    fn conn_negotiated(&self, id: ConnId) -> Option<Arc<Negotiated>> {
        self.conn(id).and_then(|c| c.negotiated.clone())
    }

    fn remove(&mut self, id: ConnId) {
        self.conns.retain(|c| c.id != id);
    }

    /// Removes a connection and everything it had running.
    fn close(&mut self, out: &mut Vec<Action>, id: ConnId, notification: Option<Notification>) {
        self.remove(id);
        out.push(Action::StopTimer(Timer::Hold(id)));
        out.push(Action::StopTimer(Timer::Keepalive(id)));
        out.push(Action::Close {
            conn: id,
            notification,
        });
    }

    /// Leaves Idle: an outgoing connection unless passive; incoming ones are accepted.
    fn start(&mut self, out: &mut Vec<Action>) {
        self.idle_hold = false;
        out.push(Action::StopTimer(Timer::IdleHold));
        if !self.config.passive {
            self.connect(out);
        }
    }

    fn connect(&mut self, out: &mut Vec<Action>) {
        let id = self.allocate_conn();
        self.conns.push(Conn {
            id,
            direction: Direction::Outgoing,
            state: ConnState::Connecting,
            addrs: None,
            negotiated: None,
        });
        out.push(Action::Connect(id));
        out.push(Action::StartTimer(
            Timer::ConnectRetry,
            self.config.timers.connect_retry,
        ));
    }

    /// Wraps a Cease in a Hard Reset (RFC 8538 3) when the Established session negotiated
    /// the N bit, so that the peer does not retain our routes.
    fn hard_reset(&self, cease: Notification) -> Notification {
        match self.established() {
            Some((_, n)) if n.graceful_notification => {
                let (code, subcode) = cease.code.code();
                let mut data = Vec::with_capacity(2 + cease.data.len());
                data.extend_from_slice(&[code, subcode]);
                data.extend_from_slice(&cease.data);
                Notification::with_data(NotificationCode::Cease(CeaseSubcode::HardReset), data)
            }
            _ => cease,
        }
    }

    /// The peer goes down: every connection closes (`primary` with its own NOTIFICATION or
    /// none, the others that sent an OPEN with `others`), timers stop, and the peer
    /// becomes Idle as `after` says.
    fn down(
        &mut self,
        out: &mut Vec<Action>,
        primary: Option<(ConnId, Option<Notification>)>,
        others: Notification,
        reason_sent: Notification,
        after: After,
    ) {
        let reason = Some(DownReason::Sent(reason_sent));
        self.down_with(out, primary, others, reason, after);
    }

    fn down_with(
        &mut self,
        out: &mut Vec<Action>,
        primary: Option<(ConnId, Option<Notification>)>,
        others: Notification,
        reason: Option<DownReason>,
        after: After,
    ) {
        let established = self
            .conns
            .iter()
            .find(|c| c.state == ConnState::Established)
            .and_then(|c| c.negotiated.clone());
        let opened = self.conns.iter().any(|c| c.state >= ConnState::OpenSent);
        for c in std::mem::take(&mut self.conns) {
            let notification = match &primary {
                Some((id, n)) if *id == c.id => n.clone(),
                _ if c.state >= ConnState::OpenSent => Some(others.clone()),
                _ => None,
            };
            out.push(Action::StopTimer(Timer::Hold(c.id)));
            out.push(Action::StopTimer(Timer::Keepalive(c.id)));
            out.push(Action::Close {
                conn: c.id,
                notification,
            });
        }
        out.push(Action::StopTimer(Timer::ConnectRetry));
        out.push(Action::StopTimer(Timer::Stable));
        match after {
            After::Disabled => {
                self.enabled = false;
                self.idle_hold = false;
                out.push(Action::StopTimer(Timer::IdleHold));
            }
            After::Damped => {
                self.idle_hold = true;
                let d = self.damping.fail(&self.config.timers);
                out.push(Action::StartTimer(Timer::IdleHold, d));
            }
            After::Hold(d) => {
                self.idle_hold = true;
                out.push(Action::StartTimer(Timer::IdleHold, d));
            }
        }
        if let Some(reason) = reason
            && (opened || established.is_some())
        {
            out.push(Action::Down(DownInfo {
                reason,
                was_established: established.is_some(),
                negotiated: established,
            }));
        }
    }

    /// An error we found on `conn`: the NOTIFICATION goes out on it. A connection that
    /// races an Established one just closes; otherwise the peer goes down, damped.
    fn conn_error(&mut self, out: &mut Vec<Action>, conn: ConnId, notification: Notification) {
        let Some(state) = self.conn_state(conn) else {
            return;
        };
        let n = (state != ConnState::Connecting).then_some(notification.clone());
        if state != ConnState::Established && self.established().is_some() {
            self.close(out, conn, n);
            return;
        }
        self.down(
            out,
            Some((conn, n)),
            Notification::new(NotificationCode::Cease(CeaseSubcode::Unspecific)),
            notification,
            After::Damped,
        );
    }

    /// A message not allowed in this state: Finite State Machine Error, subcode by state
    /// (RFC 6608).
    fn unexpected(&mut self, out: &mut Vec<Action>, conn: ConnId, state: ConnState) {
        let subcode = match state {
            ConnState::OpenSent => 1,
            ConnState::OpenConfirm => 2,
            ConnState::Established => 3,
            ConnState::Connecting => 0,
        };
        self.conn_error(
            out,
            conn,
            Notification::new(NotificationCode::FsmError(subcode)),
        );
    }

    fn restart_hold(&self, out: &mut Vec<Action>, conn: ConnId) {
        if let Some(n) = self.conn_negotiated(conn)
            && n.hold_time > 0
        {
            out.push(Action::StartTimer(Timer::Hold(conn), secs(n.hold_time)));
        }
    }

    fn connected(
        &mut self,
        out: &mut Vec<Action>,
        conn: ConnId,
        direction: Direction,
        local: SocketAddr,
        remote: SocketAddr,
    ) {
        match direction {
            Direction::Outgoing => {
                if self.conn_state(conn) != Some(ConnState::Connecting) {
                    // An attempt we gave up on meanwhile.
                    out.push(Action::Close {
                        conn,
                        notification: None,
                    });
                    return;
                }
                out.push(Action::StopTimer(Timer::ConnectRetry));
            }
            Direction::Incoming => {
                if !self.enabled || self.idle_hold {
                    out.push(Action::Close {
                        conn,
                        notification: Some(Notification::new(NotificationCode::Cease(
                            CeaseSubcode::ConnectionRejected,
                        ))),
                    });
                    return;
                }
                // A new connection from the peer supersedes one still in the OPEN exchange
                // (the peer gave up on it); an Established one is kept until the new OPEN
                // shows whether this is a collision or a restart.
                let stale: Vec<ConnId> = self
                    .conns
                    .iter()
                    .filter(|c| {
                        c.direction == Direction::Incoming && c.state < ConnState::Established
                    })
                    .map(|c| c.id)
                    .collect();
                for id in stale {
                    self.close(
                        out,
                        id,
                        Some(Notification::new(NotificationCode::Cease(
                            CeaseSubcode::ConnectionCollisionResolution,
                        ))),
                    );
                }
                self.conns.push(Conn {
                    id: conn,
                    direction,
                    state: ConnState::Connecting,
                    addrs: None,
                    negotiated: None,
                });
            }
        }
        if let Some(c) = self.conns.iter_mut().find(|c| c.id == conn) {
            c.state = ConnState::OpenSent;
            c.addrs = Some((local, remote));
        }
        out.push(Action::SendOpen(
            conn,
            Box::new(local_open(&self.config, &self.local)),
        ));
        out.push(Action::StartTimer(
            Timer::Hold(conn),
            self.config.timers.open_hold_time,
        ));
    }

    fn closed(&mut self, out: &mut Vec<Action>, conn: ConnId, reason: String) {
        match self.conn_state(conn) {
            None => {}
            Some(ConnState::Connecting) => self.remove(conn),
            Some(ConnState::OpenSent) => {
                // RFC 4271 8.2.2 OpenSent, event 18: back to Active, retry later.
                self.close(out, conn, None);
                self.retry_later(out);
            }
            Some(state @ (ConnState::OpenConfirm | ConnState::Established)) => {
                if state != ConnState::Established && self.established().is_some() {
                    self.close(out, conn, None);
                    return;
                }
                self.down_with(
                    out,
                    Some((conn, None)),
                    Notification::new(NotificationCode::Cease(CeaseSubcode::Unspecific)),
                    Some(DownReason::ConnectionLost(reason)),
                    After::Damped,
                );
            }
        }
    }

    /// With no connection left, an active peer retries after ConnectRetry.
    fn retry_later(&mut self, out: &mut Vec<Action>) {
        if self.enabled
            && !self.idle_hold
            && !self.config.passive
            && !self
                .conns
                .iter()
                .any(|c| c.direction == Direction::Outgoing)
            && self.established().is_none()
        {
            out.push(Action::StartTimer(
                Timer::ConnectRetry,
                self.config.timers.connect_retry,
            ));
        }
    }

    fn open(&mut self, out: &mut Vec<Action>, conn: ConnId, open: &Open) {
        let Some(c) = self.conn(conn) else {
            return;
        };
        match c.state {
            ConnState::Connecting => return,
            s @ (ConnState::OpenConfirm | ConnState::Established) => {
                return self.unexpected(out, conn, s);
            }
            ConnState::OpenSent => {}
        }
        let direction = c.direction;
        let Some((local_addr, remote_addr)) = c.addrs else {
            return;
        };
        let negotiated = match negotiate(&self.config, &self.local, open, local_addr, remote_addr) {
            Ok(n) => Arc::new(n),
            Err(e) => return self.conn_error(out, conn, e.notification),
        };
        // Connection collision detection (RFC 4271 6.8).
        let others: Vec<(ConnId, Direction, ConnState, Option<Arc<Negotiated>>)> = self
            .conns
            .iter()
            .filter(|o| o.id != conn)
            .map(|o| (o.id, o.direction, o.state, o.negotiated.clone()))
            .collect();
        let collision = || {
            Some(Notification::new(NotificationCode::Cease(
                CeaseSubcode::ConnectionCollisionResolution,
            )))
        };
        for (other, other_dir, other_state, other_neg) in others {
            match other_state {
                ConnState::Connecting => {
                    // The peer is there: stop trying to reach it another way.
                    self.close(out, other, None);
                    out.push(Action::StopTimer(Timer::ConnectRetry));
                }
                ConnState::OpenSent => {}
                ConnState::OpenConfirm => {
                    let keep = if self.locally_dominant(&negotiated) {
                        Direction::Outgoing
                    } else {
                        Direction::Incoming
                    };
                    if direction != keep || direction == other_dir {
                        return self.close(out, conn, collision());
                    }
                    self.close(out, other, collision());
                }
                ConnState::Established => {
                    if other_neg
                        .as_deref()
                        .is_some_and(Negotiated::graceful_restart)
                    {
                        self.close(out, other, None);
                        out.push(Action::StopTimer(Timer::Stable));
                        out.push(Action::Down(DownInfo {
                            reason: DownReason::PeerRestarted,
                            was_established: true,
                            negotiated: other_neg,
                        }));
                    } else {
                        return self.close(out, conn, collision());
                    }
                }
            }
        }
        if let Some(c) = self.conns.iter_mut().find(|c| c.id == conn) {
            c.state = ConnState::OpenConfirm;
            c.negotiated = Some(negotiated.clone());
        }
        out.push(Action::UseCodec(conn, negotiated.clone()));
        out.push(Action::SendKeepalive(conn));
        if negotiated.hold_time > 0 {
            out.push(Action::StartTimer(
                Timer::Hold(conn),
                secs(negotiated.hold_time),
            ));
        } else {
            out.push(Action::StopTimer(Timer::Hold(conn)));
        }
        if negotiated.keepalive > 0 {
            out.push(Action::StartTimer(
                Timer::Keepalive(conn),
                secs(negotiated.keepalive),
            ));
        }
    }

    /// RFC 4271 6.8 with RFC 6286 2.3: the higher BGP identifier wins; with equal ones, the
    /// higher AS. The winner's outgoing connection is kept.
    fn locally_dominant(&self, n: &Negotiated) -> bool {
        let (ours, theirs) = (u32::from(n.local_id), u32::from(n.peer_id));
        ours > theirs || (ours == theirs && n.local_as > n.peer_as)
    }

    fn keepalive(&mut self, out: &mut Vec<Action>, conn: ConnId) {
        match self.conn_state(conn) {
            Some(ConnState::OpenSent) => self.unexpected(out, conn, ConnState::OpenSent),
            Some(ConnState::OpenConfirm) => {
                let Some(negotiated) = self.conn_negotiated(conn) else {
                    return;
                };
                if let Some(c) = self.conns.iter_mut().find(|c| c.id == conn) {
                    c.state = ConnState::Established;
                }
                // The peer is there: no other outgoing attempt. Connections in OpenSent
                // stay until their OPEN (a collision with Established closes them, or
                // reveals the peer's restart).
                let connecting: Vec<ConnId> = self
                    .conns
                    .iter()
                    .filter(|c| c.state == ConnState::Connecting)
                    .map(|c| c.id)
                    .collect();
                for id in connecting {
                    self.close(out, id, None);
                }
                out.push(Action::StopTimer(Timer::ConnectRetry));
                self.restart_hold(out, conn);
                out.push(Action::StartTimer(
                    Timer::Stable,
                    self.config.timers.stable_after,
                ));
                // The Restart State bit announces our own restart (RFC 4724 4.1): only
                // the first session after it carries it; later OPENs are ordinary.
                if self
                    .config
                    .graceful_restart
                    .as_ref()
                    .is_some_and(|g| g.restarting)
                {
                    let mut c = (*self.config).clone();
                    if let Some(g) = c.graceful_restart.as_mut() {
                        g.restarting = false;
                    }
                    self.config = Arc::new(c);
                }
                out.push(Action::Established(conn, negotiated));
            }
            Some(ConnState::Established) => self.restart_hold(out, conn),
            Some(ConnState::Connecting) | None => {}
        }
    }

    fn notification(&mut self, out: &mut Vec<Action>, conn: ConnId, notification: Notification) {
        let Some(state) = self.conn_state(conn) else {
            return;
        };
        let collision = notification.code
            == NotificationCode::Cease(CeaseSubcode::ConnectionCollisionResolution);
        let rejected =
            notification.code == NotificationCode::Cease(CeaseSubcode::ConnectionRejected);
        if state != ConnState::Established
            && (collision || rejected || self.established().is_some())
        {
            // The peer resolved a collision against this connection: the other one lives.
            // Or it refused the connection (disabled, or holding off after a failure of
            // its own): try again later, and meanwhile accept its connection, which
            // comes when it is ready. Going idle instead would refuse that one, and two
            // peers would refuse each other in turn for ever.
            self.close(out, conn, None);
            self.retry_later(out);
            return;
        }
        // The peer's own administrative Cease is not a failure to damp.
        let after = match notification.code {
            NotificationCode::Cease(
                CeaseSubcode::AdministrativeShutdown
                | CeaseSubcode::AdministrativeReset
                | CeaseSubcode::PeerDeconfigured
                | CeaseSubcode::HardReset
                | CeaseSubcode::ConnectionRejected,
            ) => After::Hold(self.config.timers.idle_hold),
            _ => After::Damped,
        };
        self.down_with(
            out,
            Some((conn, None)),
            Notification::new(NotificationCode::Cease(CeaseSubcode::Unspecific)),
            Some(DownReason::Received(notification)),
            after,
        );
    }

    fn timer(&mut self, out: &mut Vec<Action>, timer: Timer) {
        match timer {
            Timer::ConnectRetry => {
                if !self.enabled
                    || self.idle_hold
                    || self.config.passive
                    || self.conns.iter().any(|c| c.state >= ConnState::OpenConfirm)
                {
                    return;
                }
                let outgoing = self
                    .conns
                    .iter()
                    .find(|c| c.direction == Direction::Outgoing)
                    .map(|c| (c.id, c.state));
                match outgoing {
                    Some((_, ConnState::OpenSent)) => {}
                    Some((id, _)) => {
                        self.close(out, id, None);
                        self.connect(out);
                    }
                    None => self.connect(out),
                }
            }
            Timer::IdleHold => {
                if self.enabled && self.idle_hold {
                    self.start(out);
                }
            }
            Timer::Stable => self.damping.reset(),
            Timer::Hold(conn) => {
                if self.has_conn(conn) {
                    self.conn_error(
                        out,
                        conn,
                        Notification::new(NotificationCode::HoldTimerExpired),
                    );
                }
            }
            Timer::Keepalive(conn) => {
                if let Some(n) = self.conn_negotiated(conn)
                    && matches!(
                        self.conn_state(conn),
                        Some(ConnState::OpenConfirm | ConnState::Established)
                    )
                    && n.keepalive > 0
                {
                    out.push(Action::SendKeepalive(conn));
                    out.push(Action::StartTimer(
                        Timer::Keepalive(conn),
                        secs(n.keepalive),
                    ));
                }
            }
        }
    }
}

fn secs(s: u16) -> Duration {
    Duration::from_secs(u64::from(s))
}

#[cfg(test)]
mod tests;
