//! The netlink layer against a real kernel, in namespaces: pod routes a "CNI" (`ip
//! route`) adds and deletes, neighbors learned and resolved, links, and our routes in the
//! kernel FIB. Latencies are printed, never asserted.

use std::{
    collections::BTreeSet,
    fmt::Debug,
    net::IpAddr,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail, ensure};
use bgp_ctl::netlink::{
    Event, FibChange, KernelFib, KernelFibConfig, KernelNextHop, KernelRoute, Link,
    NeighborResolver, NeighborState, OperState, PodRoute, PodRouteConfig, RTPROT_BGP_CTL, Watch,
    WatchOptions, watch_links, watch_neighbors, watch_pod_routes,
};
use ipnet::IpNet;
use lab::Netns;

/// How long any one expected event may take before the test fails (a bound on the
/// loop, not a speed assertion).
const PATIENCE: Duration = Duration::from_secs(10);

/// node (h0, h1) <-> pod (p0, p1): two veths, IPv4 and IPv6 on both ends.
struct Lab {
    node: Netns,
    pod: Netns,
}

fn lab() -> Result<Lab> {
    lab::require_root()?;
    lab::sweep_stale();
    let (node, pod) = (Netns::new()?, Netns::new()?);
    lab::veth(&node, "h0", &pod, "p0")?;
    lab::veth(&node, "h1", &pod, "p1")?;
    for (ns, dev, v4, v6) in [
        (&node, "h0", "192.0.2.1/24", "2001:db8::1/64"),
        (&pod, "p0", "192.0.2.2/24", "2001:db8::2/64"),
        (&node, "h1", "198.51.100.1/24", "2001:db8:1::1/64"),
        (&pod, "p1", "198.51.100.2/24", "2001:db8:1::2/64"),
    ] {
        ns.ip(&["addr", "add", v4, "dev", dev])?;
        ns.ip(&["-6", "addr", "add", v6, "dev", dev, "nodad"])?;
    }
    // Link-local addresses are still tentative (duplicate address detection): until
    // they are usable, neighbor solicitations wait.
    for ns in [&node, &pod] {
        let started = Instant::now();
        while !ns
            .ip(&["-6", "addr", "show", "tentative"])?
            .trim()
            .is_empty()
        {
            ensure!(
                started.elapsed() < PATIENCE,
                "DAD never finished in {}",
                ns.name()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Ok(Lab { node, pod })
}

/// Runs `test` on a tokio runtime in a thread inside `ns`.
fn in_netns<F>(ns: &Netns, test: impl FnOnce() -> F + Send) -> Result<()>
where
    F: Future<Output = Result<()>>,
{
    ns.enter(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("tokio runtime")?
            .block_on(test())
    })?
}

/// The next event other than `Synced`.
async fn next<T: Debug>(watch: &mut Watch<T>) -> Result<Event<T>> {
    loop {
        let event = tokio::time::timeout(PATIENCE, watch.next())
            .await
            .map_err(|_| anyhow!("no event within {PATIENCE:?}"))?
            .ok_or_else(|| anyhow!("watcher stopped"))??;
        if !matches!(event, Event::Synced) {
            return Ok(event);
        }
    }
}

/// Events up to and including the next `Synced`.
async fn until_synced<T: Debug>(watch: &mut Watch<T>) -> Result<Vec<Event<T>>> {
    let mut out = Vec::new();
    loop {
        let event = tokio::time::timeout(PATIENCE, watch.next())
            .await
            .map_err(|_| anyhow!("not synced within {PATIENCE:?}; got {out:?}"))?
            .ok_or_else(|| anyhow!("watcher stopped"))??;
        if matches!(event, Event::Synced) {
            return Ok(out);
        }
        out.push(event);
    }
}

/// Skips events until one satisfies `pred`; fails after [`PATIENCE`].
async fn wait_for<T: Debug>(
    watch: &mut Watch<T>,
    what: &str,
    mut pred: impl FnMut(&Event<T>) -> bool,
) -> Result<Event<T>> {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout_at(deadline, watch.next())
            .await
            .map_err(|_| anyhow!("no {what} within {PATIENCE:?}; saw {seen:?}"))?
            .ok_or_else(|| anyhow!("watcher stopped waiting for {what}"))??;
        if pred(&event) {
            return Ok(event);
        }
        seen.push(event);
    }
}

/// The value of an `Added` or `Changed` event.
fn updated<T: Debug>(event: Event<T>) -> Result<T> {
    match event {
        Event::Added(v) | Event::Changed(v) => Ok(v),
        other => bail!("expected an addition or change, got {other:?}"),
    }
}

fn net(s: &str) -> IpNet {
    s.parse().expect("test prefix")
}

fn addr(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn pod_route(prefix: &str, ifindex: u32, ifname: &str) -> PodRoute {
    PodRoute {
        prefix: net(prefix),
        ifindex,
        ifname: ifname.to_owned(),
    }
}

fn cidrs() -> PodRouteConfig {
    PodRouteConfig::new(vec![net("10.244.0.0/16"), net("fd00:10:244::/56")])
}

/// Runs an `ip` command in the node namespace and returns the instant it returned.
fn ip(ns: &Netns, args: &str) -> Result<Instant> {
    ns.ip(&args.split_whitespace().collect::<Vec<_>>())?;
    Ok(Instant::now())
}

#[test]
fn pod_routes_are_learned_and_withdrawn_as_the_cni_changes_them() -> Result<()> {
    let Lab { node, pod: _pod } = lab()?;
    let h0 = node.link("h0")?.ifindex;
    let h1 = node.link("h1")?.ifindex;
    // Present before the watcher starts: part of the initial dump.
    ip(&node, "route add 10.244.1.4/32 dev h0 scope link")?;
    ip(&node, "route add 10.244.1.8/32 dev h1 scope link")?;
    in_netns(&node, || async {
        let mut watch = watch_pod_routes(cidrs(), &WatchOptions::default())?;
        let initial = until_synced(&mut watch).await?;
        assert_eq!(
            initial,
            vec![
                Event::Added(pod_route("10.244.1.4/32", h0, "h0")),
                Event::Added(pod_route("10.244.1.8/32", h1, "h1")),
            ]
        );

        let mut latencies = Vec::new();
        for (command, expected) in [
            (
                "route add 10.244.1.5/32 dev h0 scope link",
                Event::Added(pod_route("10.244.1.5/32", h0, "h0")),
            ),
            (
                "-6 route add fd00:10:244::5/128 dev h0",
                Event::Added(pod_route("fd00:10:244::5/128", h0, "h0")),
            ),
            (
                "route del 10.244.1.5/32 dev h0",
                Event::Removed(pod_route("10.244.1.5/32", h0, "h0")),
            ),
            (
                "-6 route del fd00:10:244::5/128 dev h0",
                Event::Removed(pod_route("fd00:10:244::5/128", h0, "h0")),
            ),
        ] {
            let done = ip(&node, command)?;
            let event = next(&mut watch).await?;
            latencies.push((command, done.elapsed()));
            assert_eq!(event, expected, "after `ip {command}`");
        }
        for (command, latency) in &latencies {
            println!("`ip {command}` returned -> event: {latency:?}");
        }

        // Not pod routes: outside the CIDRs, via a gateway, blackhole, another table,
        // ours, the kernel's own. Then a sentinel: it must be the next event.
        for command in [
            "route add 10.245.0.5/32 dev h0 scope link",
            "-6 route add fd00:10:245::5/128 dev h0",
            "route add 10.244.2.0/24 via 192.0.2.2",
            "-6 route add fd00:10:244::6/128 via 2001:db8::2",
            "route add blackhole 10.244.3.0/26",
            "route add 10.244.1.9/32 dev h0 table 100",
            "route add 10.244.1.10/32 dev h0 proto 200",
            "route add 10.244.1.11/32 dev h0 proto kernel",
        ] {
            ip(&node, command)?;
        }
        ip(&node, "route add 10.244.1.99/32 dev h0")?;
        assert_eq!(
            next(&mut watch).await?,
            Event::Added(pod_route("10.244.1.99/32", h0, "h0")),
            "routes that are not pod routes must produce no event"
        );

        // Moved to another device in place: a change.
        ip(&node, "route replace 10.244.1.99/32 dev h1")?;
        assert_eq!(
            next(&mut watch).await?,
            Event::Changed(pod_route("10.244.1.99/32", h1, "h1"))
        );
        // Replaced in place by a gateway route: withdrawn.
        ip(&node, "route replace 10.244.1.4/32 via 192.0.2.2")?;
        assert_eq!(
            next(&mut watch).await?,
            Event::Removed(pod_route("10.244.1.4/32", h0, "h0"))
        );

        ip(&node, "-6 route add fd00:10:244::4/128 dev h0")?;
        assert_eq!(
            next(&mut watch).await?,
            Event::Added(pod_route("fd00:10:244::4/128", h0, "h0"))
        );
        ip(&node, "-6 route replace fd00:10:244::4/128 via 2001:db8::2")?;
        assert_eq!(
            next(&mut watch).await?,
            Event::Removed(pod_route("fd00:10:244::4/128", h0, "h0"))
        );

        // The pod's veth goes down: the kernel flushes its IPv4 routes without a
        // notification; the watcher must withdraw them anyway.
        ip(&node, "-6 route add fd00:10:244::8/128 dev h1")?;
        assert_eq!(
            next(&mut watch).await?,
            Event::Added(pod_route("fd00:10:244::8/128", h1, "h1"))
        );
        ip(&node, "link set h1 down")?;
        let mut removed = BTreeSet::new();
        for _ in 0..3 {
            match next(&mut watch).await? {
                Event::Removed(r) => {
                    removed.insert(r.prefix);
                }
                other => bail!("expected removals after link down, got {other:?}"),
            }
        }
        assert_eq!(
            removed,
            BTreeSet::from([
                net("10.244.1.8/32"),
                net("10.244.1.99/32"),
                net("fd00:10:244::8/128")
            ])
        );
        Ok(())
    })
}

/// Pod routes in the node namespace's main table, as `ip route` lists them.
fn kernel_pod_routes(node: &Netns) -> Result<BTreeSet<IpNet>> {
    let mut out = BTreeSet::new();
    for family in ["-4", "-6"] {
        for line in node
            .ip(&[family, "route", "show", "table", "main"])?
            .lines()
        {
            if let Some(Ok(prefix)) = line.split_whitespace().next().map(|p| {
                p.parse::<IpNet>()
                    .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
            }) && cidrs().cidrs.iter().any(|c| c.contains(&prefix))
            {
                out.insert(prefix);
            }
        }
    }
    Ok(out)
}

#[test]
fn an_overrun_is_repaired_by_a_redump_reporting_the_difference() -> Result<()> {
    let Lab { node, pod: _pod } = lab()?;
    const N: u32 = 2000;
    let batch = |verb: &str, range: std::ops::Range<u32>| -> Result<()> {
        let script: String = range
            .map(|i| {
                format!(
                    "route {verb} 10.244.{}.{}/32 dev h0\n",
                    100 + i / 250,
                    1 + i % 250
                )
            })
            .collect();
        let path = std::env::temp_dir().join(format!("{}.batch", lab::unique_name()));
        std::fs::write(&path, script)?;
        let result = node.ip(&["-batch", &path.to_string_lossy()]);
        let _ = std::fs::remove_file(&path);
        result.map(|_| ())
    };
    in_netns(&node, || async {
        // A tiny socket buffer, and a runtime blocked while `ip -batch` runs: the
        // notifications cannot all fit, so the kernel reports ENOBUFS.
        let options = WatchOptions {
            receive_buffer: 16 * 1024,
            channel: 64,
        };
        let mut watch = watch_pod_routes(cidrs(), &options)?;
        assert_eq!(until_synced(&mut watch).await?, vec![]);
        let mut mirror: BTreeSet<IpNet> = BTreeSet::new();
        let mut resyncs = 0;
        let converge = async |watch: &mut Watch<PodRoute>,
                              mirror: &mut BTreeSet<IpNet>,
                              resyncs: &mut u32|
               -> Result<Duration> {
            let want = kernel_pod_routes(&node)?;
            // The runtime was blocked until now: the watcher starts reading here.
            let started = Instant::now();
            while *mirror != want {
                ensure!(
                    started.elapsed() < PATIENCE,
                    "mirror has {} routes, kernel {}",
                    mirror.len(),
                    want.len()
                );
                match tokio::time::timeout(PATIENCE, watch.next()).await {
                    Ok(Some(Ok(Event::Added(r)))) => {
                        ensure!(mirror.insert(r.prefix), "{r:?} twice")
                    }
                    Ok(Some(Ok(Event::Removed(r)))) => {
                        ensure!(mirror.remove(&r.prefix), "{r:?} removed but unknown")
                    }
                    Ok(Some(Ok(Event::Changed(r)))) => bail!("unexpected change {r:?}"),
                    Ok(Some(Ok(Event::Synced))) => *resyncs += 1,
                    Ok(Some(Err(e))) => return Err(e.into()),
                    Ok(None) => bail!("watcher stopped"),
                    Err(_) => bail!("stuck at {} of {} routes", mirror.len(), want.len()),
                }
            }
            let converged = started.elapsed();
            // A re-dump's `Synced` follows its last difference: collect it (the wait only
            // detects quiescence; nothing is asserted on time).
            while let Ok(Some(event)) =
                tokio::time::timeout(Duration::from_millis(500), watch.next()).await
            {
                match event? {
                    Event::Synced => *resyncs += 1,
                    other => bail!("event after convergence: {other:?}"),
                }
            }
            Ok(converged)
        };
        batch("add", 0..N)?;
        let took = converge(&mut watch, &mut mirror, &mut resyncs).await?;
        println!(
            "{N} routes added: consistent {took:?} after the watcher could run, {resyncs} re-dumps"
        );
        assert_eq!(mirror.len(), N as usize);
        assert!(
            resyncs >= 1,
            "the burst should have overrun a 16 KiB buffer"
        );
        // Delete half while the watcher cannot read: only the difference is reported.
        batch("del", 0..N / 2)?;
        let before = resyncs;
        let took = converge(&mut watch, &mut mirror, &mut resyncs).await?;
        assert_eq!(mirror.len(), (N / 2) as usize);
        println!(
            "{} routes deleted: consistent {took:?} after, {} more re-dumps",
            N / 2,
            resyncs - before
        );
        Ok(())
    })
}

/// Our own routes (a full table, when the kernel FIB writer is on) never reach the
/// pod-route watcher's socket: a burst of them cannot overrun it.
#[test]
fn our_own_route_churn_is_filtered_in_the_kernel() -> Result<()> {
    let Lab { node, pod: _pod } = lab()?;
    let h0 = node.link("h0")?.ifindex;
    let script: String = (0..3000u32)
        .map(|i| {
            format!(
                "route add 10.244.{}.{}/32 dev h0 proto 200\n",
                100 + i / 250,
                1 + i % 250
            )
        })
        .collect();
    let path = std::env::temp_dir().join(format!("{}.batch", lab::unique_name()));
    std::fs::write(&path, script)?;
    let result = in_netns(&node, || async {
        let options = WatchOptions {
            receive_buffer: 16 * 1024,
            channel: 64,
        };
        let mut watch = watch_pod_routes(cidrs(), &options)?;
        assert_eq!(until_synced(&mut watch).await?, vec![]);
        // The runtime is blocked: nothing reads while the burst and the sentinel land.
        node.ip(&["-batch", &path.to_string_lossy()])?;
        ip(&node, "route add 10.244.1.99/32 dev h0")?;
        let mut events = Vec::new();
        while let Ok(event) = tokio::time::timeout(Duration::from_millis(500), watch.next()).await {
            events.push(event.ok_or_else(|| anyhow!("watcher stopped"))??);
        }
        assert_eq!(
            events,
            vec![Event::Added(pod_route("10.244.1.99/32", h0, "h0"))],
            "a re-dump (Synced) means our routes overran the socket"
        );
        Ok(())
    });
    let _ = std::fs::remove_file(&path);
    result
}

#[test]
fn neighbors_are_followed_and_resolved_on_request() -> Result<()> {
    let Lab { node, pod } = lab()?;
    let h0 = node.link("h0")?.ifindex;
    let p0_mac = pod.link("p0")?.mac;
    pod.ip(&["addr", "add", "192.0.2.3/24", "dev", "p0"])?;
    pod.ip(&["addr", "add", "192.0.2.4/24", "dev", "p0"])?;
    let resolved = |ip: &'static str| {
        move |e: &Event<bgp_ctl::netlink::Neighbor>| {
            matches!(e, Event::Added(n) | Event::Changed(n)
                if n.ifindex == h0 && n.addr == addr(ip) && n.mac.is_some())
        }
    };
    in_netns(&node, || async {
        let mut watch = watch_neighbors(&WatchOptions::default())?;
        let initial = until_synced(&mut watch).await?;
        assert!(
            !initial
                .iter()
                .any(|e| matches!(e, Event::Added(n) if n.addr == addr("192.0.2.2"))),
            "no neighbor yet: {initial:?}"
        );

        // Administratively added.
        let done = ip(
            &node,
            "neigh add 192.0.2.50 lladdr 02:00:00:00:00:50 nud reachable dev h0",
        )?;
        let Event::Added(n) =
            wait_for(&mut watch, "static neighbor", resolved("192.0.2.50")).await?
        else {
            bail!("not an addition");
        };
        println!("`ip neigh add` returned -> event: {:?}", done.elapsed());
        assert_eq!(n.mac, Some([2, 0, 0, 0, 0, 0x50]));
        assert_eq!(n.state, NeighborState::Reachable);

        // Learned by traffic.
        node.exec("ping", &["-c", "1", "-W", "2", "192.0.2.2"])?;
        let n = updated(
            wait_for(
                &mut watch,
                "neighbor learned by ping",
                resolved("192.0.2.2"),
            )
            .await?,
        )?;
        assert_eq!(n.mac, Some(p0_mac));

        // Resolution on request: ARP and ND, one-shot and managed.
        let mut resolver = NeighborResolver::new()?;
        for target in ["192.0.2.3", "2001:db8::2"] {
            let asked = Instant::now();
            resolver.request_resolution(h0, addr(target)).await?;
            let n = updated(wait_for(&mut watch, "resolution", resolved(target)).await?)?;
            println!(
                "request_resolution({target}) -> resolved event: {:?}",
                asked.elapsed()
            );
            assert_eq!(n.mac, Some(p0_mac), "{target}");
            assert!(n.state.has_mac());
        }
        resolver.keep_resolved(h0, addr("192.0.2.4")).await?;
        let n = updated(wait_for(&mut watch, "managed resolution", resolved("192.0.2.4")).await?)?;
        assert_eq!(n.mac, Some(p0_mac));
        let shown = node.ip(&["neigh", "show", "192.0.2.4", "dev", "h0"])?;
        assert!(shown.contains("managed"), "not a managed entry: {shown}");

        // Nobody answers: an entry without a MAC.
        let asked = Instant::now();
        resolver.request_resolution(h0, addr("192.0.2.77")).await?;
        let event = wait_for(
            &mut watch,
            "unresolved entry",
            |e| matches!(e, Event::Added(n) | Event::Changed(n) if n.addr == addr("192.0.2.77")),
        )
        .await?;
        let n = updated(event)?;
        println!(
            "unanswered request: {:?} after {:?}",
            n.state,
            asked.elapsed()
        );
        assert_eq!(n.mac, None);
        assert!(
            matches!(
                n.state,
                NeighborState::Incomplete | NeighborState::None | NeighborState::Failed
            ),
            "{n:?}"
        );

        // Deletions.
        assert!(resolver.forget(h0, addr("192.0.2.4")).await?);
        assert!(!resolver.forget(h0, addr("192.0.2.4")).await?);
        wait_for(
            &mut watch,
            "managed entry removal",
            |e| matches!(e, Event::Removed(n) if n.addr == addr("192.0.2.4")),
        )
        .await?;
        ip(&node, "neigh del 192.0.2.50 dev h0")?;
        let removed = wait_for(&mut watch, "removal", |e| matches!(e, Event::Removed(_))).await?;
        let Event::Removed(n) = removed else {
            bail!("unreachable")
        };
        assert_eq!((n.ifindex, n.addr), (h0, addr("192.0.2.50")));

        // The interface goes down: the kernel flushes its entries, and says so.
        ip(&node, "link set h0 down")?;
        wait_for(
            &mut watch,
            "removal on link down",
            |e| matches!(e, Event::Removed(n) if n.ifindex == h0 && n.addr == addr("192.0.2.2")),
        )
        .await?;
        Ok(())
    })
}

#[test]
fn links_report_name_mac_mtu_and_state_changes() -> Result<()> {
    let Lab { node, pod: _pod } = lab()?;
    let h0 = node.link("h0")?;
    in_netns(&node, || async {
        let mut watch = watch_links(&WatchOptions::default())?;
        let initial = until_synced(&mut watch).await?;
        let find = |name: &str| {
            initial.iter().find_map(|e| match e {
                Event::Added(l) if l.name == name => Some(l.clone()),
                _ => None,
            })
        };
        let link: Link = find("h0").ok_or_else(|| anyhow!("h0 not in {initial:?}"))?;
        assert_eq!(link.ifindex, h0.ifindex);
        assert_eq!(link.mac, Some(h0.mac));
        assert_eq!(link.mtu, 1500);
        assert!(link.admin_up && link.is_usable(), "{link:?}");
        let lo = find("lo").ok_or_else(|| anyhow!("no lo"))?;
        assert_eq!(lo.ifindex, 1);

        ip(&node, "link set h0 mtu 1400")?;
        let Event::Changed(l) = next(&mut watch).await? else {
            bail!("no change")
        };
        assert_eq!((l.ifindex, l.mtu), (h0.ifindex, 1400));

        let done = ip(&node, "link set h0 down")?;
        let event = wait_for(
            &mut watch,
            "link down",
            |e| matches!(e, Event::Changed(l) if l.ifindex == h0.ifindex && !l.admin_up),
        )
        .await?;
        println!("`ip link set down` returned -> event: {:?}", done.elapsed());
        let Event::Changed(l) = event else {
            bail!("unreachable")
        };
        assert_eq!(l.oper, OperState::Down);
        assert!(!l.is_usable());

        ip(&node, "link set h0 up")?;
        wait_for(&mut watch, "link up", |e| {
            matches!(e, Event::Changed(l) if l.ifindex == h0.ifindex && l.oper == OperState::Up)
        })
        .await?;
        ip(&node, "link set h0 name cali1a2b")?;
        wait_for(
            &mut watch,
            "rename",
            |e| matches!(e, Event::Changed(l) if l.ifindex == h0.ifindex && l.name == "cali1a2b"),
        )
        .await?;
        ip(&node, "link del cali1a2b")?;
        wait_for(
            &mut watch,
            "removal",
            |e| matches!(e, Event::Removed(l) if l.ifindex == h0.ifindex),
        )
        .await?;
        Ok(())
    })
}

fn ours(node: &Netns, family: &str) -> Result<String> {
    node.ip(&[
        family,
        "route",
        "show",
        "proto",
        &RTPROT_BGP_CTL.to_string(),
    ])
}

#[test]
fn kernel_fib_installs_replaces_and_flushes_only_our_routes() -> Result<()> {
    let Lab { node, pod: _pod } = lab()?;
    let h0 = node.link("h0")?.ifindex;
    let h1 = node.link("h1")?.ifindex;
    // Someone else's routes, one on a prefix we also install.
    ip(
        &node,
        "route add 203.0.113.0/24 via 192.0.2.2 metric 100 proto bird",
    )?;
    ip(&node, "route add 10.9.0.0/16 via 198.51.100.2 proto static")?;
    in_netns(&node, || async {
        let mut fib = KernelFib::new(KernelFibConfig::default())?;
        let ecmp4 = KernelRoute {
            prefix: net("203.0.113.0/24"),
            next_hops: vec![
                KernelNextHop::via(addr("192.0.2.2"), h0),
                KernelNextHop::via(addr("198.51.100.2"), h1),
            ],
        };
        let ecmp6 = KernelRoute {
            prefix: net("2001:db8:99::/48"),
            next_hops: vec![
                KernelNextHop::via(addr("2001:db8::2"), h0),
                KernelNextHop {
                    weight: 3,
                    ..KernelNextHop::via(addr("2001:db8:1::2"), h1)
                },
            ],
        };
        let rfc5549 = KernelRoute {
            prefix: net("203.0.113.128/25"),
            next_hops: vec![KernelNextHop::via(addr("2001:db8::2"), h0)],
        };
        for route in [&ecmp4, &ecmp6, &rfc5549] {
            fib.replace(route).await?;
        }
        let v4 = ours(&node, "-4")?;
        println!("{v4}");
        assert!(v4.contains("203.0.113.0/24 metric 20"), "{v4}");
        let all = node.ip(&["route", "show"])?;
        assert!(all.contains("203.0.113.0/24 proto 200 metric 20"), "{all}");
        assert!(v4.contains("nexthop via 192.0.2.2 dev h0 weight 1"), "{v4}");
        assert!(
            v4.contains("nexthop via 198.51.100.2 dev h1 weight 1"),
            "{v4}"
        );
        assert!(
            v4.contains("203.0.113.128/25 via inet6 2001:db8::2 dev h0 metric 20"),
            "{v4}"
        );
        let v6 = ours(&node, "-6")?;
        println!("{v6}");
        assert!(v6.contains("2001:db8:99::/48 metric 20"), "{v6}");
        assert!(
            v6.contains("nexthop via 2001:db8::2 dev h0 weight 1"),
            "{v6}"
        );
        assert!(
            v6.contains("nexthop via 2001:db8:1::2 dev h1 weight 3"),
            "{v6}"
        );
        let mut listed = fib.routes().await?;
        listed.sort_by_key(|r| r.prefix);
        let mut want = vec![ecmp4.clone(), ecmp6.clone(), rfc5549.clone()];
        want.sort_by_key(|r| r.prefix);
        assert_eq!(listed, want);

        // Replace: ECMP down to one next hop, for both families.
        let single4 = KernelRoute {
            prefix: ecmp4.prefix,
            next_hops: vec![KernelNextHop::via(addr("198.51.100.2"), h1)],
        };
        let single6 = KernelRoute {
            prefix: ecmp6.prefix,
            next_hops: vec![KernelNextHop::via(addr("2001:db8::2"), h0)],
        };
        fib.replace(&single4).await?;
        fib.replace(&single6).await?;
        let v4 = ours(&node, "-4")?;
        assert!(
            v4.contains("203.0.113.0/24 via 198.51.100.2 dev h1 metric 20"),
            "{v4}"
        );
        assert!(!v4.contains("nexthop"), "{v4}");
        let v6 = ours(&node, "-6")?;
        assert!(
            v6.contains("2001:db8:99::/48 via 2001:db8::2 dev h0 metric 20"),
            "{v6}"
        );
        assert!(!v6.contains("nexthop"), "{v6}");

        // Errors name the route and say why.
        let bad = KernelRoute {
            prefix: net("192.0.2.128/25"),
            next_hops: vec![KernelNextHop::via(addr("203.0.113.1"), h0)],
        };
        let err = fib.replace(&bad).await.expect_err("unreachable gateway");
        println!("refused: {err}");
        assert!(err.to_string().contains("192.0.2.128/25"), "{err}");

        // Many at once.
        const N: u32 = 5000;
        let changes: Vec<FibChange> = (0..N)
            .map(|i| {
                FibChange::Replace(KernelRoute {
                    prefix: IpNet::from(IpAddr::from([10, 50, (i / 256) as u8, (i % 256) as u8])),
                    next_hops: vec![
                        KernelNextHop::via(addr("192.0.2.2"), h0),
                        KernelNextHop::via(addr("198.51.100.2"), h1),
                    ],
                })
            })
            .collect();
        let started = Instant::now();
        let outcomes = fib.apply(&changes).await?;
        let took = started.elapsed();
        println!(
            "{N} ECMP routes installed in {took:?} ({:.0} routes/s)",
            f64::from(N) / took.as_secs_f64()
        );
        ensure!(
            outcomes.iter().all(Result::is_ok),
            "{:?}",
            outcomes.iter().find(|o| o.is_err())
        );
        assert_eq!(
            ours(&node, "-4")?
                .lines()
                .filter(|l| l.starts_with("10.50."))
                .count(),
            N as usize
        );

        // Delete one, then flush the rest: only ours go.
        assert!(fib.delete(rfc5549.prefix).await?);
        assert!(!fib.delete(rfc5549.prefix).await?);
        let started = Instant::now();
        let flushed = fib.flush().await?;
        println!("flushed {flushed} routes in {:?}", started.elapsed());
        assert_eq!(flushed, N as usize + 2);
        assert_eq!(ours(&node, "-4")?.trim(), "");
        assert_eq!(ours(&node, "-6")?.trim(), "");
        let rest = node.ip(&["route", "show"])?;
        assert!(
            rest.contains("203.0.113.0/24 via 192.0.2.2 dev h0 proto bird metric 100"),
            "{rest}"
        );
        assert!(
            rest.contains("10.9.0.0/16 via 198.51.100.2 dev h1 proto static"),
            "{rest}"
        );
        assert_eq!(fib.routes().await?, vec![]);
        Ok(())
    })
}

/// The FIB programmer's way to a local pod's MAC: a pod route names the host-side veth,
/// and a resolution request for the pod IP on it brings the pod's MAC. Calico-style:
/// the host side has no address, the pod has a /32 (and a /128) and a link-local
/// default gateway.
#[test]
fn a_pod_mac_is_resolved_on_the_veth_its_route_names() -> Result<()> {
    lab::require_root()?;
    lab::sweep_stale();
    let (node, pod) = (Netns::new()?, Netns::new()?);
    lab::veth(&node, "cali1a2b", &pod, "eth0")?;
    let cali = node.link("cali1a2b")?.ifindex;
    let pod_mac = pod.link("eth0")?.mac;
    // The node's own address, which its ARP requests carry as sender.
    node.ip(&["addr", "add", "192.0.2.10/32", "dev", "lo"])?;
    pod.ip(&["addr", "add", "10.244.1.5/32", "dev", "eth0"])?;
    pod.ip(&[
        "-6",
        "addr",
        "add",
        "fd00:10:244::5/128",
        "dev",
        "eth0",
        "nodad",
    ])?;
    pod.ip(&[
        "route",
        "add",
        "169.254.1.1",
        "dev",
        "eth0",
        "scope",
        "link",
    ])?;
    pod.ip(&[
        "route",
        "add",
        "default",
        "via",
        "169.254.1.1",
        "dev",
        "eth0",
    ])?;
    for ns in [&node, &pod] {
        let started = Instant::now();
        while !ns
            .ip(&["-6", "addr", "show", "tentative"])?
            .trim()
            .is_empty()
        {
            ensure!(
                started.elapsed() < PATIENCE,
                "DAD never finished in {}",
                ns.name()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    in_netns(&node, || async {
        let mut routes = watch_pod_routes(cidrs(), &WatchOptions::default())?;
        let mut neighbors = watch_neighbors(&WatchOptions::default())?;
        let mut resolver = NeighborResolver::new()?;
        until_synced(&mut routes).await?;
        until_synced(&mut neighbors).await?;
        // The CNI's routes.
        ip(&node, "route add 10.244.1.5/32 dev cali1a2b scope link")?;
        ip(&node, "-6 route add fd00:10:244::5/128 dev cali1a2b")?;
        for _ in 0..2 {
            let route = updated(next(&mut routes).await?)?;
            assert_eq!((route.ifindex, route.ifname.as_str()), (cali, "cali1a2b"));
            let pod_ip = route.prefix.addr();
            let asked = Instant::now();
            resolver.request_resolution(route.ifindex, pod_ip).await?;
            let n = updated(
                wait_for(&mut neighbors, "pod MAC", |e| {
                    matches!(e, Event::Added(n) | Event::Changed(n)
                        if n.ifindex == cali && n.addr == pod_ip && n.mac.is_some())
                })
                .await?,
            )?;
            println!(
                "pod {pod_ip}: MAC resolved {:?} after the request",
                asked.elapsed()
            );
            assert_eq!(n.mac, Some(pod_mac), "{pod_ip}");
        }
        Ok(())
    })
}

/// `ip route get`: a connected next hop resolves to its interface, one behind a gateway
/// to the interface and the gateway, an unroutable one to nothing.
#[test]
fn route_lookup_gives_egress_and_gateway() -> Result<()> {
    let lab = lab()?;
    lab.node
        .ip(&["route", "add", "203.0.113.0/24", "via", "198.51.100.2"])?;
    lab.node.ip(&[
        "-6",
        "route",
        "add",
        "2001:db8:9::/48",
        "via",
        "2001:db8::2",
    ])?;
    let (h0, h1) = (lab.node.link("h0")?.ifindex, lab.node.link("h1")?.ifindex);
    in_netns(&lab.node, || async move {
        let mut lookup = bgp_ctl::netlink::RouteLookup::new()?;
        let v4 = |s: &str| s.parse::<IpAddr>().unwrap();
        let connected = lookup.egress(v4("192.0.2.2")).await?.context("connected")?;
        ensure!(
            connected.ifindex == h0 && connected.gateway.is_none(),
            "{connected:?}"
        );
        let routed = lookup.egress(v4("203.0.113.9")).await?.context("routed")?;
        ensure!(routed.ifindex == h1, "{routed:?}");
        ensure!(routed.gateway == Some(v4("198.51.100.2")), "{routed:?}");
        ensure!(routed.neighbor(v4("203.0.113.9")) == v4("198.51.100.2"));
        let routed6 = lookup
            .egress(v4("2001:db8:9::1"))
            .await?
            .context("routed v6")?;
        ensure!(
            routed6.ifindex == h0 && routed6.gateway == Some(v4("2001:db8::2")),
            "{routed6:?}"
        );
        let none = lookup.egress(v4("10.99.0.1")).await?;
        ensure!(none.is_none(), "no default route, yet {none:?}");
        Ok(())
    })
}
