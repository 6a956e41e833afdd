//! Bidirectional Forwarding Detection for the node agent: single-hop BFD over IPv4 and
//! IPv6 (RFC 5880, RFC 5881), Asynchronous mode, so a BGP session can be torn down
//! within a few hundred milliseconds of its path failing (RFC 9384: Cease/BFD Down).
//!
//! Layers, imported downwards only: [`packet`] (the Control packet codec) <- [`session`]
//! (the pure per-session state machine, events in and actions out) <- [`transport`]
//! (UDP sockets with GTSM) and this module's [`BfdManager`]: one tokio task that owns
//! every session, runs their timers, demultiplexes received packets and reports state
//! changes to subscribers as [`BfdEvent`]s.
//!
//! ```no_run
//! # async fn example() -> Result<(), bgp_ctl::bfd::BfdError> {
//! use std::{net::{IpAddr, Ipv4Addr}, time::Duration};
//! use bgp_ctl::bfd::{BfdManager, BfdState, SessionConfig};
//!
//! let bfd = BfdManager::spawn()?;
//! let mut events = bfd.subscribe();
//! let config = SessionConfig::symmetric(Duration::from_millis(100), 3);
//! let (peer, local) = (Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2));
//! bfd.add_session(IpAddr::V4(peer), IpAddr::V4(local), config).await?;
//! while let Some(event) = events.recv().await {
//!     if event.state == BfdState::Down && !event.peer_admin_down {
//!         // tear the BGP session to event.peer down: Cease, subcode 10 (BFD Down)
//!     }
//! }
//! # Ok(()) }
//! ```

pub mod packet;
pub mod session;
pub mod transport;

use std::{
    collections::{BTreeSet, HashMap},
    io,
    net::IpAddr,
    num::NonZeroU32,
    time::Duration,
};

use rand::RngExt;
use tokio::{
    sync::{mpsc, oneshot},
    time::Instant,
};
use tracing::{debug, info, warn};

pub use packet::{ControlPacket, Diagnostic, PacketError, State};
pub use session::{ConfigError, SessionConfig, SessionStatus};

use session::{Action, Event, Session};
use transport::{CONTROL_PORT, Datagram, Family, GTSM_HOP_LIMIT, Listener, SessionSocket};

/// Our end of a session: the address we send from and expect packets to, and the
/// interface, when the session is tied to one (required for IPv6 link-local addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Local {
    /// Local address.
    pub addr: IpAddr,
    /// Interface index, if the session is bound to an interface.
    pub ifindex: Option<NonZeroU32>,
}

impl Local {
    /// `addr` on interface `ifindex`.
    pub fn on_interface(addr: IpAddr, ifindex: NonZeroU32) -> Self {
        Self {
            addr,
            ifindex: Some(ifindex),
        }
    }
}

impl From<IpAddr> for Local {
    fn from(addr: IpAddr) -> Self {
        Self {
            addr,
            ifindex: None,
        }
    }
}

impl std::fmt::Display for Local {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ifindex {
            Some(i) => write!(f, "{}%{i}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// What identifies a session: the peer address and our end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionKey {
    /// The peer's address.
    pub peer: IpAddr,
    /// Our end.
    pub local: Local,
}

/// The state a [`BfdEvent`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BfdState {
    /// The session came Up.
    Up,
    /// The session went Down after having been Up.
    Down,
}

/// A session came Up, or went Down after having been Up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BfdEvent {
    /// The peer's address.
    pub peer: IpAddr,
    /// Our end of the session.
    pub local: Local,
    /// Up or Down.
    pub state: BfdState,
    /// Our diagnostic: why it went Down ([`Diagnostic::ControlDetectionTimeExpired`]: no
    /// packet for a Detection Time; [`Diagnostic::NeighborSignaledSessionDown`]: the peer
    /// said Down or AdminDown), [`Diagnostic::NoDiagnostic`] when Up.
    pub diag: Diagnostic,
    /// The peer took its end administratively down. RFC 5882 section 3.2: the path may
    /// be fine, so a client SHOULD NOT tear its session down for this.
    pub peer_admin_down: bool,
}

/// Counters of a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionCounters {
    /// Packets sent.
    pub sent: u64,
    /// Packets that failed to send (the socket refused them).
    pub send_errors: u64,
    /// Packets demultiplexed to the session.
    pub received: u64,
    /// Times the session came Up.
    pub up_transitions: u64,
}

