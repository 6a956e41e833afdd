//! One tokio task per peer: it connects and accepts, runs the [`Fsm`], keeps its timers,
//! and talks to the speaker through channels.
//!
//! The speaker gets [`SessionEvent`]s on one bounded channel shared by all sessions:
//! `Established` (with an [`UpdateSender`] for that session), `Updates` (decoded here,
//! in batches), `RouteRefresh`, `Down`. When the speaker falls behind, the session stops
//! reading from the peer (TCP then slows the peer down) but keeps sending keepalives and
//! does not let its hold timer expire for messages it has not read.
//!
//! The [`SessionHandle`] takes commands (enable, disable with a shutdown communication,
//! reset, max-prefix teardown, shut down), hands accepted connections in, and reads the
//! peer's counters.

use std::{
    collections::{HashMap, VecDeque},
    hash::{BuildHasher, RandomState},
    net::IpAddr,
    sync::Arc,
    time::Duration,
};

use bgp_wire::{
    CeaseSubcode, CodecContext, Family, Message, Notification, NotificationCode, RouteRefresh,
    RouteRefreshSubtype, Update,
};
use bytes::{Bytes, BytesMut};
use tokio::{
    net::TcpStream,
    sync::mpsc,
    task::JoinHandle,
    time::{Instant, sleep_until},
};
use tracing::{debug, info, warn};

use super::{
    connection::{ConnIo, Inbound, UpdateSender},
    fsm::{Action, ConnId, Direction, DownInfo, Event, Fsm, State, Timer},
    listener::Accepted,
    negotiation::Negotiated,
    peer_config::{ConfigError, LocalInfo, PeerConfig},
    socket,
    stats::{ErrorDirection, PeerStats, StatsSnapshot},
};

/// Messages from connections waiting for the session task.
const INBOUND_QUEUE: usize = 16;
/// Commands waiting for the session task.
const COMMAND_QUEUE: usize = 16;
/// Connections handed in by the listener and not yet taken.
const ACCEPT_QUEUE: usize = 4;

/// What a session tells the speaker. Events of one session arrive in order.
#[derive(Debug)]
pub enum SessionEvent {
    /// The session is Established. Routes go out through `sender` (which stops working
    /// when this session goes down).
    Established {
        /// The peer (its configured address).
        peer: IpAddr,
        /// What was negotiated.
        negotiated: Arc<Negotiated>,
        /// Queues messages on this session.
        sender: UpdateSender,
    },
    /// UPDATEs received on the Established session, in order.
    Updates {
        /// The peer.
        peer: IpAddr,
        /// The messages, decoded (RFC 7606 findings in each `issues`).
        updates: Vec<Update>,
    },
    /// The peer asks for our routes of a family again (RFC 2918), or marks the begin or
    /// end of its own re-advertisement (RFC 7313). Only for negotiated families.
    RouteRefresh {
        /// The peer.
        peer: IpAddr,
        /// The message.
        refresh: RouteRefresh,
    },
    /// The session went down (after Established, or failed during the OPEN exchange:
    /// see `info.was_established`).
    Down {
        /// The peer.
        peer: IpAddr,
        /// Why, and the session's negotiated parameters (with the peer's graceful
        /// restart capability) if it was Established.
        info: DownInfo,
    },
}

/// Commands from the handle.
#[derive(Debug)]
enum Command {
    Enable,
    Disable(String),
    Reset {
        communication: String,
        hard: bool,
    },
    MaxPrefix {
        family: Family,
        limit: u32,
    },
    Reconfigure {
        config: Box<PeerConfig>,
        reset: bool,
    },
    BfdDown,
    Deconfigure,
}

/// The session task is gone (shut down, or it ended because the speaker's event channel
/// closed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the session task has ended")]
pub struct SessionGone;

/// Controls one peer's session task.
#[derive(Debug)]
pub struct SessionHandle {
    peer: IpAddr,
    commands: mpsc::Sender<Command>,
    incoming: mpsc::Sender<Accepted>,
    stats: Arc<PeerStats>,
    task: JoinHandle<()>,
}

impl SessionHandle {
    /// The peer's address.
    pub fn peer(&self) -> IpAddr {
        self.peer
    }

    /// Where the listener hands this peer's connections (see
    /// [`super::listener::Listener::add_peer`]).
    pub fn incoming(&self) -> mpsc::Sender<Accepted> {
        self.incoming.clone()
    }

    /// Counters and status.
    pub fn stats(&self) -> StatsSnapshot {
        self.stats.snapshot()
    }

    async fn command(&self, c: Command) -> Result<(), SessionGone> {
        self.commands.send(c).await.map_err(|_| SessionGone)
    }

