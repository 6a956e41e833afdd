//! The FIB programmer's thread: applies the speaker's work to the XDP maps, follows the
//! kernel's neighbors, links and the node's own addresses, hands the BGP routes to the
//! kernel FIB writer when `kernel-fib` is on, and answers `show fib` and `show stats`.
//!
//! Map writes are system calls, so the programmer runs on its own thread (with its own
//! single-threaded runtime for netlink) and never stalls the speaker.

use std::{collections::HashMap, net::IpAddr, time::Duration};

use ipnet::IpNet;
use tokio::sync::mpsc;
use tracing::{info, warn};
use xdp_fwd_common::{NH_BLACKHOLE, NH_FORWARD, NH_LOCAL, NH_UNRESOLVED};

use crate::{
    api::{
        Reply,
        protocol::{FibMemberView, FibView, MapOpsView, StatsView, TableCounts},
        server::ReplySink,
    },
    fib::{Fib, NextHopKey},
    netlink::{
        Event, NeighborResolver, RouteLookup, WatchOptions, watch_addresses, watch_links,
        watch_neighbors,
    },
    programmer::{FibProgrammer, LinkInfo, Work},
};

use super::kernel_routes::KernelRoutes;

/// Changes applied, once the queue is empty, after which free memory is given back.
const TRIM_AFTER: usize = 50_000;

/// Questions about the dataplane.
#[derive(Debug)]
pub enum FibQuery {
    /// `show fib [PREFIX]`.
    Fib(Option<IpNet>, ReplySink),
    /// `show stats`.
    Stats(ReplySink),
}

/// Starts the programmer thread. Adopted routes not re-added within `resync_after` are
/// removed then (graceful restart of our own daemon: peers re-send, we re-learn).
/// With `kernel`, the Loc-RIB's BGP routes also go to the kernel FIB writer.
pub fn spawn(
    fib: Fib,
    work: mpsc::Receiver<Work>,
    queries: mpsc::Receiver<FibQuery>,
    attached: Vec<(String, String)>,
    resync_after: Duration,
    kernel: Option<KernelRoutes>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("fib-programmer".into())
        .spawn(move || {
            background_priority("fib programmer");
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    warn!("fib programmer: no runtime: {e}");
                    return;
                }
            };
            rt.block_on(run(fib, work, queries, attached, resync_after, kernel));
        })
}

/// Niceness of the threads that write tables in bulk (the XDP maps, the kernel FIB).
const BACKGROUND_NICE: libc::c_int = 10;

