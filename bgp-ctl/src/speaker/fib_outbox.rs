//! The hand-over of Loc-RIB changes to the FIB programmer, without making the RIB wait
//! for the maps.
//!
//! The programmer writes BPF maps a few times slower than the RIB takes in routes. If
//! the speaker waited for it, a full table would arrive only as fast as the maps are
//! written, and every session would stall behind it. If it queued every change, a
//! million changes (~60 bytes each) would sit in memory. Instead, while the queue to the
//! programmer is full, only the *prefixes* wait here (in order, ~24 bytes each), and
//! their state is read from the Loc-RIB when they go: a prefix that changed several
//! times meanwhile is programmed once, as it is then. This is how BIRD and zebra feed
//! their kernel tables too: the RIB is the source of truth, the FIB catches up.
//!
//! Ordering: a local prefix's target ([`Work::LocalTarget`]) keeps its place among the
//! prefixes. A peer going down ([`Work::PeerDown`]) goes ahead of waiting prefixes: they
//! are read from the Loc-RIB later, which no longer has that peer's paths.
//!
//! Memory stays bounded whatever peers send: beyond [`Outbox::limit`] waiting items,
//! [`Outbox::push_changes`] says so and the speaker waits for the programmer (see
//! [`Outbox::drain_until_under_limit`]).

use std::collections::VecDeque;

use ipnet::IpNet;
use tokio::sync::mpsc::{self, error::TrySendError};

use crate::{
    programmer::Work,
    rib::{Rib, RibChange},
};

/// Most Loc-RIB changes in one work item for the FIB programmer: with its bounded queue,
/// this bounds the changes in flight between the two.
pub const FIB_CHUNK: usize = 4096;
/// Waiting items always allowed, however small the Loc-RIB.
const MIN_LIMIT: usize = 1 << 16;

/// One waiting item.
enum Pending {
    /// Bring this prefix up to date from the Loc-RIB (where it was: a lookup hint).
    Prefix(IpNet, u32),
    /// Work sent as is (boxed: a waiting prefix then takes 24 bytes, not 40).
    Work(Box<Work>),
}

/// The speaker's end of the programmer's queue, with what did not fit in it yet.
pub struct Outbox {
    tx: mpsc::Sender<Work>,
    waiting: VecDeque<Pending>,
}

impl Outbox {
    /// Sends to the programmer through `tx`.
    pub fn new(tx: mpsc::Sender<Work>) -> Self {
        Outbox {
            tx,
            waiting: VecDeque::new(),
        }
    }

    /// A handle on the queue, to wait for room in it (see [`Outbox::send_waiting`]).
    pub fn sender(&self) -> mpsc::Sender<Work> {
        self.tx.clone()
    }

