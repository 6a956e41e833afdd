//! Golden tests of the CLI's tables and JSON lines: the output for fixed replies is
//! compared with files under tests/golden/ (regenerate with `UPDATE_GOLDEN=1`, then
//! review the diff).

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use bgp_ctl::{
    api::protocol::{
        Envelope, FibMemberView, FibView, HealthView, KernelFibView, MapOpsView, MessageCounts,
        NeighborDetail, NeighborSummary, PathView, ReloadReport, Reply, RouteView, StatsView,
        TableCounts,
    },
    cli::render,
    fib::AttachMode,
    health::{self, ConfigStatus, HealthInput, PeerStatus, UplinkStatus},
};

fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create)",
            path.display()
        )
    });
    assert_eq!(actual, expected, "{name} differs from the golden file");
}

fn leaf(
    name: &str,
    addr: &str,
    asn: u32,
    state: &str,
    since: u64,
    err: Option<&str>,
) -> NeighborSummary {
    NeighborSummary {
        name: name.into(),
        address: addr.parse().unwrap(),
        remote_asn: asn,
        state: state.into(),
        since_secs: since,
        received: if state == "Established" { 1204 } else { 0 },
        accepted: if state == "Established" { 1200 } else { 0 },
        advertised: if state == "Established" { 3 } else { 0 },
        last_error: err.map(Into::into),
        dynamic: false,
        configured_secs: 4000,
    }
}

fn neighbors() -> Vec<NeighborSummary> {
    vec![
        leaf("leaf1", "192.168.1.1", 65001, "Established", 3723, None),
        leaf(
            "leaf2",
            "192.168.2.1",
            65002,
            "Active",
            42,
            Some("received NOTIFICATION Cease/Administrative Shutdown \"maintenance\""),
        ),
        leaf(
            "rack-4200000007",
            "fd00:192:168:1::7",
            4200000007,
            "Established",
            300000,
            None,
        ),
    ]
}

fn routes() -> Vec<RouteView> {
    let path = |from: &str, nh: &str, best, multipath, stale| PathView {
        from: from.into(),
        next_hop: Some(nh.parse().unwrap()),
        as_path: "65001 4200000002".into(),
        origin: "igp".into(),
        med: None,
        local_pref: None,
        communities: vec![],
        best,
        multipath,
        stale,
    };
    vec![
        RouteView {
            prefix: "10.244.1.5/32".parse().unwrap(),
            paths: vec![PathView {
                from: "local".into(),
                next_hop: None,
                as_path: String::new(),
                origin: "incomplete".into(),
                med: None,
                local_pref: Some(100),
                communities: vec!["no-export".into(), "65000:1:2".into()],
                best: true,
                multipath: false,
                stale: false,
            }],
        },
        RouteView {
            prefix: "10.244.2.0/24".parse().unwrap(),
            paths: vec![
                path("leaf1", "192.168.1.1", true, true, false),
                PathView {
                    as_path: "65002 4200000002".into(),
                    ..path("leaf2", "192.168.2.1", false, true, true)
                },
            ],
        },
    ]
}

fn fib() -> Vec<FibView> {
    vec![
        FibView {
            prefix: "10.244.2.0/24".parse().unwrap(),
            local_address: false,
            group: 3,
            members: vec![
                FibMemberView {
                    kind: "forward".into(),
                    address: Some("192.168.1.1".parse().unwrap()),
                    interface: Some("eth0".into()),
                    src_mac: Some("52:54:00:00:00:01".into()),
                    dst_mac: Some("52:54:00:00:01:01".into()),
                    mtu: Some(1500),
                    buckets: 128,
                },
                FibMemberView {
                    kind: "unresolved".into(),
                    address: Some("192.168.2.1".parse().unwrap()),
                    interface: Some("eth1".into()),
                    src_mac: None,
                    dst_mac: None,
                    mtu: Some(1500),
                    buckets: 128,
                },
            ],
        },
        FibView {
            prefix: "192.168.1.11/32".parse().unwrap(),
            local_address: true,
            group: 1,
            members: vec![FibMemberView {
                kind: "local".into(),
                address: None,
                interface: None,
                src_mac: None,
                dst_mac: None,
                mtu: None,
                buckets: 256,
            }],
        },
    ]
}

#[test]
fn neighbors_table() {
    golden("neighbors.txt", &render::neighbors(&neighbors()));
}