    /// Administrative start: connect (unless passive) and accept the peer's connections.
    pub async fn enable(&self) -> Result<(), SessionGone> {
        self.command(Command::Enable).await
    }

    /// Administrative shutdown: Cease/Administrative Shutdown with the RFC 9003
    /// `communication` (may be empty), then Idle until [`SessionHandle::enable`].
    pub async fn disable(&self, communication: &str) -> Result<(), SessionGone> {
        self.command(Command::Disable(communication.to_owned()))
            .await
    }

    /// Administrative reset: Cease/Administrative Reset with `communication`, then start
    /// again; `hard` sends it as a Hard Reset (RFC 8538) so that a graceful restart peer
    /// does not keep our routes.
    pub async fn reset(&self, communication: &str, hard: bool) -> Result<(), SessionGone> {
        self.command(Command::Reset {
            communication: communication.to_owned(),
            hard,
        })
        .await
    }

    /// The speaker counted more than `limit` prefixes of `family`: Cease/Maximum Number
    /// of Prefixes Reached (RFC 4486, data AFI/SAFI/limit), then down until enabled or
    /// for the configured restart time.
    pub async fn max_prefix_exceeded(&self, family: Family, limit: u32) -> Result<(), SessionGone> {
        self.command(Command::MaxPrefix { family, limit }).await
    }

    /// Replaces the peer's settings (a configuration reload; the peer's address stays).
    /// With `reset`, the session closes with Cease/Other Configuration Change and starts
    /// again with them (if enabled); without, they apply from the next connection, which
    /// suits settings read only then (the max-prefix limit and restart time).
    pub async fn reconfigure(&self, config: PeerConfig, reset: bool) -> Result<(), SessionGone> {
        self.command(Command::Reconfigure {
            config: Box::new(config),
            reset,
        })
        .await
    }

    /// BFD says the path to the peer is down: Cease/BFD Down (RFC 9384), neither side
    /// keeping the other's routes, and start again after the idle hold.
    pub async fn bfd_down(&self) -> Result<(), SessionGone> {
        self.command(Command::BfdDown).await
    }

    /// Removes the peer: Cease/Peer De-configured (RFC 9003 gives a communication only
    /// to Administrative Shutdown and Reset), and waits for the task to end. Dropping the
    /// handle does the same without waiting.
    pub async fn shutdown(self) {
        let _ = self.commands.send(Command::Deconfigure).await;
        let _ = self.task.await;
    }
}

/// Starts sessions.
pub struct Session;

impl Session {
    /// Checks `config` and starts the peer's task (in the current tokio runtime), enabled
    /// or not. Events go to `events`, shared with other sessions.
    pub fn spawn(
        config: PeerConfig,
        local: LocalInfo,
        events: mpsc::Sender<SessionEvent>,
        enabled: bool,
    ) -> Result<SessionHandle, ConfigError> {
        config.validate()?;
        let peer = config.remote_addr;
        let stats = Arc::new(PeerStats::default());
        let (commands, commands_rx) = mpsc::channel(COMMAND_QUEUE);
        let (incoming, incoming_rx) = mpsc::channel(ACCEPT_QUEUE);
        let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_QUEUE);
        let config = Arc::new(config);
        let mut task = SessionTask {
            peer,
            local,
            fsm: Fsm::new(config.clone(), local),
            config,
            conns: HashMap::new(),
            connecting: HashMap::new(),
            timers: HashMap::new(),
            inbound_tx,
            inbound_rx,
            commands: commands_rx,
            incoming: incoming_rx,
            events,
            pending: VecDeque::new(),
            stats: stats.clone(),
            state: State::Idle,
            ending: false,
        };
        let task = tokio::spawn(async move {
            if enabled {
                task.handle(Event::Enable);
            }
            task.run().await;
        });
        Ok(SessionHandle {
            peer,
            commands,
            incoming,
            stats,
            task,
        })
    }
}

struct SessionTask {
    peer: IpAddr,
    local: LocalInfo,
    config: Arc<PeerConfig>,
    fsm: Fsm,
    conns: HashMap<ConnId, ConnIo>,
    connecting: HashMap<ConnId, JoinHandle<()>>,
    timers: HashMap<Timer, (Instant, Duration)>,
    inbound_tx: mpsc::Sender<(ConnId, Inbound)>,
    inbound_rx: mpsc::Receiver<(ConnId, Inbound)>,
    commands: mpsc::Receiver<Command>,
    incoming: mpsc::Receiver<Accepted>,
    events: mpsc::Sender<SessionEvent>,
    /// Events for the speaker not yet in its channel. While any wait, no more is read
    /// from the connections.
    pending: VecDeque<SessionEvent>,
    stats: Arc<PeerStats>,
    state: State,
    ending: bool,
}