/// A session as the manager sees it, for show commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Peer and local end.
    pub key: SessionKey,
    /// Configured timers.
    pub config: SessionConfig,
    /// State variables.
    pub status: SessionStatus,
    /// The UDP source port of its packets.
    pub source_port: u16,
    /// Counters.
    pub counters: SessionCounters,
}

/// Received datagrams the manager discarded before they reached a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounters {
    /// TTL / Hop Limit other than 255, or none reported (GTSM, RFC 5881 section 5).
    pub hop_limit: u64,
    /// Not a valid Control packet (see [`PacketError`]).
    pub malformed: u64,
    /// No session matches (unknown Your Discriminator, or no session for the addresses
    /// and interface when it is zero), or the session's peer is another address.
    pub no_session: u64,
}

/// What can go wrong talking to the manager.
#[derive(Debug, thiserror::Error)]
pub enum BfdError {
    /// [`BfdManager::spawn`] was called outside a tokio runtime.
    #[error("the BFD manager must be spawned within a tokio runtime")]
    NoRuntime,
    /// The manager task is gone.
    #[error("the BFD manager has stopped")]
    Stopped,
    /// Invalid timers.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The peer and local end cannot make a single-hop session.
    #[error("BFD session to {peer} from {local}: {reason}")]
    Session {
        /// The peer.
        peer: IpAddr,
        /// Our end.
        local: Local,
        /// What is wrong.
        reason: String,
    },
    /// A socket could not be opened or bound.
    #[error("BFD socket {what}: {source}")]
    Socket {
        /// Which socket and what was done.
        what: String,
        /// The OS error.
        source: io::Error,
    },
}

#[derive(Debug)]
enum Command {
    Add {
        key: SessionKey,
        config: SessionConfig,
        reply: oneshot::Sender<Result<(), BfdError>>,
    },
    Remove {
        key: SessionKey,
        reply: oneshot::Sender<bool>,
    },
    Subscribe(mpsc::UnboundedSender<BfdEvent>),
    Sessions(oneshot::Sender<Vec<SessionInfo>>),
    Drops(oneshot::Sender<DropCounters>),
}

/// A cheap, cloneable handle to the [`BfdManager`] task. The task stops when every
/// handle is dropped, after sending AdminDown on each session.
#[derive(Clone, Debug)]
pub struct BfdHandle {
    commands: mpsc::UnboundedSender<Command>,
}

impl BfdHandle {
    /// Adds the session `peer` <-> `local` with `config`, or, if it exists, gives it the
    /// new timers (changed with a Poll Sequence, RFC 5880 section 6.8.3). The session
    /// starts at once: Down, sending at 1 s until it is Up.
    pub async fn add_session(
        &self,
        peer: IpAddr,
        local: impl Into<Local>,
        config: SessionConfig,
    ) -> Result<(), BfdError> {
        let key = SessionKey {
            peer,
            local: local.into(),
        };
        let (reply, answer) = oneshot::channel();
        self.send(Command::Add { key, config, reply })?;
        answer.await.map_err(|_| BfdError::Stopped)?
    }

    /// Removes the session, first telling the peer AdminDown (so it does not count
    /// this as a failure, RFC 5882 section 3.2). No [`BfdEvent`] is sent for it. Returns
    /// whether the session existed.
    pub async fn remove_session(
        &self,
        peer: IpAddr,
        local: impl Into<Local>,
    ) -> Result<bool, BfdError> {
        let key = SessionKey {
            peer,
            local: local.into(),
        };
        let (reply, answer) = oneshot::channel();
        self.send(Command::Remove { key, reply })?;
        answer.await.map_err(|_| BfdError::Stopped)
    }

    /// A stream of every [`BfdEvent`] from now on, in order, never lossy (unbounded:
    /// events are state changes, so few). The current state of existing sessions is not
    /// replayed: see [`BfdHandle::sessions`]. The receiver ends when the manager stops.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<BfdEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        // A stopped manager drops `tx` with the command: the receiver then just ends.
        let _ = self.commands.send(Command::Subscribe(tx));
        rx
    }

    /// Every session, with its state and counters.
    pub async fn sessions(&self) -> Result<Vec<SessionInfo>, BfdError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Sessions(reply))?;
        answer.await.map_err(|_| BfdError::Stopped)
    }

    /// Received datagrams discarded before reaching a session, by reason.
    pub async fn drops(&self) -> Result<DropCounters, BfdError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Drops(reply))?;
        answer.await.map_err(|_| BfdError::Stopped)
    }

    fn send(&self, command: Command) -> Result<(), BfdError> {
        self.commands.send(command).map_err(|_| BfdError::Stopped)
    }
}