#[test]
fn neighbor_detail() {
    let d = NeighborDetail {
        summary: neighbors().remove(0),
        local_asn: 4200000001,
        local_address: Some("192.168.1.11".parse().unwrap()),
        router_id: Some("10.0.0.1".parse().unwrap()),
        hold_time: Some(9),
        keepalive: Some(3),
        configured_hold_time: 9,
        capabilities_sent: vec!["mp ipv4-unicast".into(), "4-octet-as".into()],
        capabilities_received: vec!["mp ipv4-unicast".into(), "route-refresh".into()],
        families: vec!["ipv4-unicast".into()],
        messages_received: MessageCounts {
            open: 1,
            update: 12,
            notification: 0,
            keepalive: 1241,
            route_refresh: 0,
        },
        messages_sent: MessageCounts {
            open: 1,
            update: 2,
            notification: 0,
            keepalive: 1240,
            route_refresh: 1,
        },
        flaps: 2,
        import_policy: Some("fabric".into()),
        export_policy: None,
        bfd: Some("Up (100 ms x 3)".into()),
        graceful_restart: None,
    };
    golden("neighbor-detail.txt", &render::neighbor(&d));
}

#[test]
fn routes_table() {
    golden("routes.txt", &render::routes(&routes()));
}

#[test]
fn fib_table() {
    golden("fib.txt", &render::fib(&fib()));
}

fn stats() -> StatsView {
    StatsView {
        counters: vec![
            ("rx".into(), 1000),
            ("forwarded".into(), 990),
            ("pass_no_route".into(), 10),
        ],
        attached: vec![("eth0".into(), "driver".into())],
        tables: TableCounts {
            routes: 100_002,
            local_addresses: 7,
            groups: 3,
            next_hops: 4,
        },
        map_ops: MapOpsView {
            route_writes: 200_004,
            group_writes: 8,
            next_hop_writes: 14,
            barriers: 1,
            background_barriers: 3,
        },
        kernel_fib: Some(KernelFibView {
            routes: 100_000,
            stale: 0,
            failed: 2,
            pending: 0,
        }),
    }
}

#[test]
fn stats_table_and_health_line() {
    let s = stats();
    let now = Instant::now();
    let verdict = health::evaluate(&HealthInput {
        config: ConfigStatus::Loaded,
        uplinks: vec![
            UplinkStatus {
                name: "eth0".into(),
                want: AttachMode::Driver,
                attached: Some(AttachMode::Driver),
            },
            UplinkStatus {
                name: "eth1".into(),
                want: AttachMode::Driver,
                attached: None,
            },
        ],
        peers: vec![PeerStatus {
            name: "leaf2".into(),
            established: false,
            state: "Active".into(),
            dynamic: false,
            configured_at: now - Duration::from_secs(90),
            startup_grace: Duration::from_secs(60),
        }],
        last_progress: now,
        stall_limit: Duration::from_secs(10),
        now,
    });
    let h = HealthView::from(&verdict);
    assert_eq!(
        h.failing,
        ["uplink-not-attached:eth1", "peer-not-established:leaf2"]
    );
    golden(
        "stats-health.txt",
        &(render::stats(&s) + &render::health(&h)),
    );
}

#[test]
fn json_lines() {
    let mut out = String::new();
    for n in neighbors() {
        out.push_str(&serde_json::to_string(&Envelope::new(Reply::Neighbor(n))).unwrap());
        out.push('\n');
    }
    for r in routes() {
        out.push_str(&serde_json::to_string(&Envelope::new(Reply::Route(r))).unwrap());
        out.push('\n');
    }
    out.push_str(&serde_json::to_string(&Envelope::new(Reply::Stats(stats()))).unwrap());
    out.push('\n');
    golden("json-lines.txt", &out);
}

#[test]
fn reload_report() {
    let changed = ReloadReport {
        changes: vec![
            "policy leaf1-in: added".into(),
            "peer leaf1: import policy applied again (12 prefixes changed, no reset)".into(),
            "peer leaf3: added".into(),
            "peer leaf2: timers changed: session reset".into(),
        ],
        sessions_reset: vec!["leaf2".into()],
    };
    let none = ReloadReport {
        changes: vec![],
        sessions_reset: vec![],
    };
    golden(
        "reload.txt",
        &(render::reload(&changed) + &render::reload(&none)),
    );
}