impl SessionTask {
    async fn run(mut self) {
        loop {
            if self.ending && self.pending.is_empty() {
                break;
            }
            let next = self.timers.values().map(|(at, _)| *at).min();
            // A clone, so that a reserved slot does not borrow the task.
            let events = self.events.clone();
            tokio::select! {
                command = self.commands.recv(), if !self.ending => match command {
                    Some(c) => self.command(c),
                    None => self.command(Command::Deconfigure),
                },
                () = sleep_until(next.unwrap_or_else(Instant::now)), if next.is_some() => {
                    self.fire_timers();
                }
                permit = events.reserve(), if !self.pending.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some(e) = self.pending.pop_front() {
                            permit.send(e);
                        }
                    }
                    Err(_) => {
                        debug!(peer = %self.peer, "speaker gone, ending the session");
                        self.pending.clear();
                        self.command(Command::Deconfigure);
                    }
                },
                Some((conn, inbound)) = self.inbound_rx.recv(), if self.pending.is_empty() => {
                    self.inbound(conn, inbound);
                }
                Some(accepted) = self.incoming.recv(), if !self.ending => self.accepted(accepted),
            }
        }
        for (_, task) in self.connecting.drain() {
            task.abort();
        }
        debug!(peer = %self.peer, "session task ended");
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Enable => self.handle(Event::Enable),
            Command::Disable(text) => self.handle(Event::Disable {
                cease: Notification::cease_with_communication(
                    CeaseSubcode::AdministrativeShutdown,
                    &text,
                ),
            }),
            Command::Reset {
                communication,
                hard,
            } => self.handle(Event::Reset {
                cease: Notification::cease_with_communication(
                    CeaseSubcode::AdministrativeReset,
                    &communication,
                ),
                hard,
            }),
            Command::MaxPrefix { family, limit } => {
                warn!(peer = %self.peer, %family, limit, "maximum number of prefixes reached");
                self.handle(Event::MaxPrefixExceeded { family, limit })
            }
            Command::Reconfigure { config, reset } => {
                let config = Arc::new(*config);
                self.config = config.clone();
                self.fsm.set_config(config);
                if reset {
                    self.handle(Event::Reset {
                        cease: Notification::new(NotificationCode::Cease(
                            CeaseSubcode::OtherConfigurationChange,
                        )),
                        hard: false,
                    });
                }
            }
            Command::BfdDown => {
                warn!(peer = %self.peer, "BFD down: closing the session");
                self.handle(Event::BfdDown)
            }
            Command::Deconfigure => {
                self.handle(Event::Disable {
                    cease: Notification::new(NotificationCode::Cease(
                        CeaseSubcode::PeerDeconfigured,
                    )),
                });
                self.ending = true;
                self.timers.clear();
            }
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        let due: Vec<Timer> = self
            .timers
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(t, _)| *t)
            .collect();
        for timer in due {
            let Some((_, period)) = self.timers.remove(&timer) else {
                continue;
            };
            match timer {
                // Not the peer's fault when its messages wait on our side.
                Timer::Hold(_) if !self.pending.is_empty() || !self.inbound_rx.is_empty() => {
                    debug!(peer = %self.peer, "hold timer deferred: messages not yet processed");
                    self.timers.insert(timer, (now + period, period));
                }
                Timer::Keepalive(conn)
                    if self
                        .conns
                        .get(&conn)
                        .is_some_and(ConnIo::take_wrote_updates) =>
                {
                    self.handle(Event::UpdateSent { conn });
                }
                _ => self.handle(Event::TimerExpired(timer)),
            }
        }
    }

    fn accepted(&mut self, accepted: Accepted) {
        let Accepted {
            stream,
            remote,
            syn_ttl,
            ..
        } = accepted;
        if let (Some(min), Some(ttl)) = (self.config.min_ttl(), syn_ttl)
            && ttl < min
        {
            warn!(peer = %self.peer, %remote, ttl, min, "GTSM: connection refused, the peer is too many hops away");
            self.stats.gtsm_refused();
            return;
        }
        if let Err(e) = socket::configure_accepted(&stream, &self.config, &self.local) {
            warn!(peer = %self.peer, %remote, error = %e, "cannot set up an accepted connection");
            return;
        }
        let conn = self.fsm.allocate_conn();
        self.start_conn(conn, stream, Direction::Incoming);
    }

    /// Starts the reader and writer of a connection and tells the FSM.
    fn start_conn(&mut self, conn: ConnId, stream: TcpStream, direction: Direction) {
        match ConnIo::spawn(conn, stream, self.inbound_tx.clone(), self.stats.clone()) {
            Ok(io) => {
                let (local, remote) = (io.local, io.remote);
                debug!(peer = %self.peer, %conn, ?direction, %local, %remote, "connection up");
                self.conns.insert(conn, io);
                self.handle(Event::Connected {
                    conn,
                    direction,
                    local,
                    remote,
                });
            }
            Err(e) => {
                debug!(peer = %self.peer, %conn, error = %e, "connection lost before it started");
                if direction == Direction::Outgoing {
                    self.handle(Event::ConnectFailed { conn });
                }
            }
        }
    }

    fn inbound(&mut self, conn: ConnId, inbound: Inbound) {
        match inbound {
            Inbound::Connected(result) => {
                if self.connecting.remove(&conn).is_none() {
                    return;
                }
                match result {
                    Ok(stream) => self.start_conn(conn, stream, Direction::Outgoing),
                    Err(e) => {
                        debug!(peer = %self.peer, %conn, error = %e, "connect failed");
                        self.handle(Event::ConnectFailed { conn });
                    }
                }
            }
            _ if !self.conns.contains_key(&conn) => {}
            Inbound::Open(open) => self.handle(Event::Open { conn, open }),
            Inbound::Keepalive => self.handle(Event::Keepalive { conn }),
            Inbound::Updates(updates) => {
                self.handle(Event::Update { conn });
                if self.established_on(conn) {
                    self.pending.push_back(SessionEvent::Updates {
                        peer: self.peer,
                        updates,
                    });
                }
            }
            Inbound::RouteRefresh(refresh) => {
                self.handle(Event::RouteRefresh { conn });
                let usable = self.fsm.established().is_some_and(|(id, n)| {
                    id == conn
                        && n.has_family(refresh.family)
                        && !matches!(refresh.subtype, RouteRefreshSubtype::Other(_))
                });
                if usable {
                    self.pending.push_back(SessionEvent::RouteRefresh {
                        peer: self.peer,
                        refresh,
                    });
                } else {
                    debug!(peer = %self.peer, ?refresh, "ROUTE-REFRESH ignored (RFC 2918 3, RFC 7313 5)");
                }
            }
            Inbound::Notification(notification) => {
                warn!(peer = %self.peer, %conn, %notification, "NOTIFICATION received");
                self.stats.error(
                    Some(notification.code),
                    ErrorDirection::Received,
                    notification.to_string(),
                );
                self.handle(Event::Notification { conn, notification });
            }
            Inbound::Error(e) => {
                warn!(peer = %self.peer, %conn, error = %e, "bad message from the peer");
                self.stats.error(
                    Some(e.notification.code),
                    ErrorDirection::Sent,
                    e.to_string(),
                );
                self.handle(Event::MessageError {
                    conn,
                    notification: e.notification,
                });
            }
            Inbound::Closed(reason) => {
                if self.fsm.state() >= State::OpenConfirm {
                    self.stats
                        .error(None, ErrorDirection::Received, reason.clone());
                }
                debug!(peer = %self.peer, %conn, %reason, "connection closed");
                self.handle(Event::Closed { conn, reason });
            }
        }
    }

    fn established_on(&self, conn: ConnId) -> bool {
        self.fsm.established().is_some_and(|(id, _)| id == conn)
    }

    /// Runs an event through the FSM and carries out its actions.
    fn handle(&mut self, event: Event) {
        let actions = self.fsm.handle(event);
        for action in actions {
            self.act(action);
        }
        let state = self.fsm.state();
        if state != self.state {
            // A peer that is not there flips between Connect and Active every
            // connect-retry: not worth an info line each time.
            let quiet = matches!(
                (self.state, state),
                (State::Connect, State::Active) | (State::Active, State::Connect)
            );
            if quiet {
                debug!(peer = %self.peer, from = %self.state, to = %state, "state change");
            } else {
                info!(peer = %self.peer, from = %self.state, to = %state, "state change");
            }
            self.state = state;
        }
        self.stats.set_state(state, self.fsm.enabled());
    }

    fn act(&mut self, action: Action) {
        match action {
            Action::Connect(conn) => {
                let (config, local, tx) =
                    (self.config.clone(), self.local, self.inbound_tx.clone());
                let task = tokio::spawn(async move {
                    let result = socket::connect(&config, &local).await;
                    let _ = tx.send((conn, Inbound::Connected(result))).await;
                });
                self.connecting.insert(conn, task);
            }
            Action::SendOpen(conn, open) => {
                self.send(conn, &Message::Open(*open), &CodecContext::default());
            }
            Action::SendKeepalive(conn) => {
                // A full queue holds messages that reset the peer's hold timer anyway.
                self.send(conn, &Message::Keepalive, &CodecContext::default());
            }
            Action::UseCodec(conn, negotiated) => {
                if let Some(io) = self.conns.get(&conn) {
                    io.use_codec(negotiated.codec_context());
                }
            }
            Action::Close { conn, notification } => {
                if let Some(task) = self.connecting.remove(&conn) {
                    task.abort();
                }
                if let Some(io) = self.conns.remove(&conn) {
                    let bytes = notification.as_ref().map(|n| {
                        info!(peer = %self.peer, %conn, notification = %n, "sending NOTIFICATION");
                        if !closes_a_spare_connection(n) {
                            self.stats
                                .error(Some(n.code), ErrorDirection::Sent, n.to_string());
                        }
                        encode_notification(n)
                    });
                    io.close(bytes);
                }
            }
            Action::StartTimer(timer, period) => {
                let period = match timer {
                    // The idle hold too: two peers that failed together would otherwise
                    // leave it together and refuse each other's connections in turn.
                    Timer::ConnectRetry | Timer::IdleHold => jitter(period),
                    _ => period,
                };
                self.timers.insert(timer, (Instant::now() + period, period));
            }
            Action::StopTimer(timer) => {
                self.timers.remove(&timer);
            }
            Action::Established(conn, negotiated) => {
                let Some(io) = self.conns.get(&conn) else {
                    return;
                };
                info!(
                    peer = %self.peer,
                    peer_as = negotiated.peer_as,
                    peer_id = %negotiated.peer_id,
                    hold = negotiated.hold_time,
                    families = %negotiated
                        .families
                        .iter()
                        .map(Family::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                    "session established"
                );
                self.stats.established(negotiated.clone());
                let sender = io.update_sender(self.peer, negotiated.clone());
                self.pending.push_back(SessionEvent::Established {
                    peer: self.peer,
                    negotiated,
                    sender,
                });
            }
            Action::Down(info) => {
                info!(peer = %self.peer, reason = %info.reason, was_established = info.was_established, "session down");
                self.stats.down(info.was_established);
                self.pending.push_back(SessionEvent::Down {
                    peer: self.peer,
                    info,
                });
            }
        }
    }

    fn send(&mut self, conn: ConnId, message: &Message, ctx: &CodecContext) {
        let Some(io) = self.conns.get(&conn) else {
            return;
        };
        let mut out = BytesMut::new();
        if let Err(e) = message.encode(ctx, &mut out) {
            warn!(peer = %self.peer, error = %e, "cannot encode {:?}", message.kind());
            return;
        }
        if !io.try_send(out.freeze()) {
            debug!(peer = %self.peer, %conn, "write queue full, {:?} not queued", message.kind());
        }
    }
}

