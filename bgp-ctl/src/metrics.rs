//! `/metrics`: the agent's state in the Prometheus text exposition format (0.0.4).
//!
//! Pure: rendered from the same views the control API serves (`show neighbors`, `show
//! stats`) and the health verdict, so the numbers a dashboard shows are the ones
//! `bgp-ctl show` prints.

use std::fmt::Write;

use crate::{
    api::protocol::{NeighborSummary, StatsView},
    health::Health,
};

/// The Prometheus text for one snapshot.
pub fn render(neighbors: &[NeighborSummary], stats: Option<&StatsView>, health: &Health) -> String {
    let mut o = String::new();
    family(
        &mut o,
        "bgp_ctl_ready",
        "gauge",
        "1 when ready (see /readyz).",
    );
    let _ = writeln!(o, "bgp_ctl_ready {}", u8::from(health.ready && health.live));
    family(
        &mut o,
        "bgp_ctl_live",
        "gauge",
        "1 when live (see /healthz).",
    );
    let _ = writeln!(o, "bgp_ctl_live {}", u8::from(health.live));

    family(
        &mut o,
        "bgp_ctl_peer_established",
        "gauge",
        "1 when the session is Established.",
    );
    for n in neighbors {
        let _ = writeln!(
            o,
            "bgp_ctl_peer_established{{{}}} {}",
            peer_labels(n),
            u8::from(n.state == "Established")
        );
    }
    for (name, help, value) in [
        (
            "bgp_ctl_peer_prefixes_received",
            "Prefixes in the Adj-RIB-In (before import policy).",
            (|n: &NeighborSummary| n.received) as fn(&NeighborSummary) -> u64,
        ),
        (
            "bgp_ctl_peer_prefixes_accepted",
            "Prefixes accepted by import policy.",
            |n| n.accepted,
        ),
        (
            "bgp_ctl_peer_prefixes_advertised",
            "Prefixes in the Adj-RIB-Out.",
            |n| n.advertised,
        ),
        (
            "bgp_ctl_peer_state_seconds",
            "Seconds in the current session state.",
            |n| n.since_secs,
        ),
    ] {
        family(&mut o, name, "gauge", help);
        for n in neighbors {
            let _ = writeln!(o, "{name}{{{}}} {}", peer_labels(n), value(n));
        }
    }

    let Some(s) = stats else {
        return o;
    };
    family(
        &mut o,
        "bgp_ctl_xdp_packets_total",
        "counter",
        "Packets seen by the XDP program, by outcome (rx: received; forwarded; pass_*: \
         handed to the kernel and why; drop_*: dropped), summed over CPUs.",
    );
    for (reason, packets) in &s.counters {
        let _ = writeln!(
            o,
            "bgp_ctl_xdp_packets_total{{reason=\"{}\"}} {packets}",
            escape(reason)
        );
    }
    family(
        &mut o,
        "bgp_ctl_xdp_attached",
        "gauge",
        "Uplinks the XDP program is attached to, with the mode.",
    );
    for (iface, mode) in &s.attached {
        let _ = writeln!(
            o,
            "bgp_ctl_xdp_attached{{interface=\"{}\",mode=\"{}\"}} 1",
            escape(iface),
            escape(mode)
        );
    }
    family(
        &mut o,
        "bgp_ctl_dataplane_entries",
        "gauge",
        "Entries in the dataplane's tables.",
    );
    for (table, n) in [
        ("routes", s.tables.routes),
        ("local_addresses", s.tables.local_addresses),
        ("groups", s.tables.groups),
        ("next_hops", s.tables.next_hops),
    ] {
        let _ = writeln!(o, "bgp_ctl_dataplane_entries{{table=\"{table}\"}} {n}");
    }
    family(
        &mut o,
        "bgp_ctl_fib_map_writes_total",
        "counter",
        "Map writes by the FIB programmer since the daemon started, by kind.",
    );
    for (kind, n) in [
        ("route", s.map_ops.route_writes),
        ("group", s.map_ops.group_writes),
        ("next_hop", s.map_ops.next_hop_writes),
    ] {
        let _ = writeln!(o, "bgp_ctl_fib_map_writes_total{{kind=\"{kind}\"}} {n}");
    }
    if let Some(k) = &s.kernel_fib {
        family(
            &mut o,
            "bgp_ctl_kernel_fib_routes",
            "gauge",
            "Our routes in the kernel FIB ([dataplane] kernel-fib), by state (installed: \
             all of ours there, adopted ones included; stale: adopted, not learned again \
             yet; failed: the kernel refused the last write; pending: not written yet).",
        );
        for (state, n) in [
            ("installed", k.routes),
            ("stale", k.stale),
            ("failed", k.failed),
            ("pending", k.pending),
        ] {
            let _ = writeln!(o, "bgp_ctl_kernel_fib_routes{{state=\"{state}\"}} {n}");
        }
    }
    o
}

