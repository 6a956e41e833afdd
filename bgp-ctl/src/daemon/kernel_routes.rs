//! The kernel FIB writer (`[dataplane] kernel-fib = true`): the routes the Loc-RIB learned
//! from BGP peers, also written into the namespace's main table as `proto 200`, so that
//! the node's own traffic (which the XDP program never sees) follows them too.
//!
//! - What goes in: every Loc-RIB route whose best path comes from a peer, with the
//!   peer-learned members of its multipath set as next hops (`nexthop via A dev X
//!   nexthop via B dev Y`): each one the neighbor the XDP programmer forwards to, i.e.
//!   the BGP next hop itself when it is on a connected subnet (the fabric's case), else
//!   the gateway the kernel reaches it through, on the egress interface the programmer
//!   looked up. Members without a route in the kernel are left out; a route left with
//!   none is removed.
//! - What stays out: our own originations. Pod routes are in the kernel already (the CNI
//!   put them there: that is how we learn them), static routes point at the node itself,
//!   and an aggregate's blackhole would swallow the node's own traffic to addresses of the
//!   aggregate that the kernel reaches some other way (a pod route not yet learned, a
//!   route of another protocol): the XDP program drops that space for transit traffic,
//!   the kernel is left alone.
//! - Off the hot paths: the FIB programmer hands over the wanted state per prefix (the
//!   latest wins, so a backlog is bounded by the Loc-RIB's size and never blocks it), and
//!   this writer, on its own thread, applies it in batches with many requests in flight.
//!   Kernel refusals are logged per route and counted, never fatal.
//! - Restarts: routes of ours found in the kernel at start are adopted, not rewritten;
//!   those the Loc-RIB learns again with the same next hops are left untouched, changed
//!   ones replaced in place, and those not learned again within the resync period (the
//!   one the XDP maps use) are removed then. On exit nothing is removed: host traffic
//!   keeps flowing across a restart, as transit traffic does through the pinned maps.
//!   With `kernel-fib = false`, routes of ours left by an earlier run are removed after
//!   the resync period.