/// The task that runs every BFD session of the agent; see the module documentation.
pub struct BfdManager {
    commands: mpsc::UnboundedReceiver<Command>,
    sessions: HashMap<u32, Entry>,
    keys: HashMap<SessionKey, u32>,
    v4: Option<Listener>,
    v6: Option<Listener>,
    subscribers: Vec<mpsc::UnboundedSender<BfdEvent>>,
    timers: BTreeSet<(Instant, u32, Timer)>,
    drops: DropCounters,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Timer {
    Tx,
    Detect,
}

struct Entry {
    key: SessionKey,
    session: Session,
    socket: SessionSocket,
    source_port: u16,
    tx_at: Option<Instant>,
    detect_at: Option<Instant>,
    counters: SessionCounters,
}

enum Wake {
    Command(Command),
    Closed,
    Datagram(io::Result<Datagram>),
    Timers,
}

/// Most tries at drawing an unused random discriminator (a clash is ~n/2^32 likely).
const DISCRIMINATOR_TRIES: u32 = 64;

impl BfdManager {
    /// Starts the manager task on the current tokio runtime. Sockets are opened as
    /// sessions are added: the control port of a family is bound with the first session
    /// of that family, in the network namespace of the runtime's threads.
    pub fn spawn() -> Result<BfdHandle, BfdError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BfdError::NoRuntime)?;
        let (commands, rx) = mpsc::unbounded_channel();
        let manager = BfdManager {
            commands: rx,
            sessions: HashMap::new(),
            keys: HashMap::new(),
            v4: None,
            v6: None,
            subscribers: Vec::new(),
            timers: BTreeSet::new(),
            drops: DropCounters::default(),
        };
        runtime.spawn(manager.run());
        Ok(BfdHandle { commands })
    }

    async fn run(mut self) {
        loop {
            let next_timer = self.timers.first().map(|t| t.0);
            let wake = tokio::select! {
                command = self.commands.recv() => command.map_or(Wake::Closed, Wake::Command),
                datagram = receive(self.v4.as_ref()) => Wake::Datagram(datagram),
                datagram = receive(self.v6.as_ref()) => Wake::Datagram(datagram),
                () = sleep_until(next_timer) => Wake::Timers,
            };
            match wake {
                Wake::Command(command) => self.command(command),
                Wake::Closed => break,
                Wake::Datagram(Ok(datagram)) => self.datagram(datagram),
                Wake::Datagram(Err(e)) => warn!("BFD: receiving failed: {e}"),
                Wake::Timers => self.expire_timers(),
            }
        }
        // Tell every peer we are going away on purpose.
        let ids: Vec<u32> = self.sessions.keys().copied().collect();
        for id in ids {
            self.dispatch(id, Event::AdminDown, false);
        }
        debug!("BFD manager stopped");
    }

    fn command(&mut self, command: Command) {
        match command {
            Command::Add { key, config, reply } => {
                let _ = reply.send(self.add(key, config));
            }
            Command::Remove { key, reply } => {
                let _ = reply.send(self.remove(key));
            }
            Command::Subscribe(tx) => self.subscribers.push(tx),
            Command::Sessions(reply) => {
                let _ = reply.send(self.infos());
            }
            Command::Drops(reply) => {
                let _ = reply.send(self.drops);
            }
        }
    }

    fn add(&mut self, key: SessionKey, config: SessionConfig) -> Result<(), BfdError> {
        config.validate()?;
        check_key(&key)?;
        if let Some(&id) = self.keys.get(&key) {
            let changed = self
                .sessions
                .get(&id)
                .is_some_and(|e| e.session.config() != config);
            if changed {
                self.dispatch(id, Event::Configure(config), true);
            }
            return Ok(());
        }
        self.ensure_listener(Family::of(key.peer))?;
        let mut rng = rand::rng();
        let id = (0..DISCRIMINATOR_TRIES)
            .map(|_| rng.random::<u32>())
            .find(|d| *d != 0 && !self.sessions.contains_key(d))
            .ok_or_else(|| session_error(&key, "no free discriminator"))?;
        let socket = SessionSocket::open(
            key.local.addr,
            key.local.ifindex,
            key.peer,
            CONTROL_PORT,
            rng.random(),
        )
        .map_err(|source| BfdError::Socket {
            what: format!("for {} from {}", key.peer, key.local),
            source,
        })?;
        let source_port = socket.local_addr().map_or(0, |a| a.port());
        let session = Session::new(id, config, rng.random());
        info!(
            "BFD session to {} from {} (discriminator {id:#x}, source port {source_port}, {:?} x {})",
            key.peer, key.local, config.desired_min_tx, config.multiplier
        );
        self.sessions.insert(
            id,
            Entry {
                key,
                session,
                socket,
                source_port,
                tx_at: None,
                detect_at: None,
                counters: SessionCounters::default(),
            },
        );
        self.keys.insert(key, id);
        self.dispatch(id, Event::Start, true);
        Ok(())
    }

    fn remove(&mut self, key: SessionKey) -> bool {
        let Some(id) = self.keys.remove(&key) else {
            return false;
        };
        self.dispatch(id, Event::AdminDown, false);
        if let Some(entry) = self.sessions.remove(&id) {
            for (at, kind) in [(entry.tx_at, Timer::Tx), (entry.detect_at, Timer::Detect)] {
                if let Some(at) = at {
                    self.timers.remove(&(at, id, kind));
                }
            }
        }
        info!("BFD session to {} from {} removed", key.peer, key.local);
        true
    }

    fn ensure_listener(&mut self, family: Family) -> Result<(), BfdError> {
        let slot = match family {
            Family::V4 => &mut self.v4,
            Family::V6 => &mut self.v6,
        };
        if slot.is_none() {
            let listener =
                Listener::bind(family, CONTROL_PORT).map_err(|source| BfdError::Socket {
                    what: format!("listening on {family:?} port {CONTROL_PORT}"),
                    source,
                })?;
            *slot = Some(listener);
        }
        Ok(())
    }

    fn infos(&self) -> Vec<SessionInfo> {
        let mut out: Vec<SessionInfo> = self
            .sessions
            .values()
            .map(|e| SessionInfo {
                key: e.key,
                config: e.session.config(),
                status: e.session.status(),
                source_port: e.source_port,
                counters: e.counters,
            })
            .collect();
        out.sort_by_key(|i| (i.key.peer, i.key.local.addr, i.key.local.ifindex));
        out
    }

    /// Demultiplexes a received datagram to its session (RFC 5880 section 6.8.6, RFC 5881
    /// sections 3 and 5) and hands the packet to it.
    fn datagram(&mut self, d: Datagram) {
        if d.hop_limit != Some(GTSM_HOP_LIMIT) {
            self.drops.hop_limit += 1;
            debug!(
                "BFD: dropped packet from {} with TTL/hop limit {:?}",
                d.source, d.hop_limit
            );
            return;
        }
        let packet = match ControlPacket::decode(&d.payload) {
            Ok(p) => p,
            Err(e) => {
                self.drops.malformed += 1;
                debug!("BFD: dropped packet from {}: {e}", d.source);
                return;
            }
        };
        let peer = d.source.ip();
        let id = if packet.your_discriminator != 0 {
            let id = packet.your_discriminator;
            self.sessions
                .get(&id)
                .filter(|e| {
                    e.key.peer == peer && e.key.local.ifindex.is_none_or(|i| i.get() == d.ifindex)
                })
                .map(|_| id)
        } else {
            // RFC 5881 section 3: by source, destination and interface.
            d.destination.and_then(|dst| {
                let on_if = SessionKey {
                    peer,
                    local: Local {
                        addr: dst,
                        ifindex: NonZeroU32::new(d.ifindex),
                    },
                };
                let any_if = SessionKey {
                    peer,
                    local: Local::from(dst),
                };
                self.keys
                    .get(&on_if)
                    .or_else(|| self.keys.get(&any_if))
                    .copied()
            })
        };
        let Some(id) = id else {
            self.drops.no_session += 1;
            debug!(
                "BFD: no session for packet from {} (your discriminator {:#x})",
                d.source, packet.your_discriminator
            );
            return;
        };
        if let Some(entry) = self.sessions.get_mut(&id) {
            entry.counters.received += 1;
        }
        self.dispatch(id, Event::Received(packet), true);
    }

    fn expire_timers(&mut self) {
        let now = Instant::now();
        // Each pass removes one timer; sessions only arm timers in the future (intervals
        // are at least 1 ms), so this ends.
        while let Some(&(at, id, kind)) = self.timers.first() {
            if at > now {
                break;
            }
            self.timers.remove(&(at, id, kind));
            let Some(entry) = self.sessions.get_mut(&id) else {
                continue;
            };
            let event = match kind {
                Timer::Tx => {
                    entry.tx_at = None;
                    Event::TxTimer
                }
                Timer::Detect => {
                    entry.detect_at = None;
                    Event::DetectTimer
                }
            };
            self.dispatch(id, event, true);
        }
    }

    /// Feeds `event` to session `id` and carries out its actions; `notify`: whether
    /// state changes go to subscribers.
    fn dispatch(&mut self, id: u32, event: Event, notify: bool) {
        let Some(entry) = self.sessions.get_mut(&id) else {
            return;
        };
        let mut events = Vec::new();
        for action in entry.session.handle(event) {
            match action {
                Action::Send(packet) => match entry.socket.send(&packet.to_bytes()) {
                    Ok(()) => entry.counters.sent += 1,
                    Err(e) => {
                        entry.counters.send_errors += 1;
                        debug!("BFD: sending to {} failed: {e}", entry.key.peer);
                    }
                },
                Action::ArmTxTimer(after) => set_timer(
                    &mut self.timers,
                    &mut entry.tx_at,
                    id,
                    Timer::Tx,
                    Some(after),
                ),
                Action::ArmDetectTimer(after) => set_timer(
                    &mut self.timers,
                    &mut entry.detect_at,
                    id,
                    Timer::Detect,
                    Some(after),
                ),
                Action::CancelDetectTimer => set_timer(
                    &mut self.timers,
                    &mut entry.detect_at,
                    id,
                    Timer::Detect,
                    None,
                ),
                Action::StateChange { from, to, diag } => {
                    let status = entry.session.status();
                    info!(
                        "BFD session to {} from {}: {from} -> {to} ({diag})",
                        entry.key.peer, entry.key.local
                    );
                    let state = if to == State::Up {
                        entry.counters.up_transitions += 1;
                        Some(BfdState::Up)
                    } else if from == State::Up {
                        Some(BfdState::Down)
                    } else {
                        None
                    };
                    if let Some(state) = state {
                        events.push(BfdEvent {
                            peer: entry.key.peer,
                            local: entry.key.local,
                            state,
                            diag,
                            peer_admin_down: state == BfdState::Down
                                && diag == Diagnostic::NeighborSignaledSessionDown
                                && status.remote_state == State::AdminDown,
                        });
                    }
                }
                Action::Discarded(reason) => {
                    debug!("BFD: packet from {} discarded: {reason}", entry.key.peer)
                }
            }
        }
        if notify {
            for event in events {
                self.subscribers.retain(|s| s.send(event.clone()).is_ok());
            }
        }
    }
}