/// A Cease that refuses or drops one connection without touching the session (a
/// connection while disabled or damped, the loser of a collision): not the session's last
/// error, which keeps saying why it went down.
fn closes_a_spare_connection(n: &Notification) -> bool {
    matches!(
        n.code,
        NotificationCode::Cease(
            CeaseSubcode::ConnectionRejected | CeaseSubcode::ConnectionCollisionResolution
        )
    )
}

/// A NOTIFICATION on the wire; one whose data does not fit goes without it.
fn encode_notification(n: &Notification) -> Bytes {
    let ctx = CodecContext::default();
    let mut out = BytesMut::new();
    if Message::Notification(n.clone())
        .encode(&ctx, &mut out)
        .is_err()
    {
        out.clear();
        let bare = Notification::new(n.code);
        let _ = Message::Notification(bare).encode(&ctx, &mut out);
    }
    out.freeze()
}

/// RFC 4271 10: ConnectRetry is jittered to 75-100 % of its value, so that peers that
/// failed together do not retry in lockstep.
fn jitter(period: Duration) -> Duration {
    let r = RandomState::new().hash_one(Instant::now()) >> 11;
    let fraction = r as f64 / (1u64 << 53) as f64;
    period.mul_f64(0.75 + 0.25 * fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_three_quarters_and_the_whole() {
        let p = Duration::from_secs(4);
        let all: Vec<Duration> = (0..200).map(|_| jitter(p)).collect();
        assert!(all.iter().all(|d| *d >= Duration::from_secs(3) && *d <= p));
        assert!(all.iter().any(|d| *d != all[0]), "not random");
    }
}
