//! The receivers under test behind one trait: each is started in a namespace with the
//! same peer setup, and answers "how many of the feeder's routes are in your Loc-RIB" by
//! one query of its own CLI (the way an operator would ask), and which processes hold
//! its memory.

use std::{fmt, net::Ipv4Addr, str::FromStr};

use anyhow::{Result, bail};
use ipnet::Ipv4Net;
use lab::Netns;

use crate::{bird_receiver::BirdReceiver, frr_receiver::FrrReceiver, ours_receiver::OursReceiver};

/// How a receiver is configured: one eBGP neighbor, the feeder, from which it imports
/// everything and to which it exports nothing. It listens (passive): the feeder connects.
#[derive(Debug, Clone)]
pub struct PeerSetup {
    /// The receiver's address on the link (also its router id).
    pub local: Ipv4Addr,
    /// Prefix length of the link's subnet.
    pub prefix_len: u8,
    /// The receiver's AS.
    pub asn: u32,
    /// The receiver's interface on the link.
    pub iface: String,
    /// The feeder's address.
    pub feeder: Ipv4Addr,
    /// The feeder's AS (4-octet).
    pub feeder_asn: u32,
}

/// A receiver implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// This project's speaker, `bgp-ctl daemon`.
    Ours,
    /// BIRD 2.
    Bird,
    /// FRR's bgpd.
    Frr,
}

impl Kind {
    /// Every receiver, in the order they are run.
    pub const ALL: [Kind; 3] = [Kind::Ours, Kind::Bird, Kind::Frr];

    /// Starts this receiver in `ns`; returns once it listens for the feeder.
    pub fn start(self, ns: &Netns, setup: &PeerSetup) -> Result<Box<dyn Receiver>> {
        Ok(match self {
            Kind::Ours => Box::new(OursReceiver::start(ns, setup)?),
            Kind::Bird => Box::new(BirdReceiver::start(ns, setup)?),
            Kind::Frr => Box::new(FrrReceiver::start(ns, setup)?),
        })
    }

    /// The name used on the command line and in the RESULT line.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Ours => "ours",
            Kind::Bird => "bird",
            Kind::Frr => "frr",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = anyhow::Error;

    fn from_str(s: &str) -> Result<Self> {
        match Kind::ALL.into_iter().find(|k| k.name() == s.trim()) {
            Some(k) => Ok(k),
            None => bail!("unknown receiver {s:?}: one of ours, bird, frr"),
        }
    }
}

/// A running receiver. Dropping it stops it.
pub trait Receiver {
    /// Routes learned from the feeder that are in the Loc-RIB now, by one query of the
    /// receiver's CLI.
    fn routes(&mut self) -> Result<u64>;

    /// Once [`Receiver::routes`] has reached the feed's size: whether best-path
    /// selection has run over all of them (`last` is the last route sent). For
    /// receivers whose count already means that, always true.
    fn selected(&mut self, last: Ipv4Net) -> Result<bool> {
        let _ = last;
        Ok(true)
    }

    /// After the load was timed: a costlier check that the Loc-RIB holds exactly `n`
    /// routes, where the cheap count of [`Receiver::routes`] might not say it all.
    fn confirm(&mut self, n: u64) -> Result<()> {
        let _ = n;
        Ok(())
    }

    /// After the feeder's session died: routes still in the Loc-RIB, or `None` while
    /// the receiver says it is still removing them without counting them.
    fn remaining(&mut self) -> Result<Option<u64>> {
        self.routes().map(Some)
    }

    /// The processes whose memory is counted as this receiver's.
    fn pids(&self) -> Result<Vec<u32>>;
}