fn family(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}");
    let _ = writeln!(o, "# TYPE {name} {kind}");
}

fn peer_labels(n: &NeighborSummary) -> String {
    format!(
        "peer=\"{}\",address=\"{}\",remote_asn=\"{}\"",
        escape(&n.name),
        n.address,
        n.remote_asn
    )
}

/// Label values escape backslash, double quote and newline.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::protocol::{KernelFibView, MapOpsView, TableCounts};

    fn neighbor(name: &str, state: &str) -> NeighborSummary {
        NeighborSummary {
            name: name.into(),
            address: "192.168.1.1".parse().unwrap(),
            remote_asn: 65001,
            state: state.into(),
            since_secs: 42,
            received: 7,
            accepted: 6,
            advertised: 3,
            last_error: None,
            dynamic: false,
            configured_secs: 50,
        }
    }

    fn health(ready: bool) -> Health {
        Health {
            live: true,
            ready,
            failing: Vec::new(),
            peers_required: 1,
            peers_established: 1,
            peers_starting: 0,
            uplinks: 1,
        }
    }

    #[test]
    fn every_sample_belongs_to_a_declared_family_and_labels_are_escaped() {
        let stats = StatsView {
            counters: vec![("rx".into(), 10), ("pass_no_route".into(), 2)],
            attached: vec![("eth0".into(), "driver".into())],
            tables: TableCounts {
                routes: 5,
                local_addresses: 6,
                groups: 2,
                next_hops: 3,
            },
            map_ops: MapOpsView::default(),
            kernel_fib: Some(KernelFibView {
                routes: 4,
                stale: 1,
                failed: 0,
                pending: 0,
            }),
        };
        let text = render(
            &[
                neighbor("leaf\"1", "Established"),
                neighbor("leaf2", "Active"),
            ],
            Some(&stats),
            &health(false),
        );
        assert!(text.contains("bgp_ctl_ready 0\n"), "{text}");
        assert!(text.contains(
            "bgp_ctl_peer_established{peer=\"leaf\\\"1\",address=\"192.168.1.1\",remote_asn=\"65001\"} 1\n"
        ));
        assert!(text.contains("bgp_ctl_peer_established{peer=\"leaf2\","));
        assert!(text.contains("bgp_ctl_xdp_packets_total{reason=\"pass_no_route\"} 2\n"));
        assert!(text.contains("bgp_ctl_dataplane_entries{table=\"routes\"} 5\n"));
        assert!(text.contains("bgp_ctl_kernel_fib_routes{state=\"installed\"} 4\n"));
        assert!(text.contains("bgp_ctl_kernel_fib_routes{state=\"stale\"} 1\n"));
        let declared: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        for sample in text.lines().filter(|l| !l.starts_with('#')) {
            let name = sample.split(['{', ' ']).next().unwrap();
            assert!(declared.contains(&name), "{name} has no TYPE line");
            let value = sample.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{sample}");
        }
    }

    #[test]
    fn without_dataplane_stats_only_the_control_plane_is_shown() {
        let text = render(&[neighbor("leaf1", "Idle")], None, &health(true));
        assert!(text.contains("bgp_ctl_ready 1\n"));
        assert!(text.contains("bgp_ctl_peer_established{peer=\"leaf1\""));
        assert!(!text.contains("bgp_ctl_xdp_packets_total"));
    }
}