/// Lowers the calling thread's CPU priority: while a full table goes into the maps, the
/// sessions (keepalives, BFD), the RIB and the CLI go first. A FIB a few milliseconds
/// late during a burst costs nothing; a hold timer missed behind map writes costs a
/// session. Outside bursts the CPU is idle and the writer runs at once.
pub(super) fn background_priority(what: &str) {
    // SAFETY: plain system calls on this thread's own id.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, BACKGROUND_NICE)
    };
    if rc != 0 {
        warn!(
            "{what}: cannot lower its priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Asks the kernel to resolve a next hop the dataplane forwards to. Managed entries
/// stay resolved although XDP traffic never refreshes them; where they cannot be made,
/// a one-off request.
async fn resolve(resolver: &mut NeighborResolver, ifindex: u32, addr: IpAddr) {
    if resolver.keep_resolved(ifindex, addr).await.is_err() {
        let _ = resolver.request_resolution(ifindex, addr).await;
    }
}

async fn run(
    mut fib: Fib,
    mut work: mpsc::Receiver<Work>,
    mut queries: mpsc::Receiver<FibQuery>,
    attached: Vec<(String, String)>,
    resync_after: Duration,
    kernel: Option<KernelRoutes>,
) {
    fib.begin_resync();
    if let Err(e) = fib.background_barriers() {
        warn!("fib programmer: no background RCU barriers, waiting for them inline: {e}");
    }
    let mut p = FibProgrammer::new(fib);
    // Before any route: broadcast, multicast and link-local are the node's.
    if let Err(e) = p.install_always_local() {
        warn!("fib programmer: local entries: {e}");
    }
    let opts = WatchOptions::default();
    let (lookup, resolver, neighbors, links, addresses) = (
        RouteLookup::new(),
        NeighborResolver::new(),
        watch_neighbors(&opts),
        watch_links(&opts),
        watch_addresses(&opts),
    );
    let (mut lookup, mut resolver, mut neighbors, mut links, mut addresses) =
        match (lookup, resolver, neighbors, links, addresses) {
            (Ok(a), Ok(b), Ok(c), Ok(d), Ok(e)) => (a, b, c, d, e),
            (a, b, c, d, e) => {
                let e = [a.err(), b.err(), c.err(), d.err(), e.err()];
                warn!("fib programmer: netlink: {e:?}");
                return;
            }
        };
    let mut names: HashMap<u32, String> = HashMap::new();
    let resync = tokio::time::sleep(resync_after);
    tokio::pin!(resync);
    let mut resynced = false;
    // Changes applied since memory was last given back.
    let mut since_trim = 0usize;
    loop {
        tokio::select! {
            w = work.recv() => {
                let Some(w) = w else { break };
                let result = match w {
                    Work::Changes(changes) => {
                        since_trim += changes.len();
                        for addr in p.unknown_next_hops(&changes) {
                            match lookup.egress(addr).await {
                                Ok(e) => p.set_egress(addr, e),
                                Err(e) => warn!("route lookup of next hop {addr}: {e}"),
                            }
                        }
                        if let Some(k) = &kernel {
                            // Hands over the wanted state; the writer's thread does the
                            // netlink work.
                            k.want(&changes, |addr| p.egress(addr));
                        }
                        match p.apply(&changes) {
                            Ok(req) => {
                                for (ifindex, addr) in req.resolve {
                                    resolve(&mut resolver, ifindex, addr).await;
                                }
                                Ok(())
                            }
                            Err(e) => Err(e),
                        }
                    }
                    Work::PeerDown(peer) => p.peer_down(peer).map(|groups| {
                        info!("peer down: {groups} next-hop groups shrunk in place");
                    }),
                    Work::LocalTarget(prefix, Some(t)) => {
                        p.set_local_target(prefix, t);
                        Ok(())
                    }
                    Work::LocalTarget(prefix, None) => {
                        p.remove_local_target(&prefix);
                        Ok(())
                    }
                };
                if let Err(e) = result {
                    warn!("fib programmer: {e}");
                }
                if since_trim >= TRIM_AFTER && work.is_empty() {
                    // A burst (a table loaded or withdrawn) is over: the RIB and the
                    // programmer have freed what carried it.
                    super::memory::trim();
                    since_trim = 0;
                }
            }
            Some(ev) = neighbors.next() => match ev {
                Ok(Event::Added(n) | Event::Changed(n)) => {
                    if let Err(e) = p.neighbor_changed(n.ifindex, n.addr, n.mac) {
                        warn!("neighbor {}: {e}", n.addr);
                    }
                }
                Ok(Event::Removed(n)) => match p.neighbor_changed(n.ifindex, n.addr, None) {
                    // Deleted (by hand, or flushed with the link): ask again, or its
                    // next hop stays unresolved and every packet goes to the kernel.
                    Ok(true) => resolve(&mut resolver, n.ifindex, n.addr).await,
                    Ok(false) => {}
                    Err(e) => warn!("neighbor {}: {e}", n.addr),
                },
                Ok(Event::Synced) => {}
                Err(e) => warn!("neighbor watcher: {e}"),
            },
            Some(ev) = links.next() => match ev {
                Ok(Event::Added(l) | Event::Changed(l)) => {
                    names.insert(l.ifindex, l.name.clone());
                    let info = l.mac.map(|mac| LinkInfo { mac, mtu: l.mtu, usable: l.is_usable() });
                    if let Err(e) = p.link_changed(l.ifindex, info) {
                        warn!("link {}: {e}", l.name);
                    }
                }
                Ok(Event::Removed(l)) => {
                    names.remove(&l.ifindex);
                    if let Err(e) = p.link_changed(l.ifindex, None) {
                        warn!("link {}: {e}", l.name);
                    }
                }
                Ok(Event::Synced) => {}
                Err(e) => warn!("link watcher: {e}"),
            },
            Some(ev) = addresses.next() => match ev {
                Ok(Event::Added(a) | Event::Changed(a)) => {
                    if let Err(e) = p.address_changed(&a, true) {
                        warn!("local address {}: {e}", a.addr);
                    }
                }
                Ok(Event::Removed(a)) => {
                    if let Err(e) = p.address_changed(&a, false) {
                        warn!("local address {}: {e}", a.addr);
                    }
                }
                Ok(Event::Synced) => match p.addresses_synced() {
                    Ok((added, removed)) => info!(
                        "local addresses: {} entries to the kernel ({added} added, {removed} no longer the node's removed)",
                        p.fib().local_count()
                    ),
                    Err(e) => warn!("local addresses: {e}"),
                },
                Err(e) => warn!("address watcher: {e}"),
            },
            Some(q) = queries.recv() => answer(&p, &names, &attached, kernel.as_ref(), q),
            () = &mut resync, if !resynced => {
                resynced = true;
                match p.fib_mut().end_resync() {
                    Ok(n) => info!("resync after restart: {n} routes not re-learned were removed"),
                    Err(e) => warn!("resync: {e}"),
                }
            }
        }
        if work.is_empty() {
            // Idle: wait for the grace period of slots retired by this work now rather
            // than in the middle of the next urgent change (a peer down).
            if let Err(e) = p.fib_mut().quiesce() {
                warn!("fib programmer: RCU barrier: {e}");
            }
        }
    }
}

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn answer(
    p: &FibProgrammer,
    names: &HashMap<u32, String>,
    attached: &[(String, String)],
    kernel: Option<&KernelRoutes>,
    q: FibQuery,
) {
    let (replies, out) = match q {
        FibQuery::Stats(out) => {
            let r = match p.fib().counters() {
                Ok(c) => {
                    let (fib, ops) = (p.fib(), p.fib().ops());
                    Reply::Stats(StatsView {
                        counters: c.named().iter().map(|(n, v)| (n.to_string(), *v)).collect(),
                        attached: attached.to_vec(),
                        tables: TableCounts {
                            routes: fib.route_count() as u64,
                            local_addresses: fib.local_count() as u64,
                            groups: fib.group_count() as u64,
                            next_hops: fib.next_hop_count() as u64,
                        },
                        map_ops: MapOpsView {
                            route_writes: ops.route_writes,
                            group_writes: ops.group_writes,
                            next_hop_writes: ops.next_hop_writes,
                            barriers: ops.barriers,
                            background_barriers: ops.background_barriers,
                        },
                        kernel_fib: kernel.map(KernelRoutes::view),
                    })
                }
                Err(e) => Reply::Error {
                    message: format!("reading counters: {e}"),
                },
            };
            (vec![r], out)
        }
        FibQuery::Fib(prefix, out) => {
            // What the maps hold: the Loc-RIB's routes and the local addresses (which
            // stand in for a route of the same prefix).
            let mut prefixes: Vec<IpNet> = match prefix {
                Some(want) => p.fib().longest_match(&want).into_iter().collect(),
                None => p.fib().prefixes().chain(p.fib().local_prefixes()).collect(),
            };
            prefixes.sort();
            prefixes.dedup();
            let views = prefixes
                .into_iter()
                .filter_map(|prefix| {
                    let (group, members) = p.fib().route_group(&prefix)?;
                    Some(Reply::Fib(FibView {
                        prefix,
                        local_address: p.fib().is_local(&prefix),
                        group,
                        members: members
                            .into_iter()
                            .map(|(key, buckets)| member(p, names, key, buckets))
                            .collect(),
                    }))
                })
                .collect();
            (views, out)
        }
    };
    tokio::spawn(async move {
        for r in replies {
            if out.send(r).await.is_err() {
                return;
            }
        }
    });
}

fn member(
    p: &FibProgrammer,
    names: &HashMap<u32, String>,
    key: NextHopKey,
    buckets: u16,
) -> FibMemberView {
    let nh = p.fib().next_hop(&key).unwrap_or_default();
    let (address, ifindex): (Option<IpAddr>, Option<u32>) = match key {
        NextHopKey::Neighbor { ifindex, addr } => (Some(addr), Some(ifindex)),
        _ => (None, None),
    };
    let kind = match nh.kind {
        NH_FORWARD => "forward",
        NH_UNRESOLVED => "unresolved",
        NH_LOCAL => "local",
        NH_BLACKHOLE => "blackhole",
        _ => "unused",
    };
    let forward = nh.kind == NH_FORWARD;
    FibMemberView {
        kind: kind.into(),
        address,
        interface: ifindex.map(|i| names.get(&i).cloned().unwrap_or_else(|| format!("if{i}"))),
        src_mac: forward.then(|| mac(nh.src_mac)),
        dst_mac: forward.then(|| mac(nh.dst_mac)),
        mtu: (nh.mtu != 0).then(|| u16::try_from(nh.mtu).unwrap_or(u16::MAX)),
        buckets,
    }
}
