//! RIB scale figures: heap bytes per route and time per route for a million IPv4 /32
//! routes, and the cost of peer down, graceful restart and export at that scale.
//!
//! `cargo bench -p bgp-ctl --bench rib_scale` (release). Prints figures; asserts only
//! that the RIB holds what was put in, never on time.

use std::{
    alloc::{GlobalAlloc, Layout, System},
    net::Ipv4Addr,
    sync::atomic::{AtomicUsize, Ordering},
    time::Instant,
};

use bgp_ctl::rib::{
    AcceptAll, PeerConfig, PeerId, PeerSession, Rib, RibChange, RibConfig, RouteAttrs,
};
use bgp_wire::{AsPath, Family, MpNextHop, PathAttributes};
use ipnet::{IpNet, Ipv4Net};
use rand::seq::SliceRandom;

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            LIVE.fetch_add(new_size, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

const ROUTES: usize = 1_000_000;
const SETS: usize = 5;
/// Prefixes per UPDATE-like batch.
const BATCH: usize = 1000;
const V4: Family = Family::IPV4_UNICAST;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// CPU time of this thread, in seconds: unlike wall time it leaves out the time other
/// processes had the CPU (the machine is shared).
fn cpu_time() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write to.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Resident set size of the process, in bytes.
fn rss() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// Wall and CPU time since a start point.
struct Timer(Instant, f64);

impl Timer {
    fn start() -> Self {
        Timer(Instant::now(), cpu_time())
    }
    fn stop(&self) -> (f64, f64) {
        (self.0.elapsed().as_secs_f64(), cpu_time() - self.1)
    }
}

fn attrs(peer_as: u32, set: usize, next_hop: Ipv4Addr) -> RouteAttrs {
    RouteAttrs::new(
        PathAttributes {
            as_path: AsPath::from_sequence([peer_as, 65100 + set as u32]),
            med: Some(set as u32),
            ..PathAttributes::default()
        },
        MpNextHop::Ipv4(next_hop),
    )
}

fn add_peer(rib: &mut Rib, addr: Ipv4Addr, asn: u32) -> PeerId {
    let id = rib
        .add_peer(PeerConfig::new(addr.into(), asn))
        .expect("peer");
    rib.peer_up(
        id,
        PeerSession::new(addr, Ipv4Addr::new(192, 0, 2, 254).into(), vec![V4]),
    )
    .expect("session");
    id
}

/// Announces every prefix from `peer`, `BATCH` per call, attribute sets round robin;
/// returns (wall and CPU seconds, number of changes).
fn load(
    rib: &mut Rib,
    peer: PeerId,
    prefixes: &[IpNet],
    peer_as: u32,
    nh: Ipv4Addr,
) -> ((f64, f64), usize) {
    let t = Timer::start();
    let mut n = 0;
    for (i, chunk) in prefixes.chunks(BATCH).enumerate() {
        let changes = rib
            .announce(peer, chunk, attrs(peer_as, i % SETS, nh), &mut AcceptAll)
            .expect("announce");
        n += changes.len();
    }
    (t.stop(), n)
}

fn per_route(bytes: usize, routes: usize) -> f64 {
    bytes as f64 / routes as f64
}

fn report(what: &str, (wall, cpu): (f64, f64), routes: usize, changes: usize) {
    println!(
        "{what:<42} {:>7.0} ms wall {:>7.0} ms cpu {:>5.0} ns/route {changes:>8} changes",
        wall * 1e3,
        cpu * 1e3,
        cpu * 1e9 / routes as f64
    );
}

fn main() {
    let prefixes: Vec<IpNet> = (0..ROUTES as u32)
        .map(|i| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 + i), 32).expect("prefix")))
        .collect();
    println!("{ROUTES} IPv4 /32 routes, {SETS} attribute sets, {BATCH} prefixes per UPDATE\n");
    let (base, base_rss) = (live(), rss());
    let mut rib = Rib::new(RibConfig::new(64512, Ipv4Addr::new(10, 255, 0, 1)));
    let a = add_peer(&mut rib, Ipv4Addr::new(10, 0, 0, 1), 65001);
    let b = add_peer(&mut rib, Ipv4Addr::new(10, 0, 0, 2), 65001);
    let out = add_peer(&mut rib, Ipv4Addr::new(10, 0, 0, 3), 65003);

    let (secs, n) = load(&mut rib, a, &prefixes, 65001, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(n, ROUTES);
    assert_eq!(rib.prefix_count(V4), ROUTES);
    assert_eq!(rib.attr_store().len(), SETS);
    let one_peer = live() - base;
    report("peer A: adj-in + decision + loc-rib", secs, ROUTES, n);
    println!(
        "  heap, Adj-RIB-In + Loc-RIB, one peer: {:.1} MB = {:.1} B/route (RSS growth {:.1} B/route)",
        one_peer as f64 / 1e6,
        per_route(one_peer, ROUTES),
        per_route(rss().saturating_sub(base_rss), ROUTES)
    );

    let before = live();
    let t = Timer::start();
    let adv = rib.export_all(out, V4, &mut AcceptAll).expect("export");
    let secs = t.stop();
    assert_eq!(adv.announced(), ROUTES);
    report(
        "export to eBGP peer C (Adj-RIB-Out)",
        secs,
        ROUTES,
        adv.announce.len(),
    );
    drop(adv);
    println!(
        "  heap, Adj-RIB-Out of peer C: {:.1} B/route",
        per_route(live() - before, ROUTES)
    );

    let before = live();
    let (secs, n) = load(&mut rib, b, &prefixes, 65001, Ipv4Addr::new(10, 0, 0, 2));
    report("peer B, same routes (2-way ECMP)", secs, ROUTES, n);
    println!(
        "  heap, second path per prefix: {:.1} B/route",
        per_route(live() - before, ROUTES)
    );

    let t = Timer::start();
    let ch: Vec<RibChange> = rib.mark_stale(a, &[V4]).expect("stale");
    report(
        "GR: peer A down, mark stale (ECMP shrinks)",
        t.stop(),
        ROUTES,
        ch.len(),
    );
    drop(ch);
    let t = Timer::start();
    let n = load(
        &mut rib,
        a,
        &prefixes[..ROUTES / 2],
        65001,
        Ipv4Addr::new(10, 0, 0, 1),
    )
    .1;
    report("GR: peer A re-announces half", t.stop(), ROUTES / 2, n);
    let t = Timer::start();
    let ch = rib.sweep_stale(a, V4).expect("sweep");
    report(
        "GR: End-of-RIB, sweep the other half",
        t.stop(),
        ROUTES / 2,
        ch.len(),
    );
    drop(ch);
    let t = Timer::start();
    let ch = rib.peer_down(b, &[]).expect("down");
    let sets = {
        let mut ptrs: Vec<*const ()> = ch
            .iter()
            .filter_map(|c| c.best.as_ref().map(|b| b.multipath.as_ptr() as *const ()))
            .collect();
        ptrs.sort();
        ptrs.dedup();
        ptrs.len()
    };
    report("peer B down, no GR", t.stop(), ROUTES, ch.len());
    println!("  distinct multipath sets in those changes: {sets}");
    drop(ch);
    let t = Timer::start();
    let adv = rib.export_all(out, V4, &mut AcceptAll).expect("export");
    report(
        "re-export to C after the churn",
        t.stop(),
        ROUTES,
        adv.withdraw.len(),
    );
    drop(adv);
    let t = Timer::start();
    let ch = rib.peer_down(a, &[]).expect("down");
    report(
        "peer A down, no GR (Loc-RIB empties)",
        t.stop(),
        ROUTES / 2,
        ch.len(),
    );
    drop(ch);
    assert_eq!(rib.prefix_count(V4), 0);
    drop(rib);

    // The same table in random order (as a peer sends it whose table is hashed, like
    // BIRD's): the index cannot use the locality of consecutive prefixes.
    let mut shuffled = prefixes.clone();
    shuffled.shuffle(&mut rand::rng());
    let mut rib = Rib::new(RibConfig::new(64512, Ipv4Addr::new(10, 255, 0, 1)));
    let a = add_peer(&mut rib, Ipv4Addr::new(10, 0, 0, 1), 65001);
    let (secs, n) = load(&mut rib, a, &shuffled, 65001, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(n, ROUTES);
    report("peer A again, fresh RIB, random order", secs, ROUTES, n);
    let t = Timer::start();
    let found = shuffled.iter().filter(|p| rib.best(**p).is_some()).count();
    assert_eq!(found, ROUTES);
    report("look up every prefix (random order)", t.stop(), ROUTES, 0);
    drop(rib);
    println!("\nheap left after dropping the RIB: {} B", live() - base);
    println!("(ns/route from CPU time; wall time is larger when other processes share the CPU)");
}