use std::{
    collections::{HashMap, HashSet},
    net::IpAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use ipnet::IpNet;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::{
    api::protocol::KernelFibView,
    netlink::{Egress, FibChange, KernelFib, KernelFibConfig, KernelNextHop, KernelRoute},
    programmer::next_hop_addr,
    rib::{PathSource, RibChange},
};

/// The next hops of one kernel route, sorted; shared by the routes of one multipath set.
pub type NextHops = Arc<[KernelNextHop]>;

/// Changes per netlink batch: big enough to keep many requests in flight, small enough
/// that the counters move while a full table goes in.
const BATCH: usize = 2048;

/// Refusals logged one by one per batch; the rest are summed up in one line.
const LOGGED_FAILURES: usize = 20;

/// The FIB programmer's side: where it leaves the wanted state of prefixes.
#[derive(Clone)]
pub struct KernelRoutes {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    /// Prefix -> its wanted next hops (`None`: not in the kernel), latest first.
    pending: Mutex<HashMap<IpNet, Option<NextHops>>>,
    wake: Notify,
    /// The writer stopped (no netlink socket): wanted states are dropped.
    dead: AtomicBool,
    routes: AtomicU64,
    stale: AtomicU64,
    failed: AtomicU64,
}

impl KernelRoutes {
    /// Records the wanted state of the prefixes of `changes` (see [`next_hops`]) and
    /// wakes the writer. Never waits for the kernel.
    pub fn want(&self, changes: &[RibChange], egress: impl Fn(IpAddr) -> Option<Egress>) {
        if changes.is_empty() || self.shared.dead.load(Ordering::Relaxed) {
            return;
        }
        let wanted = wanted(changes, egress);
        let mut pending = self
            .shared
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        pending.extend(wanted);
        drop(pending);
        self.shared.wake.notify_one();
    }

    /// The writer's counts, for `show stats` and the metrics.
    pub fn view(&self) -> KernelFibView {
        let s = &self.shared;
        KernelFibView {
            routes: s.routes.load(Ordering::Relaxed),
            stale: s.stale.load(Ordering::Relaxed),
            failed: s.failed.load(Ordering::Relaxed),
            pending: s.pending.lock().map(|p| p.len() as u64).unwrap_or_default(),
        }
    }
}

/// The kernel next hops of a Loc-RIB route: `None` for our own originations and for
/// routes none of whose members the kernel can reach (`egress` answers what the
/// programmer looked up for a BGP next hop).
pub fn next_hops(
    change: &RibChange,
    egress: impl Fn(IpAddr) -> Option<Egress>,
) -> Option<Vec<KernelNextHop>> {
    let best = change.best.as_ref()?;
    if best.source == PathSource::Local {
        return None;
    }
    let mut hops: Vec<KernelNextHop> = Vec::with_capacity(best.multipath.len());
    for m in best.multipath.iter() {
        if m.source == PathSource::Local {
            continue;
        }
        let addr = next_hop_addr(&m.next_hop);
        let Some(e) = egress(addr) else { continue };
        let hop = KernelNextHop::via(e.neighbor(addr), e.ifindex);
        if !hops.contains(&hop) {
            hops.push(hop);
        }
    }
    if hops.is_empty() {
        return None;
    }
    sort(&mut hops);
    Some(hops)
}

/// The wanted state of each prefix of `changes`, computed once per shared multipath set.
fn wanted(
    changes: &[RibChange],
    egress: impl Fn(IpAddr) -> Option<Egress>,
) -> Vec<(IpNet, Option<NextHops>)> {
    let mut out = Vec::with_capacity(changes.len());
    let mut last: Option<(*const (), Option<NextHops>)> = None;
    for c in changes {
        let key = c
            .best
            .as_ref()
            .filter(|b| b.source != PathSource::Local)
            .map(|b| Arc::as_ptr(&b.multipath).cast::<()>());
        let hops = match (&last, key) {
            (Some((k, hops)), Some(key)) if *k == key => hops.clone(),
            _ => {
                let hops: Option<NextHops> = next_hops(c, &egress).map(Arc::from);
                if let Some(key) = key {
                    last = Some((key, hops.clone()));
                }
                hops
            }
        };
        out.push((c.prefix.trunc(), hops));
    }
    out
}

fn sort(hops: &mut [KernelNextHop]) {
    hops.sort_by_key(|h| (h.gateway, h.ifindex, h.weight));
}

/// Starts the writer thread. With `enabled` it returns the handle the FIB programmer
/// feeds; without, the thread only removes routes of ours left by an earlier run (after
/// `resync_after`) and ends.
pub fn spawn(enabled: bool, resync_after: Duration) -> std::io::Result<Option<KernelRoutes>> {
    let shared = Arc::new(Shared::default());
    let handle = enabled.then(|| KernelRoutes {
        shared: shared.clone(),
    });
    std::thread::Builder::new()
        .name("kernel-fib".into())
        .spawn(move || {
            super::fib_task::background_priority("kernel FIB writer");
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    warn!("kernel FIB: no runtime: {e}");
                    shared.dead.store(true, Ordering::Relaxed);
                    return;
                }
            };
            rt.block_on(run(shared, enabled, resync_after));
        })?;
    Ok(handle)
}

async fn run(shared: Arc<Shared>, enabled: bool, resync_after: Duration) {
    let resync = tokio::time::sleep(resync_after);
    let mut writer = match Writer::open(shared.clone()).await {
        Ok(w) => w,
        Err(e) => {
            warn!("kernel FIB: {e}; routes are not written into the kernel");
            shared.dead.store(true, Ordering::Relaxed);
            shared
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clear();
            return;
        }
    };
    let adopted = writer.state.installed.len();
    if enabled {
        info!(
            "kernel FIB: writing BGP routes into the main table as proto {}; adopted {adopted} \
             routes of a previous run (those not learned again within {} s are removed then)",
            writer.fib.config().protocol,
            resync_after.as_secs()
        );
    } else if adopted == 0 {
        return;
    } else {
        info!(
            "kernel FIB: kernel-fib is off; {adopted} routes of ours (proto {}) left by an \
             earlier run are removed in {} s",
            writer.fib.config().protocol,
            resync_after.as_secs()
        );
    }
    tokio::pin!(resync);
    let mut resynced = false;
    loop {
        tokio::select! {
            () = shared.wake.notified() => writer.drain().await,
            () = &mut resync, if !resynced => {
                resynced = true;
                // What arrived before the deadline counts as learned again.
                writer.drain().await;
                let removed = writer.end_resync().await;
                info!("kernel FIB resync: {removed} routes not learned again were removed");
                if !enabled {
                    return;
                }
            }
        }
    }
}

struct Writer {
    fib: KernelFib,
    shared: Arc<Shared>,
    state: State,
}

impl Writer {
    /// Opens the socket and adopts our routes found in the kernel.
    async fn open(shared: Arc<Shared>) -> Result<Self, crate::netlink::NetlinkError> {
        let mut fib = KernelFib::new(KernelFibConfig::default())?;
        let state = State::adopting(fib.routes().await?);
        let w = Writer { fib, shared, state };
        w.publish();
        Ok(w)
    }

