//! BGP sessions: the finite state machine of each peer (pure), its timers and settings,
//! and the tokio tasks that run it over TCP (sockets with MD5 and GTSM, the listener).
//!
//! Layers, imported only downwards: `bgp_wire` (the codec) <- [`fsm`] with
//! [`negotiation`], [`timers`], [`peer_config`] (no I/O, no clock) <- [`session`],
//! [`connection`], [`listener`], [`socket`], [`stats`] (tokio and the kernel).

pub mod connection;
pub mod fsm;
pub mod listener;
pub mod negotiation;
pub mod peer_config;
pub mod session;
pub mod socket;
pub mod stats;
pub mod timers;

pub use connection::{SendError, UpdateSender};
pub use fsm::{DownInfo, DownReason, State};
pub use listener::{Accepted, Listener};
pub use negotiation::Negotiated;
pub use peer_config::{LocalInfo, MaxPrefix, PeerConfig, RemoteAs};
pub use session::{Session, SessionEvent, SessionGone, SessionHandle};
pub use stats::StatsSnapshot;
pub use timers::TimerConfig;
