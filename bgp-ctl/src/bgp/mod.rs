//! BGP sessions: the finite state machine of each peer (pure), its timers and settings,
//! and the tokio tasks that run it over TCP (sockets with MD5 and GTSM, the listener).
//!
//! Layers, imported only downwards: `bgp_wire` (the codec) <- [`fsm`] with
//! [`negotiation`], [`timers`], [`peer_config`] (no I/O, no clock) <- [`session`],
//! [`listener`], [`socket`] (tokio and the kernel).

pub mod fsm;
pub mod negotiation;
pub mod peer_config;
pub mod socket;
pub mod timers;
