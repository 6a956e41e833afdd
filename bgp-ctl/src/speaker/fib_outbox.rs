//! The hand-over of Loc-RIB changes to the FIB programmer, without making the RIB wait
//! for the maps.
//!
//! The programmer writes BPF maps a few times slower than the RIB takes in routes. If
//! the speaker waited for it, a full table would arrive only as fast as the maps are
//! written, and every session would stall behind it. Queuing the changes themselves
//! would hold a million of them (~60 bytes each, or 24 for their prefixes) and grow
//! with the churn. Instead the RIB queues the *slots* whose state changed
//! ([`Rib::track_fib_changes`]): once each however often they change, 4 bytes per
//! prefix, never more than the table. When the programmer has room, the oldest go as
//! the Loc-RIB has them then. This is how zebra feeds its dataplane too (a route node
//! is queued once, flagged while queued): the RIB is the source of truth, the FIB
//! catches up, and nothing waits for it.
//!
//! Ordering: other work ([`Work::PeerDown`], [`Work::LocalTarget`]) goes in its own
//! order ahead of the queued prefixes. A peer down shrinks the next-hop groups before the
//! per-prefix changes; a target must be known before its prefix is programmed; and a
//! target forgotten early is never missed, because only a change with a local path reads
//! it and a withdrawn local prefix has none (unless it is originated again, which sets
//! its target again, after).

use std::collections::VecDeque;

use tokio::sync::mpsc::{self, error::TrySendError};

use crate::{programmer::Work, rib::Rib};

/// Most Loc-RIB changes in one work item for the FIB programmer: with its bounded queue,
/// this bounds the changes in flight between the two.
pub const FIB_CHUNK: usize = 4096;

/// The speaker's end of the programmer's queue, with the work that did not fit in it.
pub struct Outbox {
    tx: mpsc::Sender<Work>,
    /// Work that goes ahead of the RIB's queued prefixes, in order.
    ahead: VecDeque<Work>,
}

impl Outbox {
    /// Sends to the programmer through `tx`.
    pub fn new(tx: mpsc::Sender<Work>) -> Self {
        Outbox {
            tx,
            ahead: VecDeque::new(),
        }
    }

    /// A handle on the queue, to wait for room in it (see [`Outbox::send_next`]).
    pub fn sender(&self) -> mpsc::Sender<Work> {
        self.tx.clone()
    }

    /// Something waits for room in the queue, here or in `rib`.
    pub fn has_waiting(&self, rib: &Rib) -> bool {
        !self.ahead.is_empty() || rib.fib_pending() > 0
    }

    /// Hands over `work` (not [`Work::Changes`]: the RIB queues those), at once if the
    /// queue has room.
    pub fn push(&mut self, work: Work) {
        self.ahead.push_back(work);
        while let Some(work) = self.ahead.pop_front() {
            match self.tx.try_send(work) {
                Ok(()) | Err(TrySendError::Closed(_)) => {}
                Err(TrySendError::Full(work)) => {
                    self.ahead.push_front(work);
                    return;
                }
            }
        }
    }

    /// Sends what fits in the queue now, without waiting: call after `rib` changed.
    pub fn flush(&mut self, rib: &mut Rib) {
        let tx = self.tx.clone();
        while self.has_waiting(rib) {
            let Ok(permit) = tx.try_reserve() else {
                return;
            };
            self.send_next(permit, rib);
        }
    }