    /// Applies everything pending, batch by batch.
    async fn drain(&mut self) {
        loop {
            let batch: Vec<(IpNet, Option<NextHops>)> = {
                let mut pending = self
                    .shared
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if pending.len() <= BATCH {
                    pending.drain().collect()
                } else {
                    let keys: Vec<IpNet> = pending.keys().take(BATCH).copied().collect();
                    keys.into_iter()
                        .filter_map(|k| pending.remove_entry(&k))
                        .collect()
                }
            };
            if batch.is_empty() {
                return;
            }
            let (changes, hops): (Vec<FibChange>, Vec<Option<NextHops>>) = batch
                .into_iter()
                .filter_map(|(prefix, hops)| Some((self.state.change(prefix, &hops)?, hops)))
                .unzip();
            self.apply(changes, hops).await;
        }
    }

    /// Writes `changes`; `hops` are their next hops (`None` for deletions), kept shared.
    async fn apply(&mut self, changes: Vec<FibChange>, hops: Vec<Option<NextHops>>) {
        if changes.is_empty() {
            return;
        }
        let outcomes = match self.fib.apply(&changes).await {
            Ok(o) => o,
            Err(e) => {
                warn!(
                    "kernel FIB: a batch of {} route changes failed: {e}",
                    changes.len()
                );
                for (c, h) in changes.into_iter().zip(hops) {
                    self.state.done(c, h, Err(()));
                }
                self.publish();
                return;
            }
        };
        let mut refused = 0usize;
        for ((change, hops), outcome) in changes.into_iter().zip(hops).zip(outcomes) {
            let outcome = outcome.map_err(|e| {
                refused += 1;
                if refused <= LOGGED_FAILURES {
                    warn!("kernel FIB: {e}");
                }
            });
            self.state.done(change, hops, outcome);
        }
        if refused > LOGGED_FAILURES {
            warn!(
                "kernel FIB: {} more route changes refused",
                refused - LOGGED_FAILURES
            );
        }
        debug!(
            routes = self.state.installed.len(),
            refused, "kernel FIB batch written"
        );
        self.publish();
    }

    /// Removes the adopted routes not learned again. Returns how many went.
    async fn end_resync(&mut self) -> usize {
        let stale = self.state.end_resync();
        let n = stale.len();
        self.apply(stale, vec![None; n]).await;
        n
    }

    fn publish(&self) {
        let (s, st) = (&self.shared, &self.state);
        s.routes.store(st.installed.len() as u64, Ordering::Relaxed);
        s.stale.store(st.stale.len() as u64, Ordering::Relaxed);
        s.failed.store(st.failed.len() as u64, Ordering::Relaxed);
    }
}

/// What the writer knows of our routes in the kernel, and what it takes to change them.
#[derive(Debug, Default)]
struct State {
    /// Our routes in the kernel, as we last wrote (or, adopted, found) them.
    installed: HashMap<IpNet, NextHops>,
    /// Adopted routes the Loc-RIB has not confirmed yet.
    stale: HashSet<IpNet>,
    /// Prefixes whose last write the kernel refused.
    failed: HashSet<IpNet>,
}

impl State {
    /// Starts from `found`, our routes in the kernel now, all stale until learned again.
    fn adopting(found: Vec<KernelRoute>) -> Self {
        let mut installed = HashMap::with_capacity(found.len());
        for KernelRoute {
            prefix,
            mut next_hops,
        } in found
        {
            sort(&mut next_hops);
            installed.insert(prefix.trunc(), NextHops::from(next_hops));
        }
        State {
            stale: installed.keys().copied().collect(),
            installed,
            failed: HashSet::new(),
        }
    }

    /// What the kernel needs for `prefix` to have `hops` (nothing when it has it).
    fn change(&mut self, prefix: IpNet, hops: &Option<NextHops>) -> Option<FibChange> {
        self.stale.remove(&prefix);
        match hops {
            Some(hops) => {
                // Already there (adopted, or a refused write left it as it was).
                if self.installed.get(&prefix).is_some_and(|h| **h == **hops) {
                    self.failed.remove(&prefix);
                    return None;
                }
                Some(FibChange::Replace(KernelRoute {
                    prefix,
                    next_hops: hops.to_vec(),
                }))
            }
            None => {
                self.failed.remove(&prefix);
                self.installed
                    .contains_key(&prefix)
                    .then_some(FibChange::Delete(prefix))
            }
        }
    }