fn set_timer(
    timers: &mut BTreeSet<(Instant, u32, Timer)>,
    slot: &mut Option<Instant>,
    id: u32,
    kind: Timer,
    after: Option<Duration>,
) {
    if let Some(at) = slot.take() {
        timers.remove(&(at, id, kind));
    }
    if let Some(after) = after {
        let at = Instant::now() + after;
        timers.insert((at, id, kind));
        *slot = Some(at);
    }
}

fn session_error(key: &SessionKey, reason: &str) -> BfdError {
    BfdError::Session {
        peer: key.peer,
        local: key.local,
        reason: reason.to_owned(),
    }
}

/// Rejects what cannot be a single-hop session.
fn check_key(key: &SessionKey) -> Result<(), BfdError> {
    let (peer, local) = (key.peer, key.local.addr);
    if Family::of(peer) != Family::of(local) {
        return Err(session_error(
            key,
            "peer and local address of different families",
        ));
    }
    if peer.is_unspecified()
        || peer.is_multicast()
        || local.is_unspecified()
        || local.is_multicast()
    {
        return Err(session_error(key, "addresses must be unicast"));
    }
    if peer == local {
        return Err(session_error(key, "peer and local address are the same"));
    }
    let link_local = |a: IpAddr| matches!(a, IpAddr::V6(v6) if v6.is_unicast_link_local());
    if (link_local(peer) || link_local(local)) && key.local.ifindex.is_none() {
        return Err(session_error(
            key,
            "an IPv6 link-local address needs an interface",
        ));
    }
    Ok(())
}

async fn receive(listener: Option<&Listener>) -> io::Result<Datagram> {
    match listener {
        Some(l) => l.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