    /// Sends the next waiting item through `permit` (room in the queue): work that goes
    /// ahead, else up to [`FIB_CHUNK`] of the RIB's queued prefixes as they are now.
    pub fn send_next(&mut self, permit: mpsc::Permit<'_, Work>, rib: &mut Rib) {
        if let Some(work) = self.ahead.pop_front() {
            permit.send(work);
            return;
        }
        let changes = rib.take_fib_changes(FIB_CHUNK);
        if !changes.is_empty() {
            permit.send(Work::Changes(changes));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use bgp_wire::{Family, MpNextHop, Origin, PathAttributes};

    use super::*;
    use crate::{
        programmer::LocalTarget,
        rib::{PeerId, RibConfig, RouteAttrs},
    };

    fn rib() -> Rib {
        let mut rib = Rib::new(RibConfig::new(4_200_000_001, Ipv4Addr::new(192, 0, 2, 11)));
        rib.track_fib_changes();
        rib
    }

    fn local(rib: &mut Rib, prefix: &str) {
        let attrs = RouteAttrs::new(
            PathAttributes {
                origin: Origin::Igp,
                ..PathAttributes::default()
            },
            MpNextHop::Ipv4(Ipv4Addr::UNSPECIFIED),
        );
        rib.originate(&[prefix.parse().unwrap()], attrs);
    }

    fn describe(work: &Work) -> String {
        match work {
            Work::Changes(c) => {
                let c: Vec<String> = c
                    .iter()
                    .map(|c| {
                        format!(
                            "{} {}",
                            c.prefix,
                            if c.best.is_some() { "up" } else { "down" }
                        )
                    })
                    .collect();
                format!("changes {}", c.join(", "))
            }
            Work::PeerDown(p) => format!("peer {} down", p.0),
            Work::LocalTarget(p, t) => format!(
                "target {p} {}",
                if t.is_some() { "set" } else { "forgotten" }
            ),
        }
    }

    #[tokio::test]
    async fn queued_prefixes_go_as_the_rib_has_them_then_and_other_work_goes_ahead() {
        let mut rib = rib();
        let (tx, mut rx) = mpsc::channel(1);
        let mut out = Outbox::new(tx);
        // Fills the queue.
        local(&mut rib, "10.244.1.1/32");
        out.flush(&mut rib);
        assert!(!out.has_waiting(&rib));
        // These wait: a target, two prefixes (one of which is withdrawn meanwhile), a
        // peer down and a target forgotten.
        out.push(Work::LocalTarget(
            "10.244.1.2/32".parse().unwrap(),
            Some(LocalTarget::Kernel),
        ));
        local(&mut rib, "10.244.1.2/32");
        local(&mut rib, "10.244.1.3/32");
        rib.withdraw_local(&["10.244.1.3/32".parse().unwrap()]);
        out.push(Work::PeerDown(PeerId(7)));
        out.push(Work::LocalTarget("10.244.1.3/32".parse().unwrap(), None));
        out.flush(&mut rib);
        assert_eq!(rib.fib_pending(), 2);
        assert_eq!(
            rib.prefix_count(Family::IPV4_UNICAST),
            2,
            "the withdrawn one is parked, not counted"
        );

        let tx = out.sender();
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(describe(&rx.recv().await.unwrap()));
            if out.has_waiting(&rib) {
                let permit = tx.reserve().await.unwrap();
                out.send_next(permit, &mut rib);
            }
        }
        assert_eq!(
            seen,
            [
                "changes 10.244.1.1/32 up",
                "target 10.244.1.2/32 set",
                "peer 7 down",
                "target 10.244.1.3/32 forgotten",
                "changes 10.244.1.2/32 up, 10.244.1.3/32 down",
            ]
        );
        assert!(!out.has_waiting(&rib));
        assert_eq!(rib.prefix_count(Family::IPV4_UNICAST), 2);
    }

    #[tokio::test]
    async fn a_prefix_that_changes_while_queued_is_queued_once_and_goes_as_it_is_last() {
        let mut rib = rib();
        let (tx, mut rx) = mpsc::channel(1);
        let mut out = Outbox::new(tx);
        // The queue is full: everything after this waits in the RIB.
        out.push(Work::PeerDown(PeerId(1)));
        for round in 0..1000 {
            for i in 0..10u8 {
                local(&mut rib, &format!("10.244.2.{i}/32"));
            }
            for i in 0..10u8 {
                if round < 999 || i % 2 == 0 {
                    rib.withdraw_local(&[format!("10.244.2.{i}/32").parse().unwrap()]);
                }
            }
        }
        // 20,000 changes of 10 prefixes: 10 queued, in the order they first changed.
        assert_eq!(rib.fib_pending(), 10);
        assert_eq!(rib.prefix_count(Family::IPV4_UNICAST), 5);
        assert_eq!(describe(&rx.recv().await.unwrap()), "peer 1 down");
        out.flush(&mut rib);
        let want: Vec<String> = (0..10)
            .map(|i| format!("10.244.2.{i}/32 {}", if i % 2 == 0 { "down" } else { "up" }))
            .collect();
        assert_eq!(
            describe(&rx.recv().await.unwrap()),
            format!("changes {}", want.join(", "))
        );
        assert_eq!(rib.fib_pending(), 0);
        assert!(!out.has_waiting(&rib));
    }
}