    /// Something waits for room in the queue.
    pub fn has_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Items waiting.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }

    /// Most items that may wait: twice the Loc-RIB (every prefix changed twice over)
    /// or [`MIN_LIMIT`].
    pub fn limit(rib: &Rib) -> usize {
        let routes = rib.prefix_count(bgp_wire::Family::IPV4_UNICAST)
            + rib.prefix_count(bgp_wire::Family::IPV6_UNICAST);
        (2 * routes).max(MIN_LIMIT)
    }

    /// Hands over `changes`: at once if the queue has room and nothing waits before
    /// them, otherwise their prefixes wait.
    pub fn push_changes(&mut self, changes: Vec<RibChange>) {
        let mut changes = changes.into_iter();
        if self.waiting.is_empty() {
            loop {
                let chunk: Vec<RibChange> = changes.by_ref().take(FIB_CHUNK).collect();
                if chunk.is_empty() {
                    return;
                }
                match self.tx.try_send(Work::Changes(chunk)) {
                    Ok(()) => {}
                    Err(TrySendError::Full(Work::Changes(chunk))) => {
                        self.waiting
                            .extend(chunk.into_iter().map(|c| Pending::Prefix(c.prefix, c.slot)));
                        break;
                    }
                    // The programmer has stopped (the daemon is ending).
                    Err(_) => return,
                }
            }
        }
        self.waiting
            .extend(changes.map(|c| Pending::Prefix(c.prefix, c.slot)));
    }

    /// Hands over `work` (not [`Work::Changes`]: see [`Outbox::push_changes`]).
    pub fn push(&mut self, work: Work) {
        let urgent = matches!(work, Work::PeerDown(_));
        if self.waiting.is_empty() || urgent {
            match self.tx.try_send(work) {
                Ok(()) | Err(TrySendError::Closed(_)) => {}
                Err(TrySendError::Full(work)) if urgent => {
                    self.waiting.push_front(Pending::Work(Box::new(work)));
                }
                Err(TrySendError::Full(work)) => {
                    self.waiting.push_back(Pending::Work(Box::new(work)))
                }
            }
        } else {
            self.waiting.push_back(Pending::Work(Box::new(work)));
        }
    }

    /// Sends the next waiting item through `permit` (room in the queue): a work item, or
    /// up to [`FIB_CHUNK`] consecutive prefixes as they are in `rib` now.
    pub fn send_waiting(&mut self, permit: mpsc::Permit<'_, Work>, rib: &Rib) {
        let work = match self.waiting.pop_front() {
            None => return,
            Some(Pending::Work(w)) => *w,
            Some(Pending::Prefix(first, hint)) => {
                let mut prefixes = vec![(first, hint)];
                while prefixes.len() < FIB_CHUNK {
                    match self.waiting.front() {
                        Some(Pending::Prefix(p, hint)) => {
                            prefixes.push((*p, *hint));
                            self.waiting.pop_front();
                        }
                        _ => break,
                    }
                }
                Work::Changes(rib.current(prefixes))
            }
        };
        permit.send(work);
        // A burst's backlog (a full table: tens of MB) is given back once sent.
        if self.waiting.is_empty() && self.waiting.capacity() > MIN_LIMIT {
            self.waiting = VecDeque::new();
        }
    }

    /// Waits for the programmer until at most `limit` items wait (backpressure on the
    /// sessions, only when peers change routes faster than the maps can follow for
    /// longer than a full table takes).
    pub async fn drain_until_under_limit(&mut self, rib: &Rib, limit: usize) {
        let tx = self.tx.clone();
        while self.waiting.len() > limit {
            let Ok(permit) = tx.reserve().await else {
                self.waiting.clear();
                return;
            };
            self.send_waiting(permit, rib);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    #[test]
    fn a_waiting_prefix_takes_24_bytes() {
        assert_eq!(std::mem::size_of::<Pending>(), 24);
    }

    use bgp_wire::{MpNextHop, Origin, PathAttributes};

    use super::*;
    use crate::{
        programmer::LocalTarget,
        rib::{PeerId, RibConfig, RouteAttrs},
    };

    fn rib() -> Rib {
        Rib::new(RibConfig::new(4_200_000_001, Ipv4Addr::new(192, 0, 2, 11)))
    }

    fn local(rib: &mut Rib, prefix: &str) -> Vec<RibChange> {
        let attrs = RouteAttrs::new(
            PathAttributes {
                origin: Origin::Igp,
                ..PathAttributes::default()
            },
            MpNextHop::Ipv4(Ipv4Addr::UNSPECIFIED),
        );
        rib.originate(&[prefix.parse().unwrap()], attrs)
    }

    fn prefixes(work: &Work) -> Vec<(String, bool)> {
        match work {
            Work::Changes(c) => c
                .iter()
                .map(|c| (c.prefix.to_string(), c.best.is_some()))
                .collect(),
            _ => Vec::new(),
        }
    }

    #[tokio::test]
    async fn waiting_prefixes_go_as_the_rib_has_them_then_and_peer_down_goes_first() {
        let mut rib = rib();
        let (tx, mut rx) = mpsc::channel(1);
        let mut out = Outbox::new(tx);
        // Fills the queue.
        let a = local(&mut rib, "10.244.1.1/32");
        out.push_changes(a);
        assert!(!out.has_waiting());
        // These wait: a target, two prefixes (one of which is withdrawn meanwhile).
        out.push(Work::LocalTarget(
            "10.244.1.2/32".parse().unwrap(),
            Some(LocalTarget::Kernel),
        ));
        let b = local(&mut rib, "10.244.1.2/32");
        out.push_changes(b);
        let c = local(&mut rib, "10.244.1.3/32");
        out.push_changes(c);
        rib.withdraw_local(&["10.244.1.3/32".parse().unwrap()]);
        out.push(Work::PeerDown(PeerId(7)));
        assert_eq!(out.waiting(), 4);

        // In order: what was queued, the peer down ahead of the waiting items, the
        // target, then both prefixes in one chunk as the RIB has them now.
        let tx = out.sender();
        let mut seen = Vec::new();
        for _ in 0..4 {
            let w = rx.recv().await.unwrap();
            seen.push(match &w {
                Work::Changes(_) => format!("changes {:?}", prefixes(&w)),
                Work::PeerDown(_) => "peer down".into(),
                Work::LocalTarget(p, _) => format!("target {p}"),
            });
            if out.has_waiting() {
                let permit = tx.reserve().await.unwrap();
                out.send_waiting(permit, &rib);
            }
        }
        assert_eq!(
            seen,
            [
                "changes [(\"10.244.1.1/32\", true)]",
                "peer down",
                "target 10.244.1.2/32",
                "changes [(\"10.244.1.2/32\", true), (\"10.244.1.3/32\", false)]",
            ]
        );
        assert!(!out.has_waiting());
    }

    #[tokio::test]
    async fn past_the_limit_the_speaker_waits_for_the_programmer() {
        let mut rib = rib();
        let (tx, mut rx) = mpsc::channel(1);
        let mut out = Outbox::new(tx);
        for i in 0..10u8 {
            let c = local(&mut rib, &format!("10.244.2.{i}/32"));
            out.push_changes(c);
        }
        assert_eq!(out.waiting(), 9);
        let reader = tokio::spawn(async move {
            let mut n = 0;
            while let Some(w) = rx.recv().await {
                n += prefixes(&w).len();
                if n == 10 {
                    break;
                }
            }
            n
        });
        out.drain_until_under_limit(&rib, 0).await;
        assert!(!out.has_waiting());
        drop(out);
        assert_eq!(reader.await.unwrap(), 10);
    }
}