    /// Records the kernel's answer to `change` (whose next hops are `hops`, shared with
    /// the other routes of their multipath set). A refused replace leaves what was there
    /// (ours or nothing); a refused delete leaves the route, which a later change
    /// deletes again.
    fn done(&mut self, change: FibChange, hops: Option<NextHops>, outcome: Result<(), ()>) {
        match (change, outcome) {
            (FibChange::Replace(r), Ok(())) => {
                self.failed.remove(&r.prefix);
                let hops = hops.unwrap_or_else(|| NextHops::from(r.next_hops));
                self.installed.insert(r.prefix, hops);
            }
            (FibChange::Delete(p), Ok(())) => {
                self.installed.remove(&p);
            }
            (FibChange::Replace(r), Err(())) => {
                self.failed.insert(r.prefix);
            }
            (FibChange::Delete(_), Err(())) => {}
        }
    }

    /// The deletions of the adopted routes not learned again.
    fn end_resync(&mut self) -> Vec<FibChange> {
        self.stale.drain().map(FibChange::Delete).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rib::{AttrStore, BestRoute, NextHopMember, PeerId, RouteAttrs};
    use bgp_wire::MpNextHop;

    fn member(peer: u16, nh: &str) -> NextHopMember {
        NextHopMember {
            source: if peer == 0 {
                PathSource::Local
            } else {
                PathSource::Peer(PeerId(peer))
            },
            next_hop: match nh.parse::<IpAddr>().unwrap() {
                IpAddr::V4(a) => MpNextHop::Ipv4(a),
                IpAddr::V6(a) => MpNextHop::Ipv6 {
                    global: a,
                    link_local: None,
                },
            },
        }
    }

    fn change(prefix: &str, members: Option<Arc<[NextHopMember]>>) -> RibChange {
        RibChange::new(
            prefix.parse().unwrap(),
            members.map(|m| {
                let attrs = RouteAttrs::new(Default::default(), m[0].next_hop);
                let mut store = AttrStore::new();
                let attr_id = store.intern(attrs);
                BestRoute {
                    source: m[0].source,
                    attr_id,
                    attrs: store.get(attr_id).clone(),
                    multipath: m,
                }
            }),
        )
    }

    /// 192.0.2.0/24 on ifindex 2, 198.51.100.0/24 on 3, 203.0.113.1 behind 192.0.2.254.
    fn egress(addr: IpAddr) -> Option<Egress> {
        let s = addr.to_string();
        if s.starts_with("192.0.2.") {
            Some(Egress {
                ifindex: 2,
                gateway: None,
            })
        } else if s.starts_with("198.51.100.") {
            Some(Egress {
                ifindex: 3,
                gateway: None,
            })
        } else if s == "203.0.113.1" {
            Some(Egress {
                ifindex: 2,
                gateway: Some("192.0.2.254".parse().unwrap()),
            })
        } else {
            None
        }
    }

    fn via(gw: &str, ifindex: u32) -> KernelNextHop {
        KernelNextHop::via(gw.parse().unwrap(), ifindex)
    }

    #[test]
    fn peer_routes_get_every_reachable_member_sorted_and_deduplicated() {
        let set: Arc<[NextHopMember]> = Arc::from(vec![
            member(2, "198.51.100.1"),
            member(1, "192.0.2.1"),
            member(3, "10.9.9.9"),
            member(4, "198.51.100.1"),
        ]);
        assert_eq!(
            next_hops(&change("10.1.0.0/16", Some(set)), egress),
            Some(vec![via("192.0.2.1", 2), via("198.51.100.1", 3)])
        );
        // A next hop behind a gateway goes via that gateway, as in the XDP maps.
        let far: Arc<[NextHopMember]> = Arc::from(vec![member(1, "203.0.113.1")]);
        assert_eq!(
            next_hops(&change("10.2.0.0/16", Some(far)), egress),
            Some(vec![via("192.0.2.254", 2)])
        );
    }

    #[test]
    fn local_originations_unreachable_routes_and_withdrawals_are_not_installed() {
        let local: Arc<[NextHopMember]> = Arc::from(vec![member(0, "0.0.0.0")]);
        assert_eq!(
            next_hops(&change("10.244.1.5/32", Some(local)), egress),
            None
        );
        let unreachable: Arc<[NextHopMember]> = Arc::from(vec![member(1, "10.9.9.9")]);
        assert_eq!(
            next_hops(&change("10.1.0.0/16", Some(unreachable)), egress),
            None
        );
        assert_eq!(next_hops(&change("10.1.0.0/16", None), egress), None);
    }

    #[test]
    fn a_shared_set_is_resolved_once_and_prefixes_are_truncated() {
        let set: Arc<[NextHopMember]> =
            Arc::from(vec![member(1, "192.0.2.1"), member(2, "198.51.100.1")]);
        let calls = std::cell::Cell::new(0);
        let counting = |a| {
            calls.set(calls.get() + 1);
            egress(a)
        };
        let w = wanted(
            &[
                change("10.1.0.0/16", Some(set.clone())),
                change("10.2.0.1/16", Some(set.clone())),
                change("10.3.0.0/16", None),
            ],
            counting,
        );
        assert_eq!(calls.get(), 2, "one lookup per member of the shared set");
        assert_eq!(w.len(), 3);
        assert_eq!(w[1].0, "10.2.0.0/16".parse::<IpNet>().unwrap());
        assert!(Arc::ptr_eq(
            w[0].1.as_ref().unwrap(),
            w[1].1.as_ref().unwrap()
        ));
        assert_eq!(w[2].1, None);
    }

    fn net(p: &str) -> IpNet {
        p.parse().unwrap()
    }

    fn hops(list: &[KernelNextHop]) -> Option<NextHops> {
        Some(NextHops::from(list.to_vec()))
    }

    #[test]
    fn adopted_routes_learned_again_are_not_rewritten_and_the_rest_go_at_resync() {
        let ecmp = [via("192.0.2.1", 2), via("198.51.100.1", 3)];
        // Found in the kernel in another order than ours.
        let mut st = State::adopting(vec![
            KernelRoute {
                prefix: net("10.1.0.0/16"),
                next_hops: vec![ecmp[1].clone(), ecmp[0].clone()],
            },
            KernelRoute {
                prefix: net("10.2.0.0/16"),
                next_hops: vec![via("192.0.2.1", 2)],
            },
            KernelRoute {
                prefix: net("10.3.0.0/16"),
                next_hops: vec![via("192.0.2.1", 2)],
            },
        ]);
        assert_eq!(st.stale.len(), 3);
        // Learned again as it is: adopted, nothing written.
        assert_eq!(st.change(net("10.1.0.0/16"), &hops(&ecmp)), None);
        // Learned again with other next hops: replaced in place.
        let moved = st.change(net("10.2.0.0/16"), &hops(&ecmp[1..]));
        assert_eq!(
            moved,
            Some(FibChange::Replace(KernelRoute {
                prefix: net("10.2.0.0/16"),
                next_hops: ecmp[1..].to_vec(),
            }))
        );
        st.done(moved.unwrap(), hops(&ecmp[1..]), Ok(()));
        // A new one, and the withdrawal of a prefix never installed.
        // A new one (its next hops stay shared with the set's other routes), and the
        // withdrawal of a prefix never installed.
        let shared = hops(&ecmp);
        let new = st.change(net("10.4.0.0/16"), &shared).unwrap();
        st.done(new, shared.clone(), Ok(()));
        assert!(Arc::ptr_eq(
            &st.installed[&net("10.4.0.0/16")],
            shared.as_ref().unwrap()
        ));
        assert_eq!(st.change(net("10.5.0.0/16"), &None), None);
        // Only the one not learned again goes at the end of the resync.
        assert_eq!(st.end_resync(), vec![FibChange::Delete(net("10.3.0.0/16"))]);
        st.done(FibChange::Delete(net("10.3.0.0/16")), None, Ok(()));
        assert_eq!(st.installed.len(), 3);
        assert!(st.stale.is_empty());
    }

    #[test]
    fn a_refused_write_is_counted_and_leaves_the_old_route_known() {
        let mut st = State::default();
        let first = st.change(net("10.1.0.0/16"), &hops(&[via("192.0.2.1", 2)]));
        st.done(first.unwrap(), hops(&[via("192.0.2.1", 2)]), Ok(()));
        let refused = st
            .change(net("10.1.0.0/16"), &hops(&[via("192.0.2.9", 2)]))
            .unwrap();
        st.done(refused, hops(&[via("192.0.2.9", 2)]), Err(()));
        assert!(st.failed.contains(&net("10.1.0.0/16")));
        assert_eq!(
            st.installed[&net("10.1.0.0/16")].to_vec(),
            vec![via("192.0.2.1", 2)]
        );
        // Back to what the kernel has: nothing to write, no longer failed.
        assert_eq!(
            st.change(net("10.1.0.0/16"), &hops(&[via("192.0.2.1", 2)])),
            None
        );
        assert!(st.failed.is_empty());
        // Withdrawn: deleted.
        assert_eq!(
            st.change(net("10.1.0.0/16"), &None),
            Some(FibChange::Delete(net("10.1.0.0/16")))
        );
    }
}
